//! The replicated store state, derived from events as CRDTs, and the [`Replica`] that issues
//! local events (assigning sequence numbers, HLC stamps and deltas) and applies remote ones.

use crate::customer::Customers;
use crate::event::{Event, EventBody, Sale};
use crate::inventory::Reason;
use crate::transaction::Status;
use std::collections::{BTreeMap, BTreeSet};
use tillmesh_crdt::{Crdt, Hlc, HlcClock, LwwMap, OrSet, PnCounter, ReplicaId, VersionVector};

/// Largest clock drift accepted from a peer's event, in milliseconds.
pub const CLOCK_DRIFT_MS_MAX: u64 = 5 * 60 * 1000;

/// Everything the tills of a store converge on.
#[derive(Clone, Debug, Default)]
pub struct StoreState {
    /// Stock per SKU.
    pub inventory: BTreeMap<String, PnCounter>,
    /// Transaction ids.
    pub txlog: OrSet<String>,
    /// Status per transaction.
    pub txn_status: LwwMap<String, Status>,
    /// Store price overrides: SKU -> `(price, effective_from_ms)`.
    pub store_prices: LwwMap<String, (i64, u64)>,
    /// Store settings.
    pub settings: LwwMap<String, String>,
    /// Loyalty points per customer.
    pub points: BTreeMap<String, PnCounter>,
    /// Customer documents.
    pub customers: Customers,
    /// Events held, per origin.
    pub vv: VersionVector,
    /// Events applied beyond a gap in their origin's sequence; folded into `vv` once the gap
    /// closes.
    ahead: BTreeSet<(ReplicaId, u64)>,
}

impl PartialEq for StoreState {
    fn eq(&self, o: &Self) -> bool {
        self.inventory == o.inventory
            && self.txlog == o.txlog
            && self.txn_status == o.txn_status
            && self.store_prices == o.store_prices
            && self.settings == o.settings
            && self.points == o.points
            && self.customers.snapshot() == o.customers.snapshot()
            && self.vv == o.vv
            && self.ahead == o.ahead
    }
}

impl StoreState {
    /// Stock of one SKU.
    pub fn stock(&self, sku: &str) -> i64 {
        self.inventory.get(sku).map_or(0, PnCounter::value)
    }

    /// Whether the event `(origin, seq)` has been applied.
    pub fn holds(&self, origin: ReplicaId, seq: u64) -> bool {
        self.vv.contains(origin, seq) || self.ahead.contains(&(origin, seq))
    }

    /// Points of one customer.
    pub fn points_of(&self, customer: &str) -> i64 {
        self.points.get(customer).map_or(0, PnCounter::value)
    }

    /// Merges the deltas an event carries. Idempotent: applying an event twice, or in any
    /// order relative to others, gives the same state. The version vector only advances over
    /// contiguous sequence numbers.
    pub fn apply(&mut self, e: &Event) {
        match &e.body {
            EventBody::SaleRecorded {
                txlog,
                status,
                inventory,
                ..
            } => {
                self.txlog.merge(txlog);
                self.txn_status.merge(status);
                for (sku, counter) in inventory {
                    self.inventory
                        .entry(sku.clone())
                        .or_default()
                        .merge(counter);
                }
            }
            EventBody::TransactionVoided { status, .. }
            | EventBody::RefundRecorded { status, .. } => self.txn_status.merge(status),
            EventBody::InventoryAdjusted { sku, counter, .. } => self
                .inventory
                .entry(sku.clone())
                .or_default()
                .merge(counter),
            EventBody::PriceOverridden { prices, .. } => self.store_prices.merge(prices),
            EventBody::SettingChanged { settings, .. } => self.settings.merge(settings),
            EventBody::CustomerUpdated {
                customer_id,
                change,
            } => {
                // Bytes from a peer that automerge cannot read are refused by the mesh before
                // they get here; local ones are ours. A failure is a broken invariant.
                self.customers
                    .apply(customer_id, change)
                    .expect("customer change from the event log must load");
            }
            EventBody::PointsChanged {
                customer_id,
                counter,
                ..
            } => self
                .points
                .entry(customer_id.clone())
                .or_default()
                .merge(counter),
        }
        if e.seq > self.vv.get(e.origin) {
            self.ahead.insert((e.origin, e.seq));
        }
        while let Some(&(o, s)) = self
            .ahead
            .range((e.origin, 0)..=(e.origin, u64::MAX))
            .next()
        {
            if s <= self.vv.get(o) {
                self.ahead.remove(&(o, s));
            } else if s == self.vv.get(o) + 1 {
                self.vv.advance(o, s);
                self.ahead.remove(&(o, s));
            } else {
                break;
            }
        }
    }
}

/// One till's view: the store state plus what it needs to issue its own events.
#[derive(Debug)]
pub struct Replica {
    me: ReplicaId,
    clock: HlcClock,
    state: StoreState,
}

impl Replica {
    /// A fresh replica.
    pub fn new(me: ReplicaId) -> Self {
        Self {
            me,
            clock: HlcClock::new(me, CLOCK_DRIFT_MS_MAX),
            state: StoreState::default(),
        }
    }

    /// Rebuilds a replica from its persisted events (any order).
    pub fn restore<'a>(me: ReplicaId, events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut r = Self::new(me);
        let mut last = Hlc::default();
        for e in events {
            last = last.max(e.hlc);
            r.state.apply(e);
        }
        r.clock = HlcClock::resume(me, CLOCK_DRIFT_MS_MAX, last);
        r
    }

    /// This till's id.
    pub fn id(&self) -> ReplicaId {
        self.me
    }

    /// The converged state.
    pub fn state(&self) -> &StoreState {
        &self.state
    }

    /// The next sequence number this till will use.
    pub fn next_seq(&self) -> u64 {
        self.state.vv.get(self.me) + 1
    }

    fn issue(&mut self, now_ms: u64, body: EventBody) -> Event {
        let e = Event {
            origin: self.me,
            seq: self.next_seq(),
            hlc: self.clock.tick(now_ms),
            body,
        };
        self.state.apply(&e);
        e
    }

    /// Records a paid sale: one event carrying the sale, its transaction-log and status
    /// deltas and its stock deltas; plus a points event when a customer earned points.
    pub fn record_sale(&mut self, sale: Sale, now_ms: u64) -> Vec<Event> {
        let stamp = self.clock.tick(now_ms);
        let txlog = self.state.txlog.add(self.me, sale.txn_id.clone());
        let status = LwwMap::new().tap_insert(sale.txn_id.clone(), Status::Paid, stamp);
        let mut taken: BTreeMap<&str, i64> = BTreeMap::new();
        for l in &sale.lines {
            *taken.entry(l.sku.as_str()).or_default() += i64::from(l.quantity);
        }
        let me = self.me;
        let inventory: Vec<(String, PnCounter)> = taken
            .into_iter()
            .map(|(sku, qty)| {
                let delta = self
                    .state
                    .inventory
                    .entry(sku.to_string())
                    .or_default()
                    .apply(me, -qty);
                (sku.to_string(), delta)
            })
            .collect();
        let (customer, points) = (sale.customer_id.clone(), sale.points_earned);
        let mut out = vec![self.issue(
            now_ms,
            EventBody::SaleRecorded {
                sale: Box::new(sale),
                txlog,
                status,
                inventory,
            },
        )];
        if let Some(c) = customer
            && points != 0
        {
            out.push(self.change_points(&c, points, now_ms));
        }
        out
    }

    /// Sets a transaction's status (void, refund) and returns the event.
    pub fn set_status(
        &mut self,
        txn_id: &str,
        to: Status,
        body: impl FnOnce(LwwMap<String, Status>) -> EventBody,
        now_ms: u64,
    ) -> Event {
        let stamp = self.clock.tick(now_ms);
        let status = LwwMap::new().tap_insert(txn_id.to_string(), to, stamp);
        self.issue(now_ms, body(status))
    }

    /// Records a stock change.
    #[allow(clippy::too_many_arguments)]
    pub fn adjust(
        &mut self,
        sku: &str,
        change: i64,
        reason: Reason,
        supplier: Option<String>,
        reference: Option<String>,
        by: &str,
        now_ms: u64,
    ) -> Event {
        let counter = self
            .state
            .inventory
            .get(sku)
            .cloned()
            .unwrap_or_default()
            .apply(self.me, change);
        self.issue(
            now_ms,
            EventBody::InventoryAdjusted {
                sku: sku.to_string(),
                change,
                reason,
                supplier,
                reference,
                by: by.to_string(),
                counter,
            },
        )
    }

    /// Records a store price override.
    pub fn override_price(
        &mut self,
        sku: &str,
        price: i64,
        effective_from_ms: u64,
        by: &str,
        now_ms: u64,
    ) -> Event {
        let stamp = self.clock.tick(now_ms);
        let prices = LwwMap::new().tap_insert(sku.to_string(), (price, effective_from_ms), stamp);
        self.issue(
            now_ms,
            EventBody::PriceOverridden {
                sku: sku.to_string(),
                prices,
                by: by.to_string(),
            },
        )
    }

    /// Records a store setting.
    pub fn set_setting(&mut self, key: &str, value: &str, by: &str, now_ms: u64) -> Event {
        let stamp = self.clock.tick(now_ms);
        let settings = LwwMap::new().tap_insert(key.to_string(), value.to_string(), stamp);
        self.issue(
            now_ms,
            EventBody::SettingChanged {
                settings,
                by: by.to_string(),
            },
        )
    }

    /// Records a customer document change (bytes from [`Customers::edit`]).
    pub fn update_customer(&mut self, customer_id: &str, change: Vec<u8>, now_ms: u64) -> Event {
        self.issue(
            now_ms,
            EventBody::CustomerUpdated {
                customer_id: customer_id.to_string(),
                change,
            },
        )
    }

    /// Merges a peer's event into this replica (the mesh calls this after the event is durable).
    pub fn apply_remote(
        &mut self,
        e: &Event,
        now_ms: u64,
    ) -> Result<(), tillmesh_crdt::ClockError> {
        self.clock.observe(e.hlc, now_ms)?;
        self.state.apply(e);
        Ok(())
    }

    /// Test helper: merges an event without clock checks.
    #[doc(hidden)]
    pub fn state_apply_for_test(&mut self, e: &Event) {
        self.state.apply(e);
    }

    /// Mutable access to the customer documents, to prepare an edit.
    pub fn customers_mut(&mut self) -> &mut Customers {
        &mut self.state.customers
    }

    /// Records a points change.
    pub fn change_points(&mut self, customer_id: &str, change: i64, now_ms: u64) -> Event {
        let counter = self
            .state
            .points
            .get(customer_id)
            .cloned()
            .unwrap_or_default()
            .apply(self.me, change);
        self.issue(
            now_ms,
            EventBody::PointsChanged {
                customer_id: customer_id.to_string(),
                change,
                counter,
            },
        )
    }
}

/// Small helper so a one-entry delta map reads as one expression.
trait TapInsert<K, V> {
    fn tap_insert(self, k: K, v: V, stamp: Hlc) -> Self;
}

impl<K: Ord + Clone, V: Clone + Ord> TapInsert<K, V> for LwwMap<K, V> {
    fn tap_insert(mut self, k: K, v: V, stamp: Hlc) -> Self {
        self.insert(k, v, stamp);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_vector_catches_up_when_a_gap_closes_and_replay_order_does_not_matter() {
        let mut a = Replica::new(ReplicaId(1));
        let mut evs = Vec::new();
        for i in 0..5 {
            evs.push(a.adjust(
                "A",
                i + 1,
                Reason::Receiving,
                None,
                None,
                "E",
                10 + i as u64,
            ));
        }
        evs.push(a.set_setting("k", "v", "E", 100));
        let mut shuffled = evs.clone();
        shuffled.reverse();
        shuffled.push(evs[2].clone());
        let b = Replica::restore(ReplicaId(2), &shuffled);
        assert_eq!(b.state(), a.state());
        assert_eq!(b.state().vv.get(ReplicaId(1)), 6);
        assert_eq!(b.state().stock("A"), 15);
        let mut partial = StoreState::default();
        partial.apply(&evs[1]);
        assert_eq!(partial.vv.get(ReplicaId(1)), 0);
        partial.apply(&evs[0]);
        assert_eq!(partial.vv.get(ReplicaId(1)), 2);
    }
}
