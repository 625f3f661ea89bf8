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
