//! PN-counter: each replica owns one positive and one negative entry; the value is the
//! difference of the sums. A delta holds the mutated replica's absolute entries.

use crate::{Crdt, ReplicaId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

/// A positive-negative counter (inventory per SKU, loyalty points).
///
/// Each side is a list of `(replica, entry)` sorted by replica, each replica once, held
/// inline while it has one entry: a store's counters mostly have one or two replicas, and a
/// big store holds one per SKU (a `BTreeMap` per side cost about 400 bytes of heap each).
/// Encoded as the sequence of pairs a `BTreeMap` encodes to, so events' bytes are unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    #[serde(serialize_with = "ser_side", deserialize_with = "de_side")]
    p: Side,
    #[serde(serialize_with = "ser_side", deserialize_with = "de_side")]
    n: Side,
}

/// One side of a counter: sorted by replica, each replica once.
type Side = SmallVec<[(ReplicaId, u64); 1]>;

/// `replica`'s entry on `side`, inserted as 0 if absent.
fn slot(side: &mut Side, replica: ReplicaId) -> &mut u64 {
    let i = match side.binary_search_by_key(&replica, |e| e.0) {
        Ok(i) => i,
        Err(i) => {
            side.insert(i, (replica, 0));
            i
        }
    };
    &mut side[i].1
}

fn get(side: &Side, replica: ReplicaId) -> u64 {
    side.binary_search_by_key(&replica, |e| e.0)
        .map_or(0, |i| side[i].1)
}

fn ser_side<S: Serializer>(side: &Side, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(side.iter())
}

/// Reads pairs as a `BTreeMap` collects them: sorted, and a repeated replica's last entry
/// kept.
fn de_side<'de, D: Deserializer<'de>>(d: D) -> Result<Side, D::Error> {
    let mut pairs: Vec<(ReplicaId, u64)> = Vec::deserialize(d)?;
    pairs.reverse();
    pairs.sort_by_key(|e| e.0);
    pairs.dedup_by_key(|e| e.0);
    Ok(Side::from_vec(pairs))
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
        let e = slot(&mut self.p, replica);
        *e = e.saturating_add(by);
        let mut delta = PnCounter::new();
        delta.p.push((replica, *e));
        delta
    }

    /// Adds `by` on `replica`'s negative entry; returns the delta.
    pub fn decrement(&mut self, replica: ReplicaId, by: u64) -> PnCounter {
        let e = slot(&mut self.n, replica);
        *e = e.saturating_add(by);
        let mut delta = PnCounter::new();
        delta.n.push((replica, *e));
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
        let p: i128 = self.p.iter().map(|&(_, v)| i128::from(v)).sum();
        let n: i128 = self.n.iter().map(|&(_, v)| i128::from(v)).sum();
        i64::try_from(
            p.saturating_sub(n)
                .clamp(i128::from(i64::MIN), i128::from(i64::MAX)),
        )
        .unwrap_or_default()
    }

    /// The largest positive or negative entry (what `Event::check` bounds).
    pub fn max_entry(&self) -> u64 {
        self.p
            .iter()
            .chain(self.n.iter())
            .map(|&(_, v)| v)
            .max()
            .unwrap_or(0)
    }

    /// `(positive, negative)` entries of one replica.
    pub fn entry(&self, replica: ReplicaId) -> (u64, u64) {
        (get(&self.p, replica), get(&self.n, replica))
    }

    /// Replicas with a non-zero entry.
    pub fn replicas(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        let mut ids: Vec<ReplicaId> = self.p.iter().chain(self.n.iter()).map(|e| e.0).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
    }
}

impl Crdt for PnCounter {
    fn merge(&mut self, other: &Self) {
        for (r, v) in &other.p {
            let e = slot(&mut self.p, *r);
            *e = (*e).max(*v);
        }
        for (r, v) in &other.n {
            let e = slot(&mut self.n, *r);
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

    /// The form this counter had: a `BTreeMap` per side, encoded as pairs. Events already
    /// signed and stored hold its bytes.
    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Maps {
        #[serde(with = "crate::serde_pairs")]
        p: std::collections::BTreeMap<ReplicaId, u64>,
        #[serde(with = "crate::serde_pairs")]
        n: std::collections::BTreeMap<ReplicaId, u64>,
    }

    fn bin<T: Serialize>(x: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(x, bincode::config::standard()).unwrap()
    }

    proptest::proptest! {
        /// Any run of changes and merges gives the entries, the value and the bytes (bincode
        /// and JSON) the map form gives, and each form decodes the other's bytes to itself.
        #[test]
        fn the_inline_form_keeps_the_map_forms_entries_and_bytes(
            ops in proptest::collection::vec((0u64..5, -1000i64..1000, proptest::bool::ANY), 0..40)
        ) {
            let (mut c, mut other) = (PnCounter::new(), PnCounter::new());
            let mut m = Maps::default();
            for (r, by, merge) in ops {
                if merge {
                    other.apply(ReplicaId(r), by);
                    c.merge(&other);
                    for (side, mine) in [(&other.p, &mut m.p), (&other.n, &mut m.n)] {
                        for &(r, v) in side {
                            let e = mine.entry(r).or_insert(0);
                            *e = (*e).max(v);
                        }
                    }
                } else {
                    let d = c.apply(ReplicaId(r), by);
                    let side = if by > 0 { &mut m.p } else { &mut m.n };
                    if by != 0 {
                        let e = side.entry(ReplicaId(r)).or_insert(0);
                        *e += by.unsigned_abs();
                        let (now, sent) = (c.entry(ReplicaId(r)), d.entry(ReplicaId(r)));
                        proptest::prop_assert_eq!(if by > 0 { (now.0, 0) } else { (0, now.1) }, sent);
                    }
                }
            }
            proptest::prop_assert_eq!(bin(&c), bin(&m));
            proptest::prop_assert_eq!(serde_json::to_string(&c).unwrap(), serde_json::to_string(&m).unwrap());
            let back: PnCounter = bincode::serde::decode_from_slice(&bin(&m), bincode::config::standard()).unwrap().0;
            proptest::prop_assert_eq!(&back, &c);
            let sum = |s: &std::collections::BTreeMap<ReplicaId, u64>| s.values().map(|&v| i64::try_from(v).unwrap()).sum::<i64>();
            proptest::prop_assert_eq!(c.value(), sum(&m.p) - sum(&m.n));
            for r in 0..5 {
                let want = (m.p.get(&ReplicaId(r)).copied().unwrap_or(0), m.n.get(&ReplicaId(r)).copied().unwrap_or(0));
                proptest::prop_assert_eq!(c.entry(ReplicaId(r)), want);
            }
        }
    }

    #[test]
    fn a_replica_listed_twice_keeps_its_last_entry_as_the_map_form_did() {
        let json = r#"{"p":[[2,5],[1,3],[2,9]],"n":[]}"#;
        let c: PnCounter = serde_json::from_str(json).unwrap();
        let m: Maps = serde_json::from_str(json).unwrap();
        assert_eq!(c.entry(ReplicaId(2)), (9, 0));
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            serde_json::to_string(&m).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"p":[[1,3],[2,9]],"n":[]}"#
        );
    }
}
