//! The partition simulator: seeded, reproducible runs of the real till, mesh, Raft, uplink
//! and cloud code on one thread with simulated time (`tillmesh sim`).
//!
//! Sources of randomness and how each is closed:
//! - tokio's scheduler and `select!` branch order: a current-thread runtime with paused,
//!   auto-advancing time and `rng_seed` from the seed (needs `--cfg tokio_unstable`, set in
//!   `.cargo/config.toml`; a build without it, say with the user's own `RUSTFLAGS`, still
//!   builds and runs, but [`SEEDED`] is false and `tillmesh sim` says runs may differ);
//! - openraft's election timeouts: each till's range is one millisecond wide, at an offset
//!   drawn from the seed (openraft's own generator is not seedable);
//! - the uplink's retry jitter, the cashiers' arrivals and baskets, the fuzz schedules:
//!   `StdRng` seeded from the seed;
//! - database incarnations (random on a real till): drawn from the seed;
//! - wall-clock time: every till and the cloud's events read a simulated clock from a fixed
//!   epoch; SQLite runs inline on the same thread (no writer or checkpoint threads);
//! - the network: the in-memory transport, no sockets.
//!
//! What stays random and is kept out of the report: session tokens, PIN salts, the cloud's
//! credential timestamps.

mod evidence;
pub mod observe;
pub mod poison;
pub mod workload;
pub mod world;

pub use tillmesh_sim::{Options, fuzz_scenario, invariants, ledger, report, scenario};

use crate::clock::Clock;
use evidence::{converged, gather, observe_tick, upload_gaps};
use observe::Observations;
use scenario::{Fault, FaultKind, Scenario};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workload::{Ledger, Shift};
use world::World;

/// Whether this build seeds tokio's runtime (built with `--cfg tokio_unstable`): without it,
/// `select!` draws its branch order from an unseeded generator and two runs of one seed may
/// differ.
pub const SEEDED: bool = cfg!(tokio_unstable);

/// How long a mid-sale crash waits for a customer, in 50 ms steps (two minutes).
const MID_SALE_WAIT_STEPS: u32 = 2_400;

/// A timed action of the fault schedule.
#[derive(Clone, Debug)]
enum Action {
    Split(Vec<Vec<u64>>),
    Isolate(u64),
    IsolateLeader,
    Heal,
    Crash(u64, f64, bool),
    CrashLeader(f64, bool),
    StopLeader(f64),
    CutLink(u64, u64),
    OneWay(u64, u64),
    Lan(tillmesh_mesh::LinkCond),
    Wan(bool),
    Slow(u64),
    CutLeaderCloud(f64),
    UncutCloud(u64),
    Skew(u64, i64),
    Price(u64),
    Poison(u64),
}

/// The fault list as actions at simulated milliseconds, in order (ties by list order).
fn schedule(s: &Scenario) -> Vec<(u64, Action)> {
    let ms = |x: f64| (x * 1000.0) as u64;
    let mut out = Vec::new();
    for Fault { at_s, kind } in &s.faults {
        let at = ms(*at_s);
        match kind {
            FaultKind::Split { groups } => out.push((at, Action::Split(groups.clone()))),
            FaultKind::Isolate { till } => out.push((at, Action::Isolate(*till))),
            FaultKind::IsolateLeader => out.push((at, Action::IsolateLeader)),
            FaultKind::Heal => out.push((at, Action::Heal)),
            FaultKind::Crash {
                till,
                restart_after_s,
                mid_sale,
            } => out.push((at, Action::Crash(*till, *restart_after_s, *mid_sale))),
            FaultKind::CrashLeader {
                restart_after_s,
                mid_sale,
            } => out.push((at, Action::CrashLeader(*restart_after_s, *mid_sale))),
            FaultKind::StopLeader { restart_after_s } => {
                out.push((at, Action::StopLeader(*restart_after_s)))
            }
            FaultKind::CutLink { a, b } => out.push((at, Action::CutLink(*a, *b))),
            FaultKind::OneWay { from, to } => out.push((at, Action::OneWay(*from, *to))),
            FaultKind::Lossy {
                loss,
                delay_ms,
                jitter_ms,
                for_s,
            } => {
                let cond = tillmesh_mesh::LinkCond {
                    delay_ms: *delay_ms,
                    jitter_ms: *jitter_ms,
                    loss: *loss,
                    blackhole: false,
                };
                out.push((at, Action::Lan(cond)));
                out.push((at + ms(*for_s), Action::Lan(Default::default())));
            }
            FaultKind::CloudDown { for_s } => {
                out.push((at, Action::Wan(false)));
                out.push((at + ms(*for_s), Action::Wan(true)));
            }
            FaultKind::CloudSlow { delay_ms, for_s } => {
                out.push((at, Action::Slow(*delay_ms)));
                out.push((at + ms(*for_s), Action::Slow(0)));
            }
            FaultKind::LeaderCloudCut { for_s } => out.push((at, Action::CutLeaderCloud(*for_s))),
            FaultKind::FlappingWan {
                down_s,
                up_s,
                for_s,
            } => {
                let mut t = at;
                while t < at + ms(*for_s) {
                    out.push((t, Action::Wan(false)));
                    out.push((t + ms(*down_s), Action::Wan(true)));
                    t += ms(down_s + up_s);
                }
            }
            FaultKind::ClockSkew { till, ms: skew } => out.push((at, Action::Skew(*till, *skew))),
            FaultKind::Poison { till } => out.push((at, Action::Poison(*till))),
        }
    }
    let n = s.workload.price_changes;
    for k in 0..n {
        out.push((s.duration_s * 1000 * (k + 1) / (n + 1), Action::Price(k)));
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

struct Run {
    world: World,
    shifts: BTreeMap<u64, Arc<Shift>>,
    ledger: Arc<Mutex<Ledger>>,
    products: Arc<Vec<(String, String)>>,
    scenario: Scenario,
    seed: u64,
    /// Crashed tills and when they come back (simulated ms).
    down: BTreeMap<u64, u64>,
    /// Actions the run adds while it goes (a leader's cloud cut healing).
    pending: Vec<(u64, Action)>,
    log: Vec<String>,
    /// The rest of the chain: each store's shifts and what its cashiers were told.
    chain: Vec<ChainCashiers>,
    /// Votes crashed tills persisted since the observer last drained them.
    votes: Vec<(u64, Vec<tillmesh_consensus::storage::PersistedVote>)>,
    /// The run's start: cashiers and injections time what they do from it.
    t0: tokio::time::Instant,
    /// When crafted peer events were injected (ms since `t0`).
    poisoned_at_ms: Vec<u64>,
    /// The rogue peers' replicas, across injections.
    rogue: Option<(tillmesh_pos::state::Replica, tillmesh_pos::state::Replica)>,
    /// Leaders stopped or crashed: when, at which simulated ms, how, and which till.
    leader_stops: Vec<(tokio::time::Instant, u64, &'static str, u64)>,
}

/// One other store of the chain: its cashiers' shifts, and what they were told.
type ChainCashiers = (Vec<Arc<Shift>>, Arc<Mutex<Ledger>>);

impl Run {
    fn start_cashier(&mut self, t: u64) {
        let shift = Arc::new(Shift {
            t0: Some(self.t0),
            ..Shift::default()
        });
        let Some(st) = self.world.tills.get_mut(&t) else {
            return;
        };
        let task = tokio::spawn(workload::cashier(
            st.till.clone(),
            self.scenario.workload.clone(),
            self.products.clone(),
            world::splitmix(self.seed ^ (t << 40) ^ st.till.now_ms()),
            self.ledger.clone(),
            shift.clone(),
        ));
        st.own(task);
        // The till's answers to its peers' asks for stored-value rights, and its idle
        // rights spread to its peers (the daemon's poller does both every second).
        let w = &self.scenario.workload;
        if w.gift_cards > 0 || w.credits > 0 || w.coupons > 0 {
            let till = st.till.clone();
            st.own(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(1_000)).await;
                    let _ = till.answer_rights_asks().await;
                    if std::env::var_os("NOSPREAD").is_none() {
                        let _ = till.spread_idle_rights().await;
                    }
                }
            }));
        }
        self.shifts.insert(t, shift);
    }

    /// Puts a cashier on every till of the rest of the chain.
    fn start_chain_cashiers(&mut self) {
        let Some(c) = self.scenario.chain.clone() else {
            return;
        };
        let w = scenario::Workload {
            sales_per_minute: c.sales_per_minute,
            gift_cards: 0,
            gift_every: 0,
            credits: 0,
            coupons: 0,
            ..self.scenario.workload.clone()
        };
        for (k, store) in self.world.chain.iter_mut().enumerate() {
            let ledger: Arc<Mutex<Ledger>> = Arc::default();
            let mut shifts = Vec::new();
            for (t, st) in store.tills.iter_mut() {
                let shift = Arc::new(Shift::default());
                let seed = world::splitmix(self.seed ^ ((k as u64 + 1) << 44) ^ (t << 36));
                st.own(tokio::spawn(workload::cashier(
                    st.till.clone(),
                    w.clone(),
                    self.products.clone(),
                    seed,
                    ledger.clone(),
                    shift.clone(),
                )));
                shifts.push(shift);
            }
            self.chain.push((shifts, ledger));
        }
    }

    /// Crashes till `t` between customers, or (`mid_sale`) while one is being served: the
    /// cashier is stopped wherever it is, its unfinished sale was never acknowledged.
    async fn crash(&mut self, t: u64, back_at: u64, now_ms: u64, mid_sale: bool) {
        let mut how = "";
        if let Some(shift) = self.shifts.remove(&t) {
            if mid_sale {
                how = " between customers (none came)";
                // Wait (bounded) for a customer to be in progress.
                for _ in 0..MID_SALE_WAIT_STEPS {
                    if shift.busy.try_lock().is_err() {
                        how = " mid-sale";
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            } else {
                shift.end().await;
            }
        }
        if let Some(st) = self.world.tills.remove(&t) {
            let votes = st.crash().await;
            self.votes.push((t, votes));
            self.down.insert(t, back_at);
            self.log.push(format!(
                "{:>8.1} s  T{t} crashed{how}",
                now_ms as f64 / 1000.0
            ));
        }
    }

    /// A planned stop of till `t` (its cashier ends the current customer first).
    async fn stop(&mut self, t: u64, back_at: u64, now_ms: u64) {
        if let Some(shift) = self.shifts.remove(&t) {
            shift.end().await;
        }
        if let Some(st) = self.world.tills.remove(&t) {
            // The instant it starts to stop (after its cashier finished the customer).
            self.leader_stops.push((
                tokio::time::Instant::now(),
                self.t0.elapsed().as_millis() as u64,
                "hand-over",
                t,
            ));
            let (handed, votes) = st.stop().await;
            self.votes.push((t, votes));
            self.down.insert(t, back_at);
            self.log.push(format!(
                "{:>8.1} s  T{t} stopped as planned{}",
                now_ms as f64 / 1000.0,
                if handed {
                    ", leadership handed over"
                } else {
                    ""
                }
            ));
        }
    }

    async fn restart(&mut self, t: u64, now_ms: u64) -> anyhow::Result<()> {
        if self.down.remove(&t).is_some() {
            self.world.start_till(t).await?;
            self.start_cashier(t);
            self.log
                .push(format!("{:>8.1} s  T{t} restarted", now_ms as f64 / 1000.0));
        }
        Ok(())
    }

    async fn act(&mut self, a: Action, now_ms: u64) -> anyhow::Result<()> {
        let at = now_ms as f64 / 1000.0;
        let note = format!("{a:?}");
        match a {
            Action::Split(groups) => self.world.split(&groups),
            Action::Isolate(t) => self.world.split(&[vec![t]]),
            Action::IsolateLeader => {
                if let Some(l) = self.world.leader() {
                    self.world.split(&[vec![l]]);
                    self.log.push(format!("{at:>8.1} s  leader T{l} isolated"));
                }
            }
            Action::Heal => self.world.heal(),
            Action::Crash(t, after, mid) => {
                self.crash(t, now_ms + (after * 1000.0) as u64, now_ms, mid)
                    .await
            }
            Action::CrashLeader(after, mid) => {
                if let Some(l) = self.world.leader() {
                    self.crash(l, now_ms + (after * 1000.0) as u64, now_ms, mid)
                        .await;
                    // The instant it died (its cashier may have finished a customer first).
                    self.leader_stops.push((
                        tokio::time::Instant::now(),
                        self.t0.elapsed().as_millis() as u64,
                        "crash",
                        l,
                    ));
                }
            }
            Action::StopLeader(after) => {
                if let Some(l) = self.world.leader() {
                    self.stop(l, now_ms + (after * 1000.0) as u64, now_ms).await;
                }
            }
            Action::CutLink(a, b) => self.world.net.cut(world::addr(a), world::addr(b)),
            Action::OneWay(from, to) => self.world.one_way(from, to),
            Action::Lan(cond) => self.world.lan(cond),
            Action::Wan(up) => self.world.switch.down.store(!up, Ordering::Relaxed),
            Action::Slow(ms) => self.world.switch.delay_ms.store(ms, Ordering::Relaxed),
            Action::CutLeaderCloud(for_s) => {
                if let Some(l) = self.world.leader() {
                    self.world
                        .switch
                        .cut
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(l);
                    self.log
                        .push(format!("{at:>8.1} s  leader T{l} loses the cloud"));
                    // Healed by the main loop at `for_s`.
                    self.down_cloud_until(l, now_ms + (for_s * 1000.0) as u64);
                }
            }
            Action::UncutCloud(t) => {
                self.world
                    .switch
                    .cut
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&t);
            }
            Action::Skew(t, ms) => {
                if let Some(c) = self.world.clocks.get(&t) {
                    c.skew(ms)
                }
            }
            Action::Price(k) => self.hq_price_change(k).await?,
            Action::Poison(t) => {
                if let Some(st) = self.world.tills.get(&t) {
                    let sku = self
                        .products
                        .first()
                        .map(|p| p.1.clone())
                        .unwrap_or_default();
                    let round = self.poisoned_at_ms.len() as u64;
                    let events = poison::batch(&mut self.rogue, &sku, round, st.till.now_ms());
                    let n = events.len();
                    // The honest peer's stock receipts among them are real changes.
                    let receipts: Vec<(String, i64)> = events
                        .iter()
                        .filter(|e| e.origin == poison::honest())
                        .filter_map(|e| match &e.body {
                            tillmesh_pos::event::EventBody::InventoryAdjusted {
                                sku,
                                change,
                                ..
                            } => Some((sku.clone(), *change)),
                            _ => None,
                        })
                        .collect();
                    st.till
                        .apply_remote(91, events)
                        .await
                        .map_err(|e| anyhow::anyhow!("T{t} refused a crafted batch: {e}"))?;
                    self.ledger
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .adjustments
                        .extend(receipts);
                    self.poisoned_at_ms
                        .push(self.t0.elapsed().as_millis() as u64);
                    self.log.push(format!(
                        "{at:>8.1} s  T{t} received {n} events from a rogue peer ({} quarantined)",
                        st.till.quarantined_count()
                    ));
                }
            }
        }
        self.log.push(format!("{at:>8.1} s  {note}"));
        Ok(())
    }

    fn take_pending(&mut self) -> Vec<(u64, Action)> {
        std::mem::take(&mut self.pending)
    }

    fn down_cloud_until(&mut self, t: u64, at: u64) {
        self.pending.push((at, Action::UncutCloud(t)));
    }

    /// HQ changes the price of one of the products the cashiers sell.
    async fn hq_price_change(&mut self, k: u64) -> anyhow::Result<()> {
        use tillmesh_cloud::master::{EditInput, validate};
        use tillmesh_pos::pricing::{PriceScope, ScheduledPrice};
        let (_, sku) = &self.products[(k as usize * 7) % self.products.len()];
        let now = self.world.clocks[&1].now_ms();
        let edit = validate(EditInput {
            store: None,
            put: Some(tillmesh_cloud_proto::MasterBody::Price(ScheduledPrice {
                sku: sku.clone(),
                price: 10_000 + 500 * k as i64,
                effective_from_ms: now,
                scope: PriceScope::Chain,
            })),
            cashier: None,
            delete: None,
        })
        .map_err(anyhow::Error::msg)?;
        self.world.cloud.ledger.master_apply(vec![edit]).await?;
        Ok(())
    }
}

/// Runs a scenario with `opts.seed`; answers the report (written by the caller).
pub fn run(scenario: &Scenario, opts: &Options) -> anyhow::Result<report::Report> {
    let mut rt = tokio::runtime::Builder::new_current_thread();
    rt.enable_time().start_paused(true);
    #[cfg(tokio_unstable)]
    rt.rng_seed(tokio::runtime::RngSeed::from_bytes(
        &opts.seed.to_le_bytes(),
    ));
    let rt = rt.build()?;
    rt.block_on(run_async(scenario.clone(), opts.clone()))
}

/// A directory removed with everything in it when dropped: the simulated tills' databases.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir() -> anyhow::Result<Scratch> {
    // tmpfs where there is one: the simulator's SQLite files need no real disk.
    let shm = std::path::Path::new("/dev/shm");
    let root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let mut last = None;
    for _ in 0..16 {
        let mut r = [0_u8; 8];
        getrandom::fill(&mut r).map_err(|e| anyhow::anyhow!("no OS random source: {e}"))?;
        let dir = root.join(format!("tillmesh-sim-{}", hex::encode(r)));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(Scratch(dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => anyhow::bail!(
                "cannot create a scratch directory in {}: {e}",
                root.display()
            ),
        }
    }
    anyhow::bail!(
        "no free scratch directory name in {}: {last:?}",
        root.display()
    )
}

/// A one-line progress report on stderr (simulated seconds), rewritten in place.
struct Progress {
    label: Option<String>,
    len: u64,
    shown: u64,
}

impl Progress {
    fn new(show: bool, label: String, len: u64) -> Self {
        use std::io::IsTerminal;
        Self {
            label: (show && std::io::stderr().is_terminal()).then_some(label),
            len,
            shown: u64::MAX,
        }
    }

    fn set(&mut self, pos: u64) {
        if let Some(label) = &self.label
            && pos != self.shown
        {
            self.shown = pos;
            eprint!("\r{label}: {pos}/{} s", self.len);
        }
    }

    fn finish(&self) {
        if self.label.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

async fn run_async(s: Scenario, opts: Options) -> anyhow::Result<report::Report> {
    let dir = scratch_dir()?;
    let world = World::new(
        dir.path(),
        s.tills,
        opts.seed,
        s.timing.clone(),
        s.chain.as_ref(),
    )
    .await?;
    let products = Arc::new(workload::products(
        &world.tills[&1].till,
        s.workload.products,
    ));
    let opening: BTreeMap<String, i64> = products
        .iter()
        .map(|(_, sku)| (sku.clone(), world.tills[&1].till.stock_of(sku)))
        .collect();
    let mut run = Run {
        world,
        shifts: BTreeMap::new(),
        ledger: Arc::default(),
        products,
        scenario: s.clone(),
        seed: opts.seed,
        down: BTreeMap::new(),
        log: Vec::new(),
        pending: Vec::new(),
        chain: Vec::new(),
        votes: Vec::new(),
        t0: tokio::time::Instant::now(),
        poisoned_at_ms: Vec::new(),
        rogue: None,
        leader_stops: Vec::new(),
    };
    for t in 1..=s.tills {
        run.start_cashier(t);
    }
    run.start_chain_cashiers();
    let mut plan = schedule(&s);
    let mut obs = Observations::default();
    let sample = s.timing.sample_ms;
    let end_ms = s.duration_s * 1000;
    let mut bar = Progress::new(
        opts.progress,
        format!("{} seed {}", s.name, opts.seed),
        s.duration_s + s.settle_s,
    );
    let start = tokio::time::Instant::now();
    let mut now_ms = 0;
    // Safety phase: faults on.
    while now_ms < end_ms {
        now_ms += sample;
        tokio::time::sleep_until(start + Duration::from_millis(now_ms)).await;
        plan.extend(run.take_pending());
        plan.sort_by_key(|(t, _)| *t);
        while plan.first().is_some_and(|(t, _)| *t <= now_ms) {
            let (_, a) = plan.remove(0);
            run.act(a, now_ms).await?;
        }
        let due: Vec<u64> = run
            .down
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            run.restart(t, now_ms).await?;
        }
        for (t, v) in std::mem::take(&mut run.votes) {
            obs.record_votes(t, v);
        }
        observe_tick(&mut obs, &run.world, now_ms, s.tills).await?;
        bar.set(now_ms / 1000);
    }
    // Liveness phase: every fault healed, the cashiers go home, the store must converge.
    for shift in run.shifts.values() {
        shift.end().await;
    }
    for shift in run.chain.iter().flat_map(|(s, _)| s) {
        shift.end().await;
    }
    run.world.heal();
    run.world.switch.down.store(false, Ordering::Relaxed);
    run.world.switch.delay_ms.store(0, Ordering::Relaxed);
    run.world
        .switch
        .cut
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    let crashed: Vec<u64> = run.down.keys().copied().collect();
    for t in crashed {
        run.restart(t, now_ms).await?;
    }
    for shift in run.shifts.values() {
        shift.end().await;
    }
    run.log.push(format!(
        "{:>8.1} s  all faults healed",
        now_ms as f64 / 1000.0
    ));
    let settle_end = now_ms + s.settle_s * 1000;
    // The settling time counts from the heal itself: a fault or the end of a shift that held
    // the run up (a cashier finishing a long customer) must not eat into it.
    let healed_at = tokio::time::Instant::now();
    let mut converged_after = None;
    while now_ms < settle_end {
        now_ms += sample;
        tokio::time::sleep_until(healed_at + Duration::from_millis(now_ms - end_ms)).await;
        observe_tick(&mut obs, &run.world, now_ms, s.tills).await?;
        bar.set(now_ms / 1000);
        if converged(&run.world).await? {
            converged_after = Some((now_ms - end_ms) as f64 / 1000.0);
            break;
        }
    }
    bar.finish();
    let evidence = gather(&run, obs, opening).await?;
    let mut verdicts = invariants::check(&evidence);
    verdicts.push(invariants::Verdict {
        name: "converges_after_healing",
        pass: converged_after.is_some(),
        detail: match converged_after {
            Some(t) => format!("converged {t:.1} s after the faults healed"),
            None => format!("not converged {} s after the faults healed", s.settle_s),
        },
    });
    let uploads = run
        .world
        .switch
        .uploads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let leader_stops = upload_gaps(&run);
    let report = report::Report::new(
        &s,
        &opts,
        verdicts,
        &evidence,
        converged_after,
        uploads,
        run.log,
        leader_stops,
    );
    run.world.shutdown().await;
    drop(dir);
    Ok(report)
}
