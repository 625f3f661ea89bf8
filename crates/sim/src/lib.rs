//! The partition simulator's model, free of the tills it drives: scenarios (the files in
//! `simulations/` and the fuzzer's random schedules), what the cashiers were told
//! (`ledger`), what was watched during a run (`observe`), the invariants checked at the end,
//! and the report. The driver (the world of real tills on the in-memory network, the
//! cashiers, the run loop) lives in the daemon (`tillmesh::sim`), which owns the till; this
//! crate cannot depend on it, as the `tillmesh` binary that runs `tillmesh sim` links both.

pub mod invariants;
pub mod ledger;
pub mod observe;
pub mod report;
pub mod scenario;

use scenario::{Fault, FaultKind, Scenario};

/// Why a scenario could not be loaded or a report written.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A scenario file is malformed or breaks a limit.
    #[error("scenario {0}")]
    Scenario(String),
}

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The seed.
    pub seed: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// How to reproduce this run (the command line, for the report).
    pub reproduce: String,
}

/// Draws a random scenario for fuzzing: 3 to 5 tills, 2 to 6 faults over two minutes.
pub fn fuzz_scenario(seed: u64) -> Scenario {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tills = rng.random_range(3..=5);
    let duration_s = 120;
    let mut faults = Vec::new();
    for _ in 0..rng.random_range(2..=6) {
        let at_s = rng.random_range(5..duration_s - 10) as f64;
        let till = rng.random_range(1..=tills);
        let kind = match rng.random_range(0..11) {
            0 => {
                let k = rng.random_range(1..tills);
                FaultKind::Split {
                    groups: vec![(1..=k).collect()],
                }
            }
            1 => FaultKind::Isolate { till },
            2 => FaultKind::IsolateLeader,
            3 => FaultKind::Crash {
                till,
                restart_after_s: rng.random_range(1..30) as f64,
                mid_sale: rng.random_bool(0.5),
            },
            4 => FaultKind::CrashLeader {
                restart_after_s: rng.random_range(1..30) as f64,
                mid_sale: rng.random_bool(0.5),
            },
            7 => FaultKind::CutLink {
                a: till,
                b: till % tills + 1,
            },
            8 => FaultKind::OneWay {
                from: till,
                to: till % tills + 1,
            },
            9 => FaultKind::Lossy {
                loss: rng.random_range(0.0..0.3),
                delay_ms: rng.random_range(0..100),
                jitter_ms: rng.random_range(0..100),
                for_s: rng.random_range(5..60) as f64,
            },
            5 => FaultKind::CloudDown {
                for_s: rng.random_range(1..60) as f64,
            },
            6 => FaultKind::LeaderCloudCut {
                for_s: rng.random_range(1..40) as f64,
            },
            _ => FaultKind::ClockSkew {
                till,
                ms: rng.random_range(-30_000..30_000),
            },
        };
        faults.push(Fault { at_s, kind });
        if rng.random_bool(0.5) {
            faults.push(Fault {
                at_s: (at_s + rng.random_range(1..30) as f64).min(duration_s as f64),
                kind: FaultKind::Heal,
            });
        }
    }
    faults.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Scenario {
        name: format!("fuzz-{seed}"),
        description: "a random fault schedule".into(),
        tills,
        duration_s,
        settle_s: 120,
        // Gift cards, store credit and single-use coupons tendered at random tills through
        // the random faults: no account is spent past its balance, and no acknowledged
        // tender is lost.
        workload: scenario::Workload {
            price_changes: 1,
            gift_cards: 3,
            gift_every: 3,
            credits: 2,
            coupons: 30,
            ..Default::default()
        },
        timing: scenario::SimTiming::default(),
        faults,
        chain: None,
    }
}
