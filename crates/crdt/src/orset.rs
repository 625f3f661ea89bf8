//! Add-wins observed-remove set over dotted version vectors (Almeida, Shoker, Baquero,
//! "Delta State Replicated Data Types", AWORSet). Each add carries a fresh dot; a remove
//! covers the dots it observed, so a concurrent add (an unobserved dot) survives.

use crate::{Crdt, Dot, DotContext, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An add-wins OR-set (the transaction log: ids of transactions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrSet<E: Ord> {
    #[serde(with = "crate::serde_pairs")]
    #[serde(bound(serialize = "E: Serialize", deserialize = "E: Deserialize<'de>"))]
    entries: BTreeMap<E, BTreeSet<Dot>>,
    context: DotContext,
}

impl<E: Ord> Default for OrSet<E> {
    fn default() -> Self {
        Self { entries: BTreeMap::new(), context: DotContext::default() }
    }
}

impl<E: Ord + Clone> OrSet<E> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element` on `replica`; returns the delta (the new dot, and the element's older
    /// dots in the delta's context so that they are superseded everywhere).
    pub fn add(&mut self, replica: ReplicaId, element: E) -> OrSet<E> {
        let dot = self.context.next_dot(replica);
        let mut delta = OrSet::new();
        if let Some(old) = self.entries.get(&element) {
            for d in old {
                delta.context.insert(*d);
            }
        }
        delta.context.insert(dot);
        delta.entries.insert(element.clone(), BTreeSet::from([dot]));
        self.entries.insert(element, BTreeSet::from([dot]));
        delta
    }

    /// Removes `element` (the dots observed here); returns the delta. Removing an absent
    /// element returns an empty delta.
    pub fn remove(&mut self, element: &E) -> OrSet<E> {
        let mut delta = OrSet::new();
        if let Some(dots) = self.entries.remove(element) {
            for d in dots {
                delta.context.insert(d);
            }
        }
        delta
    }

    /// Membership.
    pub fn contains(&self, element: &E) -> bool {
        self.entries.contains_key(element)
    }

    /// Elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.entries.keys()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<E: Ord + Clone> Crdt for OrSet<E> {
    fn merge(&mut self, other: &Self) {
        // Join of dot maps: keep a dot if both sides have it, or if one side has it and the
        // other side's context has not seen it (so it was not removed there).
        let keys: BTreeSet<E> = self.entries.keys().chain(other.entries.keys()).cloned().collect();
        for k in keys {
            let empty = BTreeSet::new();
            let mine = self.entries.get(&k).unwrap_or(&empty);
            let theirs = other.entries.get(&k).unwrap_or(&empty);
            let kept: BTreeSet<Dot> = mine
                .iter()
                .filter(|d| theirs.contains(d) || !other.context.contains(d))
                .chain(theirs.iter().filter(|d| !self.context.contains(d)))
                .copied()
                .collect();
            if kept.is_empty() {
                self.entries.remove(&k);
            } else {
                self.entries.insert(k, kept);
            }
        }
        self.context.merge(&other.context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_add_wins_over_remove() {
        let (r1, r2) = (ReplicaId(1), ReplicaId(2));
        let mut a = OrSet::new();
        let add = a.add(r1, "t1");
        let mut b = OrSet::new();
        b.merge(&add);
        let rm = b.remove(&"t1");
        let readd = a.add(r1, "t1");
        a.merge(&rm);
        b.merge(&readd);
        assert!(a.contains(&"t1") && b.contains(&"t1"));
        assert_eq!(a, b);
        let _ = r2;
    }

    #[test]
    fn observed_remove_removes() {
        let mut a = OrSet::new();
        let add = a.add(ReplicaId(1), 7_u64);
        let mut b = OrSet::new();
        b.merge(&add);
        let rm = b.remove(&7);
        a.merge(&rm);
        assert!(!a.contains(&7));
        b.merge(&add); // re-delivery of the old add must not resurrect it
        assert!(!b.contains(&7));
    }
}
