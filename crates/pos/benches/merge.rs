//! CRDT merge throughput against automerge on the same inventory-counter workload, in the
//! same run (a bench script, not a test):
//!
//!     cargo bench -p tillmesh-pos --bench merge
//!
//! Workload: 3 replicas, 200 SKUs. Each operation changes one SKU's stock on one replica,
//! produces the delta, and merges it into the next replica. Ours: a PN-counter per SKU with
//! absolute-entry deltas. Automerge: one document per replica holding a counter per SKU,
//! the delta being the change bytes, applied to the next replica's document.

use automerge::{AutoCommit, ScalarValue, transaction::Transactable};
use std::collections::BTreeMap;
use std::time::Instant;
use tillmesh_crdt::{Crdt, PnCounter, ReplicaId};

const SKUS: usize = 200;
const REPLICAS: usize = 3;

fn op(i: usize) -> (usize, usize, i64) {
    // Deterministic pseudo-random: replica, SKU, signed change.
    let x = (i as u64)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (
        (x >> 60) as usize % REPLICAS,
        (x >> 20) as usize % SKUS,
        ((x >> 40) % 9) as i64 - 4,
    )
}

fn ours(n: usize) -> (f64, i64) {
    let mut reps: Vec<BTreeMap<String, PnCounter>> = vec![BTreeMap::new(); REPLICAS];
    let names: Vec<String> = (0..SKUS).map(|k| format!("SKU{k:05}")).collect();
    let t = Instant::now();
    for i in 0..n {
        let (r, k, c) = op(i);
        let delta = reps[r]
            .entry(names[k].clone())
            .or_default()
            .apply(ReplicaId(r as u64 + 1), if c == 0 { 1 } else { c });
        let next = (r + 1) % REPLICAS;
        reps[next]
            .entry(names[k].clone())
            .or_default()
            .merge(&delta);
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    (rate, reps[0].values().map(PnCounter::value).sum())
}

fn automerge_run(n: usize) -> (f64, i64) {
    let names: Vec<String> = (0..SKUS).map(|k| format!("SKU{k:05}")).collect();
    let mut base = AutoCommit::new();
    for k in &names {
        base.put(automerge::ROOT, k.as_str(), ScalarValue::counter(0))
            .unwrap();
    }
    base.commit();
    let mut reps: Vec<AutoCommit> = (0..REPLICAS)
        .map(|r| {
            let mut d = base.fork();
            d.set_actor(automerge::ActorId::from(vec![r as u8 + 1]));
            d
        })
        .collect();
    let t = Instant::now();
    for i in 0..n {
        let (r, k, c) = op(i);
        reps[r]
            .increment(
                automerge::ROOT,
                names[k].as_str(),
                if c == 0 { 1 } else { c },
            )
            .unwrap();
        // The delta: the change bytes since this replica's last save (automerge's own
        // incremental sync format), loaded by the next replica.
        let delta = reps[r].save_incremental();
        let next = (r + 1) % REPLICAS;
        reps[next].load_incremental(&delta).unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let sum = names
        .iter()
        .map(
            |k| match automerge::ReadDoc::get(&reps[0], automerge::ROOT, k.as_str()).unwrap() {
                Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Counter(c) => i64::from(c),
                    _ => 0,
                },
                _ => 0,
            },
        )
        .sum();
    (rate, sum)
}

fn main() {
    let n: usize = std::env::var("TILLMESH_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let (ours_rate, _) = ours(n);
    let (am_rate, _) = automerge_run(n / 5);
    println!(
        "inventory-counter merge throughput ({REPLICAS} replicas, {SKUS} SKUs; op = change + delta + merge)"
    );
    println!(
        "  {:<34} {:>14.0} ops/s",
        "tillmesh PN-counter deltas", ours_rate
    );
    println!(
        "  {:<34} {:>14.0} ops/s",
        "automerge counters (change bytes)", am_rate
    );
    println!(
        "  {:<34} {:>14.1}x",
        "ratio (tillmesh / automerge)",
        ours_rate / am_rate
    );
}
