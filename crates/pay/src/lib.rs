//! QR payment providers over their merchant HTTP APIs: MoMo ([`momo`]) and VNPay
//! ([`vnpay`]), with HMAC-signed requests and notifications ([`sign`]), one [`Provider`] the
//! till calls whichever is configured ([`config`]), and a sandbox provider ([`sandbox`])
//! that speaks both APIs for tests and demos (captures by itself, declines, stays silent,
//! answers slowly, notifies twice). Only the sandbox captures on its own.

pub mod config;
pub mod momo;
pub mod sandbox;
pub mod sign;
pub mod vnpay;

use tillmesh_pos::payment::PaymentStatus;

pub use config::{ProviderConfig, ProviderKind};
pub use momo::Momo;
pub use vnpay::Vnpay;

/// The store's QR payment provider.
#[derive(Clone, Debug)]
pub enum Provider {
    /// MoMo.
    Momo(Momo),
    /// VNPay.
    Vnpay(Vnpay),
}

impl Provider {
    /// A client for `cfg`'s provider.
    pub fn new(cfg: ProviderConfig) -> Result<Self, PayError> {
        Ok(match cfg.provider {
            ProviderKind::Momo => Provider::Momo(Momo::new(cfg)?),
            ProviderKind::Vnpay => Provider::Vnpay(Vnpay::new(cfg)?),
        })
    }

    /// Its name, as payments record it and its notification path ends.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Momo(_) => "momo",
            Provider::Vnpay(_) => "vnpay",
        }
    }

    /// The configured notification URL, if any.
    pub fn ipn_url(&self) -> Option<&str> {
        match self {
            Provider::Momo(m) => m.ipn_url(),
            Provider::Vnpay(v) => v.ipn_url(),
        }
    }

    /// Creates a QR payment of `amount` for our `order_id`, notified at `notify_url`.
    pub async fn create(
        &self,
        order_id: &str,
        amount: i64,
        order_info: &str,
        notify_url: &str,
    ) -> Result<Created, PayError> {
        match self {
            Provider::Momo(m) => m.create(order_id, amount, order_info, notify_url).await,
            Provider::Vnpay(v) => v.create(order_id, amount, order_info, notify_url),
        }
    }

    /// What the provider says about our `order_id`.
    pub async fn query(&self, order_id: &str) -> Result<Observed, PayError> {
        match self {
            Provider::Momo(m) => m.query(order_id).await,
            Provider::Vnpay(v) => v.query(order_id).await,
        }
    }

    /// Refunds `amount` of our `order_id`, which the provider knows as `provider_ref`;
    /// `refund_id` names the refund (a retry with it is refused, never paid twice). Answers
    /// the refund's reference.
    pub async fn refund(
        &self,
        order_id: &str,
        refund_id: &str,
        amount: i64,
        provider_ref: &str,
        description: &str,
    ) -> Result<String, PayError> {
        match self {
            Provider::Momo(m) => {
                let trans = provider_ref.parse().map_err(|_| {
                    PayError::BadAnswer(format!("{provider_ref} is not a MoMo transaction id"))
                })?;
                m.refund(refund_id, amount, trans, description).await
            }
            Provider::Vnpay(v) => v.refund(order_id, amount, provider_ref, description).await,
        }
    }
}

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

/// The HTTP client a provider's calls go through: ring for TLS, every wait bounded.
pub(crate) fn http_client(timeout_ms: u64) -> Result<reqwest::Client, PayError> {
    crypto();
    let t = std::time::Duration::from_millis(timeout_ms);
    reqwest::Client::builder()
        .timeout(t)
        .connect_timeout(t)
        .build()
        .map_err(|e| PayError::Config(e.to_string()))
}

/// POSTs `body` as JSON to `url` and decodes the JSON answer; no answer, or a 5xx, is
/// `Unreachable`; an answer that does not decode is `BadAnswer` (`who` names the provider).
pub(crate) async fn post_json<Q: serde::Serialize, A: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    who: &str,
    url: String,
    body: &Q,
) -> Result<A, PayError> {
    let r = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| PayError::Unreachable(error_chain(&e)))?;
    let status = r.status();
    let bytes = r
        .bytes()
        .await
        .map_err(|e| PayError::Unreachable(error_chain(&e)))?;
    if status.is_server_error() {
        return Err(PayError::Unreachable(format!("{who} answered {status}")));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| PayError::BadAnswer(format!("{who} answered {status}: {e}")))
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
