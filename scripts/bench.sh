#!/usr/bin/env bash
# Runs every benchmark (release builds; not part of CI). Each prints its own baseline,
# measured in the same run, and the ratio against it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p tillmesh-store --bench commit   # durable sale commit vs raw SQLite insert (FULL)
cargo bench -p tillmesh --bench mesh           # 5 tills: commit-to-visible latency, wire bytes
cargo bench -p tillmesh-pos --bench merge      # PN-counter merges vs automerge counters
cargo bench -p tillmesh-cloud --bench ingest    # cloud ingestion vs raw batched INSERT, projection alone; with TILLMESH_PG_URL PostgreSQL too and a 50-store outage extrapolated to 1,000 stores
cargo bench -p tillmesh --bench uplink         # failover to the new leader's first upload; 5x2,400 offline sales catch-up
cargo bench -p tillmesh --bench memory         # a till of 50,000 SKUs and 1,000,000 past sales: resident memory and start-up vs the demo till
cargo build --release -p tillmesh --bin tillmesh && python3 scripts/bench_boot.py --bin target/release/tillmesh  # 5 tills in network namespaces: boot to joined (root)
cargo build -p tillmesh --bin tillmesh && python3 scripts/bench_sim.py --release target/release/tillmesh --debug target/debug/tillmesh  # the simulator: split-2-3 simulated:wall vs an idle store, fuzz seeds/min
python3 scripts/bench_vision.py          # tract vs ONNX Runtime per frame, one thread (pip install onnxruntime numpy)
