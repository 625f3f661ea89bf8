//! The embedding model: an ONNX file loaded once with tract, checked against its card
//! (input name and size, output dimension), optimised, and run one frame at a time on the
//! calling thread (tract runs single-threaded; callers keep it off the async executor).

use crate::card::ModelCard;
use crate::{VisionError, frame};
use std::path::Path;
#[cfg(feature = "onnx")]
use tract_onnx::prelude::*;

/// A loaded, optimised model and its card.
pub struct Embedder {
    card: ModelCard,
    #[cfg(feature = "onnx")]
    plan: std::sync::Arc<TypedRunnableModel>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.card.name)
            .finish()
    }
}

impl Embedder {
    /// Loads the card at `card_path` and the model it names; refuses a model that does not
    /// match its card.
    pub fn load(card_path: &Path) -> Result<Embedder, VisionError> {
        let card = ModelCard::load(card_path)?;
        Self::with_card(card)
    }

    /// Without the `onnx` feature (the fuzz build) no model runs: loading one says so.
    #[cfg(not(feature = "onnx"))]
    pub fn with_card(card: ModelCard) -> Result<Embedder, VisionError> {
        Err(VisionError::Model {
            path: card.file.display().to_string(),
            reason: "this build runs no ONNX models (built without the `onnx` feature)".into(),
        })
    }

    /// Without the `onnx` feature there is no model to run (no `Embedder` is ever made).
    #[cfg(not(feature = "onnx"))]
    pub fn embed_tensor(&self, _input: Vec<f32>) -> Result<Vec<f32>, VisionError> {
        Err(VisionError::Model {
            path: self.card.file.display().to_string(),
            reason: "this build runs no ONNX models".into(),
        })
    }

    /// Loads the model a checked card names.
    #[cfg(feature = "onnx")]
    pub fn with_card(card: ModelCard) -> Result<Embedder, VisionError> {
        let path = card.file.display().to_string();
        let bad = |reason: String| VisionError::Model {
            path: path.clone(),
            reason,
        };
        let i = &card.input;
        let model = tract_onnx::onnx()
            .model_for_path(&card.file)
            .map_err(|e| bad(format!("does not load: {e}")))?;
        let inputs = model
            .input_outlets()
            .map_err(|e| bad(e.to_string()))?
            .to_vec();
        if inputs.len() != 1 {
            return Err(bad(format!(
                "has {} inputs; the card describes one",
                inputs.len()
            )));
        }
        let name = &model.node(inputs[0].node).name;
        if *name != i.name {
            return Err(bad(format!(
                "its input is named {name:?}; the card says {:?}",
                i.name
            )));
        }
        let shape = [1, 3, i.height as usize, i.width as usize];
        let typed = model
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_optimized())
            .map_err(|e| bad(format!("does not take a {shape:?} input: {e}")))?;
        let out = typed
            .output_fact(0)
            .map_err(|e| bad(e.to_string()))?
            .shape
            .as_concrete()
            .map(|s| s.iter().product::<usize>())
            .ok_or_else(|| bad("its output has no fixed size".into()))?;
        if out != card.output.dim {
            return Err(bad(format!(
                "gives {out} values per image; the card says {}",
                card.output.dim
            )));
        }
        let plan = typed.into_runnable().map_err(|e| bad(e.to_string()))?;
        Ok(Embedder { card, plan })
    }

    /// The card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The L2-normalised embedding of an already-prepared input tensor (see [`frame::tensor`]).
    #[cfg(feature = "onnx")]
    pub fn embed_tensor(&self, input: Vec<f32>) -> Result<Vec<f32>, VisionError> {
        let i = &self.card.input;
        let fail = |e: TractError| VisionError::Model {
            path: self.card.file.display().to_string(),
            reason: e.to_string(),
        };
        let t = Tensor::from_shape(&[1, 3, i.height as usize, i.width as usize], &input)
            .map_err(fail)?;
        let out = self.plan.run(tvec!(t.into())).map_err(fail)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(fail)?;
        let mut v: Vec<f32> = view.iter().copied().collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            v.iter_mut().for_each(|x| *x /= n);
        }
        Ok(v)
    }

    /// Decodes a JPEG or PNG and embeds it.
    pub fn embed_image(&self, bytes: &[u8]) -> Result<Vec<f32>, VisionError> {
        self.embed_rgb(&frame::decode(bytes)?)
    }

    /// Embeds an already decoded frame.
    pub fn embed_rgb(&self, img: &image::RgbImage) -> Result<Vec<f32>, VisionError> {
        self.embed_tensor(frame::tensor(img, &self.card.input, self.card.crop))
    }
}
