//! Add-wins observed-remove set over dotted version vectors (Almeida, Shoker, Baquero,
//! "Delta State Replicated Data Types", AWORSet). Each add carries a fresh dot; a remove
//! covers the dots it observed, so a concurrent add (an unobserved dot) survives.

use crate::{Crdt, Dot, DotContext, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An add-wins OR-set (the transaction log: ids of transactions).
///
/// Besides the element -> dots map it keeps a dot -> element index (not serialised, rebuilt
/// on demand), so that merging a small delta into a large set costs O(delta * log n)
/// rather than a scan of every element.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrSet<E: Ord> {
    #[serde(with = "crate::serde_pairs")]
    #[serde(bound(serialize = "E: Serialize", deserialize = "E: Deserialize<'de>"))]
    entries: BTreeMap<E, BTreeSet<Dot>>,
    context: DotContext,
    #[serde(skip)]
    by_dot: BTreeMap<Dot, E>,
    /// Whether `by_dot` is in step with `entries` (false after deserialisation).
    #[serde(skip)]
    indexed: bool,
}

impl<E: Ord> PartialEq for OrSet<E> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.context == other.context
    }
}

impl<E: Ord> Eq for OrSet<E> {}

impl<E: Ord> Default for OrSet<E> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            context: DotContext::default(),
            by_dot: BTreeMap::new(),
            indexed: true,
        }
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
        self.ensure_index();
        self.set_dots(element, BTreeSet::from([dot]));
        delta
    }

    /// Removes `element` (the dots observed here); returns the delta. Removing an absent
    /// element returns an empty delta.
    pub fn remove(&mut self, element: &E) -> OrSet<E> {
        let mut delta = OrSet::new();
        self.ensure_index();
        if let Some(dots) = self.entries.get(element).cloned() {
            for d in dots {
                delta.context.insert(d);
            }
            self.set_dots(element.clone(), BTreeSet::new());
        }
        delta
    }

    /// The delta that forgets every element added with a dot at or below `through[replica]`:
    /// an empty set whose context covers those dots. Merged anywhere, it removes those
    /// additions and makes any later delivery of them a no-op, so tills that compact at
    /// different moments, before or after receiving the same adds, still converge. Used to
    /// bound the transaction log once its sales are archived everywhere.
    pub fn forgetting(through: impl IntoIterator<Item = (ReplicaId, u64)>) -> OrSet<E> {
        OrSet {
            context: DotContext::through(through),
            ..OrSet::new()
        }
    }

    /// The highest dot per replica among the elements' dots (to find what a compaction
    /// point covers).
    pub fn max_dots(&self) -> BTreeMap<ReplicaId, u64> {
        let mut m: BTreeMap<ReplicaId, u64> = BTreeMap::new();
        for d in self.dots() {
            let c = m.entry(d.replica).or_default();
            *c = (*c).max(d.counter);
        }
        m
    }

    /// Rebuilds the dot index after deserialisation.
    fn ensure_index(&mut self) {
        if !self.indexed {
            self.by_dot = self
                .entries
                .iter()
                .flat_map(|(e, ds)| ds.iter().map(move |d| (*d, e.clone())))
                .collect();
            self.indexed = true;
        }
    }

    /// Replaces an element's dots (empty removes it), keeping the index in step.
    fn set_dots(&mut self, element: E, dots: BTreeSet<Dot>) {
        if let Some(old) = self.entries.get(&element) {
            for d in old {
                self.by_dot.remove(d);
            }
        }
        for d in &dots {
            self.by_dot.insert(*d, element.clone());
        }
        if dots.is_empty() {
            self.entries.remove(&element);
        } else {
            self.entries.insert(element, dots);
        }
    }

    /// Every dot of every element (to check who created them).
    pub fn dots(&self) -> impl Iterator<Item = &Dot> {
        self.entries.values().flatten()
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
        self.ensure_index();
        // Only elements that `other` mentions, or whose dots `other`'s context has seen,
        // can change.
        let mut touched: BTreeSet<E> = other.entries.keys().cloned().collect();
        for (r, c) in other.context.compact_ranges() {
            let range = Dot {
                replica: r,
                counter: 1,
            }..=Dot {
                replica: r,
                counter: c,
            };
            touched.extend(self.by_dot.range(range).map(|(_, e)| e.clone()));
        }
        for d in other.context.cloud() {
            if let Some(e) = self.by_dot.get(d) {
                touched.insert(e.clone());
            }
        }
        // Join of dot maps: keep a dot if both sides have it, or if one side has it and the
        // other side's context has not seen it (so it was not removed there).
        for k in touched {
            let empty = BTreeSet::new();
            let mine = self.entries.get(&k).unwrap_or(&empty);
            let theirs = other.entries.get(&k).unwrap_or(&empty);
            let kept: BTreeSet<Dot> = mine
                .iter()
                .filter(|d| theirs.contains(d) || !other.context.contains(d))
                .chain(theirs.iter().filter(|d| !self.context.contains(d)))
                .copied()
                .collect();
            if &kept != mine {
                self.set_dots(k, kept);
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
    fn forgetting_removes_covered_adds_even_when_they_arrive_later() {
        let r = ReplicaId(1);
        let mut origin = OrSet::new();
        let a1 = origin.add(r, "t1");
        let a2 = origin.add(r, "t2");
        let a3 = origin.add(r, "t3");
        let forget = OrSet::forgetting([(r, 2)]);
        // One replica forgets after seeing every add, the other before seeing any.
        let mut x = OrSet::new();
        for d in [&a1, &a2, &a3] {
            x.merge(d);
        }
        x.merge(&forget);
        let mut y = OrSet::new();
        y.merge(&forget);
        for d in [&a3, &a1, &a2] {
            y.merge(d);
        }
        assert_eq!(x, y);
        assert_eq!(x.iter().copied().collect::<Vec<_>>(), ["t3"]);
        assert_eq!(x.max_dots(), [(r, 3)].into_iter().collect());
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
