//! At most one leader per term (DESIGN.md invariant 4), from what Raft guarantees rather than
//! from sampled metrics alone: the votes every till persisted. In each term a till grants at
//! most one candidate (its uncommitted votes), and the leaders of a term are the nodes some
//! till holds a committed vote for (a candidate commits its vote once a quorum granted it; a
//! follower commits the vote of the leader it accepts, which may be another candidate of the
//! term than the one it granted, itself included). The tills' own metrics are a second witness:
//! a till they show leading a term must have persisted its committed vote for that term, and
//! they too must never show two leaders in one term.

use super::{Evidence, Verdict};
use std::collections::{BTreeMap, BTreeSet};

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let mut problems = Vec::new();
    // Leaders per term, from persisted committed votes.
    let mut by_votes: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    // Candidates each till granted its vote to, per term.
    let mut granted: BTreeMap<(u64, u64), BTreeSet<u64>> = BTreeMap::new();
    for (till, votes) in &e.obs.votes {
        for v in votes {
            if v.term == 0 || v.node == 0 {
                continue;
            }
            if v.committed {
                by_votes.entry(v.term).or_default().insert(v.node);
            } else {
                granted.entry((*till, v.term)).or_default().insert(v.node);
            }
        }
    }
    for ((till, term), nodes) in &granted {
        if nodes.len() > 1 {
            problems.push(format!("till {till} voted for {nodes:?} in term {term}"));
        }
    }
    for (term, leaders) in &by_votes {
        if leaders.len() > 1 {
            problems.push(format!("term {term}: committed votes for {leaders:?}"));
        }
    }
    for (term, leaders) in &e.obs.leaders {
        if leaders.len() > 1 {
            problems.push(format!("term {term}: {leaders:?} by their metrics"));
        }
        // With no vote evidence at all (a run observed without journals), metrics alone speak.
        if e.obs.votes.is_empty() {
            continue;
        }
        for l in leaders {
            let own = e.obs.votes.get(l).is_some_and(|vs| {
                vs.iter()
                    .any(|v| v.term == *term && v.node == *l && v.committed)
            });
            if !own {
                problems.push(format!(
                    "till {l} led term {term} by its metrics without a committed vote of its own"
                ));
            }
        }
    }
    let pass = problems.is_empty();
    Verdict::new(
        "at_most_one_leader_per_term",
        pass,
        if pass {
            format!(
                "{} terms with a leader, one each (persisted votes of {} tills agree with their metrics)",
                by_votes.len().max(e.obs.leaders.len()),
                e.obs.votes.len()
            )
        } else {
            problems.join("; ")
        },
    )
}
