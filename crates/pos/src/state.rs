//! The replicated store state, derived from events as CRDTs, and the [`Replica`] that issues
//! local events (assigning sequence numbers, HLC stamps and deltas) and applies remote ones.

use crate::customer::Customers;
use crate::event::{Event, EventBody};
use crate::transaction::Status;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tillmesh_crdt::{
    BoundedCounter, Crdt, Hlc, LwwMap, OrSet, PnCounter, ReplicaId, VersionVector,
};

/// Largest clock drift accepted from a peer's event, in milliseconds.
pub const CLOCK_DRIFT_MS_MAX: u64 = 5 * 60 * 1000;

/// Everything the tills of a store converge on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StoreState {
    /// Stock per SKU.
    #[serde(deserialize_with = "tillmesh_crdt::bulk_map::deserialize")]
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
    #[serde(deserialize_with = "tillmesh_crdt::bulk_map::deserialize")]
    pub points: BTreeMap<String, PnCounter>,
    /// Customer documents.
    pub customers: Customers,
    /// Events held, per origin.
    pub vv: VersionVector,
    /// Events applied beyond a gap in their origin's sequence; folded into `vv` once the gap
    /// closes.
    ahead: BTreeSet<(ReplicaId, u64)>,
    /// Statuses still PAID (the default a sale reads as) and stamped before this time are
    /// not kept in memory (see [`StoreState::compact`]).
    #[serde(default)]
    pub horizon_ms: u64,
    /// Reference embeddings for product recognition.
    #[serde(default)]
    pub vision: crate::vision::VisionRefs,
    /// Events held but not applied: kinds this build does not know (a newer till's). Rebuilt
    /// from the sync log at every start, never in a base: they stay in the sync log (the
    /// compaction floor stops below them) until a version that knows them applies them.
    #[serde(skip)]
    pub unapplied: BTreeSet<(ReplicaId, u64)>,
    /// Gift card and store credit balances (escrow: rights to spend split among the tills).
    /// Outside the format-1 layout: a base carries them in format 2 (see [`Base::encode`]).
    #[serde(skip)]
    pub gift_cards: BTreeMap<String, BoundedCounter>,
}

/// A compaction point every till of the store applies (agreed through the store's Raft log):
/// events at or below `floor` are held by every till and acknowledged by the cloud, so they
/// leave the sync log; the sales they recorded leave the transaction-log OR-set
/// (`txlog_dots`: the highest OR-set dot per origin among those sales); and statuses still
/// PAID from before `horizon_ms` leave memory (a sale with no status reads as PAID, and the
/// database keeps every status for queries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// Highest compacted seq per origin.
    pub floor: VersionVector,
    /// Highest compacted transaction-log dot per origin.
    pub txlog_dots: VersionVector,
    /// Statuses still PAID and stamped before this are dropped from memory.
    pub horizon_ms: u64,
}

impl Compaction {
    /// Joins another point into this one (each part only grows).
    pub fn merge(&mut self, o: &Compaction) {
        self.floor.merge(&o.floor);
        self.txlog_dots.merge(&o.txlog_dots);
        self.horizon_ms = self.horizon_ms.max(o.horizon_ms);
    }

    /// Whether `o` moves any part forward.
    pub fn advanced_by(&self, o: &Compaction) -> bool {
        !self.floor.dominates(&o.floor)
            || !self.txlog_dots.dominates(&o.txlog_dots)
            || o.horizon_ms > self.horizon_ms
    }
}

/// What a till keeps of its compacted events: the state they (and possibly later events)
/// produced, the compaction point, and the highest clock stamp seen, so that a restart
/// resumes from it plus the events still in the sync log. Peers lacking compacted events
/// receive it whole and merge it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Base {
    /// The state.
    pub state: StoreState,
    /// The compaction point the till's sync log is pruned to.
    pub compaction: Compaction,
    /// Highest HLC stamp the state had seen.
    pub hlc: Hlc,
}

/// Largest encoded base accepted.
pub const BASE_BYTES_MAX: usize = 64 << 20;
/// The base's format: its first byte. A base of another format is refused with its number
/// (a newer till sends a base in a format its peer reads: see ARCHITECTURE.md
/// "Compatibility"). Format 1 is release 0.1.0's; format 2 (0.2.0) is format 1 followed by
/// the gift card balances, and is written only when there are some (a store takes gift
/// cards once every till runs 0.2.0).
pub const BASE_FORMAT: u8 = 2;

fn base_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<BASE_BYTES_MAX>()
}

/// Why a base could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    /// Over the size limit, or not encodable.
    #[error("cannot encode a base: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// Malformed or over the size limit.
    #[error("malformed base: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// Bytes after the base.
    #[error("{0} trailing bytes after a base")]
    Trailing(usize),
    /// A format this build does not read.
    #[error("a base of format {0}; this version reads format {BASE_FORMAT}")]
    Format(u8),
}

/// A [`Base`] borrowed from a live state, serialized exactly as the owned one: a big store's
/// state (every SKU's counter) is encoded at each compaction without a copy of it.
#[derive(Serialize)]
struct BaseView<'a> {
    state: StateView<'a>,
    compaction: &'a Compaction,
    hlc: Hlc,
}

/// [`StoreState`]'s serialized fields, in its order, borrowed.
#[derive(Serialize)]
struct StateView<'a> {
    inventory: &'a BTreeMap<String, PnCounter>,
    txlog: &'a OrSet<String>,
    txn_status: &'a LwwMap<String, Status>,
    store_prices: &'a LwwMap<String, (i64, u64)>,
    settings: &'a LwwMap<String, String>,
    points: &'a BTreeMap<String, PnCounter>,
    customers: &'a Customers,
    vv: &'a VersionVector,
    ahead: &'a BTreeSet<(ReplicaId, u64)>,
    horizon_ms: u64,
    vision: &'a crate::vision::VisionRefs,
}

impl Base {
    /// Encodes the base: its format byte, then bincode; in format 2 (only with gift
    /// cards), the gift card balances after it.
    pub fn encode(&self) -> Result<Vec<u8>, BaseError> {
        encode_base(self, &self.state.gift_cards)
    }

    /// What `Base { state: state.for_base(), compaction, hlc }.encode()` gives, without
    /// copying the state.
    pub fn encode_of(
        state: &StoreState,
        compaction: &Compaction,
        hlc: Hlc,
    ) -> Result<Vec<u8>, BaseError> {
        let claims = state.base_claims();
        let (vv, ahead) = match &claims {
            Some((vv, ahead)) => (vv, ahead),
            None => (&state.vv, &state.ahead),
        };
        let view = BaseView {
            state: StateView {
                inventory: &state.inventory,
                txlog: &state.txlog,
                txn_status: &state.txn_status,
                store_prices: &state.store_prices,
                settings: &state.settings,
                points: &state.points,
                customers: &state.customers,
                vv,
                ahead,
                horizon_ms: state.horizon_ms,
                vision: &state.vision,
            },
            compaction,
            hlc,
        };
        encode_base(&view, &state.gift_cards)
    }

    /// Decodes a base of format 1 or 2, refusing another format and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Base, BaseError> {
        let (&format, bytes) = bytes.split_first().ok_or(BaseError::Format(0))?;
        if !(1..=BASE_FORMAT).contains(&format) {
            return Err(BaseError::Format(format));
        }
        let (mut b, mut used): (Base, usize) =
            bincode::serde::decode_from_slice(bytes, base_config())?;
        if format == 2 {
            let (pairs, n): (Vec<(String, BoundedCounter)>, usize) =
                bincode::serde::decode_from_slice(&bytes[used..], base_config())?;
            used = used.saturating_add(n);
            b.state.gift_cards = pairs.into_iter().collect();
        }
        if used != bytes.len() {
            return Err(BaseError::Trailing(bytes.len().saturating_sub(used)));
        }
        Ok(b)
    }
}

fn encode_base(
    base: &impl Serialize,
    cards: &BTreeMap<String, BoundedCounter>,
) -> Result<Vec<u8>, BaseError> {
    let mut out = vec![if cards.is_empty() { 1 } else { BASE_FORMAT }];
    bincode::serde::encode_into_std_write(base, &mut out, base_config())?;
    if !cards.is_empty() {
        let pairs: Vec<(&String, &BoundedCounter)> = cards.iter().collect();
        bincode::serde::encode_into_std_write(&pairs, &mut out, base_config())?;
    }
    Ok(out)
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
            && self.horizon_ms == o.horizon_ms
            && self.gift_cards == o.gift_cards
    }
}

impl StoreState {
    /// The highest seq of `origin` that the sync log may be compacted to: below the first
    /// event held but not applied.
    pub fn compactable(&self, origin: ReplicaId) -> u64 {
        self.unapplied
            .range((origin, 0)..=(origin, u64::MAX))
            .next()
            .map_or(self.vv.get(origin), |&(_, s)| s.saturating_sub(1))
    }

    /// This state as a base carries it: without claiming the events it holds but did not
    /// apply (each origin's vector stops below the first), so a till that knows their kinds
    /// and merges the base is sent them again.
    pub fn for_base(&self) -> StoreState {
        let mut s = self.clone();
        if let Some((vv, ahead)) = self.base_claims() {
            s.vv = vv;
            s.ahead = ahead;
            s.unapplied.clear();
        }
        s
    }

    /// The version vector and events held ahead that a base of this state claims, when they
    /// differ from the state's own (some events are held but not applied).
    #[allow(clippy::type_complexity)]
    fn base_claims(&self) -> Option<(VersionVector, BTreeSet<(ReplicaId, u64)>)> {
        let cut: BTreeMap<ReplicaId, u64> = self
            .unapplied
            .iter()
            .rev()
            .map(|&(o, seq)| (o, seq.saturating_sub(1)))
            .collect();
        if cut.is_empty() {
            return None;
        }
        let mut vv = VersionVector::new();
        for (o, held) in self.vv.iter() {
            vv.advance(o, cut.get(&o).map_or(held, |&c| c.min(held)));
        }
        let ahead = self
            .ahead
            .iter()
            .filter(|(o, seq)| cut.get(o).is_none_or(|&c| *seq <= c))
            .copied()
            .collect();
        Some((vv, ahead))
    }

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

    /// The validator for an event from outside this till (a peer's, or read back from disk):
    /// the stateless checks of [`Event::check`] (origin of every delta, bounds), then what
    /// depends on this state: a customer change must apply to its document.
    pub fn admit(&self, e: &Event) -> Result<(), crate::event::EventError> {
        self.admit_all(std::slice::from_ref(e)).remove(0)
    }

    /// [`StoreState::admit`] for a batch, in order: each customer change is checked against
    /// its document as the batch's earlier admitted changes leave it.
    pub fn admit_all(&self, events: &[Event]) -> Vec<Result<(), crate::event::EventError>> {
        let mut scratch = BTreeMap::new();
        events
            .iter()
            .map(|e| {
                e.check()?;
                if let EventBody::CustomerUpdated {
                    customer_id,
                    change,
                } = &e.body
                    && !self.holds(e.origin, e.seq)
                {
                    self.customers.dry_run(&mut scratch, customer_id, change)?;
                }
                Ok(())
            })
            .collect()
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
            }
            | EventBody::WeighedSaleRecorded {
                txlog,
                status,
                inventory,
                ..
            } => {
                self.txlog.merge(txlog);
                self.merge_status(status);
                for (sku, counter) in inventory {
                    self.inventory
                        .entry(sku.clone())
                        .or_default()
                        .merge(counter);
                }
                if let EventBody::WeighedSaleRecorded { gift_cards, .. } = &e.body {
                    for (card, c) in gift_cards {
                        self.gift_cards.entry(card.clone()).or_default().merge(c);
                    }
                }
            }
            EventBody::GiftCardIssued { card, rights, .. }
            | EventBody::GiftCardRightsMoved { card, rights, .. } => self
                .gift_cards
                .entry(card.clone())
                .or_default()
                .merge(rights),
            EventBody::GiftCardRightsAsked { .. } => {}
            EventBody::TransactionVoided { status, .. }
            | EventBody::RefundRecorded { status, .. }
            | EventBody::ItemsReturned { status, .. } => self.merge_status(status),
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
                // The validator (`admit`) keeps out a peer's change that does not apply; one
                // stored anyway (by an earlier version, or admitted before a conflicting one
                // arrived) is skipped: the event still counts as held, and the till goes on.
                let _ = self.customers.apply(customer_id, change);
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
            EventBody::VisionEnrolled {
                sku,
                stamp,
                embedding,
                ..
            } => self.vision.insert(sku, *stamp, embedding.clone()),
            EventBody::Unknown { .. } => {
                self.unapplied.insert((e.origin, e.seq));
            }
        }
        if e.seq > self.vv.get(e.origin) {
            self.ahead.insert((e.origin, e.seq));
        }
        self.fold_ahead(e.origin);
    }

    /// Counts `(origin, seq)` as held without applying any delta: a quarantined event, which
    /// must not leave a gap in the version vector (peers would resend it forever).
    pub fn hold(&mut self, origin: ReplicaId, seq: u64) {
        if seq > self.vv.get(origin) {
            self.ahead.insert((origin, seq));
        }
        self.fold_ahead(origin);
    }

    /// Moves `origin`'s entry of `vv` over the events in `ahead` that became contiguous.
    fn fold_ahead(&mut self, origin: ReplicaId) {
        while let Some(&(o, s)) = self.ahead.range((origin, 0)..=(origin, u64::MAX)).next() {
            if s <= self.vv.get(o) {
                self.ahead.remove(&(o, s));
            } else if s == self.vv.get(o).saturating_add(1) {
                self.vv.advance(o, s);
                self.ahead.remove(&(o, s));
            } else {
                break;
            }
        }
    }

    fn merge_status(&mut self, delta: &LwwMap<String, Status>) {
        self.txn_status.merge(delta);
        if self.horizon_ms > 0 {
            for (k, _) in delta.iter() {
                self.forget_if_settled(k);
            }
        }
    }

    /// Drops `k`'s status if it is PAID from before the horizon. Dropping is the same
    /// whether it happens before or after a later status arrives (that one wins either way,
    /// and is kept), so tills converge whatever the order.
    fn forget_if_settled(&mut self, k: &String) {
        let settled = self.txn_status.get(k) == Some(&Status::Paid)
            && self
                .txn_status
                .stamp(k)
                .is_some_and(|s| s.wall_ms < self.horizon_ms);
        if settled {
            self.txn_status.forget(k);
        }
    }

    /// Applies a compaction point: forgets the compacted sales' transaction-log entries and
    /// the settled statuses from before the horizon. A join like any other merge, so it
    /// commutes with applying events: tills reach the same state whatever they received
    /// before or after it.
    pub fn compact(&mut self, c: &Compaction) {
        self.txlog.merge(&OrSet::forgetting(c.txlog_dots.iter()));
        if c.horizon_ms > self.horizon_ms {
            self.horizon_ms = c.horizon_ms;
            let h = self.horizon_ms;
            self.txn_status
                .retain(|_, v, stamp| !(v == Some(&Status::Paid) && stamp.wall_ms < h));
        }
    }

    /// Joins a whole state (a peer's [`Base`]) into this one.
    pub fn merge(&mut self, o: &StoreState) {
        for (sku, c) in &o.inventory {
            self.inventory.entry(sku.clone()).or_default().merge(c);
        }
        self.txlog.merge(&o.txlog);
        self.txn_status.merge(&o.txn_status);
        self.store_prices.merge(&o.store_prices);
        self.settings.merge(&o.settings);
        for (id, c) in &o.points {
            self.points.entry(id.clone()).or_default().merge(c);
        }
        self.customers.merge(&o.customers);
        self.vision.merge(&o.vision);
        for (card, c) in &o.gift_cards {
            self.gift_cards.entry(card.clone()).or_default().merge(c);
        }
        self.vv.merge(&o.vv);
        self.ahead.extend(o.ahead.iter().copied());
        let origins: BTreeSet<ReplicaId> = self.ahead.iter().map(|(o, _)| *o).collect();
        for origin in origins {
            self.fold_ahead(origin);
        }
        if o.horizon_ms > self.horizon_ms {
            self.compact(&Compaction {
                horizon_ms: o.horizon_ms,
                ..Compaction::default()
            });
        } else if self.horizon_ms > 0 {
            let h = self.horizon_ms;
            self.txn_status
                .retain(|_, v, stamp| !(v == Some(&Status::Paid) && stamp.wall_ms < h));
        }
    }

    /// Sizes of the parts that grow with sales (for metrics): transaction-log entries and
    /// statuses held in memory.
    pub fn held(&self) -> (usize, usize) {
        (self.txlog.len(), self.txn_status.held())
    }
}

pub use crate::replica::Replica;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Sale;
    use crate::inventory::Reason;

    #[test]
    fn a_base_with_gift_cards_is_format_2_and_one_without_stays_format_1() {
        let mut a = Replica::new(ReplicaId(1));
        let plain = a.base(Compaction::default()).encode().unwrap();
        assert_eq!(plain[0], 1, "release 0.1.0 reads it");
        a.issue_gift_card("GC-1", 5_000, "E001", "activation", 10);
        let mut b = Replica::new(ReplicaId(2));
        b.issue_gift_card("GC-1", 1_000, "E002", "top_up", 11);
        let e = b
            .move_gift_card_rights("GC-1", ReplicaId(1), 400, 12)
            .unwrap();
        a.apply_remote(&e, 12).unwrap();
        let bytes = a.base(Compaction::default()).encode().unwrap();
        assert_eq!(bytes[0], 2);
        let back = Base::decode(&bytes).unwrap();
        assert_eq!(back.state, *a.state());
        assert_eq!(back.state.gift_cards["GC-1"].rights(ReplicaId(1)), 5_400);
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(Base::decode(&long), Err(BaseError::Trailing(1))));
        assert!(matches!(Base::decode(&[3, 0]), Err(BaseError::Format(3))));
        // Spending past the rights records nothing.
        assert!(
            b.move_gift_card_rights("GC-1", ReplicaId(1), 601, 13)
                .is_err()
        );
    }

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

    fn sale(txn: &str, qty: u32) -> Sale {
        use crate::cart::{Line, Totals};
        Sale {
            txn_id: txn.into(),
            terminal: ReplicaId(1),
            cashier: "E1".into(),
            created_ms: 1,
            paid_ms: 2,
            lines: vec![Line {
                line_no: 1,
                sku: "A".into(),
                barcode: "96385074".into(),
                name: "x".into(),
                category: "c".into(),
                quantity: qty,
                unit_price: 100,
                tax_rate_bp: 0,
                gross: 100,
                discount: 0,
                promotion: None,
                tax: 0,
                total: 100,
            }],
            totals: Totals {
                subtotal: 100,
                discount: 0,
                tax: 0,
                total: 100,
                items: qty,
            },
            payments: vec![],
            customer_id: None,
            points_earned: 0,
            weights: Vec::new(),
        }
    }

    /// Two tills' events: sales at 10..=15 ms on till 1 (one voided later), a customer edit
    /// and sales on till 2; and the compaction point covering till 1's first four sales.
    fn history() -> (Vec<Event>, Compaction) {
        let (r1, r2) = (ReplicaId(1), ReplicaId(2));
        let mut a = Replica::new(r1);
        let mut b = Replica::new(r2);
        let mut evs = Vec::new();
        for i in 0..6 {
            evs.extend(a.record_sale(sale(&format!("T1-{i}"), 1), 10 + i));
        }
        evs.push(a.set_status(
            "T1-1",
            Status::Void,
            |status| EventBody::TransactionVoided {
                txn_id: "T1-1".into(),
                status,
                by: "M".into(),
                approved_by: "M".into(),
                reason: "r".into(),
            },
            30,
        ));
        let change = b
            .customers_mut()
            .edit(
                r2,
                "C1",
                &crate::customer::CustomerPatch {
                    name: Some("Ann".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        evs.push(b.update_customer("C1", change, 12));
        for i in 0..3 {
            evs.extend(b.record_sale(sale(&format!("T2-{i}"), 2), 20 + i));
        }
        let mut floor = VersionVector::new();
        floor.advance(r1, 4);
        // Till 1's first four sales are its first four events and its first four dots.
        let mut txlog_dots = VersionVector::new();
        txlog_dots.advance(r1, 4);
        (
            evs,
            Compaction {
                floor,
                txlog_dots,
                horizon_ms: 14,
            },
        )
    }

    #[test]
    fn compaction_commutes_with_events_and_bounds_the_transaction_log() {
        let (evs, c) = history();
        let mut after = Replica::restore(ReplicaId(9), &evs);
        let full = after.state().clone();
        after.compact(&c);
        // A till that applies the point first, then receives everything in reverse.
        let mut first = Replica::new(ReplicaId(8));
        first.compact(&c);
        for e in evs.iter().rev() {
            first.state_apply_for_test(e);
        }
        assert_eq!(first.state(), after.state());
        // Counters keep every sale; the log forgot four sales; PAID statuses from before
        // 14 ms are gone but the void (later) is kept and still reads as VOIDED.
        assert_eq!(after.state().stock("A"), full.stock("A"));
        assert_eq!(after.state().txlog.len(), full.txlog.len() - 4);
        assert_eq!(
            after.state().txn_status.get(&"T1-1".to_string()),
            Some(&Status::Void)
        );
        assert_eq!(after.state().txn_status.get(&"T1-0".to_string()), None);
        assert!(after.state().txn_status.get(&"T1-5".to_string()).is_some());
        assert_eq!(after.state().vv, full.vv);
        // Applying it again, or an older point, changes nothing.
        let once = after.state().clone();
        after.compact(&c);
        after.compact(&Compaction::default());
        assert_eq!(after.state(), &once);
    }

    #[test]
    fn a_base_plus_the_remaining_events_restores_the_state_and_merges_into_a_peer() {
        let (evs, c) = history();
        let mut live = Replica::restore(ReplicaId(1), &evs);
        live.compact(&c);
        let base = Base::decode(&live.base(c.clone()).encode().unwrap()).unwrap();
        assert_eq!(base.compaction, c);
        // Encoded in place, byte for byte the copy's encoding: plain, with events held but
        // not applied (the claims stop below them), and with gift cards (format 2).
        let mut state = live.state().clone();
        let hlc = live.clock_for_test();
        let same = |s: &StoreState| {
            let copy = Base {
                state: s.for_base(),
                compaction: c.clone(),
                hlc,
            };
            assert_eq!(Base::encode_of(s, &c, hlc).unwrap(), copy.encode().unwrap());
        };
        same(&state);
        state.unapplied.insert((ReplicaId(2), 3));
        state.ahead.insert((ReplicaId(2), 40));
        state.ahead.insert((ReplicaId(1), 40));
        assert_ne!(state.for_base().vv, state.vv, "the claims are cut");
        same(&state);
        state
            .gift_cards
            .insert("GC-1".into(), BoundedCounter::default());
        same(&state);
        // Restart: the base plus the events above the floor (the sync log after pruning).
        let kept: Vec<&Event> = evs
            .iter()
            .filter(|e| e.seq > c.floor.get(e.origin))
            .collect();
        let restored = Replica::restore_from(ReplicaId(1), base.clone(), kept);
        assert_eq!(restored.state(), live.state());
        assert_eq!(
            restored.state().customers.snapshot(),
            live.state().customers.snapshot()
        );
        // A till on a new disk that got only till 2's events merges the base and catches up.
        let mut fresh = Replica::new(ReplicaId(7));
        for e in evs.iter().filter(|e| e.origin == ReplicaId(2)) {
            fresh.state_apply_for_test(e);
        }
        fresh.merge_base(&base, 1_000).unwrap();
        assert_eq!(fresh.state(), live.state());
        assert!(Base::decode(&[1, 2, 3]).is_err());
    }
}
