//! Scenario files (`simulations/*.toml`): the store, the workload, and the faults on a
//! simulated timeline. Unknown keys are refused so a typo cannot silently disable a fault.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Most tills a simulated store may have.
pub const TILLS_MAX: u64 = 16;
/// Longest simulated safety phase (a day and a bit: the 24-hour WAN outage).
pub const DURATION_S_MAX: u64 = 2 * 86_400;
/// Most faults in one scenario.
pub const FAULTS_MAX: usize = 256;

/// A scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name (the report's title).
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Tills in the store (terminal ids 1..=tills).
    pub tills: u64,
    /// Safety phase: faults apply (simulated seconds).
    pub duration_s: u64,
    /// Liveness phase: once every fault is healed, the store must converge within this.
    #[serde(default = "default_settle")]
    pub settle_s: u64,
    /// The cashiers.
    #[serde(default)]
    pub workload: Workload,
    /// Timing of the tills (shorter than production where a long run would be slow).
    #[serde(default)]
    pub timing: SimTiming,
    /// Faults, by simulated time.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    /// The rest of the chain: more stores against the same cloud (none by default).
    #[serde(default)]
    pub chain: Option<Chain>,
}

/// The chain around the observed store: its other stores sell and upload to the same cloud
/// and meet the same WAN faults; the invariants check that the cloud keeps every store's
/// events exactly once and its totals right.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    /// Stores in the chain, the observed one included.
    pub stores: u64,
    /// Tills in each other store.
    #[serde(default = "one")]
    pub tills: u64,
    /// Sales per simulated minute on each of their tills.
    #[serde(default = "one_f")]
    pub sales_per_minute: f64,
}

fn one() -> u64 {
    1
}

fn one_f() -> f64 {
    1.0
}

/// Most stores in a simulated chain.
pub const STORES_MAX: u64 = 2_000;

fn default_settle() -> u64 {
    120
}

/// The cashiers' work.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Sales per simulated minute on each till.
    pub sales_per_minute: f64,
    /// Most lines in a basket.
    pub basket_max: u32,
    /// Products drawn from the first this many of the example catalog.
    pub products: usize,
    /// One sale in this many is voided by a manager (0: none).
    pub void_every: u64,
    /// One stock adjustment (receiving) per this many sales (0: none).
    pub adjust_every: u64,
    /// HQ price changes spread over the safety phase.
    pub price_changes: u64,
    /// Mean time to scan one item, ms (a crash can land between scans).
    pub scan_ms: u64,
    /// Mean time from the total to the cash being counted, ms.
    pub tender_ms: u64,
    /// Gift cards the first till activates at the start (0: none).
    pub gift_cards: u64,
    /// Amount loaded on each, minor units.
    pub gift_card_amount: i64,
    /// One sale in this many tenders stored value for part of it (a gift card, a
    /// customer's store credit or a coupon, drawn among those the run has; 0: none).
    pub gift_every: u64,
    /// Customers the first till gives store credit at the start (0: none).
    pub credits: u64,
    /// Store credit given to each, minor units.
    pub credit_amount: i64,
    /// Single-use coupons the first till issues at the start (0: none). Each is presented
    /// once; one in four is presented a second time, at another till (a double spend).
    pub coupons: u64,
    /// What each coupon is worth, minor units.
    pub coupon_value: i64,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            sales_per_minute: 6.0,
            basket_max: 4,
            products: 40,
            void_every: 25,
            adjust_every: 40,
            price_changes: 2,
            scan_ms: 1_000,
            tender_ms: 3_000,
            gift_cards: 0,
            gift_card_amount: 3_000_000,
            gift_every: 0,
            credits: 0,
            credit_amount: 1_000_000,
            coupons: 0,
            coupon_value: 2_000,
        }
    }
}

/// Till timing in the simulation.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimTiming {
    /// Mesh anti-entropy period, ms.
    pub anti_entropy_ms: u64,
    /// Compaction period, ms (0: off).
    pub compact_interval_ms: u64,
    /// Raft heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Raft election timeout base, ms (each till adds a seeded offset below it).
    pub election_ms: u64,
    /// A voter unreachable this long leaves the group, ms.
    pub raft_remove_after_ms: u64,
    /// Sampling period of the timeline, ms.
    pub sample_ms: u64,
}

impl Default for SimTiming {
    fn default() -> Self {
        Self {
            anti_entropy_ms: 2_000,
            compact_interval_ms: 30_000,
            heartbeat_ms: 150,
            election_ms: 500,
            raft_remove_after_ms: 300_000,
            sample_ms: 1_000,
        }
    }
}

/// One fault, starting at `at_s` (unknown keys are refused by [`FaultKind`]'s variants).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Fault {
    /// Start (simulated seconds).
    pub at_s: f64,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// What a fault does.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// The store LAN splits into these groups (tills not named form one more group).
    Split {
        /// Groups of terminal ids.
        groups: Vec<Vec<u64>>,
    },
    /// One till loses the LAN.
    Isolate {
        /// Terminal id.
        till: u64,
    },
    /// The till that leads at that moment loses the LAN.
    IsolateLeader,
    /// Every LAN cut heals.
    Heal,
    /// A till crashes (kill -9: what was committed stays) and restarts after `restart_after_s`.
    Crash {
        /// Terminal id.
        till: u64,
        /// Seconds until it restarts (never within the safety phase if longer).
        restart_after_s: f64,
        /// Crash in the middle of a customer (basket open, or paid and not yet finalized)
        /// rather than between customers.
        #[serde(default)]
        mid_sale: bool,
    },
    /// The till that leads at that moment crashes, mid-upload if it is uploading.
    CrashLeader {
        /// Seconds until it restarts.
        restart_after_s: f64,
        /// Crash in the middle of a customer.
        #[serde(default)]
        mid_sale: bool,
    },
    /// The till that leads at that moment stops as planned (an upgrade, `systemctl stop`): it
    /// hands the leadership to an up-to-date voter first, then stops.
    StopLeader {
        /// Seconds until it starts again.
        restart_after_s: f64,
    },
    /// The LAN link between two tills goes down (both ways); each still reaches the others,
    /// so the partition is not transitive.
    CutLink {
        /// One end.
        a: u64,
        /// The other end.
        b: u64,
    },
    /// Packets from `from` to `to` vanish while those from `to` to `from` get through.
    OneWay {
        /// The till whose packets are lost.
        from: u64,
        /// The till that no longer hears it.
        to: u64,
    },
    /// Every LAN link delays, jitters and loses packets for `for_s` (QUIC resends).
    Lossy {
        /// Chance a packet is lost, 0 to 0.5.
        loss: f64,
        /// One-way delay, ms.
        #[serde(default)]
        delay_ms: u64,
        /// Extra random delay, 0 to this, ms (reorders messages across streams).
        #[serde(default)]
        jitter_ms: u64,
        /// Seconds.
        for_s: f64,
    },
    /// The cloud is unreachable for `for_s`.
    CloudDown {
        /// Seconds.
        for_s: f64,
    },
    /// The cloud answers `delay_ms` late for `for_s`.
    CloudSlow {
        /// Added latency, ms.
        delay_ms: u64,
        /// Seconds.
        for_s: f64,
    },
    /// The leader (at that moment) alone loses the cloud for `for_s`; the LAN stays up.
    LeaderCloudCut {
        /// Seconds.
        for_s: f64,
    },
    /// The WAN flaps: down `down_s`, up `up_s`, repeated for `for_s`.
    FlappingWan {
        /// Seconds down per cycle.
        down_s: f64,
        /// Seconds up per cycle.
        up_s: f64,
        /// Total seconds.
        for_s: f64,
    },
    /// An enrolled peer sends till `till` a batch of crafted events that passed the checks
    /// of earlier versions (a counter entry past its bound, an HLC logical counter near
    /// `u32::MAX`, a price past the cap, a customer change forged under another till's
    /// automerge actor) among good ones; the till relays them to the others.
    Poison {
        /// Terminal id of the till that receives them first.
        till: u64,
    },
    /// A till's clock runs `ms` ahead (negative: behind) from then on.
    ClockSkew {
        /// Terminal id.
        till: u64,
        /// Offset, ms.
        ms: i64,
    },
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, crate::SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::SimError::Io(format!("cannot read scenario {}: {e}", path.display()))
        })?;
        let s: Scenario = toml::from_str(&text)
            .map_err(|e| crate::SimError::Scenario(format!("{}: {e}", path.display())))?;
        s.check()
            .map_err(|e| crate::SimError::Scenario(format!("{}: {e}", path.display())))?;
        Ok(s)
    }

    /// Checks the limits and that every fault names real tills.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=TILLS_MAX).contains(&self.tills) {
            return Err(format!("tills must be 1 to {TILLS_MAX}"));
        }
        if self.duration_s == 0 || self.duration_s > DURATION_S_MAX {
            return Err(format!("duration_s must be 1 to {DURATION_S_MAX}"));
        }
        if self.settle_s == 0 || self.settle_s > 3_600 {
            return Err("settle_s must be 1 to 3600".into());
        }
        if let Some(c) = &self.chain {
            if !(1..=STORES_MAX).contains(&c.stores) || !(1..=TILLS_MAX).contains(&c.tills) {
                return Err(format!(
                    "chain.stores must be 1 to {STORES_MAX}, chain.tills 1 to {TILLS_MAX}"
                ));
            }
            if !(0.0..=600.0).contains(&c.sales_per_minute) {
                return Err("chain.sales_per_minute must be 0 to 600".into());
            }
        }
        if self.faults.len() > FAULTS_MAX {
            return Err(format!("at most {FAULTS_MAX} faults"));
        }
        let w = &self.workload;
        if !(0.0..=600.0).contains(&w.sales_per_minute) {
            return Err("workload.sales_per_minute must be 0 to 600".into());
        }
        if w.scan_ms > 60_000 || w.tender_ms > 600_000 {
            return Err("workload.scan_ms must be at most 60000, tender_ms 600000".into());
        }
        if w.basket_max == 0 || w.basket_max > 50 || w.products == 0 || w.products > 1_000 {
            return Err("workload.basket_max must be 1 to 50, products 1 to 1000".into());
        }
        let t = &self.timing;
        if t.heartbeat_ms == 0 || t.election_ms <= t.heartbeat_ms * 2 || t.sample_ms < 100 {
            return Err(
                "timing: heartbeat_ms > 0, election_ms > 2 heartbeats, sample_ms >= 100".into(),
            );
        }
        let real = |t: u64| (1..=self.tills).contains(&t);
        for f in &self.faults {
            if !(0.0..=self.duration_s as f64).contains(&f.at_s) {
                return Err(format!("fault at {} s is outside the safety phase", f.at_s));
            }
            let ok = match &f.kind {
                FaultKind::Split { groups } => groups.iter().flatten().all(|t| real(*t)),
                FaultKind::Isolate { till }
                | FaultKind::Crash { till, .. }
                | FaultKind::Poison { till }
                | FaultKind::ClockSkew { till, .. } => real(*till),
                FaultKind::CutLink { a, b } | FaultKind::OneWay { from: a, to: b } => {
                    real(*a) && real(*b) && a != b
                }
                FaultKind::Lossy {
                    loss,
                    delay_ms,
                    jitter_ms,
                    ..
                } => (0.0..=0.5).contains(loss) && *delay_ms <= 5_000 && *jitter_ms <= 5_000,
                FaultKind::FlappingWan { down_s, up_s, .. } => *down_s > 0.0 && *up_s > 0.0,
                _ => true,
            };
            if !ok {
                return Err(format!(
                    "fault {:?} names a till the store does not have, the same till twice, \
                     a zero period, or a loss over 0.5 or a delay over 5000 ms",
                    f.kind
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../simulations");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                Scenario::load(&p).unwrap();
                n += 1;
            }
        }
        assert!(n >= 8, "{n} scenarios");
    }

    #[test]
    fn typos_and_unknown_tills_are_refused() {
        let bad = "name='x'\ntills=3\nduration_s=10\n[[fault]]\nat_s=1\nkind='isolate'\ntill=9\n";
        let s: Scenario = toml::from_str(bad).unwrap();
        assert!(s.check().unwrap_err().contains("does not have"));
        let typo = "name='x'\ntills=3\nduraton_s=10\n";
        assert!(toml::from_str::<Scenario>(typo).is_err());
    }
}
