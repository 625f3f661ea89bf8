//! Inventory equals opening stock minus what was sold plus what voids returned and receipts
//! added, on every till, for every product the cashiers touched.

use super::{Evidence, Verdict};
use std::collections::BTreeMap;

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let mut expect: BTreeMap<String, i64> = e.opening.clone();
    for s in &e.acked.sales {
        let back = e.acked.voided.contains(&s.txn_id);
        for (sku, q) in &s.lines {
            if !back {
                *expect.entry(sku.clone()).or_default() -= i64::from(*q);
            }
        }
    }
    for (sku, c) in &e.acked.adjustments {
        *expect.entry(sku.clone()).or_default() += c;
    }
    let mut wrong = Vec::new();
    for (id, t) in &e.tills {
        for (sku, want) in &expect {
            let got = t.stock.get(sku).copied().unwrap_or(0);
            if got != *want {
                wrong.push(format!("T{id} {sku}: {got}, expected {want}"));
            }
        }
    }
    Verdict::new(
        "inventory_is_stock_minus_sales_plus_adjustments",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{} products agree on {} tills", expect.len(), e.tills.len())
        } else {
            wrong.into_iter().take(5).collect::<Vec<_>>().join("; ")
        },
    )
}
