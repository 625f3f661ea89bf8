//! VNPay's payment gateway (version 2.1.0) as its merchant documentation specifies it. A
//! payment is a payment-page URL signed with HMAC-SHA512 over its `vnp_*` parameters, sorted
//! and form-encoded (the till shows it as the QR code; the customer's phone opens it). Its
//! status is asked with `querydr` and it is refunded with `refund`, both JSON to the merchant
//! API with a checksum over `|`-joined fields in the documented order; the answers carry one
//! too, checked. The payment notification (IPN, and the customer's return, which carries the
//! same signed parameters) is checked the same way as the payment URL.

use crate::sign::{hmac_sha512_hex, verify_sha512_hex};
use crate::{Created, Observed, PayError, ProviderConfig};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tillmesh_pos::payment::PaymentStatus;

/// The API version spoken.
pub const VERSION: &str = "2.1.0";
/// The merchant API's path (querydr, refund).
pub const API_PATH: &str = "/merchant_webapi/api/transaction";
/// VNPay's clock: Vietnam, UTC+7, no daylight saving.
const UTC_OFFSET_MS: u64 = 7 * 3_600_000;
/// Most payments whose creation date the client remembers (querydr needs it).
const DATES_MAX: usize = 10_000;

/// `vnp_ResponseCode` of a query or refund: the request was handled.
pub const OK: &str = "00";
/// No such transaction (the customer has not opened the payment page yet).
pub const NOT_FOUND: &str = "91";
/// The request's checksum does not match.
pub const BAD_CHECKSUM: &str = "97";

/// `yyyyMMddHHmmss` in VNPay's time zone.
pub fn vnp_date(ms: u64) -> String {
    let local = ms.saturating_add(UTC_OFFSET_MS) as i64;
    let (y, m, d) = tillmesh_pos::calendar::civil_from_days(local.div_euclid(86_400_000));
    let s = local.rem_euclid(86_400_000) / 1000;
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// What a payment's `vnp_TransactionStatus` (and, for a return or IPN, `vnp_ResponseCode`)
/// says about it.
pub fn status_of(transaction_status: &str, response_code: &str) -> PaymentStatus {
    match (transaction_status, response_code) {
        // Paid; 05, 06 and 09 are the life of a refund of a paid payment.
        ("00" | "05" | "06" | "09", _) => PaymentStatus::Captured,
        // Waiting for the customer, or debited but held for review.
        ("01" | "07", _) => PaymentStatus::Pending,
        (_, "24") => PaymentStatus::Cancelled,
        (_, "11") => PaymentStatus::Expired,
        _ => PaymentStatus::Failed,
    }
}

/// `k1=v1&k2=v2...` of the `vnp_*` parameters sorted by name, values form-encoded (space as
/// `+`), `vnp_SecureHash` and `vnp_SecureHashType` left out: what the payment URL and the
/// notification are signed over.
pub fn hash_data<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let sorted: BTreeMap<&str, &str> = params
        .into_iter()
        .filter(|(k, v)| {
            k.starts_with("vnp_")
                && *k != "vnp_SecureHash"
                && *k != "vnp_SecureHashType"
                && !v.is_empty()
        })
        .collect();
    let mut out = String::new();
    for (k, v) in sorted {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(form_urlencoded::byte_serialize(k.as_bytes()));
        out.push('=');
        out.extend(form_urlencoded::byte_serialize(v.as_bytes()));
    }
    out
}

/// A field of a JSON answer as text (VNPay sends numbers as strings or numbers).
pub fn field(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The checksum fields of a querydr answer, in order.
pub const QUERY_ANSWER_FIELDS: [&str; 15] = [
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
];

/// The checksum fields of a refund answer, in order (a querydr answer's first 13).
pub const REFUND_ANSWER_FIELDS: usize = 13;

/// `|`-joined values of `fields` from a JSON object.
pub fn pipe(v: &Value, fields: &[&str]) -> String {
    fields
        .iter()
        .map(|k| field(v, k))
        .collect::<Vec<_>>()
        .join("|")
}

/// The checksum fields of a querydr request, in order.
pub const QUERY_FIELDS: [&str; 9] = [
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
];

/// The checksum fields of a refund request, in order.
pub const REFUND_FIELDS: [&str; 13] = [
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TransactionType",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_TransactionNo",
    "vnp_TransactionDate",
    "vnp_CreateBy",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
];

/// A VNPay merchant client.
#[derive(Clone)]
pub struct Vnpay {
    cfg: ProviderConfig,
    secret: String,
    http: reqwest::Client,
    next: Arc<AtomicU64>,
    /// Our order id -> its `vnp_CreateDate` (querydr and refund name it).
    dates: Arc<Mutex<HashMap<String, String>>>,
}

impl std::fmt::Debug for Vnpay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vnpay").field("cfg", &self.cfg).finish()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Vnpay {
    /// A client for `cfg`.
    pub fn new(cfg: ProviderConfig) -> Result<Self, PayError> {
        if let Some(p) = cfg.problems().into_iter().next() {
            return Err(PayError::Config(p));
        }
        let secret = cfg.secret()?;
        let http = crate::http_client(cfg.timeout_ms)?;
        Ok(Self {
            cfg,
            secret,
            http,
            next: Arc::new(AtomicU64::new(now_ms())),
            dates: Arc::default(),
        })
    }

    /// The configured notification URL, if any.
    pub fn ipn_url(&self) -> Option<&str> {
        self.cfg.ipn_url.as_deref()
    }

    fn api_url(&self) -> String {
        if let Some(a) = &self.cfg.api_endpoint {
            return a.clone();
        }
        // The payment page's origin: scheme and host.
        let e = &self.cfg.endpoint;
        let host_end = e
            .find("://")
            .and_then(|i| e[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(e.len());
        format!("{}{API_PATH}", &e[..host_end])
    }

    fn date_of(&self, order_id: &str) -> String {
        let dates = self.dates.lock().unwrap_or_else(|p| p.into_inner());
        // Not remembered (the till restarted): today, which is when a pending QR payment
        // (60 s) was made, but for one made just before midnight.
        dates
            .get(order_id)
            .cloned()
            .unwrap_or_else(|| vnp_date(now_ms()))
    }

    /// The payment URL for `amount` (VND) of our `order_id`, signed; nothing is sent to
    /// VNPay until the customer's phone opens it.
    pub fn create(
        &self,
        order_id: &str,
        amount: i64,
        order_info: &str,
        return_url: &str,
    ) -> Result<Created, PayError> {
        if amount <= 0 || amount > 10_000_000_000 / 100 {
            return Err(PayError::Refused {
                code: 3,
                message: "amount out of range".into(),
            });
        }
        let now = now_ms();
        let created = vnp_date(now);
        let expires = vnp_date(now + 15 * 60_000);
        let amount = (amount * 100).to_string();
        let params: Vec<(&str, &str)> = vec![
            ("vnp_Version", VERSION),
            ("vnp_Command", "pay"),
            ("vnp_TmnCode", &self.cfg.partner_code),
            ("vnp_Amount", &amount),
            ("vnp_CreateDate", &created),
            ("vnp_CurrCode", "VND"),
            ("vnp_IpAddr", "127.0.0.1"),
            ("vnp_Locale", "vn"),
            ("vnp_OrderInfo", order_info),
            ("vnp_OrderType", "other"),
            ("vnp_ReturnUrl", return_url),
            ("vnp_ExpireDate", &expires),
            ("vnp_TxnRef", order_id),
        ];
        let data = hash_data(params.iter().copied());
        let hash = hmac_sha512_hex(&self.secret, &data);
        {
            let mut dates = self.dates.lock().unwrap_or_else(|p| p.into_inner());
            if dates.len() >= DATES_MAX {
                dates.clear();
            }
            dates.insert(order_id.to_string(), created);
        }
        Ok(Created {
            payload: format!("{}?{data}&vnp_SecureHash={hash}", self.cfg.endpoint),
        })
    }

    async fn post(&self, mut body: Value, fields: &[&str]) -> Result<Value, PayError> {
        let raw = pipe(&body, fields);
        body["vnp_SecureHash"] = json!(hmac_sha512_hex(&self.secret, &raw));
        crate::post_json(&self.http, "VNPay", self.api_url(), &body).await
    }

    fn request_id(&self) -> String {
        format!("{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn check_answer(&self, a: &Value, fields: &[&str]) -> Result<(), PayError> {
        if verify_sha512_hex(&self.secret, &pipe(a, fields), &field(a, "vnp_SecureHash")) {
            Ok(())
        } else {
            Err(PayError::BadAnswer(
                "VNPay's answer does not carry a valid checksum".into(),
            ))
        }
    }

    /// What VNPay says about our `order_id`.
    pub async fn query(&self, order_id: &str) -> Result<Observed, PayError> {
        let now = vnp_date(now_ms());
        let body = json!({
            "vnp_RequestId": self.request_id(),
            "vnp_Version": VERSION,
            "vnp_Command": "querydr",
            "vnp_TmnCode": self.cfg.partner_code,
            "vnp_TxnRef": order_id,
            "vnp_OrderInfo": format!("status of {order_id}"),
            "vnp_TransactionDate": self.date_of(order_id),
            "vnp_CreateDate": now,
            "vnp_IpAddr": "127.0.0.1",
        });
        let a = self.post(body, &QUERY_FIELDS).await?;
        let code = field(&a, "vnp_ResponseCode");
        if code == NOT_FOUND {
            // The customer has not opened the payment page yet.
            return Ok(Observed {
                order_id: order_id.to_string(),
                status: PaymentStatus::Pending,
                provider_ref: None,
                amount: 0,
            });
        }
        if code != OK {
            return Err(PayError::Refused {
                code: code.parse().unwrap_or(99),
                message: field(&a, "vnp_Message"),
            });
        }
        self.check_answer(&a, &QUERY_ANSWER_FIELDS)?;
        if field(&a, "vnp_TxnRef") != order_id {
            return Err(PayError::BadAnswer(format!(
                "VNPay answered about {} when asked about {order_id}",
                field(&a, "vnp_TxnRef")
            )));
        }
        Ok(observed(&a))
    }

    /// Refunds `amount` (VND) of our `order_id`, which VNPay knows as `transaction_no`.
    pub async fn refund(
        &self,
        order_id: &str,
        amount: i64,
        transaction_no: &str,
        description: &str,
    ) -> Result<String, PayError> {
        let body = json!({
            "vnp_RequestId": self.request_id(),
            "vnp_Version": VERSION,
            "vnp_Command": "refund",
            "vnp_TmnCode": self.cfg.partner_code,
            "vnp_TransactionType": "02",
            "vnp_TxnRef": order_id,
            "vnp_Amount": (amount * 100).to_string(),
            "vnp_TransactionNo": transaction_no,
            "vnp_TransactionDate": self.date_of(order_id),
            "vnp_CreateBy": "tillmesh",
            "vnp_CreateDate": vnp_date(now_ms()),
            "vnp_IpAddr": "127.0.0.1",
            "vnp_OrderInfo": description,
        });
        let a = self.post(body, &REFUND_FIELDS).await?;
        let code = field(&a, "vnp_ResponseCode");
        if code != OK {
            return Err(PayError::Refused {
                code: code.parse().unwrap_or(99),
                message: field(&a, "vnp_Message"),
            });
        }
        self.check_answer(&a, &QUERY_ANSWER_FIELDS[..REFUND_ANSWER_FIELDS])?;
        Ok(format!("{}-refund", field(&a, "vnp_TransactionNo")))
    }

    /// Checks a notification's merchant and signature (its query parameters); what it says.
    pub fn verify(&self, params: &BTreeMap<String, String>) -> Result<Observed, PayError> {
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
        let data = hash_data(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if get("vnp_TmnCode") != self.cfg.partner_code
            || !verify_sha512_hex(&self.secret, &data, get("vnp_SecureHash"))
        {
            return Err(PayError::BadSignature);
        }
        Ok(observed(&Value::Object(
            params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )))
    }
}

fn observed(a: &Value) -> Observed {
    let no = field(a, "vnp_TransactionNo");
    Observed {
        order_id: field(a, "vnp_TxnRef"),
        status: status_of(
            &field(a, "vnp_TransactionStatus"),
            &field(a, "vnp_ResponseCode"),
        ),
        provider_ref: (!no.is_empty() && no != "0").then_some(no),
        amount: field(a, "vnp_Amount").parse::<i64>().unwrap_or(0) / 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_in_vietnam_time() {
        // 2021-08-01 08:33:33 UTC is 15:33:33 in Hanoi.
        assert_eq!(vnp_date(1_627_806_813_000), "20210801153333");
    }

    #[test]
    fn hash_data_sorts_encodes_and_leaves_the_hash_out() {
        let d = hash_data([
            ("vnp_TxnRef", "5"),
            ("vnp_Amount", "1806000"),
            ("vnp_OrderInfo", "Thanh toan don hang :5"),
            ("vnp_ReturnUrl", "https://domainmerchant.vn/ReturnUrl"),
            ("vnp_SecureHash", "ab"),
            ("vnp_BankCode", ""),
            ("other", "x"),
        ]);
        assert_eq!(
            d,
            "vnp_Amount=1806000&vnp_OrderInfo=Thanh+toan+don+hang+%3A5&vnp_ReturnUrl=https%3A%2F%2Fdomainmerchant.vn%2FReturnUrl&vnp_TxnRef=5"
        );
    }

    #[test]
    fn statuses_follow_the_documented_codes() {
        assert_eq!(status_of("00", "00"), PaymentStatus::Captured);
        assert_eq!(status_of("01", ""), PaymentStatus::Pending);
        assert_eq!(status_of("02", "24"), PaymentStatus::Cancelled);
        assert_eq!(status_of("02", "11"), PaymentStatus::Expired);
        assert_eq!(status_of("02", "51"), PaymentStatus::Failed);
    }

    fn client() -> Vnpay {
        Vnpay::new(ProviderConfig {
            provider: crate::ProviderKind::Vnpay,
            endpoint: "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html".into(),
            api_endpoint: None,
            partner_code: "DEMOV210".into(),
            access_key: String::new(),
            secret_key: Some("SECRET".into()),
            secret_key_env: None,
            ipn_url: None,
            redirect_url: None,
            timeout_ms: 1_000,
        })
        .unwrap()
    }

    #[test]
    fn the_payment_url_is_signed_over_its_own_query_and_verifies() {
        let v = client();
        assert_eq!(
            v.api_url(),
            "https://sandbox.vnpayment.vn/merchant_webapi/api/transaction"
        );
        let url = v
            .create(
                "S001-T1-P1",
                83_050,
                "Sale T1 at S001",
                "http://till/notify",
            )
            .unwrap()
            .payload;
        let (page, query) = url.split_once('?').unwrap();
        assert_eq!(page, "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html");
        let params: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(params["vnp_Amount"], "8305000");
        assert_eq!(params["vnp_TxnRef"], "S001-T1-P1");
        // What VNPay checks when the customer opens it, and what a notification carries.
        let mut back = params.clone();
        back.insert("vnp_TransactionStatus".into(), "00".into());
        back.insert("vnp_ResponseCode".into(), "00".into());
        back.insert("vnp_TransactionNo".into(), "14000001".into());
        let data = hash_data(back.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        back.insert("vnp_SecureHash".into(), hmac_sha512_hex("SECRET", &data));
        let o = v.verify(&back).unwrap();
        assert_eq!(
            (o.status, o.amount, o.provider_ref.as_deref()),
            (PaymentStatus::Captured, 83_050, Some("14000001"))
        );
        assert!(v.verify(&params).is_ok(), "the URL's own hash verifies");
        back.insert("vnp_Amount".into(), "9999900".into());
        assert_eq!(v.verify(&back), Err(PayError::BadSignature));
    }
}
