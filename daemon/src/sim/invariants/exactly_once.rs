//! Exactly once in the cloud: the ledger holds as many of the store's events as the tills
//! do, and its reports count each acknowledged sale once.

use super::{Evidence, Verdict};

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let held = e.tills.values().map(|t| t.held).max().unwrap_or(0);
    let sales = e.acked.sales.len() as u64;
    let pass = e.cloud.events == held && e.cloud.transactions == sales;
    Verdict::new(
        "exactly_once_in_the_cloud",
        pass,
        format!(
            "ledger {} events of {held} held; reports {} sales of {sales} acknowledged",
            e.cloud.events, e.cloud.transactions
        ),
    )
}
