//! Convergence: once healed, every till holds identical CRDT state (inventory counters,
//! transaction log, statuses, prices, settings, customers, points, version vector).

use super::{Evidence, Verdict};

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let mut it = e.tills.iter();
    let Some((first_id, first)) = it.next() else {
        return Verdict::new("identical_crdt_state", false, "no till is up".into());
    };
    let differ: Vec<String> = it
        .filter(|(_, t)| t.state != first.state)
        .map(|(id, t)| {
            format!(
                "T{id} ({} events) differs from T{first_id} ({})",
                t.held, first.held
            )
        })
        .collect();
    Verdict::new(
        "identical_crdt_state",
        differ.is_empty(),
        if differ.is_empty() {
            format!("{} tills identical at {} events", e.tills.len(), first.held)
        } else {
            differ.join("; ")
        },
    )
}
