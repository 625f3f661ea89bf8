//! The partition simulator: a seed and the code give a byte-identical report; every
//! scenario in simulations/ holds every invariant on a few seeds; a batch of random fault
//! schedules (fuzz) does too. `TILLMESH_SIM_LONG=1` adds the 24-hour WAN outage and the
//! whole chain (`TILLMESH_SIM_CHAIN_STORES` caps its stores; without LONG it runs 12);
//! `TILLMESH_FUZZ_SEEDS` sets the fuzz batch (default 4, two at a time); every seed listed in
//! simulations/regressions.txt runs too. `.ci/run` sets them.

use std::path::{Path, PathBuf};
use tillmesh::sim::{self, scenario::Scenario};

/// Stores of a chain scenario in the short run.
const CHAIN_SHORT: u64 = 12;

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulations");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

fn run(s: &Scenario, seed: u64) -> sim::report::Report {
    let opts = sim::Options {
        seed,
        progress: false,
        reproduce: format!("{} --seed {seed}", s.name),
    };
    sim::run(s, &opts).unwrap()
}

fn assert_pass(r: &sim::report::Report) {
    assert!(r.pass, "{}", r.summary());
}

#[test]
fn the_same_seed_gives_a_byte_identical_report() {
    let path = scenarios()
        .into_iter()
        .find(|p| p.ends_with("split-2-3.toml"))
        .unwrap();
    let s = Scenario::load(&path).unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for d in &dirs {
        let r = run(&s, 42);
        assert_pass(&r);
        assert!(
            r.counts.sales_acknowledged > 0 && r.counts.terms >= 2,
            "{}",
            r.summary()
        );
        r.write(d.path()).unwrap();
    }
    for f in ["report.json", "report.svg"] {
        let a = std::fs::read(dirs[0].path().join(f)).unwrap();
        let b = std::fs::read(dirs[1].path().join(f)).unwrap();
        assert!(a == b, "{f} differs between two runs of seed 42");
    }
    // Another seed is another run (other arrivals, other baskets).
    let other = run(&s, 43);
    assert_pass(&other);
    other.write(dirs[1].path()).unwrap();
    assert_ne!(
        std::fs::read(dirs[0].path().join("report.json")).unwrap(),
        std::fs::read(dirs[1].path().join("report.json")).unwrap()
    );
}

#[test]
fn every_scenario_holds_every_invariant_on_a_few_seeds() {
    let long = std::env::var("TILLMESH_SIM_LONG").is_ok_and(|v| v == "1");
    for path in scenarios() {
        let mut s = Scenario::load(&path).unwrap();
        let big_chain = s.chain.as_ref().is_some_and(|c| c.stores > CHAIN_SHORT);
        let seeds: &[u64] = if s.duration_s > 3_600 && !long {
            eprintln!("skipping {} (set TILLMESH_SIM_LONG=1)", s.name);
            continue;
        } else if big_chain && !long {
            // The whole chain is the long run; the short one keeps a few of its stores.
            eprintln!(
                "{}: {CHAIN_SHORT} stores (TILLMESH_SIM_LONG=1 runs all)",
                s.name
            );
            if let Some(c) = s.chain.as_mut() {
                c.stores = CHAIN_SHORT;
            }
            &[1]
        } else if big_chain {
            // The long run's chain: every store, or TILLMESH_SIM_CHAIN_STORES of them (a
            // debug build runs the thousand stores in about half an hour).
            if let Some(n) = std::env::var("TILLMESH_SIM_CHAIN_STORES")
                .ok()
                .and_then(|v| v.parse().ok())
                && let Some(c) = s.chain.as_mut()
            {
                c.stores = n;
            }
            &[1]
        } else if s.duration_s > 3_600 {
            &[1]
        } else {
            &[1, 2]
        };
        for &seed in seeds {
            let r = run(&s, seed);
            assert_pass(&r);
            if s.name == "wan-outage-24h" {
                // Past the 24-hour offline limit the tills refused new sales, and said why.
                assert!(
                    r.counts.refused.contains_key("offline_limit"),
                    "{}",
                    r.summary()
                );
            }
            if let Some(c) = &s.chain {
                // Every other store of the chain was checked and sold something.
                assert_eq!(r.chain_stores, c.stores - 1, "{}", r.summary());
                assert!(r.chain_sales >= r.chain_stores / 2, "{}", r.summary());
            }
            if s.name == "crash-mid-sale" {
                // The crashes landed in the middle of customers.
                let mid = r.events.iter().filter(|e| e.contains("mid-sale")).count();
                assert!(mid >= 3, "{}", r.summary());
            }
            if s.name == "split-2-3" || s.name == "isolate-leader" {
                assert!(r.counts.uploads_by_till.len() >= 2, "{}", r.summary());
            }
        }
    }
}

#[test]
fn random_fault_schedules_hold_every_invariant() {
    let n: u64 = std::env::var("TILLMESH_FUZZ_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // Two seeds at a time (each its own runtime): CI's batch uses both cores.
    let next = std::sync::atomic::AtomicU64::new(1000);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if seed >= 1000 + n {
                        return;
                    }
                    assert_pass(&run(&sim::fuzz_scenario(seed), seed));
                }
            });
        }
    });
}

/// Every seed listed in simulations/regressions.txt (every seed that ever failed).
fn regressions() -> Vec<(Scenario, u64)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulations");
    let text = std::fs::read_to_string(dir.join("regressions.txt")).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (what, seed) = (parts.next().unwrap(), parts.next().unwrap());
        let seed: u64 = seed
            .parse()
            .unwrap_or_else(|_| panic!("bad seed in {line:?}"));
        let s = if what == "fuzz" {
            sim::fuzz_scenario(seed)
        } else {
            Scenario::load(&dir.join(format!("{what}.toml"))).unwrap()
        };
        out.push((s, seed));
    }
    out
}

#[test]
fn regressions_every_seed_that_ever_failed_holds_every_invariant() {
    let list = regressions();
    assert!(list.len() >= 4, "regressions.txt lists the known seeds");
    for (s, seed) in list {
        assert_pass(&run(&s, seed));
    }
}
