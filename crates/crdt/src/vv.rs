//! Version vectors: for each origin replica, the highest contiguous sequence number held.

use crate::{Crdt, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `{origin -> highest contiguous seq}`. Sequence numbers start at 1; 0 means "nothing".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector {
    #[serde(with = "crate::serde_pairs")]
    entries: BTreeMap<ReplicaId, u64>,
}

impl VersionVector {
    /// An empty vector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Highest contiguous seq seen from `origin` (0 when none).
    pub fn get(&self, origin: ReplicaId) -> u64 {
        self.entries.get(&origin).copied().unwrap_or(0)
    }

    /// Records that everything from `origin` up to and including `seq` is held.
    pub fn advance(&mut self, origin: ReplicaId, seq: u64) {
        let e = self.entries.entry(origin).or_insert(0);
        *e = (*e).max(seq);
    }

    /// Whether event `(origin, seq)` is already covered.
    pub fn contains(&self, origin: ReplicaId, seq: u64) -> bool {
        seq != 0 && seq <= self.get(origin)
    }

    /// True when `self` has seen everything `other` has.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.entries.iter().all(|(o, s)| self.get(*o) >= *s)
    }

    /// For each origin where `other` is ahead, the range `(self_seq, other_seq]` that `self` lacks.
    pub fn missing_from(&self, other: &VersionVector) -> Vec<(ReplicaId, u64, u64)> {
        other
            .entries
            .iter()
            .filter(|(o, s)| **s > self.get(**o))
            .map(|(o, s)| (*o, self.get(*o), *s))
            .collect()
    }

    /// Iterates `(origin, seq)` pairs in origin order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.entries.iter().map(|(o, s)| (*o, *s))
    }

    /// Sum of all entries: the number of events covered.
    pub fn total(&self) -> u64 {
        self.entries.values().sum()
    }
}

impl Crdt for VersionVector {
    fn merge(&mut self, other: &Self) {
        for (o, s) in &other.entries {
            self.advance(*o, *s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ranges_name_what_the_other_lacks() {
        let mut a = VersionVector::new();
        a.advance(ReplicaId(1), 5);
        let mut b = VersionVector::new();
        b.advance(ReplicaId(1), 2);
        b.advance(ReplicaId(2), 3);
        assert_eq!(b.missing_from(&a), vec![(ReplicaId(1), 2, 5)]);
        assert_eq!(a.missing_from(&b), vec![(ReplicaId(2), 0, 3)]);
        assert!(!a.dominates(&b));
        a.merge(&b);
        assert!(a.dominates(&b));
        assert!(a.contains(ReplicaId(2), 3) && !a.contains(ReplicaId(2), 4));
    }
}
