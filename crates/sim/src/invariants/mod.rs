//! The invariants checked after a run, one file each, over the evidence gathered at the end
//! (every till's state and records, the cloud's ledger and reports) and during the run (the
//! observations). Each answers a verdict with a sentence saying what it found.

mod cloud_totals;
mod convergence;
mod exactly_once;
mod gift_cards;
mod inventory;
mod no_lost_sale;
mod one_leader;
mod peer_data;
mod watermark;

use crate::ledger::Ledger;
use crate::observe::Observations;
use serde::Serialize;
use std::collections::BTreeMap;
use tillmesh_pos::state::StoreState;

/// One invariant's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Invariant name.
    pub name: &'static str,
    /// Whether it held.
    pub pass: bool,
    /// What was found.
    pub detail: String,
}

impl Verdict {
    fn new(name: &'static str, pass: bool, detail: String) -> Self {
        Self { name, pass, detail }
    }
}

/// One till at the end of the run.
#[derive(Debug)]
pub struct TillEnd {
    /// Its converged state.
    pub state: StoreState,
    /// Events it holds.
    pub held: u64,
    /// Acknowledged sales it has no record of.
    pub missing_sales: Vec<String>,
    /// Stock of the products the cashiers sold.
    pub stock: BTreeMap<String, i64>,
    /// A peer's events it holds in quarantine.
    pub quarantined: usize,
}

/// The cloud at the end of the run.
#[derive(Debug, Default)]
pub struct CloudEnd {
    /// Events of the store in the ledger.
    pub events: u64,
    /// Sales in the reports.
    pub transactions: u64,
    /// Their totals.
    pub total: i64,
    /// Voided sales in the reports.
    pub voided: u64,
    /// Their totals.
    pub voided_amount: i64,
    /// Stored-value accounts in the reports: account -> (loaded, spent).
    pub balances: BTreeMap<String, (i64, i64)>,
}

/// Another store of the chain at the end of the run.
#[derive(Debug)]
pub struct ChainEnd {
    /// Store id.
    pub store: String,
    /// Events its tills hold (the most any of them holds).
    pub held: u64,
    /// What its cashiers were told.
    pub acked: Ledger,
    /// What the cloud holds of it.
    pub cloud: CloudEnd,
}

/// Everything the invariants look at.
#[derive(Debug)]
pub struct Evidence {
    /// What the cashiers were told.
    pub acked: Ledger,
    /// What was watched during the run.
    pub obs: Observations,
    /// Every till.
    pub tills: BTreeMap<u64, TillEnd>,
    /// The cloud.
    pub cloud: CloudEnd,
    /// Stock of the sold products before the run.
    pub opening: BTreeMap<String, i64>,
    /// The rest of the chain.
    pub chain: Vec<ChainEnd>,
    /// When crafted peer events were injected (simulated ms since the epoch).
    pub poisoned_at_ms: Vec<u64>,
    /// When the run's safety phase ended (simulated ms since the epoch).
    pub end_ms: u64,
}

/// Checks every invariant.
pub fn check(e: &Evidence) -> Vec<Verdict> {
    vec![
        no_lost_sale::check(e),
        exactly_once::check(e),
        convergence::check(e),
        one_leader::check(e),
        inventory::check(e),
        cloud_totals::check(e),
        watermark::check(e),
        peer_data::check(e),
        gift_cards::check(e),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::AckedSale;

    fn evidence() -> Evidence {
        let mut acked = Ledger::default();
        acked.sales.push(AckedSale {
            till: 1,
            txn_id: "T1-1".into(),
            total: 500,
            lines: vec![("SKU1".into(), 2)],
            at_ms: 1_000,
        });
        let till = TillEnd {
            state: StoreState::default(),
            held: 3,
            missing_sales: vec![],
            stock: [("SKU1".to_string(), 8)].into_iter().collect(),
            quarantined: 0,
        };
        Evidence {
            acked,
            obs: Observations::default(),
            tills: [(1, till)].into_iter().collect(),
            cloud: CloudEnd {
                events: 3,
                transactions: 1,
                total: 500,
                voided: 0,
                voided_amount: 0,
                ..CloudEnd::default()
            },
            opening: [("SKU1".to_string(), 10)].into_iter().collect(),
            chain: vec![ChainEnd {
                store: "C0001".into(),
                held: 2,
                acked: Ledger::default(),
                cloud: CloudEnd {
                    events: 2,
                    ..CloudEnd::default()
                },
            }],
            poisoned_at_ms: vec![],
            end_ms: 60_000,
        }
    }

    fn failing(e: &Evidence) -> Vec<&'static str> {
        check(e)
            .into_iter()
            .filter(|v| !v.pass)
            .map(|v| v.name)
            .collect()
    }

    #[test]
    fn a_till_must_sell_and_quarantine_after_a_peers_crafted_events() {
        let mut e = evidence();
        e.poisoned_at_ms = vec![500];
        assert_eq!(
            failing(&e),
            ["no_till_stops_selling_on_peer_data"],
            "not quarantined"
        );
        e.tills.get_mut(&1).unwrap().quarantined = 3;
        assert!(
            failing(&e).is_empty(),
            "sold at 1 s, after the injection at 0.5 s"
        );
        e.poisoned_at_ms = vec![2_000];
        assert_eq!(
            failing(&e),
            ["no_till_stops_selling_on_peer_data"],
            "no sale after it"
        );
    }

    #[test]
    fn consistent_evidence_passes_and_each_breach_fails_its_invariant() {
        assert!(check(&evidence()).iter().all(|v| v.pass));
        let failing = |e: &Evidence| -> Vec<&'static str> {
            check(e)
                .into_iter()
                .filter(|v| !v.pass)
                .map(|v| v.name)
                .collect()
        };
        let mut e = evidence();
        e.tills
            .get_mut(&1)
            .unwrap()
            .missing_sales
            .push("T1-1".into());
        assert_eq!(failing(&e), ["no_acknowledged_sale_lost"]);
        let mut e = evidence();
        e.cloud.transactions = 2;
        assert_eq!(failing(&e), ["exactly_once_in_the_cloud"]);
        let mut e = evidence();
        e.obs.leaders.insert(4, [1, 2].into_iter().collect());
        assert_eq!(failing(&e), ["at_most_one_leader_per_term"]);
        // From persisted votes: two committed leaders of one term, one till voting twice in a
        // term, and a leader by metrics that never persisted its own committed vote.
        use crate::observe::PersistedVote;
        let v = |term, node, committed| PersistedVote {
            term,
            node,
            committed,
        };
        let mut e = evidence();
        e.obs.votes.insert(1, vec![v(4, 1, true)]);
        e.obs.votes.insert(2, vec![v(4, 2, true)]);
        assert_eq!(failing(&e), ["at_most_one_leader_per_term"]);
        let mut e = evidence();
        e.obs.votes.insert(3, vec![v(4, 1, false), v(4, 2, false)]);
        assert_eq!(failing(&e), ["at_most_one_leader_per_term"]);
        let mut e = evidence();
        e.obs.votes.insert(2, vec![v(4, 2, false)]);
        e.obs.leaders.insert(4, [2].into_iter().collect());
        assert_eq!(failing(&e), ["at_most_one_leader_per_term"]);
        let mut e = evidence();
        e.obs
            .votes
            .insert(2, vec![v(3, 1, false), v(4, 2, false), v(4, 2, true)]);
        e.obs
            .votes
            .insert(3, vec![v(3, 1, true), v(4, 2, false), v(4, 2, true)]);
        // Till 4 stood in term 4 itself, lost, and follows the winner.
        e.obs.votes.insert(4, vec![v(4, 4, false), v(4, 2, true)]);
        e.obs.leaders.insert(4, [2].into_iter().collect());
        assert!(
            failing(&e).is_empty(),
            "one leader per term, each vote once"
        );
        let mut e = evidence();
        e.tills.get_mut(&1).unwrap().stock.insert("SKU1".into(), 9);
        assert_eq!(
            failing(&e),
            ["inventory_is_stock_minus_sales_plus_adjustments"]
        );
        let mut e = evidence();
        e.cloud.total = 499;
        assert_eq!(failing(&e), ["cloud_totals_equal_store_totals"]);
        let mut e = evidence();
        e.chain[0].cloud.events = 3;
        assert_eq!(failing(&e), ["exactly_once_in_the_cloud"]);
        let mut e = evidence();
        e.chain[0].cloud.total = 7;
        assert_eq!(failing(&e), ["cloud_totals_equal_store_totals"]);
        let mut e = evidence();
        e.obs.backwards.push((1, 1, 5, 4, 1.0));
        assert_eq!(failing(&e), ["watermark_never_moves_backwards"]);
        let mut e = evidence();
        let mut other = StoreState::default();
        other.vv.advance(tillmesh_crdt::ReplicaId(1), 1);
        e.tills.insert(
            2,
            TillEnd {
                state: other,
                held: 3,
                missing_sales: vec![],
                stock: [("SKU1".to_string(), 8)].into_iter().collect(),
                quarantined: 0,
            },
        );
        assert_eq!(failing(&e), ["identical_crdt_state"]);
        // Stored value: an account spent past what was loaded in the cloud, an acknowledged
        // tender missing from the cloud or from a till, an account the cloud never saw.
        let stored = || {
            let (a, b) = (
                tillmesh_crdt::ReplicaId(1 << 32),
                tillmesh_crdt::ReplicaId(2 << 32),
            );
            let mut c = tillmesh_crdt::BoundedCounter::new();
            c.increment(a, 100);
            c.transfer(a, b, 100).unwrap();
            c.decrement(b, 60).unwrap();
            let mut e = evidence();
            e.acked.gift_loaded.insert("GC1".into(), 100);
            e.acked.gift_spent.push(("GC1".into(), 60, "T1-1".into()));
            for t in e.tills.values_mut() {
                t.state.gift_cards.insert("GC1".into(), c.clone());
            }
            e.cloud.balances.insert("GC1".into(), (100, 60));
            e
        };
        assert!(failing(&stored()).is_empty(), "{:?}", failing(&stored()));
        for change in [(100, 120), (100, 50)] {
            let mut e = stored();
            e.cloud.balances.insert("GC1".into(), change);
            assert_eq!(failing(&e), ["gift_cards_never_below_zero_nor_lost"]);
        }
        let mut e = stored();
        e.cloud.balances.clear();
        assert_eq!(failing(&e), ["gift_cards_never_below_zero_nor_lost"]);
        let mut e = stored();
        e.acked.gift_spent.push(("GC1".into(), 10, "T1-2".into()));
        e.cloud.balances.insert("GC1".into(), (100, 70));
        assert_eq!(failing(&e), ["gift_cards_never_below_zero_nor_lost"]);
    }
}
