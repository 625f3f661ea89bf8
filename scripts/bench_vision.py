#!/usr/bin/env python3
"""Vision latency benchmark: tract (through `tillmesh vision bench`) against ONNX Runtime
running the same ONNX file on one thread, in the same run; prints both and the ratio.

Usage: scripts/bench_vision.py [--profile release|dev] [--card models/products.json]
       [--frames 200] [--bin target/release/tillmesh]
Needs `pip install onnxruntime numpy`. The dev profile builds tract's kernels at opt-level 3
(see Cargo.toml); the release profile is what a till runs.
"""

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent


def ort_latency(card_path, frames):
    card = json.loads(card_path.read_text())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    s = ort.InferenceSession(str(card_path.parent / card["file"]), opts,
                             providers=["CPUExecutionProvider"])
    i = card["input"]
    x = np.random.default_rng(7).standard_normal(
        (1, 3, i["height"], i["width"])).astype(np.float32)
    times = []
    for n in range(frames + 10):
        t = time.perf_counter()
        s.run(None, {i["name"]: x})
        if n >= 10:
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2], times[round((len(times) - 1) * 0.99)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="release", choices=["release", "dev"])
    ap.add_argument("--card", default="models/products.json")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--bin", help="a built tillmesh binary to use instead of cargo run")
    a = ap.parse_args()
    card = REPO / a.card
    if a.bin:
        cmd = [a.bin]
    else:
        cmd = ["cargo", "run", "-q", "--locked", "-p", "tillmesh"]
        if a.profile == "release":
            cmd.append("--release")
        cmd.append("--")
    cmd += ["vision", "bench", "--card", str(card), "--frames", str(a.frames)]
    tract = json.loads(subprocess.run(cmd, cwd=REPO, check=True, capture_output=True,
                                      text=True).stdout.strip().splitlines()[-1])
    p50, p99 = ort_latency(card, a.frames)
    m = tract["model_ms"]
    print(f"model {tract['model']} ({a.profile} build), {a.frames} frames, one thread")
    print(f"tract        model p50 {m['p50']:.2f} ms  p99 {m['p99']:.2f} ms   "
          f"(with JPEG decode and crop: p50 {tract['frame_ms']['p50']:.2f} ms  "
          f"p99 {tract['frame_ms']['p99']:.2f} ms)")
    print(f"onnxruntime  model p50 {p50:.2f} ms  p99 {p99:.2f} ms  (version {ort.__version__})")
    print(f"ratio tract/onnxruntime: p50 {m['p50'] / p50:.2f}  p99 {m['p99'] / p99:.2f}")


if __name__ == "__main__":
    main()
