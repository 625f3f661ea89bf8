//! At most one leader per term, as the tills' own Raft metrics said at every sample.

use super::{Evidence, Verdict};

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let two: Vec<String> = e
        .obs
        .leaders
        .iter()
        .filter(|(_, ls)| ls.len() > 1)
        .map(|(term, ls)| format!("term {term}: {ls:?}"))
        .collect();
    Verdict::new(
        "at_most_one_leader_per_term",
        two.is_empty(),
        if two.is_empty() {
            format!("{} terms, one leader each", e.obs.leaders.len())
        } else {
            two.join("; ")
        },
    )
}
