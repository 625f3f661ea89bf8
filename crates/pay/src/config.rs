//! A store's QR payment provider configuration (`[payments.qr]`): which provider, its
//! endpoints and the merchant's credentials, the secret never logged.

use crate::PayError;
use serde::Deserialize;

/// A merchant's provider credentials and endpoints (`[payments.qr]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider: `momo` or `vnpay`.
    pub provider: ProviderKind,
    /// MoMo: the API's base URL (`https://payment.momo.vn` in production,
    /// `https://test-payment.momo.vn` for MoMo's test environment). VNPay: the payment page
    /// (`https://pay.vnpay.vn/vpcpay.html`, `https://sandbox.vnpayment.vn/paymentv2/vpcpay.html`).
    /// The sandbox's address for tests and demos.
    pub endpoint: String,
    /// VNPay only: the merchant API (`.../merchant_webapi/api/transaction`); by default the
    /// payment page's origin with that path.
    #[serde(default)]
    pub api_endpoint: Option<String>,
    /// The merchant's code: MoMo's partner code, VNPay's `vnp_TmnCode`.
    pub partner_code: String,
    /// MoMo's access key (VNPay has none).
    #[serde(default)]
    pub access_key: String,
    /// The merchant's secret key, signing requests and checking notifications. Prefer
    /// `secret_key_env`; never logged.
    #[serde(default)]
    pub secret_key: Option<String>,
    /// The name of an environment variable holding the secret key.
    #[serde(default)]
    pub secret_key_env: Option<String>,
    /// Where the provider sends payment notifications (this till's
    /// `/api/v1/payments/notify/momo` or `/notify/vnpay`, as the provider can reach it); by
    /// default the till's own listen address. VNPay takes it as `vnp_ReturnUrl` (its IPN URL
    /// is also registered in VNPay's merchant portal).
    #[serde(default)]
    pub ipn_url: Option<String>,
    /// Where the customer's phone goes after paying.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Longest wait for one answer from the provider, ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// Which provider a `[payments.qr]` section configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// MoMo (API v2, HMAC-SHA256).
    Momo,
    /// VNPay (payment gateway 2.1.0, HMAC-SHA512).
    Vnpay,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("provider", &self.provider)
            .field("endpoint", &self.endpoint)
            .field("partner_code", &self.partner_code)
            .field("access_key", &"<hidden>")
            .field("secret_key", &"<hidden>")
            .field("secret_key_env", &self.secret_key_env)
            .field("ipn_url", &self.ipn_url)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl ProviderConfig {
    /// The secret key, from `secret_key_env` or `secret_key`.
    pub fn secret(&self) -> Result<String, PayError> {
        if let Some(var) = &self.secret_key_env {
            return std::env::var(var).map_err(|_| {
                PayError::Config(format!(
                    "payments.qr.secret_key_env names {var}, which is not set"
                ))
            });
        }
        self.secret_key.clone().ok_or_else(|| {
            PayError::Config("payments.qr needs secret_key or secret_key_env".into())
        })
    }

    /// Range and consistency problems.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(self.endpoint.starts_with("https://") || self.endpoint.starts_with("http://")) {
            out.push("payments.qr.endpoint must be an http(s) URL".into());
        }
        if self.partner_code.trim().is_empty() {
            out.push("payments.qr.partner_code must not be empty".into());
        }
        if self.provider == ProviderKind::Momo && self.access_key.trim().is_empty() {
            out.push("payments.qr.access_key must not be empty for MoMo".into());
        }
        if let Some(a) = &self.api_endpoint
            && !(a.starts_with("https://") || a.starts_with("http://"))
        {
            out.push("payments.qr.api_endpoint must be an http(s) URL".into());
        }
        if self.secret_key.is_some() == self.secret_key_env.is_some() {
            out.push("payments.qr takes one of secret_key and secret_key_env".into());
        }
        if !(500..=60_000).contains(&self.timeout_ms) {
            out.push("payments.qr.timeout_ms must be 500 to 60000".into());
        }
        out
    }
}
