//! The cloud watermark never moves backwards on any till, and never passes what the store
//! holds.

use super::{Evidence, Verdict};

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let held = e.tills.values().map(|t| t.held).max().unwrap_or(0);
    // The highest acknowledged total any till saw.
    let mut per_till: std::collections::BTreeMap<u64, u64> = Default::default();
    for ((till, _), seq) in &e.obs.watermarks {
        *per_till.entry(*till).or_default() += seq;
    }
    let acked_total = per_till.values().copied().max().unwrap_or(0);
    let pass = e.obs.backwards.is_empty() && acked_total <= held;
    Verdict::new(
        "watermark_never_moves_backwards",
        pass,
        match e.obs.backwards.first() {
            Some((t, o, from, to, at)) => format!(
                "T{t} saw origin {o} go from {from} back to {to} at {at:.1} s ({} times)",
                e.obs.backwards.len()
            ),
            None => format!(
                "{} watermarks only grew; {acked_total} events acknowledged of {held}",
                e.obs.watermarks.len()
            ),
        },
    )
}
