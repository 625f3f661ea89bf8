//! Cloud totals equal store totals: the cloud's reports sum to the acknowledged sales, and
//! count the voided ones and their value.

use super::{Evidence, Verdict};

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let total: i64 = e.acked.sales.iter().map(|s| s.total).sum();
    let voided: Vec<i64> = e
        .acked
        .sales
        .iter()
        .filter(|s| e.acked.voided.contains(&s.txn_id))
        .map(|s| s.total)
        .collect();
    let pass = e.cloud.total == total
        && e.cloud.voided == voided.len() as u64
        && e.cloud.voided_amount == voided.iter().sum::<i64>();
    Verdict::new(
        "cloud_totals_equal_store_totals",
        pass,
        format!(
            "cloud {} in sales, {} voided ({}); store {total}, {} voided ({})",
            e.cloud.total,
            e.cloud.voided,
            e.cloud.voided_amount,
            voided.len(),
            voided.iter().sum::<i64>()
        ),
    )
}
