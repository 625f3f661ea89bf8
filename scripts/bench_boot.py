#!/usr/bin/env python3
"""Boot to joined (issue 25, P10): real `tillmesh` processes, one network namespace each.

Each run starts every till of a store at once on fresh disks (`store_tills` set, mDNS on a
bridge). From the moment the processes are started it measures:

- `first sale everywhere`: a cashier sells on till 1 as soon as its API answers; the time
  until every till holds that sale (its version vector covers till 1's events);
- `group formed`: every till names the same leader and all tills are voters.

Baseline, measured in the same run: one till alone (a store of one, same config) from
process start to its first sale acknowledged, i.e. what start-up and one sale cost without
any peer. The ratio says what joining the mesh adds.

Polls go through `ip netns exec curl` (a few ms each), so figures are precise to about
one polling round (printed). Needs root, iproute2 and curl. Usage:

    sudo scripts/bench_boot.py --bin target/release/tillmesh [--runs 5] [--tills 5]
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Cashiers, SetupError, Till, enrolled_tills, run_in_namespaces  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SUBNET = "10.81.0"
TILL_API = "http://127.0.0.1:7300"
LIMIT_S = 60


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(REPO / "target/release/tillmesh"))
    ap.add_argument("--tills", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    binary = str(Path(a.bin).resolve())
    names = [(f"t{i}", f"{SUBNET}.{i}") for i in range(1, a.tills + 1)]
    return run_in_namespaces("bench-boot", names,
                             lambda work, net, tills, others: scenario(a, binary, work, net, tills),
                             a.keep, "measured")


def covers(vv, origin_seqs):
    held = dict((o, s) for o, s in vv)
    return all(held.get(o, 0) >= s for o, s in origin_seqs)


def one_run(binary, work, net, tills, cfgs, n, run_no, cash):
    """Starts `n` tills at once on fresh disks; answers (sale everywhere s, group s, round s)."""
    tills.clear()
    for i, text in cfgs[:n]:
        path = work / f"r{run_no}-n{n}-till-{i}.toml"
        path.write_text(text.replace("{store_tills}", str(n)))
        tills.append(Till(i, path, work / f"r{run_no}-n{n}-data-{i}", work / f"r{run_no}-n{n}-{i}.log",
                          TILL_API, ns=net.nodes[f"t{i}"],
                          env={"RUST_LOG": os.environ.get("TILLMESH_BENCH_LOG", "warn")}))
    t0 = time.monotonic()
    for t in tills:
        t.start(binary)
    deadline = t0 + LIMIT_S
    marks = {"group": None, "everywhere": None, "sold": None}
    mine = []
    rounds = []

    def watch():
        # Polls every till from the start: the group, and (once sold) the sale everywhere.
        while (marks["group"] is None and n > 1) or marks["everywhere"] is None:
            if time.monotonic() > deadline:
                return
            r0 = time.monotonic()
            ss = [t.status() for t in tills]
            now = time.monotonic() - t0
            rounds.append(time.monotonic() - r0)
            if marks["group"] is None and all(s and s.get("raft") for s in ss):
                leaders = {s["raft"]["leader"] for s in ss}
                voters = [s["raft"]["voters"] for s in ss]
                if len(leaders) == 1 and None not in leaders and all(len(v) == n for v in voters):
                    marks["group"] = now
            if mine and marks["everywhere"] is None and all(
                    s and covers(s["version_vector"], mine) for s in ss):
                marks["everywhere"] = now

    watcher = threading.Thread(target=watch)
    watcher.start()
    first = tills[0]
    while first.status() is None:
        if time.monotonic() > deadline:
            raise SetupError(f"till 1 did not answer within {LIMIT_S} s")
        time.sleep(0.01)
    cash.sell(first, 1)
    marks["sold"] = time.monotonic() - t0
    mine.extend((o, s) for o, s in first.status()["version_vector"] if o >> 32 == 1)
    watcher.join()
    if marks["everywhere"] is None or (n > 1 and marks["group"] is None):
        raise SetupError(f"not joined within {LIMIT_S} s: {marks}")
    sale, group = marks["everywhere"], marks["group"]
    for t in tills:
        t.kill9()
    return (marks["sold"] if n == 1 else sale), group, statistics.mean(rounds) if rounds else 0.0


def scenario(a, binary, work, net, tills):
    cfgs = enrolled_tills(binary, work, REPO, SUBNET, range(1, a.tills + 1),
                          "store_tills = {store_tills}\n")
    catalog = json.loads((REPO / "configs/catalog.example.json").read_text())
    cash = Cashiers([(i["barcodes"][0], i["sku"]) for i in catalog["items"][:12] if i["barcodes"]])
    alone, sale, group, rounds = [], [], [], []
    for r in range(a.runs):
        s1, _, _ = one_run(binary, work, net, tills, cfgs, 1, r, cash)
        alone.append(s1)
        s, g, rnd = one_run(binary, work, net, tills, cfgs, a.tills, r, cash)
        sale.append(s)
        group.append(g)
        rounds.append(rnd)
        print(f"run {r + 1}: alone {s1 * 1000:.0f} ms; {a.tills} tills: first sale everywhere "
              f"{s * 1000:.0f} ms, group formed {g * 1000:.0f} ms", flush=True)
    p50 = lambda xs: statistics.median(xs) * 1000
    worst = lambda xs: max(xs) * 1000
    print(f"\nboot to joined, {a.tills} tills in network namespaces, {a.runs} runs "
          f"(one polling round: {statistics.mean(rounds) * 1000:.0f} ms)")
    print(f"  baseline, one till alone, start to first sale: p50 {p50(alone):.0f} ms, max {worst(alone):.0f} ms")
    print(f"  first sale on every till:  p50 {p50(sale):.0f} ms, max {worst(sale):.0f} ms "
          f"({p50(sale) / p50(alone):.2f}x the baseline; goal: 2000 ms)")
    print(f"  Raft group formed:         p50 {p50(group):.0f} ms, max {worst(group):.0f} ms "
          f"({p50(group) / p50(alone):.2f}x the baseline)")
    return [("first sale everywhere within 2 s, every run", worst(sale) <= 2000,
             f"max {worst(sale):.0f} ms"),
            ("group formed within 2 s, every run", worst(group) <= 2000, f"max {worst(group):.0f} ms")]


if __name__ == "__main__":
    sys.exit(main())
