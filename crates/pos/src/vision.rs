//! The store's product-recognition gallery as replicated state: reference embeddings per
//! SKU, each stamped with the HLC of the enrolment that made it. Merging is the union
//! keeping each SKU's newest [`REFS_PER_SKU`] references, a join (commutative,
//! associative, idempotent), so every till that has seen the same enrolments holds the
//! same gallery, whatever the order they arrived in.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tillmesh_crdt::Hlc;

/// References kept per SKU (the newest win).
pub const REFS_PER_SKU: usize = 32;
/// Most values in one embedding.
pub const DIM_MAX: usize = 4096;
/// Most SKUs with references.
pub const SKUS_MAX: usize = 50_000;

/// Reference embeddings per SKU.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VisionRefs {
    refs: BTreeMap<String, BTreeMap<Hlc, Vec<f32>>>,
}

/// Why an enrolment is refused.
pub fn check(sku: &str, embedding: &[f32]) -> Result<(), String> {
    if !(1..=64).contains(&sku.len())
        || !sku
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("SKU id must be 1 to 64 letters, digits, '-', '_' or '.'".into());
    }
    if embedding.is_empty() || embedding.len() > DIM_MAX {
        return Err(format!("an embedding has 1 to {DIM_MAX} values"));
    }
    if embedding.iter().any(|x| !x.is_finite()) {
        return Err("an embedding's values must be finite".into());
    }
    Ok(())
}

impl VisionRefs {
    /// Adds one reference (keeping the SKU's newest [`REFS_PER_SKU`]).
    pub fn insert(&mut self, sku: &str, stamp: Hlc, embedding: Vec<f32>) {
        if !self.refs.contains_key(sku) && self.refs.len() >= SKUS_MAX {
            return;
        }
        let r = self.refs.entry(sku.to_string()).or_default();
        r.insert(stamp, embedding);
        while r.len() > REFS_PER_SKU {
            r.pop_first();
        }
    }

    /// Joins `o` into this.
    pub fn merge(&mut self, o: &VisionRefs) {
        for (sku, refs) in &o.refs {
            for (stamp, e) in refs {
                self.insert(sku, *stamp, e.clone());
            }
        }
    }

    /// Every SKU's references, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &Vec<f32>>)> {
        self.refs.iter().map(|(s, r)| (s.as_str(), r.values()))
    }

    /// SKUs with references.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// Whether no SKU is enrolled.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// References held for `sku`.
    pub fn count(&self, sku: &str) -> usize {
        self.refs.get(sku).map_or(0, BTreeMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillmesh_crdt::ReplicaId;

    fn stamp(ms: u64, r: u64) -> Hlc {
        Hlc {
            wall_ms: ms,
            logical: 0,
            replica: ReplicaId(r),
        }
    }

    #[test]
    fn merges_commute_and_keep_the_newest() {
        let mut a = VisionRefs::default();
        let mut b = VisionRefs::default();
        for k in 0..(REFS_PER_SKU as u64 + 3) {
            a.insert("S", stamp(k * 2, 1), vec![k as f32]);
            b.insert("S", stamp(k * 2 + 1, 2), vec![-(k as f32)]);
        }
        b.insert("T", stamp(5, 2), vec![1.0]);
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        let mut again = ab.clone();
        again.merge(&b);
        assert_eq!(again, ab);
        assert_eq!(ab.count("S"), REFS_PER_SKU);
        assert_eq!(ab.count("T"), 1);
        assert!(check("bad sku!", &[1.0]).is_err());
        assert!(check("S", &[f32::NAN]).is_err());
        assert!(check("S", &[]).is_err());
        assert!(check("SKU-1", &[0.5]).is_ok());
    }
}
