//! The SKU gallery: reference embeddings per SKU (from enrolment photos), a prototype per
//! SKU (their normalised mean), cosine ranking of a frame against every prototype, and
//! abstention below a threshold calibrated on the store's own gallery ([`Gallery::calibrate`])
//! or, while the gallery is too small for that, the model card's.

use crate::VisionError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most reference photos kept per SKU (the oldest go first).
pub const REFS_PER_SKU_MAX: usize = 32;
/// Most SKUs in a gallery.
pub const SKUS_MAX: usize = 50_000;
/// Most proposals returned.
pub const TOP_K_MAX: usize = 20;

/// Most references one calibration reads (spread evenly over the gallery).
pub const CALIBRATION_REFS_MAX: usize = 1000;
/// The share of references a store calibration lets score at or above the threshold against
/// another SKU's prototype. References come closer to their siblings than products never
/// enrolled come to anything, yet underestimate those: on the training generator's
/// held-out set, aiming at 1% of references let 3.3% of unknown products through (3.8% of
/// the separate calibration products); 0.2% let 0% and 1.8% through.
pub const CALIBRATION_AIM: f64 = 0.002;
/// Fewest references (of SKUs with two or more) a calibration needs; fewer: the card's
/// threshold applies.
pub const CALIBRATION_REFS_MIN: usize = 20;

/// A threshold set from the store's own gallery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreCalibration {
    /// The threshold: at most `max_false_accept` of the references score it or more against
    /// another SKU's prototype.
    pub threshold: f32,
    /// References read.
    pub references: usize,
    /// SKUs they belong to.
    pub skus: usize,
    /// Share of references whose own SKU (its prototype without them) scores below the
    /// threshold: the "not sure" rate to expect on the store's products.
    pub expected_abstain: f64,
    /// The false-accept rate aimed for.
    pub max_false_accept: f64,
}

/// One proposed SKU.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The SKU.
    pub sku: String,
    /// Cosine similarity to its prototype, -1 to 1.
    pub score: f32,
}

/// What recognition answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recognition {
    /// The best SKUs, best first.
    pub proposals: Vec<Proposal>,
    /// The best one when its score clears the threshold; `None`: not sure.
    pub accepted: Option<String>,
    /// The threshold applied.
    pub threshold: f32,
}

/// Reference embeddings per SKU.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Gallery {
    dim: usize,
    refs: BTreeMap<String, Vec<Vec<f32>>>,
    #[serde(skip)]
    protos: BTreeMap<String, Vec<f32>>,
}

fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Whether `sku` can be stored as a gallery key.
pub fn valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Gallery {
    /// An empty gallery of `dim`-value embeddings.
    pub fn new(dim: usize) -> Gallery {
        Gallery {
            dim,
            ..Gallery::default()
        }
    }

    /// Values per embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// SKUs enrolled.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// Whether nothing is enrolled.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Reference photos held for `sku`.
    pub fn refs(&self, sku: &str) -> usize {
        self.refs.get(sku).map_or(0, Vec::len)
    }

    /// Adds one reference embedding of `sku`.
    pub fn add(&mut self, sku: &str, embedding: Vec<f32>) -> Result<(), VisionError> {
        if !valid_sku(sku) {
            return Err(VisionError::BadSku);
        }
        if embedding.len() != self.dim {
            return Err(VisionError::Dimension {
                got: embedding.len(),
                want: self.dim,
            });
        }
        if !self.refs.contains_key(sku) && self.refs.len() >= SKUS_MAX {
            return Err(VisionError::Full(format!(
                "the gallery holds {SKUS_MAX} SKUs already"
            )));
        }
        let refs = self.refs.entry(sku.to_string()).or_default();
        refs.push(normalize(embedding));
        if refs.len() > REFS_PER_SKU_MAX {
            refs.remove(0);
        }
        self.update(sku);
        Ok(())
    }

    /// Forgets `sku`.
    pub fn remove(&mut self, sku: &str) -> bool {
        self.protos.remove(sku);
        self.refs.remove(sku).is_some()
    }

    fn update(&mut self, sku: &str) {
        if let Some(refs) = self.refs.get(sku) {
            let mut sum = vec![0.0; self.dim];
            for r in refs {
                sum.iter_mut().zip(r).for_each(|(s, x)| *s += x);
            }
            self.protos.insert(sku.to_string(), normalize(sum));
        }
    }

    /// Rebuilds the prototypes (after deserialising).
    pub fn rebuild(&mut self) {
        let skus: Vec<String> = self.refs.keys().cloned().collect();
        for s in skus {
            self.update(&s);
        }
    }

    /// Sets the abstention threshold from the gallery itself, the way a store's products
    /// look on its own cameras: every reference photo (of SKUs with two or more) plays an
    /// unknown product against the other SKUs' prototypes, and the threshold is set so that
    /// at most `max_false_accept` of them would be accepted; the same photo against its own
    /// SKU's prototype (without it) tells how often the store's products will get "not
    /// sure". Look-alike variants enrolled side by side make it strict, which is what a till
    /// that must not guess wants. `None` while fewer than [`CALIBRATION_REFS_MIN`]
    /// references of two or more SKUs are held.
    pub fn calibrate(&self, max_false_accept: f64) -> Option<StoreCalibration> {
        let eligible: Vec<(&String, &Vec<Vec<f32>>)> =
            self.refs.iter().filter(|(_, r)| r.len() >= 2).collect();
        let total: usize = eligible.iter().map(|(_, r)| r.len()).sum();
        if eligible.len() < 2
            || total < CALIBRATION_REFS_MIN
            || !(0.0..1.0).contains(&max_false_accept)
        {
            return None;
        }
        let step = total.div_ceil(CALIBRATION_REFS_MAX);
        let (mut own, mut other) = (Vec::new(), Vec::new());
        let mut n = 0usize;
        for (sku, refs) in &eligible {
            let mut sum = vec![0.0; self.dim];
            for r in refs.iter() {
                sum.iter_mut().zip(r).for_each(|(s, x)| *s += x);
            }
            for r in refs.iter() {
                n += 1;
                if !n.is_multiple_of(step) {
                    continue;
                }
                let without: Vec<f32> = sum.iter().zip(r).map(|(s, x)| s - x).collect();
                own.push(dot(&normalize(without), r));
                let best = self
                    .protos
                    .iter()
                    .filter(|(s, _)| s != sku)
                    .map(|(_, p)| dot(p, r))
                    .fold(f32::NEG_INFINITY, f32::max);
                other.push(best);
            }
        }
        other.sort_by(|a, b| b.total_cmp(a));
        let allowed = (max_false_accept * other.len() as f64).floor() as usize;
        let threshold = other.get(allowed).map_or(-1.0, |s| (s + 1e-6).min(1.0));
        let below = own.iter().filter(|s| **s < threshold).count();
        Some(StoreCalibration {
            threshold,
            references: other.len(),
            skus: eligible.len(),
            expected_abstain: below as f64 / own.len().max(1) as f64,
            max_false_accept,
        })
    }

    /// Ranks every SKU against `embedding`; accepts the best if it scores `threshold` or more.
    pub fn recognize(
        &self,
        embedding: &[f32],
        k: usize,
        threshold: f32,
    ) -> Result<Recognition, VisionError> {
        if embedding.len() != self.dim {
            return Err(VisionError::Dimension {
                got: embedding.len(),
                want: self.dim,
            });
        }
        let e = normalize(embedding.to_vec());
        let mut all: Vec<Proposal> = self
            .protos
            .iter()
            .map(|(sku, p)| Proposal {
                sku: sku.clone(),
                score: dot(p, &e),
            })
            .collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.sku.cmp(&b.sku)));
        all.truncate(k.clamp(1, TOP_K_MAX));
        let accepted = all
            .first()
            .filter(|p| p.score >= threshold)
            .map(|p| p.sku.clone());
        Ok(Recognition {
            proposals: all,
            accepted,
            threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prototypes_rank_and_the_threshold_abstains() {
        let mut g = Gallery::new(3);
        g.add("A", vec![1.0, 0.1, 0.0]).unwrap();
        g.add("A", vec![1.0, -0.1, 0.0]).unwrap();
        g.add("B", vec![0.0, 1.0, 0.0]).unwrap();
        let r = g.recognize(&[0.9, 0.2, 0.0], 5, 0.8).unwrap();
        assert_eq!(r.accepted.as_deref(), Some("A"));
        assert_eq!(r.proposals.len(), 2);
        assert!(r.proposals[0].score > r.proposals[1].score);
        // Something unlike anything enrolled: proposals, but not sure.
        let r = g.recognize(&[0.0, 0.0, 1.0], 5, 0.5).unwrap();
        assert_eq!(r.accepted, None);
        assert!(matches!(
            g.add("A", vec![1.0]),
            Err(VisionError::Dimension { got: 1, want: 3 })
        ));
        assert!(matches!(
            g.add("no spaces", vec![1.0; 3]),
            Err(VisionError::BadSku)
        ));
        for _ in 0..REFS_PER_SKU_MAX + 5 {
            g.add("B", vec![0.0, 1.0, 0.0]).unwrap();
        }
        assert_eq!(g.refs("B"), REFS_PER_SKU_MAX);
        let text = serde_json::to_string(&g).unwrap();
        let mut back: Gallery = serde_json::from_str(&text).unwrap();
        back.rebuild();
        assert_eq!(back, g);
        assert!(g.clone().remove("A"));
    }

    #[test]
    fn the_store_calibration_sits_above_what_other_products_score() {
        // Three SKUs along three axes, ten references each, a little spread.
        let mut g = Gallery::new(3);
        assert_eq!(g.calibrate(0.01), None);
        for k in 0..10 {
            let e = 0.02 * k as f32;
            g.add("A", vec![1.0, e, 0.1]).unwrap();
            g.add("B", vec![e, 1.0, 0.1]).unwrap();
            g.add("C", vec![0.1, e, 1.0]).unwrap();
        }
        let c = g.calibrate(0.0).unwrap();
        assert_eq!((c.references, c.skus), (30, 3));
        // Every reference against another SKU scores below the threshold...
        let worst_other = [[1.0, 0.18, 0.1], [0.18, 1.0, 0.1], [0.1, 0.18, 1.0]]
            .iter()
            .map(|e| g.recognize(e, 2, 2.0).unwrap().proposals[1].score)
            .fold(f32::MIN, f32::max);
        assert!(c.threshold > worst_other, "{c:?} vs {worst_other}");
        // ...and every one against its own SKU above it.
        assert_eq!(c.expected_abstain, 0.0);
        let r = g.recognize(&[0.9, 0.05, 0.1], 1, c.threshold).unwrap();
        assert_eq!(r.accepted.as_deref(), Some("A"));
        assert!(g.calibrate(1.5).is_none());
    }
}
