//! PN-counter: each replica owns one positive and one negative entry; the value is the
//! difference of the sums. A delta holds the mutated replica's absolute entries.

use crate::{Crdt, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A positive-negative counter (inventory per SKU, loyalty points).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    #[serde(with = "crate::serde_pairs")]
    p: BTreeMap<ReplicaId, u64>,
    #[serde(with = "crate::serde_pairs")]
    n: BTreeMap<ReplicaId, u64>,
}

/// Largest entry a peer's counter may carry (2^53: any store's lifetime of units or points,
/// far from overflow; `Event::check` refuses more). Local increments saturate at `u64::MAX`.
pub const ENTRY_MAX: u64 = 1 << 53;

impl PnCounter {
    /// A zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `by` on `replica`'s positive entry; returns the delta.
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> PnCounter {
        let e = self.p.entry(replica).or_insert(0);
        *e = e.saturating_add(by);
        let mut delta = PnCounter::new();
        delta.p.insert(replica, *e);
        delta
    }

    /// Adds `by` on `replica`'s negative entry; returns the delta.
    pub fn decrement(&mut self, replica: ReplicaId, by: u64) -> PnCounter {
        let e = self.n.entry(replica).or_insert(0);
        *e = e.saturating_add(by);
        let mut delta = PnCounter::new();
        delta.n.insert(replica, *e);
        delta
    }

    /// Applies a signed change: positive increments, negative decrements. Zero is a no-op
    /// that still returns an (empty) delta.
    pub fn apply(&mut self, replica: ReplicaId, change: i64) -> PnCounter {
        match change {
            c if c > 0 => self.increment(replica, c.unsigned_abs()),
            c if c < 0 => self.decrement(replica, c.unsigned_abs()),
            _ => PnCounter::new(),
        }
    }

    /// The counter's value, clamped to `i64` (entries are bounded by [`ENTRY_MAX`] when they
    /// come from peers; a total past `i64` saturates instead of panicking).
    pub fn value(&self) -> i64 {
        let p: i128 = self.p.values().map(|&v| i128::from(v)).sum();
        let n: i128 = self.n.values().map(|&v| i128::from(v)).sum();
        i64::try_from(
            p.saturating_sub(n)
                .clamp(i128::from(i64::MIN), i128::from(i64::MAX)),
        )
        .unwrap_or_default()
    }

    /// The largest positive or negative entry (what `Event::check` bounds).
    pub fn max_entry(&self) -> u64 {
        self.p
            .values()
            .chain(self.n.values())
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// `(positive, negative)` entries of one replica.
    pub fn entry(&self, replica: ReplicaId) -> (u64, u64) {
        (
            self.p.get(&replica).copied().unwrap_or(0),
            self.n.get(&replica).copied().unwrap_or(0),
        )
    }

    /// Replicas with a non-zero entry.
    pub fn replicas(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        let mut ids: Vec<ReplicaId> = self.p.keys().chain(self.n.keys()).copied().collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
    }
}

impl Crdt for PnCounter {
    fn merge(&mut self, other: &Self) {
        for (r, v) in &other.p {
            let e = self.p.entry(*r).or_insert(0);
            *e = (*e).max(*v);
        }
        for (r, v) in &other.n {
            let e = self.n.entry(*r).or_insert(0);
            *e = (*e).max(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_carry_absolute_entries_so_redelivery_is_harmless() {
        let mut a = PnCounter::new();
        let d1 = a.apply(ReplicaId(1), 10);
        let d2 = a.apply(ReplicaId(1), -3);
        let mut b = PnCounter::new();
        b.merge(&d2);
        b.merge(&d1);
        b.merge(&d2);
        assert_eq!(b.value(), 7);
        assert_eq!(a, b);
    }
}
