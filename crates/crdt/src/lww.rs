//! Last-writer-wins register and map, ordered by HLC stamp (ties broken by replica id, which
//! is part of the stamp). The map keeps per-key registers with tombstones for removals.

use crate::{Crdt, Hlc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A register holding the value of the write with the highest stamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwRegister<T> {
    entry: Option<(Hlc, T)>,
}

impl<T> Default for LwwRegister<T> {
    fn default() -> Self {
        Self { entry: None }
    }
}

impl<T: Clone + Ord> LwwRegister<T> {
    /// An empty register.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` at `stamp`; returns the delta (a register holding just this write).
    /// A write older than the current value is kept out, and the delta says so by being
    /// the current state.
    pub fn set(&mut self, value: T, stamp: Hlc) -> LwwRegister<T> {
        let delta = LwwRegister {
            entry: Some((stamp, value)),
        };
        self.merge(&delta);
        delta
    }

    /// The current value.
    pub fn get(&self) -> Option<&T> {
        self.entry.as_ref().map(|(_, v)| v)
    }

    /// The stamp of the current value.
    pub fn stamp(&self) -> Option<Hlc> {
        self.entry.as_ref().map(|(s, _)| *s)
    }
}

impl<T: Clone + Ord> Crdt for LwwRegister<T> {
    fn merge(&mut self, other: &Self) {
        let Some((os, ov)) = &other.entry else { return };
        let replace = match &self.entry {
            None => true,
            // Equal stamps only arise from re-delivery of the same write; comparing the
            // values too keeps the join deterministic even if a stamp were ever reused.
            Some((s, v)) => (os, ov) > (s, v),
        };
        if replace {
            self.entry = Some((*os, ov.clone()));
        }
    }
}

/// A map of per-key LWW registers. Removal writes a tombstone (`None`) so that a concurrent
/// older write cannot resurrect the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwMap<K: Ord, V> {
    #[serde(with = "crate::serde_pairs")]
    #[serde(bound(
        serialize = "K: Serialize, V: Serialize",
        deserialize = "K: Deserialize<'de>, V: Deserialize<'de>"
    ))]
    entries: BTreeMap<K, LwwRegister<Option<V>>>,
}

impl<K: Ord, V> Default for LwwMap<K, V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone, V: Clone + Ord> LwwMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` at `stamp`; returns the delta.
    pub fn insert(&mut self, key: K, value: V, stamp: Hlc) -> LwwMap<K, V> {
        self.write(key, Some(value), stamp)
    }

    /// Removes `key` at `stamp` (a tombstone); returns the delta.
    pub fn remove(&mut self, key: K, stamp: Hlc) -> LwwMap<K, V> {
        self.write(key, None, stamp)
    }

    fn write(&mut self, key: K, value: Option<V>, stamp: Hlc) -> LwwMap<K, V> {
        let mut reg = LwwRegister::new();
        reg.set(value, stamp);
        let mut delta = LwwMap::new();
        delta.entries.insert(key.clone(), reg.clone());
        self.entries.entry(key).or_default().merge(&reg);
        delta
    }

    /// The live value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries
            .get(key)
            .and_then(|r| r.get())
            .and_then(|v| v.as_ref())
    }

    /// The stamp of `key`'s last write (including removals).
    pub fn stamp(&self, key: &K) -> Option<Hlc> {
        self.entries.get(key).and_then(|r| r.stamp())
    }

    /// The stamps of every write held, removals included (to check who wrote them).
    pub fn stamps(&self) -> impl Iterator<Item = Hlc> + '_ {
        self.entries.values().filter_map(|r| r.stamp())
    }

    /// Keeps only the keys for which `keep(key, value, stamp)` holds (tombstones pass
    /// `None`). A caller that drops entries must drop the same ones from every later merge
    /// for replicas to converge (see `pos::state::StoreState::compact`).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, Option<&V>, Hlc) -> bool) {
        self.entries.retain(|k, r| match r.stamp() {
            Some(s) => keep(k, r.get().and_then(|v| v.as_ref()), s),
            None => false,
        });
    }

    /// Drops `key` entirely (no tombstone); see [`LwwMap::retain`].
    pub fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Number of keys held, tombstones included (memory accounting).
    pub fn held(&self) -> usize {
        self.entries.len()
    }

    /// Live `(key, value)` pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries
            .iter()
            .filter_map(|(k, r)| r.get().and_then(|v| v.as_ref()).map(|v| (k, v)))
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there is no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Ord + Clone, V: Clone + Ord> Crdt for LwwMap<K, V> {
    fn merge(&mut self, other: &Self) {
        for (k, r) in &other.entries {
            self.entries.entry(k.clone()).or_default().merge(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplicaId;

    fn at(ms: u64, r: u64) -> Hlc {
        Hlc {
            wall_ms: ms,
            logical: 0,
            replica: ReplicaId(r),
        }
    }

    #[test]
    fn later_write_wins_and_ties_break_on_replica() {
        let mut a = LwwRegister::new();
        a.set(100_i64, at(5, 1));
        a.set(90, at(4, 2));
        assert_eq!(a.get(), Some(&100));
        a.set(80, at(5, 2));
        assert_eq!(a.get(), Some(&80));
    }

    #[test]
    fn tombstone_beats_older_concurrent_write() {
        let mut a: LwwMap<String, i64> = LwwMap::new();
        let d_old = a.insert("x".into(), 1, at(1, 1));
        let d_rm = a.remove("x".into(), at(2, 2));
        let mut b = LwwMap::new();
        b.merge(&d_rm);
        b.merge(&d_old);
        assert_eq!(b.get(&"x".to_string()), None);
        assert_eq!(a, b);
    }
}
