//! Events: every state change on a till is an immutable event with a globally unique id
//! `(origin, seq)` and an HLC stamp. Events carry the CRDT deltas they cause, so applying an
//! event anywhere is a merge: idempotent and order-insensitive.

use crate::cart::{Line, Totals};
use crate::inventory::Reason;
use crate::payment::Payment;
use crate::transaction::Status;
use serde::{Deserialize, Serialize};
use tillmesh_crdt::{Hlc, LwwMap, OrSet, PnCounter, ReplicaId};
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
}

impl EventBody {
    /// The event type name (`SaleRecorded`, ...).
    pub fn kind(&self) -> &'static str {
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
    /// Payload.
    pub body: EventBody,
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
        kind: &'static str,
    },
    /// A customer change that does not parse.
    #[error(transparent)]
    Customer(#[from] crate::customer::CustomerError),
    /// A recognition enrolment out of bounds.
    #[error("{0}")]
    Vision(String),
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
        let counter_ok = |c: &PnCounter| c.replicas().all(|r| r == o);
        let stamps_ok =
            |mut it: Box<dyn Iterator<Item = tillmesh_crdt::Hlc> + '_>| it.all(|h| h.replica == o);
        let ok = match &self.body {
            EventBody::SaleRecorded {
                sale,
                txlog,
                status,
                inventory,
            } => {
                sale.terminal == o
                    && inventory.iter().all(|(_, c)| counter_ok(c))
                    && inventory.len() <= crate::cart::CART_LINES_MAX
                    && txlog.dots().all(|d| d.replica == o)
                    && stamps_ok(Box::new(status.stamps()))
                    && sale.lines.len() <= crate::cart::CART_LINES_MAX
                    && sale.payments.len() <= crate::payment::PAYMENTS_MAX
            }
            EventBody::TransactionVoided { status, .. }
            | EventBody::RefundRecorded { status, .. } => stamps_ok(Box::new(status.stamps())),
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
        };
        if ok {
            Ok(())
        } else {
            Err(EventError::NotByOrigin {
                origin: o,
                seq: self.seq,
                kind: self.body.kind(),
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
