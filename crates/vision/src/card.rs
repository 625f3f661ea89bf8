//! The model card beside every ONNX file (`<name>.json`): what the input is (size, channel
//! order, normalisation), what comes out (an embedding of `dim` values, L2-normalised or
//! not), and the abstention threshold calibrated for it on held-out products.

use crate::VisionError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The model's input.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input name in the graph.
    pub name: String,
    /// Tensor layout; only `NCHW` is supported.
    pub layout: String,
    /// Height in pixels.
    pub height: u32,
    /// Width in pixels.
    pub width: u32,
    /// Channel order; only `RGB` is supported.
    pub channels: String,
    /// Per-channel mean subtracted from 0..255 values.
    pub mean: [f32; 3],
    /// Per-channel divisor after the mean.
    pub std: [f32; 3],
}

fn whole_frame() -> f32 {
    1.0
}

/// The model's output.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output name in the graph.
    pub name: String,
    /// Values per image.
    pub dim: usize,
    /// Whether the model already L2-normalises (otherwise the embedder does).
    pub normalized: bool,
}

/// A model card.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ModelCard {
    /// Model name.
    pub name: String,
    /// The ONNX file, relative to the card.
    pub file: PathBuf,
    /// Input.
    pub input: InputSpec,
    /// Output.
    pub output: OutputSpec,
    /// Cosine similarity below which recognition abstains (calibrated on unknown products).
    pub threshold: f32,
    /// The share of the frame's largest centred crop (of the input's aspect ratio) the
    /// model sees, 0.25 to 1 (1: all of it). A till's camera is aimed where the cashier
    /// holds the product, so a tighter crop gives the model more of the product and less of
    /// the counter behind it. A top-level field, not in `input` (whose fields are checked
    /// strictly): a till of an earlier release ignores it and sees the whole frame, where
    /// an unknown field in `input` stopped it at start during a rolling upgrade.
    #[serde(default = "whole_frame")]
    pub crop: f32,
    /// Anything else the card records (metrics, training recipe): kept, not read.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ModelCard {
    /// Reads and checks a card; `file` comes back resolved against the card's folder.
    pub fn load(path: &Path) -> Result<ModelCard, VisionError> {
        let bad = |reason: String| VisionError::Card {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut card: ModelCard = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        card.check().map_err(bad)?;
        if card.file.is_relative() {
            card.file = path.parent().unwrap_or(Path::new(".")).join(&card.file);
        }
        Ok(card)
    }

    /// The limits a card must meet.
    pub fn check(&self) -> Result<(), String> {
        let i = &self.input;
        if i.layout != "NCHW" || i.channels != "RGB" {
            return Err("only NCHW RGB inputs are supported".into());
        }
        if !(16..=1024).contains(&i.height) || !(16..=1024).contains(&i.width) {
            return Err("input height and width must be 16 to 1024".into());
        }
        if !(0.25..=1.0).contains(&self.crop) {
            return Err("crop must be 0.25 to 1 (the share of the frame kept)".into());
        }
        if i.std.iter().any(|s| !s.is_finite() || *s == 0.0)
            || i.mean.iter().any(|m| !m.is_finite())
        {
            return Err("input mean must be finite and std finite and non-zero".into());
        }
        if !(1..=4096).contains(&self.output.dim) {
            return Err("output dim must be 1 to 4096".into());
        }
        if !(-1.0..=1.0).contains(&self.threshold) {
            return Err("threshold is a cosine similarity, -1 to 1".into());
        }
        Ok(())
    }
}
