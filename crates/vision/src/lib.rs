//! On-device product recognition: the only crate that imports tract.
//!
//! A model is an ONNX file with a card beside it ([`card::ModelCard`]: input size and
//! normalisation, output dimension). [`model::Embedder`] loads it once, checks it against its
//! card, optimises it and runs one frame at a time on the calling thread; [`frame`] decodes
//! JPEG and PNG uploads with limits and turns them into the model's input; [`gallery`]
//! matches an embedding against per-SKU prototypes (cosine) and abstains below the card's
//! threshold calibrated on the store's own gallery, so a product the till does not know gets
//! "not sure" rather than a guess; [`barcode`] reads a barcode in the frame first, which
//! answers exactly when the catalog knows it.

pub mod barcode;
pub mod card;
pub mod eval;
pub mod frame;
pub mod gallery;
pub mod model;

pub use card::ModelCard;
pub use gallery::{Gallery, Proposal, Recognition, StoreCalibration};
pub use model::Embedder;

/// What can go wrong, each with a sentence for the person who sent the input.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The upload is empty.
    #[error("the image is empty")]
    Empty,
    /// The upload is larger than the limit.
    #[error("the image is {0} bytes; at most {max} are accepted", max = frame::MAX_BYTES)]
    TooLarge(usize),
    /// Not a JPEG or PNG.
    #[error("not a JPEG or PNG image")]
    NotAnImage,
    /// A JPEG or PNG that does not decode (corrupt or truncated).
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
    /// Width or height out of bounds.
    #[error("the image is {0}x{1} pixels; each side must be 16 to {max}", max = frame::MAX_SIDE)]
    BadSize(u32, u32),
    /// The model card is missing or invalid.
    #[error("model card {path}: {reason}")]
    Card {
        /// The card's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The model does not load, or does not match its card.
    #[error("model {path}: {reason}")]
    Model {
        /// The model's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An embedding of the wrong dimension was offered to a gallery.
    #[error("embedding has {got} values; the gallery holds {want}")]
    Dimension {
        /// What was offered.
        got: usize,
        /// What the gallery holds.
        want: usize,
    },
    /// A SKU id that cannot be stored.
    #[error("SKU id must be 1 to 64 characters of letters, digits, '-', '_' or '.'")]
    BadSku,
    /// A gallery limit.
    #[error("{0}")]
    Full(String),
}
