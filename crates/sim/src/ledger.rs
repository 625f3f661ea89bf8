//! What the simulated cashiers were told succeeded (and what was refused): the record the
//! invariants check the tills and the cloud against.

use std::collections::{BTreeMap, BTreeSet};

/// A sale the till acknowledged (its finalize answered OK: durable on its disk).
#[derive(Clone, Debug)]
pub struct AckedSale {
    /// Till that sold it.
    pub till: u64,
    /// Transaction id.
    pub txn_id: String,
    /// Total, minor units.
    pub total: i64,
    /// `(sku, quantity)` per line.
    pub lines: Vec<(String, u32)>,
    /// When the till acknowledged it (simulated ms since the epoch).
    pub at_ms: u64,
}

/// Everything the cashiers were told succeeded, and what was refused.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Acknowledged sales, in order.
    pub sales: Vec<AckedSale>,
    /// Sales voided with an acknowledgement.
    pub voided: BTreeSet<String>,
    /// Acknowledged stock receipts: `(sku, change)`.
    pub adjustments: Vec<(String, i64)>,
    /// Refusals by code (offline limit, out of stock, ...), and unexpected failures.
    pub refused: BTreeMap<String, u64>,
    /// Stored-value accounts loaded with an acknowledgement (gift cards by code, store
    /// credit as `credit:{customer}`, coupons as `coupon:{code}`): account -> amount.
    pub gift_loaded: BTreeMap<String, i64>,
    /// Stored-value tenders of acknowledged sales: `(account, amount, txn id)`.
    pub gift_spent: Vec<(String, i64, String)>,
    /// Stored-value tenders tried (gift cards and store credit; coupons are counted apart).
    pub gift_tried: u64,
    /// Of those, refused for lack of rights at the till (`rights_elsewhere`).
    pub gift_refused: u64,
    /// Tenders tried per kind (`gift_card`, `store_credit`, `coupon`, `coupon_again`).
    pub tried_by_kind: BTreeMap<String, u64>,
    /// Tenders refused per kind and code.
    pub refused_by_kind: BTreeMap<String, u64>,
    /// The next coupon a customer presents.
    pub coupon_next: u64,
    /// The run's stored value was set up (once per run, not again when the first till's
    /// cashier comes back after a crash).
    pub setup_done: bool,
}
