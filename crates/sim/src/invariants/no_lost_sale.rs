//! No acknowledged sale is lost: every sale a cashier was told was paid has its record on
//! every till (the till that made it, and every peer it replicated to).

use super::{Evidence, Verdict};

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let missing: Vec<String> = e
        .tills
        .iter()
        .filter(|(_, t)| !t.missing_sales.is_empty())
        .map(|(id, t)| {
            format!(
                "T{id} lacks {} (first {})",
                t.missing_sales.len(),
                t.missing_sales[0]
            )
        })
        .collect();
    Verdict::new(
        "no_acknowledged_sale_lost",
        missing.is_empty(),
        if missing.is_empty() {
            format!("{} acknowledged sales on every till", e.acked.sales.len())
        } else {
            missing.join("; ")
        },
    )
}
