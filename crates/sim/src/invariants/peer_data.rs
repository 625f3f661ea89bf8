//! No till stops selling because of a peer's data: after crafted events were injected
//! (`FaultKind::Poison`), every till holds some of them in quarantine and acknowledged a sale
//! after the last injection (it kept selling, and survived its restarts replaying them).

use super::{Evidence, Verdict};

/// Checks it (passes at once when nothing was injected).
pub fn check(e: &Evidence) -> Verdict {
    let name = "no_till_stops_selling_on_peer_data";
    let Some(&last) = e.poisoned_at_ms.iter().max() else {
        return Verdict::new(name, true, "no crafted peer events in this run".into());
    };
    let mut bad = Vec::new();
    for (id, t) in &e.tills {
        if t.quarantined == 0 {
            bad.push(format!("T{id} quarantined nothing"));
        }
        if !e
            .acked
            .sales
            .iter()
            .any(|s| s.till == *id && s.at_ms > last)
        {
            bad.push(format!("T{id} sold nothing after the last injection"));
        }
    }
    let detail = if bad.is_empty() {
        format!(
            "{} injections; every till quarantined them and sold after the last",
            e.poisoned_at_ms.len()
        )
    } else {
        bad.join("; ")
    };
    Verdict::new(name, bad.is_empty(), detail)
}
