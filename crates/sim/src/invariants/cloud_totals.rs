//! Cloud totals equal store totals: the cloud's reports sum to the acknowledged sales, and
//! count the voided ones and their value (the observed store, and every other store of the
//! chain).

use super::{CloudEnd, Evidence, Verdict};
use crate::ledger::Ledger;

/// What the store's cashiers were told: sales total, voided count, voided total.
fn store_totals(acked: &Ledger) -> (i64, u64, i64) {
    let total: i64 = acked.sales.iter().map(|s| s.total).sum();
    let voided: Vec<i64> = acked
        .sales
        .iter()
        .filter(|s| acked.voided.contains(&s.txn_id))
        .map(|s| s.total)
        .collect();
    (total, voided.len() as u64, voided.iter().sum())
}

fn agree(acked: &Ledger, cloud: &CloudEnd) -> bool {
    store_totals(acked) == (cloud.total, cloud.voided, cloud.voided_amount)
}

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let (total, voided, voided_amount) = store_totals(&e.acked);
    let bad: Vec<&str> = e
        .chain
        .iter()
        .filter(|c| !agree(&c.acked, &c.cloud))
        .map(|c| c.store.as_str())
        .collect();
    let mut detail = format!(
        "cloud {} in sales, {} voided ({}); store {total}, {voided} voided ({voided_amount})",
        e.cloud.total, e.cloud.voided, e.cloud.voided_amount,
    );
    if !e.chain.is_empty() {
        let chain_total: i64 = e.chain.iter().map(|c| c.cloud.total).sum();
        detail += &format!(
            "; {} other stores, {chain_total} in sales, {} disagree{}",
            e.chain.len(),
            bad.len(),
            bad.first()
                .map(|b| format!(" (first {b})"))
                .unwrap_or_default()
        );
    }
    Verdict::new(
        "cloud_totals_equal_store_totals",
        agree(&e.acked, &e.cloud) && bad.is_empty(),
        detail,
    )
}
