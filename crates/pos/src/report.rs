//! Store reports: end of day (totals, payment breakdown, counts), inventory snapshot, and
//! cashier performance (transactions per hour, average value).

use crate::event::Sale;
use crate::inventory::is_low;
use crate::money::Minor;
use crate::transaction::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A sale with its current status, as reports see it.
#[derive(Clone, Debug)]
pub struct ReportedSale<'a> {
    /// The sale.
    pub sale: &'a Sale,
    /// Its status now (voided and refunded sales do not count as sales).
    pub status: Status,
}

/// End-of-day summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EndOfDay {
    /// Period start (ms since epoch, inclusive).
    pub from_ms: u64,
    /// Period end (exclusive).
    pub to_ms: u64,
    /// Paid transactions (not voided or refunded).
    pub transactions: u64,
    /// Net sales: sum of totals of counted transactions.
    pub total_sales: Minor,
    /// Tax collected.
    pub tax: Minor,
    /// Discounts given.
    pub discounts: Minor,
    /// Units sold.
    pub items: u64,
    /// Per payment method: amount taken.
    pub payments: BTreeMap<String, Minor>,
    /// Voided transactions and their value.
    pub voids: u64,
    /// Value of voided transactions.
    pub voided_value: Minor,
    /// Refunded transactions.
    pub refunds: u64,
    /// Value refunded.
    pub refunded_value: Minor,
    /// Returns of part of a sale made in the period (each a manager-approved handing back of
    /// some units), whenever the sale was paid.
    #[serde(default)]
    pub returns: u64,
    /// Money handed back by those returns.
    #[serde(default)]
    pub returned_value: Minor,
}

/// End-of-day summary over the sales paid in `[from_ms, to_ms)`.
pub fn end_of_day(sales: &[ReportedSale<'_>], from_ms: u64, to_ms: u64) -> EndOfDay {
    let mut r = EndOfDay {
        from_ms,
        to_ms,
        ..Default::default()
    };
    for s in sales
        .iter()
        .filter(|s| (from_ms..to_ms).contains(&s.sale.paid_ms))
    {
        match s.status {
            Status::Void => {
                r.voids = r.voids.saturating_add(1);
                r.voided_value = r.voided_value.saturating_add(s.sale.totals.total);
            }
            Status::Refunded => {
                r.refunds = r.refunds.saturating_add(1);
                r.refunded_value = r.refunded_value.saturating_add(s.sale.totals.total);
            }
            _ => {
                r.transactions = r.transactions.saturating_add(1);
                r.total_sales = r.total_sales.saturating_add(s.sale.totals.total);
                r.tax = r.tax.saturating_add(s.sale.totals.tax);
                r.discounts = r.discounts.saturating_add(s.sale.totals.discount);
                r.items = r.items.saturating_add(u64::from(s.sale.totals.items));
                for p in &s.sale.payments {
                    let by = r.payments.entry(p.method.as_str().to_string()).or_default();
                    *by = by.saturating_add(p.amount);
                }
            }
        }
    }
    r
}

/// One cashier's performance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CashierPerformance {
    /// Employee id.
    pub cashier: String,
    /// Paid transactions.
    pub transactions: u64,
    /// Their total value.
    pub total: Minor,
    /// Average value (rounded down).
    pub average: Minor,
    /// Transactions per hour over the span from their first to last sale (at least 1 h).
    pub per_hour: f64,
}

/// Cashier performance over the sales paid in `[from_ms, to_ms)`.
pub fn cashier_performance(
    sales: &[ReportedSale<'_>],
    from_ms: u64,
    to_ms: u64,
) -> Vec<CashierPerformance> {
    let mut by: BTreeMap<&str, (u64, Minor, u64, u64)> = BTreeMap::new();
    for s in sales
        .iter()
        .filter(|s| (from_ms..to_ms).contains(&s.sale.paid_ms))
    {
        if matches!(s.status, Status::Void | Status::Refunded) {
            continue;
        }
        let e = by.entry(&s.sale.cashier).or_insert((0, 0, u64::MAX, 0));
        e.0 = e.0.saturating_add(1);
        e.1 = e.1.saturating_add(s.sale.totals.total);
        e.2 = e.2.min(s.sale.paid_ms);
        e.3 = e.3.max(s.sale.paid_ms);
    }
    by.into_iter()
        .map(|(c, (n, total, first, last))| {
            let hours = (last.saturating_sub(first) as f64 / 3_600_000.0).max(1.0);
            CashierPerformance {
                cashier: c.to_string(),
                transactions: n,
                total,
                average: total.checked_div(n as Minor).unwrap_or(0),
                per_hour: n as f64 / hours,
            }
        })
        .collect()
}

/// One SKU in the inventory snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockLine {
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Units on hand.
    pub level: i64,
    /// Alert threshold.
    pub threshold: i64,
    /// At or below threshold.
    pub low: bool,
}

/// Builds a stock line.
pub fn stock_line(sku: &str, name: &str, level: i64, threshold: i64) -> StockLine {
    StockLine {
        sku: sku.to_string(),
        name: name.to_string(),
        level,
        threshold,
        low: is_low(level, threshold),
    }
}
