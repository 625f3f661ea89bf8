//! Events: every state change on a till is an immutable event with a globally unique id
//! `(origin, seq)` and an HLC stamp. Events carry the CRDT deltas they cause, so applying an
//! event anywhere is a merge: idempotent and order-insensitive.

use crate::cart::{Line, LineWeight, Totals};
use crate::inventory::Reason;
use crate::payment::Payment;
use crate::transaction::Status;
use serde::{Deserialize, Serialize};
use tillmesh_crdt::{BoundedCounter, Hlc, LwwMap, OrSet, PnCounter, ReplicaId};
use utoipa::ToSchema;

/// A paid transaction, as recorded in the event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Sale {
    /// Transaction id (`<terminal>-<n>`), unique in the store.
    pub txn_id: String,
    /// Terminal that sold it.
    #[schema(value_type = u64)]
    pub terminal: ReplicaId,
    /// Cashier employee id.
    pub cashier: String,
    /// When the transaction was opened (ms since epoch).
    pub created_ms: u64,
    /// When it was paid (ms since epoch); prices and promotions are those in force then.
    pub paid_ms: u64,
    /// Lines with their prices, discounts and taxes.
    pub lines: Vec<Line>,
    /// Totals.
    pub totals: Totals,
    /// Payments (all captured).
    pub payments: Vec<Payment>,
    /// Loyalty customer, if any.
    pub customer_id: Option<String>,
    /// Loyalty points earned.
    pub points_earned: i64,
    /// The weighed lines' weights. Not part of `SaleRecorded`'s encoding (a 0.1.0 sale has
    /// none): a sale with weighed lines is a `WeighedSaleRecorded`, which carries them beside
    /// the sale; [`EventBody::sale`] puts them back here.
    #[serde(skip)]
    pub weights: Vec<LineWeight>,
}

/// What happened. Externally tagged (no `#[serde(tag)]`) so that the compact binary codec,
/// which cannot look ahead for a tag field, encodes it too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventBody {
    /// A transaction was paid.
    SaleRecorded {
        /// The sale.
        sale: Box<Sale>,
        /// Delta of the transaction-log OR-set.
        txlog: OrSet<String>,
        /// Delta of the transaction-status map.
        status: LwwMap<String, Status>,
        /// Stock taken by the sale: per SKU, the delta of its PN-counter (the sale, its
        /// status and its stock changes are one event, applied all or nothing).
        inventory: Vec<(String, PnCounter)>,
    },
    /// A paid transaction was voided.
    TransactionVoided {
        /// Transaction id.
        txn_id: String,
        /// Who asked.
        by: String,
        /// The manager who approved.
        approved_by: String,
        /// Why.
        reason: String,
        /// Delta of the transaction-status map.
        status: LwwMap<String, Status>,
    },
    /// A refund was requested or completed.
    RefundRecorded {
        /// Transaction id.
        txn_id: String,
        /// Amount refunded (the transaction total).
        amount: i64,
        /// Who asked.
        by: String,
        /// The manager who approved (empty while only requested).
        approved_by: String,
        /// Why.
        reason: String,
        /// Delta of the transaction-status map.
        status: LwwMap<String, Status>,
    },
    /// Stock changed.
    InventoryAdjusted {
        /// SKU.
        sku: String,
        /// Signed change in units.
        change: i64,
        /// Reason code.
        reason: Reason,
        /// Supplier (receiving only).
        supplier: Option<String>,
        /// Related transaction, or free text.
        reference: Option<String>,
        /// Who did it.
        by: String,
        /// Delta of the SKU's PN-counter.
        counter: PnCounter,
    },
    /// A store price override was set.
    PriceOverridden {
        /// SKU.
        sku: String,
        /// Delta of the store-price map: `(price, effective_from_ms)`.
        prices: LwwMap<String, (i64, u64)>,
        /// Who did it.
        by: String,
    },
    /// A store setting changed.
    SettingChanged {
        /// Delta of the settings map.
        settings: LwwMap<String, String>,
        /// Who did it.
        by: String,
    },
    /// A customer document changed (automerge incremental change bytes).
    CustomerUpdated {
        /// Customer id.
        customer_id: String,
        /// Automerge changes.
        change: Vec<u8>,
    },
    /// A customer's points changed.
    PointsChanged {
        /// Customer id.
        customer_id: String,
        /// Signed change.
        change: i64,
        /// Delta of the customer's points PN-counter.
        counter: PnCounter,
    },
    /// A reference photo of a SKU was enrolled for recognition (its embedding).
    VisionEnrolled {
        /// SKU.
        sku: String,
        /// The reference's stamp (the gallery keeps each SKU's newest).
        stamp: tillmesh_crdt::Hlc,
        /// The photo's embedding.
        embedding: Vec<f32>,
        /// Who enrolled it.
        by: String,
    },
    /// Part of a paid sale was returned (by line and quantity), with a manager's approval.
    /// Added in 0.2.0: a till of 0.1.0 keeps it unapplied (the restock travels as
    /// `InventoryAdjusted` events beside it, which every version applies).
    ItemsReturned {
        /// Transaction id.
        txn_id: String,
        /// The units returned per line and the money handed back for them.
        lines: Vec<crate::returns::ReturnedLine>,
        /// Money handed back in all.
        amount: i64,
        /// Who asked.
        by: String,
        /// The manager who approved.
        approved_by: String,
        /// Why.
        reason: String,
        /// Delta of the transaction-status map: REFUNDED once every unit is returned, else
        /// empty.
        status: LwwMap<String, Status>,
    },
    /// A paid sale in 0.2.0's shape (weighed lines, or gift-card tenders): `SaleRecorded`
    /// plus each weighed line's weight and price per kilogram (its stock deltas take grams
    /// for those lines) and the gift-card rights it spent. A till of 0.1.0 keeps it
    /// unapplied until it is upgraded.
    WeighedSaleRecorded {
        /// The sale.
        sale: Box<Sale>,
        /// The weighed lines.
        weights: Vec<LineWeight>,
        /// Delta of the transaction-log OR-set.
        txlog: OrSet<String>,
        /// Delta of the transaction-status map.
        status: LwwMap<String, Status>,
        /// Stock taken by the sale (grams for weighed lines).
        inventory: Vec<(String, PnCounter)>,
        /// Per gift card tendered, the delta of its bounded counter (rights spent here).
        gift_cards: Vec<(String, BoundedCounter)>,
    },
    /// A gift card activated or topped up, or a refund credited to it: rights to spend
    /// `amount` created at the origin (added in 0.2.0).
    GiftCardIssued {
        /// The card's code.
        card: String,
        /// Minor units added to its balance.
        amount: i64,
        /// Who did it.
        by: String,
        /// `activation`, `top_up` or `refund`.
        reason: String,
        /// Delta of the card's bounded counter.
        rights: BoundedCounter,
    },
    /// A till short of rights to a gift card asks the tills it can reach for `amount`
    /// (added in 0.2.0).
    GiftCardRightsAsked {
        /// The card's code.
        card: String,
        /// Minor units of rights asked for.
        amount: i64,
    },
    /// Rights to a gift card moved from the origin to `to` (added in 0.2.0).
    GiftCardRightsMoved {
        /// The card's code.
        card: String,
        /// The till given them.
        to: ReplicaId,
        /// Minor units moved.
        amount: i64,
        /// Delta of the card's bounded counter.
        rights: BoundedCounter,
    },
    /// An event of a kind this build does not know (written by a newer version): kept,
    /// relayed and uploaded byte for byte, never applied here; a till upgraded to a version
    /// that knows the kind decodes and applies it from its sync log. Never add a variant
    /// after this one: new kinds go before it (see ARCHITECTURE.md "Compatibility").
    Unknown {
        /// The kind's name, as its writer named it.
        kind: String,
        /// Its encoded body, as received.
        payload: Vec<u8>,
    },
}

/// The kinds this build knows, in variant order (a kind's position is its binary tag, so a
/// released kind never moves and never changes shape: a changed kind is a new kind).
pub const KINDS: &[&str] = &[
    "SaleRecorded",
    "TransactionVoided",
    "RefundRecorded",
    "InventoryAdjusted",
    "PriceOverridden",
    "SettingChanged",
    "CustomerUpdated",
    "PointsChanged",
    "VisionEnrolled",
    "ItemsReturned",
    "WeighedSaleRecorded",
    "GiftCardIssued",
    "GiftCardRightsAsked",
    "GiftCardRightsMoved",
];

impl EventBody {
    /// Whether this build knows the event's kind (it can be applied).
    pub fn is_known(&self) -> bool {
        !matches!(self, EventBody::Unknown { .. })
    }

    /// The event type name (`SaleRecorded`, ...).
    pub fn kind(&self) -> &str {
        match self {
            EventBody::SaleRecorded { .. } => "SaleRecorded",
            EventBody::TransactionVoided { .. } => "TransactionVoided",
            EventBody::RefundRecorded { .. } => "RefundRecorded",
            EventBody::InventoryAdjusted { .. } => "InventoryAdjusted",
            EventBody::PriceOverridden { .. } => "PriceOverridden",
            EventBody::SettingChanged { .. } => "SettingChanged",
            EventBody::CustomerUpdated { .. } => "CustomerUpdated",
            EventBody::PointsChanged { .. } => "PointsChanged",
            EventBody::VisionEnrolled { .. } => "VisionEnrolled",
            EventBody::ItemsReturned { .. } => "ItemsReturned",
            EventBody::WeighedSaleRecorded { .. } => "WeighedSaleRecorded",
            EventBody::GiftCardIssued { .. } => "GiftCardIssued",
            EventBody::GiftCardRightsAsked { .. } => "GiftCardRightsAsked",
            EventBody::GiftCardRightsMoved { .. } => "GiftCardRightsMoved",
            EventBody::Unknown { kind, .. } => kind,
        }
    }

    /// The sale a sale event records, with its weighed lines' weights.
    pub fn sale(&self) -> Option<Sale> {
        match self {
            EventBody::SaleRecorded { sale, .. } => Some((**sale).clone()),
            EventBody::WeighedSaleRecorded { sale, weights, .. } => {
                let mut s = (**sale).clone();
                s.weights.clone_from(weights);
                Some(s)
            }
            _ => None,
        }
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Terminal that created it.
    pub origin: ReplicaId,
    /// Per-origin sequence number, from 1, without gaps.
    pub seq: u64,
    /// HLC stamp.
    pub hlc: Hlc,
    /// Payload. In binary encodings it travels as its kind's name and its encoded body
    /// (`crate::codec::envelope`), so a till that does not know a kind keeps it unchanged.
    #[serde(with = "crate::codec::envelope")]
    pub body: EventBody,
    /// Its origin's seal ([`crate::seal`]), `None` for an event from before its origin
    /// sealed. Not part of the event's encoding (0.1.0 reads events without it): the disk,
    /// the mesh (protocol 2) and the cloud's batches (format 3) carry it beside the event.
    #[serde(skip)]
    pub sig: Option<Vec<u8>>,
    /// The trace of the request that made it, when traces are exported
    /// ([`crate::trace`]). Not part of its encoding, nor of its seal: the mesh (protocol 3)
    /// and the cloud's batches (format 4) carry it beside the event; the disk does not.
    #[serde(skip)]
    pub trace: Option<crate::trace::TraceContext>,
}

/// Why an event received from a peer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Sequence numbers start at 1.
    #[error("event of {0} has sequence number 0")]
    SeqZero(ReplicaId),
    /// The clock stamp is another replica's.
    #[error("event {origin}/{seq} is stamped by {stamp}")]
    ForeignStamp {
        /// Origin.
        origin: ReplicaId,
        /// Sequence number.
        seq: u64,
        /// The replica the stamp names.
        stamp: ReplicaId,
    },
    /// A delta in it was made by another replica, or it is over a size limit.
    #[error("event {origin}/{seq} ({kind}) carries deltas not made by its origin")]
    NotByOrigin {
        /// Origin.
        origin: ReplicaId,
        /// Sequence number.
        seq: u64,
        /// Event kind.
        kind: String,
    },
    /// A customer change that does not parse.
    #[error(transparent)]
    Customer(#[from] crate::customer::CustomerError),
    /// A recognition enrolment out of bounds.
    #[error("{0}")]
    Vision(String),
    /// A value past a bound every till and the cloud enforce (HLC logical counter, counter
    /// entry, amount, price, text length).
    #[error("event {origin}/{seq} ({kind}): {what}")]
    OutOfBounds {
        /// Origin.
        origin: ReplicaId,
        /// Sequence number.
        seq: u64,
        /// Event kind.
        kind: String,
        /// Which bound.
        what: String,
    },
}

/// Longest text field an event may carry (ids, names, reasons), in bytes. Catalog names and
/// request fields are bounded below it, so a till never makes an event its peers refuse.
pub const TEXT_BYTES_MAX: usize = 1024;

/// The bounds a peer's event must keep, beyond who made its deltas: the HLC's logical
/// counter, counter entries, amounts and prices, and text lengths. `None` when it keeps them.
fn out_of_bounds(e: &Event) -> Option<String> {
    use crate::money::{AMOUNT_MAX, valid_price};
    use tillmesh_crdt::{COUNTER_ENTRY_MAX, LOGICAL_MAX};
    if e.hlc.logical > LOGICAL_MAX {
        return Some(format!(
            "HLC logical counter {} is past {LOGICAL_MAX}",
            e.hlc.logical
        ));
    }
    let counter = |c: &PnCounter| c.max_entry() <= COUNTER_ENTRY_MAX;
    let amount = |a: i64| a.unsigned_abs() <= AMOUNT_MAX.unsigned_abs();
    let text = |t: &str| t.len() <= TEXT_BYTES_MAX;
    let opt = |t: &Option<String>| t.as_deref().is_none_or(text);
    let ok = match &e.body {
        EventBody::SaleRecorded {
            sale, inventory, ..
        }
        | EventBody::WeighedSaleRecorded {
            sale, inventory, ..
        } => {
            let weights_ok = match &e.body {
                EventBody::WeighedSaleRecorded {
                    weights,
                    gift_cards,
                    ..
                } => {
                    weights.iter().all(|w| {
                        (1..=crate::cart::WEIGHT_G_MAX).contains(&w.grams)
                            && valid_price(w.price_per_kg)
                            && sale
                                .lines
                                .iter()
                                .any(|l| l.line_no == w.line_no && l.quantity == 1)
                    }) && gift_cards
                        .iter()
                        .all(|(card, c)| text(card) && c.max_entry() <= COUNTER_ENTRY_MAX)
                }
                _ => true,
            };
            let t = &sale.totals;
            weights_ok
                && inventory.iter().all(|(sku, c)| text(sku) && counter(c))
                && [t.subtotal, t.discount, t.tax, t.total]
                    .into_iter()
                    .all(amount)
                && text(&sale.txn_id)
                && text(&sale.cashier)
                && opt(&sale.customer_id)
                && amount(sale.points_earned)
                && sale.lines.iter().all(|l| {
                    valid_price(l.unit_price)
                        && [l.gross, l.discount, l.tax, l.total]
                            .into_iter()
                            .all(amount)
                        && [&l.sku, &l.barcode, &l.name, &l.category]
                            .into_iter()
                            .all(|s| text(s))
                })
                && sale
                    .payments
                    .iter()
                    .all(|p| amount(p.amount) && amount(p.tendered) && amount(p.change))
        }
        EventBody::TransactionVoided {
            txn_id,
            by,
            approved_by,
            reason,
            ..
        } => [txn_id, by, approved_by, reason]
            .into_iter()
            .all(|s| text(s)),
        EventBody::RefundRecorded {
            txn_id,
            amount: a,
            by,
            approved_by,
            reason,
            ..
        } => {
            amount(*a)
                && [txn_id, by, approved_by, reason]
                    .into_iter()
                    .all(|s| text(s))
        }
        EventBody::InventoryAdjusted {
            sku,
            change,
            supplier,
            reference,
            by,
            counter: c,
            ..
        } => {
            counter(c)
                && change.unsigned_abs() <= COUNTER_ENTRY_MAX
                && text(sku)
                && text(by)
                && opt(supplier)
                && opt(reference)
        }
        EventBody::PointsChanged { counter: c, .. } => counter(c),
        EventBody::PriceOverridden { sku, prices, by } => {
            text(sku)
                && text(by)
                && prices
                    .iter()
                    .all(|(k, (price, _))| text(k) && valid_price(*price))
        }
        EventBody::SettingChanged { settings, by } => {
            text(by) && settings.iter().all(|(k, v)| text(k) && text(v))
        }
        EventBody::CustomerUpdated { customer_id, .. } => text(customer_id),
        EventBody::VisionEnrolled { sku, .. } => text(sku),
        EventBody::ItemsReturned {
            txn_id,
            lines,
            amount: a,
            by,
            approved_by,
            reason,
            ..
        } => {
            amount(*a)
                && lines.iter().all(|l| amount(l.amount))
                && [txn_id, by, approved_by, reason]
                    .into_iter()
                    .all(|s| text(s))
        }
        EventBody::GiftCardIssued {
            card,
            amount: a,
            by,
            reason,
            rights,
        } => {
            *a > 0
                && amount(*a)
                && text(card)
                && text(by)
                && text(reason)
                && rights.max_entry() <= COUNTER_ENTRY_MAX
        }
        EventBody::GiftCardRightsAsked { card, amount: a } => *a > 0 && amount(*a) && text(card),
        EventBody::GiftCardRightsMoved {
            card,
            amount: a,
            rights,
            ..
        } => *a > 0 && amount(*a) && text(card) && rights.max_entry() <= COUNTER_ENTRY_MAX,
        EventBody::Unknown { kind, payload } => {
            text(kind) && payload.len() <= crate::codec::EVENT_BYTES_MAX
        }
    };
    (!ok).then(|| "a value is past its bound (counter entry, amount, price or text length)".into())
}

impl Event {
    /// Checks that an event received from a peer is well formed and that every delta in it
    /// was made by its origin (a till may relay another till's events but cannot write
    /// entries in their name). Errors name the problem.
    pub fn check(&self) -> Result<(), EventError> {
        let o = self.origin;
        if self.seq == 0 {
            return Err(EventError::SeqZero(o));
        }
        if self.hlc.replica != o {
            return Err(EventError::ForeignStamp {
                origin: o,
                seq: self.seq,
                stamp: self.hlc.replica,
            });
        }
        if let Some(what) = out_of_bounds(self) {
            return Err(EventError::OutOfBounds {
                origin: o,
                seq: self.seq,
                kind: self.body.kind().to_string(),
                what,
            });
        }
        let counter_ok = |c: &PnCounter| c.replicas().all(|r| r == o);
        let stamps_ok =
            |mut it: Box<dyn Iterator<Item = tillmesh_crdt::Hlc> + '_>| it.all(|h| h.replica == o);
        let ok = match &self.body {
            EventBody::SaleRecorded {
                sale,
                txlog,
                status,
                inventory,
            }
            | EventBody::WeighedSaleRecorded {
                sale,
                txlog,
                status,
                inventory,
                ..
            } => {
                let cards_ok = match &self.body {
                    EventBody::WeighedSaleRecorded { gift_cards, .. } => {
                        gift_cards.len() <= crate::payment::PAYMENTS_MAX
                            && gift_cards.iter().all(|(_, c)| c.only_by(o))
                    }
                    _ => true,
                };
                cards_ok
                    && sale.terminal == o
                    && inventory.iter().all(|(_, c)| counter_ok(c))
                    && inventory.len() <= crate::cart::CART_LINES_MAX
                    && txlog.dots().all(|d| d.replica == o)
                    && stamps_ok(Box::new(status.stamps()))
                    && sale.lines.len() <= crate::cart::CART_LINES_MAX
                    && sale.payments.len() <= crate::payment::PAYMENTS_MAX
            }
            EventBody::TransactionVoided { status, .. }
            | EventBody::RefundRecorded { status, .. } => stamps_ok(Box::new(status.stamps())),
            EventBody::ItemsReturned { status, lines, .. } => {
                lines.len() <= crate::cart::CART_LINES_MAX && stamps_ok(Box::new(status.stamps()))
            }
            EventBody::InventoryAdjusted { counter, .. }
            | EventBody::PointsChanged { counter, .. } => counter_ok(counter),
            EventBody::PriceOverridden { prices, .. } => stamps_ok(Box::new(prices.stamps())),
            EventBody::SettingChanged { settings, .. } => stamps_ok(Box::new(settings.stamps())),
            EventBody::CustomerUpdated { change, .. } => {
                crate::customer::Customers::check_change(change)?;
                true
            }
            EventBody::VisionEnrolled {
                sku,
                stamp,
                embedding,
                ..
            } => {
                crate::vision::check(sku, embedding).map_err(EventError::Vision)?;
                stamp.replica == o
            }
            EventBody::GiftCardIssued { rights, .. }
            | EventBody::GiftCardRightsMoved { rights, .. } => rights.only_by(o),
            EventBody::GiftCardRightsAsked { .. } => true,
            // What it carries is checked by the versions that know its kind.
            EventBody::Unknown { .. } => true,
        };
        if ok {
            Ok(())
        } else {
            Err(EventError::NotByOrigin {
                origin: o,
                seq: self.seq,
                kind: self.body.kind().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::Reason;
    use crate::state::Replica;
    use tillmesh_crdt::ReplicaId;

    #[test]
    fn forged_deltas_are_refused() {
        let mut a = Replica::new(ReplicaId(1));
        let e = a.adjust("A", 5, Reason::Manual, None, None, "E", 10);
        assert!(e.check().is_ok());
        let mut forged = e.clone();
        forged.origin = ReplicaId(2);
        forged.hlc.replica = ReplicaId(2);
        assert!(
            forged
                .check()
                .unwrap_err()
                .to_string()
                .contains("not made by its origin")
        );
        let mut zero = e.clone();
        zero.seq = 0;
        assert!(zero.check().is_err());
        let mut stamped = e;
        stamped.hlc.replica = ReplicaId(9);
        assert!(stamped.check().is_err());
    }
}
