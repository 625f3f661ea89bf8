#!/usr/bin/env python3
"""P11: the simulator's speed, simulated time per wall time and fuzz seeds per minute.

For each build given (release and debug, the one CI tests with), it runs
`simulations/split-2-3.toml` on `--seeds` seeds one at a time and reports simulated seconds
per wall second. The same-run baseline is the same store idle (5 tills, no cashier, no fault,
the same length): what the mesh, Raft and uplink cost with nothing to do; the ratio says how
much the workload and the faults add. Then `tillmesh sim --fuzz` on `--fuzz` seeds with
`--jobs` at once, per build: seeds per minute and the time 10,000 seeds would take at that
rate.

    cargo build --release -p tillmesh --bin tillmesh && cargo build -p tillmesh --bin tillmesh
    python3 scripts/bench_sim.py --release target/release/tillmesh --debug target/debug/tillmesh
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "simulations" / "split-2-3.toml"
RUN = re.compile(r"(\d+) simulated seconds in ([\d.]+) s")
SEEDS = re.compile(r"(\d+) seeds, (\d+) failed")

IDLE = """name = "idle-store"
description = "5 tills, no cashier, no fault: the background cost of a store"
tills = 5
duration_s = 120
settle_s = 120

[workload]
sales_per_minute = 0.0
price_changes = 0
"""


def sim(binary, args):
    """Runs `tillmesh sim` and answers (simulated s, wall s) from its summary line."""
    out = subprocess.run(
        [binary, "sim", *args], capture_output=True, text=True, check=False
    )
    m = RUN.search(out.stdout)
    if out.returncode != 0 or not m:
        sys.exit(f"bench_sim: {binary} sim {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return int(m.group(1)), float(m.group(2))


def speed(binary, scenario, seeds):
    """Simulated seconds per wall second over `seeds` seeds, run one at a time."""
    simulated, wall = 0, 0.0
    for seed in range(1, seeds + 1):
        s, w = sim(binary, [str(scenario), "--seed", str(seed)])
        simulated += s
        wall += w
    return simulated / wall


def fuzz(binary, seeds, jobs):
    """Fuzz seeds per minute, `jobs` at once (wall time of the whole batch)."""
    t = time.monotonic()
    out = subprocess.run(
        [binary, "sim", "--fuzz", "--seeds", str(seeds), "--jobs", str(jobs), "--seed", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - t
    m = SEEDS.search(out.stdout)
    if not m or m.group(2) != "0":
        sys.exit(f"bench_sim: fuzz batch failed:\n{out.stdout[-4000:]}{out.stderr[-2000:]}")
    return seeds / wall * 60.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", help="the release binary")
    ap.add_argument("--debug", help="the debug binary (what CI tests with)")
    ap.add_argument("--seeds", type=int, default=5, help="split-2-3 seeds per build")
    ap.add_argument("--fuzz", type=int, default=200, help="fuzz seeds per build")
    ap.add_argument("--jobs", type=int, default=2, help="fuzz seeds at once")
    a = ap.parse_args()
    builds = [(n, b) for n, b in (("release", a.release), ("debug", a.debug)) if b]
    if not builds:
        sys.exit("bench_sim: give --release and/or --debug")
    with tempfile.TemporaryDirectory() as tmp:
        idle = Path(tmp) / "idle.toml"
        idle.write_text(IDLE)
        print("| build | split-2-3, simulated:wall | idle store (baseline) | ratio | fuzz seeds/min | 10,000 seeds |")
        print("|---|---|---|---|---|---|")
        for name, binary in builds:
            busy = speed(binary, SCENARIO, a.seeds)
            base = speed(binary, idle, a.seeds)
            rate = fuzz(binary, a.fuzz, a.jobs) if a.fuzz > 0 else float("nan")
            print(
                f"| {name} | {busy:,.0f}:1 | {base:,.0f}:1 | {busy / base:.2f}x "
                f"| {rate:,.0f} ({a.jobs} at once) | {10_000 / rate:,.1f} min |",
                flush=True,
            )


if __name__ == "__main__":
    main()
