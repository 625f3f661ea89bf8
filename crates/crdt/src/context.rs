//! Dots and the causal context (a compact version vector plus a "dot cloud" of gaps).

use crate::{Crdt, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One event identity: the `counter`-th event of `replica`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// Replica that created the dot.
    pub replica: ReplicaId,
    /// Per-replica counter, starting at 1.
    pub counter: u64,
}

/// The set of dots a replica has seen, kept as a contiguous prefix per replica (`compact`)
/// plus the out-of-order dots beyond it (`cloud`). `compact()` folds the cloud back in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DotContext {
    #[serde(with = "crate::serde_pairs")]
    compact: BTreeMap<ReplicaId, u64>,
    cloud: BTreeSet<Dot>,
}

impl DotContext {
    /// Whether `dot` has been seen.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.compact
            .get(&dot.replica)
            .is_some_and(|c| dot.counter <= *c)
            || self.cloud.contains(dot)
    }

    /// A context holding every dot `(r, 1..=c)` for each `(r, c)` given.
    pub fn through(ranges: impl IntoIterator<Item = (ReplicaId, u64)>) -> Self {
        let mut c = DotContext::default();
        for (r, n) in ranges {
            if n > 0 {
                let e = c.compact.entry(r).or_insert(0);
                *e = (*e).max(n);
            }
        }
        c
    }

    /// The next fresh dot for `replica`. Only the owning replica calls this, and it always has
    /// its own dots in the compact prefix.
    pub fn next_dot(&mut self, replica: ReplicaId) -> Dot {
        let c = self.compact.entry(replica).or_insert(0);
        *c = c.saturating_add(1);
        Dot {
            replica,
            counter: *c,
        }
    }

    /// The contiguous prefix per replica: every dot `(r, 1..=c)` is in the context.
    pub(crate) fn compact_ranges(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.compact.iter().map(|(r, c)| (*r, *c))
    }

    /// Dots beyond the contiguous prefixes.
    pub(crate) fn cloud(&self) -> impl Iterator<Item = &Dot> {
        self.cloud.iter()
    }

    /// Adds one dot.
    pub fn insert(&mut self, dot: Dot) {
        self.cloud.insert(dot);
        self.compact();
    }

    /// Folds contiguous cloud dots into the compact prefix and drops those already covered.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for dot in cloud {
            let c = self.compact.entry(dot.replica).or_insert(0);
            if dot.counter == c.saturating_add(1) {
                *c = dot.counter;
            } else if dot.counter > *c {
                self.cloud.insert(dot);
            }
        }
        // A dot folded in may have made later cloud dots contiguous; the cloud is sorted by
        // (replica, counter), so one more pass per replica run settles it.
        let mut changed = true;
        while changed {
            changed = false;
            let cloud = std::mem::take(&mut self.cloud);
            for dot in cloud {
                let c = self.compact.entry(dot.replica).or_insert(0);
                if dot.counter == c.saturating_add(1) {
                    *c = dot.counter;
                    changed = true;
                } else if dot.counter > *c {
                    self.cloud.insert(dot);
                }
            }
        }
        self.compact.retain(|_, c| *c > 0);
    }
}

impl Crdt for DotContext {
    fn merge(&mut self, other: &Self) {
        for (r, c) in &other.compact {
            let e = self.compact.entry(*r).or_insert(0);
            *e = (*e).max(*c);
        }
        self.cloud.extend(other.cloud.iter().copied());
        self.compact();
    }
}
