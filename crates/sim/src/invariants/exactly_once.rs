//! Exactly once in the cloud: the ledger holds as many of each store's events as its tills
//! do, and its reports count each acknowledged sale once (the observed store, and every
//! other store of the chain).

use super::{CloudEnd, Evidence, Verdict};
use crate::ledger::Ledger;

fn holds(held: u64, acked: &Ledger, cloud: &CloudEnd) -> bool {
    cloud.events == held && cloud.transactions == acked.sales.len() as u64
}

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let held = e.tills.values().map(|t| t.held).max().unwrap_or(0);
    let sales = e.acked.sales.len() as u64;
    let bad: Vec<String> = e
        .chain
        .iter()
        .filter(|c| !holds(c.held, &c.acked, &c.cloud))
        .map(|c| {
            format!(
                "{}: {} events of {}, {} sales of {}",
                c.store,
                c.cloud.events,
                c.held,
                c.cloud.transactions,
                c.acked.sales.len()
            )
        })
        .collect();
    let mut detail = format!(
        "ledger {} events of {held} held; reports {} sales of {sales} acknowledged",
        e.cloud.events, e.cloud.transactions
    );
    if !e.chain.is_empty() {
        detail += &format!(
            "; {} other stores, {} wrong{}",
            e.chain.len(),
            bad.len(),
            bad.first()
                .map(|b| format!(" (first {b})"))
                .unwrap_or_default()
        );
    }
    Verdict::new(
        "exactly_once_in_the_cloud",
        holds(held, &e.acked, &e.cloud) && bad.is_empty(),
        detail,
    )
}
