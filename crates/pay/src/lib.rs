//! QR payment providers over their merchant HTTP APIs: MoMo ([`momo`]), with HMAC-signed
//! requests and notifications ([`sign`]), and a sandbox provider ([`sandbox`]) that speaks the
//! same API for tests and demos (captures by itself, declines, stays silent, answers slowly,
//! notifies twice). The till talks to both the same way; only the sandbox captures on its
//! own.

pub mod momo;
pub mod sandbox;
pub mod sign;

use tillmesh_pos::payment::PaymentStatus;

pub use momo::{Momo, MomoConfig};

/// A payment the provider created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// What the customer scans (the provider's QR content or payment URL).
    pub payload: String,
}

/// What the provider says about one payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Our order id.
    pub order_id: String,
    /// Its state at the provider.
    pub status: PaymentStatus,
    /// The provider's transaction id, once it has one.
    pub provider_ref: Option<String>,
    /// The amount the provider holds for it.
    pub amount: i64,
}

/// Why a provider call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    /// No answer (network, timeout, a 5xx).
    #[error("the payment provider cannot be reached: {0}")]
    Unreachable(String),
    /// The provider answered and refused.
    #[error("the payment provider refused ({code}): {message}")]
    Refused {
        /// The provider's result code.
        code: i32,
        /// The provider's message.
        message: String,
    },
    /// An answer that is not what the API specifies.
    #[error("the payment provider's answer is not understood: {0}")]
    BadAnswer(String),
    /// A notification whose signature or merchant does not match.
    #[error("the notification's signature does not match")]
    BadSignature,
    /// The provider's configuration is not usable.
    #[error("{0}")]
    Config(String),
}

/// Installs ring as the process's TLS crypto provider (the one provider every crate of the
/// workspace shares), unless one is installed already.
pub(crate) fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An error with its causes, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}
