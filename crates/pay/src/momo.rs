//! MoMo's payment gateway (API v2) as its merchant documentation specifies it: a QR payment
//! created with `requestType = captureWallet`, its status queried, refunded, and the payment
//! notification (IPN) checked. Every request and the IPN carry an HMAC-SHA256 signature over
//! a fixed `key=value&...` string of their fields in alphabetical order.

use crate::sign::{hmac_sha256_hex, raw, verify_sha256_hex};
use crate::{Created, Observed, PayError, ProviderConfig};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use tillmesh_pos::payment::PaymentStatus;

/// Creates a payment.
pub const CREATE_PATH: &str = "/v2/gateway/api/create";
/// Asks for a payment's status.
pub const QUERY_PATH: &str = "/v2/gateway/api/query";
/// Refunds a captured payment (in full or in part).
pub const REFUND_PATH: &str = "/v2/gateway/api/refund";
/// The request type of a QR payment taken from the customer's MoMo wallet.
pub const CAPTURE_WALLET: &str = "captureWallet";
/// Smallest and largest amount MoMo takes in one payment (VND).
pub const AMOUNT_MIN: i64 = 1_000;
/// See [`AMOUNT_MIN`].
pub const AMOUNT_MAX: i64 = 50_000_000;

/// `resultCode`: success (captured, refunded).
pub const OK: i32 = 0;
/// `resultCode`: created, waiting for the customer.
pub const WAITING: i32 = 1000;
/// `resultCode`: the payment expired at MoMo.
pub const EXPIRED: i32 = 1005;
/// `resultCode`: the customer declined.
pub const DECLINED: i32 = 1006;
/// `resultCode`: processing.
pub const PROCESSING: i32 = 7000;
/// `resultCode`: bad request format or a field out of range.
pub const BAD_FORMAT: i32 = 20;
/// `resultCode`: the amount is out of range.
pub const BAD_AMOUNT: i32 = 22;
/// `resultCode`: the order id was used before.
pub const DUPLICATE_ORDER: i32 = 41;
/// `resultCode`: no such order.
pub const NO_ORDER: i32 = 42;
/// `resultCode`: the signature does not match.
pub const BAD_SIGNATURE: i32 = 11;

/// What a payment's `resultCode` says about it.
pub fn status_of(result_code: i32) -> PaymentStatus {
    match result_code {
        OK => PaymentStatus::Captured,
        WAITING | PROCESSING | 7002 | 9000 => PaymentStatus::Pending,
        EXPIRED => PaymentStatus::Expired,
        1003 | 1017 => PaymentStatus::Cancelled,
        _ => PaymentStatus::Failed,
    }
}

/// `POST /v2/gateway/api/create`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    pub partner_code: String,
    pub request_id: String,
    pub amount: i64,
    pub order_id: String,
    pub order_info: String,
    pub redirect_url: String,
    pub ipn_url: String,
    pub request_type: String,
    pub extra_data: String,
    pub lang: String,
    pub signature: String,
}

impl CreateRequest {
    /// The signed string.
    pub fn raw(&self, access_key: &str) -> String {
        raw(&[
            ("accessKey", access_key),
            ("amount", &self.amount.to_string()),
            ("extraData", &self.extra_data),
            ("ipnUrl", &self.ipn_url),
            ("orderId", &self.order_id),
            ("orderInfo", &self.order_info),
            ("partnerCode", &self.partner_code),
            ("redirectUrl", &self.redirect_url),
            ("requestId", &self.request_id),
            ("requestType", &self.request_type),
        ])
    }
}

/// The answer to a create.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateResponse {
    pub partner_code: String,
    pub order_id: String,
    pub request_id: String,
    pub amount: i64,
    pub response_time: i64,
    pub message: String,
    pub result_code: i32,
    #[serde(default)]
    pub pay_url: String,
    #[serde(default)]
    pub qr_code_url: String,
}

/// `POST /v2/gateway/api/query`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    pub partner_code: String,
    pub request_id: String,
    pub order_id: String,
    pub lang: String,
    pub signature: String,
}

impl QueryRequest {
    /// The signed string.
    pub fn raw(&self, access_key: &str) -> String {
        raw(&[
            ("accessKey", access_key),
            ("orderId", &self.order_id),
            ("partnerCode", &self.partner_code),
            ("requestId", &self.request_id),
        ])
    }
}

/// The answer to a query.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    pub partner_code: String,
    pub order_id: String,
    pub request_id: String,
    #[serde(default)]
    pub extra_data: String,
    #[serde(default)]
    pub amount: i64,
    #[serde(default)]
    pub trans_id: i64,
    #[serde(default)]
    pub pay_type: String,
    pub result_code: i32,
    pub message: String,
    pub response_time: i64,
}

/// `POST /v2/gateway/api/refund`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    pub partner_code: String,
    /// The refund's own order id.
    pub order_id: String,
    pub request_id: String,
    pub amount: i64,
    /// MoMo's id of the payment refunded.
    pub trans_id: i64,
    pub lang: String,
    pub description: String,
    pub signature: String,
}

impl RefundRequest {
    /// The signed string.
    pub fn raw(&self, access_key: &str) -> String {
        raw(&[
            ("accessKey", access_key),
            ("amount", &self.amount.to_string()),
            ("description", &self.description),
            ("orderId", &self.order_id),
            ("partnerCode", &self.partner_code),
            ("requestId", &self.request_id),
            ("transId", &self.trans_id.to_string()),
        ])
    }
}

/// The answer to a refund.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundResponse {
    pub partner_code: String,
    pub order_id: String,
    pub request_id: String,
    #[serde(default)]
    pub amount: i64,
    #[serde(default)]
    pub trans_id: i64,
    pub result_code: i32,
    pub message: String,
    pub response_time: i64,
}

/// The payment notification (IPN) MoMo posts to `ipnUrl` when a payment ends.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub partner_code: String,
    pub order_id: String,
    pub request_id: String,
    pub amount: i64,
    #[serde(default)]
    pub order_info: String,
    #[serde(default)]
    pub order_type: String,
    pub trans_id: i64,
    pub result_code: i32,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub pay_type: String,
    pub response_time: i64,
    #[serde(default)]
    pub extra_data: String,
    pub signature: String,
}

impl Notification {
    /// The signed string.
    pub fn raw(&self, access_key: &str) -> String {
        raw(&[
            ("accessKey", access_key),
            ("amount", &self.amount.to_string()),
            ("extraData", &self.extra_data),
            ("message", &self.message),
            ("orderId", &self.order_id),
            ("orderInfo", &self.order_info),
            ("orderType", &self.order_type),
            ("partnerCode", &self.partner_code),
            ("payType", &self.pay_type),
            ("requestId", &self.request_id),
            ("responseTime", &self.response_time.to_string()),
            ("resultCode", &self.result_code.to_string()),
            ("transId", &self.trans_id.to_string()),
        ])
    }
}

/// A MoMo merchant client.
#[derive(Clone)]
pub struct Momo {
    cfg: ProviderConfig,
    secret: String,
    http: reqwest::Client,
    next: std::sync::Arc<AtomicU64>,
}

impl std::fmt::Debug for Momo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Momo").field("cfg", &self.cfg).finish()
    }
}

impl Momo {
    /// A client for `cfg`.
    pub fn new(cfg: ProviderConfig) -> Result<Self, PayError> {
        if let Some(p) = cfg.problems().into_iter().next() {
            return Err(PayError::Config(p));
        }
        let secret = cfg.secret()?;
        let http = crate::http_client(cfg.timeout_ms)?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Ok(Self {
            cfg,
            secret,
            http,
            next: std::sync::Arc::new(AtomicU64::new(seed)),
        })
    }

    /// The configured notification URL, if any.
    pub fn ipn_url(&self) -> Option<&str> {
        self.cfg.ipn_url.as_deref()
    }

    fn request_id(&self, order_id: &str) -> String {
        format!("{order_id}-R{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn sign(&self, raw: &str) -> String {
        hmac_sha256_hex(&self.secret, raw)
    }

    async fn post<Q: Serialize, A: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &Q,
    ) -> Result<A, PayError> {
        let url = format!("{}{path}", self.cfg.endpoint.trim_end_matches('/'));
        crate::post_json(&self.http, "MoMo", url, body).await
    }

    /// Creates a QR payment of `amount` for our `order_id` (unique across the merchant).
    pub async fn create(
        &self,
        order_id: &str,
        amount: i64,
        order_info: &str,
        ipn_url: &str,
    ) -> Result<Created, PayError> {
        let mut req = CreateRequest {
            partner_code: self.cfg.partner_code.clone(),
            request_id: self.request_id(order_id),
            amount,
            order_id: order_id.to_string(),
            order_info: order_info.to_string(),
            redirect_url: self.cfg.redirect_url.clone().unwrap_or_default(),
            ipn_url: ipn_url.to_string(),
            request_type: CAPTURE_WALLET.into(),
            extra_data: String::new(),
            lang: "en".into(),
            signature: String::new(),
        };
        req.signature = self.sign(&req.raw(&self.cfg.access_key));
        let a: CreateResponse = self.post(CREATE_PATH, &req).await?;
        if a.result_code != OK || a.order_id != order_id {
            return Err(PayError::Refused {
                code: a.result_code,
                message: a.message,
            });
        }
        let payload = if a.qr_code_url.is_empty() {
            a.pay_url
        } else {
            a.qr_code_url
        };
        if payload.is_empty() {
            return Err(PayError::BadAnswer("MoMo gave no QR code".into()));
        }
        Ok(Created { payload })
    }

    /// What MoMo says about our `order_id`.
    pub async fn query(&self, order_id: &str) -> Result<Observed, PayError> {
        let mut req = QueryRequest {
            partner_code: self.cfg.partner_code.clone(),
            request_id: self.request_id(order_id),
            order_id: order_id.to_string(),
            lang: "en".into(),
            signature: String::new(),
        };
        req.signature = self.sign(&req.raw(&self.cfg.access_key));
        let a: QueryResponse = self.post(QUERY_PATH, &req).await?;
        if a.order_id != order_id {
            return Err(PayError::BadAnswer(format!(
                "MoMo answered about {} when asked about {order_id}",
                a.order_id
            )));
        }
        if a.result_code == NO_ORDER {
            return Err(PayError::Refused {
                code: a.result_code,
                message: a.message,
            });
        }
        Ok(Observed {
            order_id: a.order_id,
            status: status_of(a.result_code),
            provider_ref: (a.trans_id != 0).then(|| a.trans_id.to_string()),
            amount: a.amount,
        })
    }

    /// Refunds `amount` of the payment MoMo knows as `trans_id`; `refund_id` is the refund's
    /// own order id (a retry with the same id is refused as a duplicate, never paid twice).
    pub async fn refund(
        &self,
        refund_id: &str,
        amount: i64,
        trans_id: i64,
        description: &str,
    ) -> Result<String, PayError> {
        let mut req = RefundRequest {
            partner_code: self.cfg.partner_code.clone(),
            order_id: refund_id.to_string(),
            request_id: self.request_id(refund_id),
            amount,
            trans_id,
            lang: "en".into(),
            description: description.to_string(),
            signature: String::new(),
        };
        req.signature = self.sign(&req.raw(&self.cfg.access_key));
        let a: RefundResponse = self.post(REFUND_PATH, &req).await?;
        if a.result_code != OK {
            return Err(PayError::Refused {
                code: a.result_code,
                message: a.message,
            });
        }
        Ok(a.trans_id.to_string())
    }

    /// Checks a notification's partner and signature; what it says.
    pub fn verify(&self, n: &Notification) -> Result<Observed, PayError> {
        if n.partner_code != self.cfg.partner_code
            || !verify_sha256_hex(&self.secret, &n.raw(&self.cfg.access_key), &n.signature)
        {
            return Err(PayError::BadSignature);
        }
        Ok(Observed {
            order_id: n.order_id.clone(),
            status: status_of(n.result_code),
            provider_ref: (n.trans_id != 0).then(|| n.trans_id.to_string()),
            amount: n.amount,
        })
    }
}
