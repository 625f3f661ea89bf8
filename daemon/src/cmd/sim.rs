//! `tillmesh sim`: one seeded run of a scenario or a random fault schedule, or a batch of
//! seeds on several threads.

use std::path::PathBuf;

/// `tillmesh sim`: one run (summary, report), or many seeds (a line each, `jobs` at once);
/// fails when an invariant does, naming each failing seed, what failed, and the command that
/// reproduces it. A seed whose run errs counts as failed; the batch goes on.
pub(super) fn run(
    scenario: Option<PathBuf>,
    seed: u64,
    seeds: Option<u64>,
    fuzz: bool,
    report: Option<PathBuf>,
    jobs: usize,
) -> anyhow::Result<()> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tillmesh::sim;
    let fixed = match (&scenario, fuzz) {
        (Some(p), false) => Some(sim::scenario::Scenario::load(p)?),
        (None, true) => None,
        (Some(_), true) => anyhow::bail!("give a scenario file or --fuzz, not both"),
        (None, false) => anyhow::bail!("give a scenario file (simulations/*.toml) or --fuzz"),
    };
    if !sim::SEEDED {
        eprintln!(
            "tillmesh sim: this build lacks --cfg tokio_unstable (RUSTFLAGS replaces .cargo/config.toml's flags), so tokio's runtime is not seeded and two runs of a seed may differ; build with RUSTFLAGS=\"--cfg tokio_unstable\" to reproduce runs"
        );
    }
    let count = seeds.unwrap_or(1);
    if count == 0 || count > 1_000_000 {
        anyhow::bail!("--seeds must be 1 to 1000000");
    }
    if !(1..=64).contains(&jobs) {
        anyhow::bail!("--jobs must be 1 to 64");
    }
    let reproduce = |s: u64| match &scenario {
        Some(p) => format!("tillmesh sim {} --seed {s}", p.display()),
        None => format!("tillmesh sim --fuzz --seed {s}"),
    };
    let scenario_of = |s: u64| match &fixed {
        Some(f) => f.clone(),
        None => sim::fuzz_scenario(s),
    };
    if count == 1 {
        let opts = sim::Options {
            seed,
            progress: true,
            reproduce: reproduce(seed),
        };
        let wall = std::time::Instant::now();
        let r = sim::run(&scenario_of(seed), &opts)?;
        let wall = wall.elapsed().as_secs_f64();
        let simulated = r.timeline.last().map_or(0.0, |t| t.t_s);
        print!("{}", r.summary());
        println!(
            "  {simulated:.0} simulated seconds in {wall:.3} s ({:.0}:1)",
            simulated / wall.max(1e-9)
        );
        if let Some(dir) = &report {
            r.write(dir)?;
            println!("  report: {}", dir.join("report.json").display());
        }
        if !r.pass {
            anyhow::bail!("invariants failed; reproduce with: {}", reproduce(seed));
        }
        return Ok(());
    }
    let end = seed.saturating_add(count);
    let next = AtomicU64::new(seed);
    // (seed, what failed) of every failing seed.
    let failed: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    let worker = || {
        loop {
            let s = next.fetch_add(1, Ordering::Relaxed);
            if s >= end {
                return;
            }
            let opts = sim::Options {
                seed: s,
                progress: false,
                reproduce: reproduce(s),
            };
            let wall = std::time::Instant::now();
            let outcome = sim::run(&scenario_of(s), &opts).and_then(|r| {
                if let Some(dir) = &report {
                    r.write(&dir.join(format!("seed-{s}")))?;
                }
                Ok(r)
            });
            let wall = wall.elapsed().as_secs_f64();
            let why = match &outcome {
                Ok(r) if r.pass => {
                    let simulated = r.timeline.last().map_or(0.0, |t| t.t_s);
                    println!(
                        "{} seed {s}: pass ({simulated:.0} s simulated in {wall:.1} s)",
                        r.scenario
                    );
                    continue;
                }
                Ok(r) => r
                    .verdicts
                    .iter()
                    .filter(|v| !v.pass)
                    .map(|v| format!("{}: {}", v.name, v.detail))
                    .collect::<Vec<_>>()
                    .join("; "),
                Err(e) => format!("the run failed: {e:#}"),
            };
            println!("seed {s}: FAIL ({why}); reproduce: {}", reproduce(s));
            failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((s, why));
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(count as usize) {
            scope.spawn(worker);
        }
    });
    let mut failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    failed.sort();
    let mins = started.elapsed().as_secs_f64() / 60.0;
    println!(
        "{count} seeds, {} failed, {:.1} seeds per minute ({jobs} at once)",
        failed.len(),
        count as f64 / mins.max(1e-9)
    );
    if failed.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = failed.iter().map(|(s, _)| reproduce(*s)).collect();
        anyhow::bail!("invariants failed; reproduce with: {}", list.join(" ; "))
    }
}
