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

impl PnCounter {
    /// A zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `by` on `replica`'s positive entry; returns the delta.
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> PnCounter {
        let e = self.p.entry(replica).or_insert(0);
        *e = e
            .checked_add(by)
            .expect("PN-counter positive entry overflow");
        let mut delta = PnCounter::new();
        delta.p.insert(replica, *e);
        delta
    }

    /// Adds `by` on `replica`'s negative entry; returns the delta.
    pub fn decrement(&mut self, replica: ReplicaId, by: u64) -> PnCounter {
        let e = self.n.entry(replica).or_insert(0);
        *e = e
            .checked_add(by)
            .expect("PN-counter negative entry overflow");
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

    /// The counter's value.
    pub fn value(&self) -> i64 {
        let p: u64 = self.p.values().sum();
        let n: u64 = self.n.values().sum();
        i64::try_from(p as i128 - n as i128).expect("PN-counter value out of i64 range")
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
