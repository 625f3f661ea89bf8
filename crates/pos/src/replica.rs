//! The [`Replica`]: one till's view of the store state, with what it needs to issue its own
//! events (sequence numbers, HLC stamps, deltas) and to apply its peers'.

use crate::customer::Customers;
use crate::event::{Event, EventBody, Sale};
use crate::inventory::Reason;
use crate::state::{Base, CLOCK_DRIFT_MS_MAX, Compaction, StoreState};
use crate::transaction::Status;
use std::collections::{BTreeMap, BTreeSet};
use tillmesh_crdt::{Hlc, HlcClock, LwwMap, PnCounter, ReplicaId};

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
        Self::restore_from(me, Base::default(), events)
    }

    /// Rebuilds a replica from a compacted base and the events after it (any order; events
    /// the base already covers are harmless: applying is idempotent).
    pub fn restore_from<'a>(
        me: ReplicaId,
        base: Base,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Self {
        Self::restore_skipping(me, base, events, &BTreeSet::new())
    }

    /// [`Replica::restore_from`], holding the events in `quarantined` without applying them
    /// (they count as held, so the version vector moves past them, but their deltas and
    /// stamps are left out).
    pub fn restore_skipping<'a>(
        me: ReplicaId,
        base: Base,
        events: impl IntoIterator<Item = &'a Event>,
        quarantined: &BTreeSet<(ReplicaId, u64)>,
    ) -> Self {
        let mut r = Self::new(me);
        r.state = base.state;
        let mut last = base.hlc;
        for e in events {
            if quarantined.contains(&(e.origin, e.seq)) {
                r.state.hold(e.origin, e.seq);
                continue;
            }
            last = last.max(e.hlc);
            r.state.apply(e);
        }
        r.clock = HlcClock::resume(me, CLOCK_DRIFT_MS_MAX, last);
        r
    }

    /// Holds a peer's event without applying it (quarantined: see [`StoreState::hold`]).
    pub fn hold(&mut self, origin: ReplicaId, seq: u64) {
        self.state.hold(origin, seq);
    }

    /// Merges a peer's event whose stamp is ahead of this till's clock by more than the drift
    /// limit: its deltas apply (every till converges on them), but this till's clock does not
    /// jump ahead with it, so one skewed till cannot push every clock of the store forward.
    pub fn apply_skewed(&mut self, e: &Event) {
        self.state.apply(e);
    }

    /// This till's id.
    pub fn id(&self) -> ReplicaId {
        self.me
    }

    /// The converged state.
    pub fn state(&self) -> &StoreState {
        &self.state
    }

    /// The last stamp this replica's clock gave (ahead of the wall clock when the clock ran
    /// ahead and was set back: the HLC keeps the higher time).
    pub fn last_stamp(&self) -> Hlc {
        self.clock.last_stamp()
    }

    /// The next sequence number this replica will stamp.
    pub fn next_seq(&self) -> u64 {
        self.state.vv.get(self.me).saturating_add(1)
    }

    fn issue(&mut self, now_ms: u64, body: EventBody) -> Event {
        let e = Event {
            origin: self.me,
            seq: self.next_seq(),
            hlc: self.clock.tick(now_ms),
            body,
            sig: None,
            trace: None,
        };
        self.state.apply(&e);
        e
    }

    /// Records a paid sale: one event carrying the sale, its transaction-log and status
    /// deltas and its stock deltas; plus a points event when a customer earned points. A
    /// sale with gift-card tenders records nothing unless this till holds the rights to
    /// spend them ([`Replica::try_record_sale`] says why).
    pub fn record_sale(&mut self, sale: Sale, now_ms: u64) -> Vec<Event> {
        self.try_record_sale(sale, now_ms).unwrap_or_default()
    }

    /// Stored-value tenders of a sale (gift cards, store credit, coupons): minor units per
    /// account.
    pub fn gift_card_tenders(sale: &Sale) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for p in sale.payments.iter().filter(|p| {
            p.method.spends_balance() && p.status == crate::payment::PaymentStatus::Captured
        }) {
            let card = p.provider_ref.clone().unwrap_or_default();
            let e = out.entry(card).or_default();
            *e = e.saturating_add(p.amount.max(0).unsigned_abs());
        }
        out
    }

    /// The rights this till holds to spend gift card `card`.
    pub fn gift_card_rights(&self, card: &str) -> u64 {
        self.state
            .gift_cards
            .get(card)
            .map_or(0, |c| c.rights(self.me))
    }

    /// [`Replica::record_sale`], refused (recording nothing) when a gift-card tender is
    /// more than the rights this till holds to that card.
    pub fn try_record_sale(
        &mut self,
        sale: Sale,
        now_ms: u64,
    ) -> Result<Vec<Event>, tillmesh_crdt::ShortOfRights> {
        let tenders = Self::gift_card_tenders(&sale);
        for (card, amount) in &tenders {
            let held = self.gift_card_rights(card);
            if *amount > held {
                return Err(tillmesh_crdt::ShortOfRights {
                    held,
                    asked: *amount,
                });
            }
        }
        let me = self.me;
        let gift_cards: Vec<(String, tillmesh_crdt::BoundedCounter)> = tenders
            .into_iter()
            .filter_map(|(card, amount)| {
                let c = self.state.gift_cards.entry(card.clone()).or_default();
                c.clone()
                    .decrement(me, amount)
                    .ok()
                    .map(|delta| (card, delta))
            })
            .collect();
        let stamp = self.clock.tick(now_ms);
        let txlog = self.state.txlog.add(self.me, sale.txn_id.clone());
        let status = LwwMap::new().tap_insert(sale.txn_id.clone(), Status::Paid, stamp);
        let mut taken: BTreeMap<&str, i64> = BTreeMap::new();
        for l in &sale.lines {
            let t = taken.entry(l.sku.as_str()).or_default();
            *t = t.saturating_add(crate::cart::stock_units(&sale.weights, l));
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
                    .apply(me, qty.saturating_neg());
                (sku.to_string(), delta)
            })
            .collect();
        let (customer, points) = (sale.customer_id.clone(), sale.points_earned);
        // A sale with weighed lines or gift-card tenders is a kind of its own (0.1.0 tills
        // keep it unapplied); every other sale stays `SaleRecorded`, which every version
        // applies.
        let body = if sale.weights.is_empty() && gift_cards.is_empty() {
            EventBody::SaleRecorded {
                sale: Box::new(sale),
                txlog,
                status,
                inventory,
            }
        } else {
            let mut sale = sale;
            let weights = std::mem::take(&mut sale.weights);
            EventBody::WeighedSaleRecorded {
                sale: Box::new(sale),
                weights,
                txlog,
                status,
                inventory,
                gift_cards,
            }
        };
        let mut out = vec![self.issue(now_ms, body)];
        if let Some(c) = customer
            && points != 0
        {
            out.push(self.change_points(&c, points, now_ms));
        }
        Ok(out)
    }

    /// Adds `amount` to gift card `card` (activation, top-up, or a refund credited to it):
    /// the rights to spend it are created at this till.
    pub fn issue_gift_card(
        &mut self,
        card: &str,
        amount: i64,
        by: &str,
        reason: &str,
        now_ms: u64,
    ) -> Event {
        let me = self.me;
        let rights = self
            .state
            .gift_cards
            .entry(card.to_string())
            .or_default()
            .clone()
            .increment(me, amount.max(0).unsigned_abs());
        self.issue(
            now_ms,
            EventBody::GiftCardIssued {
                card: card.to_string(),
                amount,
                by: by.to_string(),
                reason: reason.to_string(),
                rights,
            },
        )
    }

    /// Asks the tills this one can reach for `amount` of rights to `card`.
    pub fn ask_gift_card_rights(&mut self, card: &str, amount: i64, now_ms: u64) -> Event {
        self.issue(
            now_ms,
            EventBody::GiftCardRightsAsked {
                card: card.to_string(),
                amount,
            },
        )
    }

    /// Hands `amount` of this till's rights to `card` to till `to`; refused, recording
    /// nothing, when this till holds fewer.
    pub fn move_gift_card_rights(
        &mut self,
        card: &str,
        to: ReplicaId,
        amount: i64,
        now_ms: u64,
    ) -> Result<Event, tillmesh_crdt::ShortOfRights> {
        let me = self.me;
        let rights = self
            .state
            .gift_cards
            .get(card)
            .cloned()
            .unwrap_or_default()
            .transfer(me, to, amount.max(0).unsigned_abs())?;
        Ok(self.issue(
            now_ms,
            EventBody::GiftCardRightsMoved {
                card: card.to_string(),
                to,
                amount,
                rights,
            },
        ))
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

    /// Records a return of part of a sale (`ItemsReturned`, made by `body` from a status
    /// delta): REFUNDED when the return leaves nothing of the sale (`whole`), else no status
    /// change.
    pub fn record_return(
        &mut self,
        txn_id: &str,
        whole: bool,
        body: impl FnOnce(LwwMap<String, Status>) -> EventBody,
        now_ms: u64,
    ) -> Event {
        if whole {
            self.set_status(txn_id, Status::Refunded, body, now_ms)
        } else {
            self.issue(now_ms, body(LwwMap::new()))
        }
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

    /// Enrols one reference embedding of `sku` for recognition (checked by the caller with
    /// [`crate::vision::check`]).
    pub fn enroll_vision(
        &mut self,
        sku: &str,
        embedding: Vec<f32>,
        by: &str,
        now_ms: u64,
    ) -> Event {
        let stamp = self.clock.tick(now_ms);
        self.issue(
            now_ms,
            EventBody::VisionEnrolled {
                sku: sku.to_string(),
                stamp,
                embedding,
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

    /// Applies a compaction point (see [`StoreState::compact`]).
    pub fn compact(&mut self, c: &Compaction) {
        self.state.compact(c);
    }

    /// The state as a [`Base`] for `compaction`, with the clock's last stamp.
    pub fn base(&self, compaction: Compaction) -> Base {
        Base {
            state: self.state.for_base(),
            compaction,
            hlc: self.clock.last_stamp(),
        }
    }

    /// [`Replica::base`] encoded ([`Base::encode`]), without copying the state.
    pub fn encode_base(&self, compaction: &Compaction) -> Result<Vec<u8>, crate::state::BaseError> {
        Base::encode_of(&self.state, compaction, self.clock.last_stamp())
    }

    /// The clock's last stamp (tests).
    #[cfg(test)]
    pub(crate) fn clock_for_test(&self) -> Hlc {
        self.clock.last_stamp()
    }

    /// Merges a peer's base into this replica (its clock observes the base's stamp).
    pub fn merge_base(
        &mut self,
        base: &Base,
        now_ms: u64,
    ) -> Result<(), tillmesh_crdt::ClockError> {
        self.clock.observe(base.hlc, now_ms)?;
        self.state.merge(&base.state);
        self.state.compact(&base.compaction);
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
