//! The sandbox's VNPay: the payment page (opening it creates the payment, as the customer's
//! phone does on scanning), the merchant API (`querydr`, `refund`) with VNPay's checksums,
//! and the signed parameters of a notification.

use super::{Book, Order, Sandbox, now_ms};
use crate::momo;
use crate::sign::{hmac_sha512_hex, verify_sha512_hex};
use crate::vnpay::{
    self, QUERY_ANSWER_FIELDS, QUERY_FIELDS, REFUND_ANSWER_FIELDS, REFUND_FIELDS, field,
};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Instant;

/// VNPay's `(vnp_TransactionStatus, vnp_ResponseCode)` for an order's state.
fn codes(o: &Order) -> (&'static str, &'static str) {
    match o.result_code {
        momo::OK => ("00", "00"),
        momo::WAITING => ("01", "99"),
        momo::EXPIRED => ("02", "11"),
        _ => ("02", "51"),
    }
}

impl Sandbox {
    /// The signed parameters VNPay sends when a payment ends (to the IPN URL and with the
    /// customer's return).
    pub(super) fn vnpay_params(&self, order_id: &str, o: &Order) -> BTreeMap<String, String> {
        let (status, response) = codes(o);
        let mut p: BTreeMap<String, String> = [
            ("vnp_TmnCode", self.cfg.partner_code.clone()),
            ("vnp_Amount", (o.amount * 100).to_string()),
            ("vnp_BankCode", "NCB".to_string()),
            ("vnp_OrderInfo", o.order_info.clone()),
            ("vnp_PayDate", vnpay::vnp_date(now_ms() as u64)),
            ("vnp_ResponseCode", response.to_string()),
            ("vnp_TransactionNo", o.trans_id.to_string()),
            ("vnp_TransactionStatus", status.to_string()),
            ("vnp_TxnRef", order_id.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let data = vnpay::hash_data(p.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        p.insert(
            "vnp_SecureHash".into(),
            hmac_sha512_hex(&self.cfg.secret_key, &data),
        );
        p
    }
}

/// `GET /paymentv2/vpcpay.html?...`: the customer opens the payment URL; the payment exists
/// from now on.
pub(super) async fn vnpay_page(
    State(s): State<Sandbox>,
    Query(p): Query<BTreeMap<String, String>>,
) -> (StatusCode, String) {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let data = vnpay::hash_data(p.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if get("vnp_TmnCode") != s.cfg.partner_code
        || !verify_sha512_hex(&s.cfg.secret_key, &data, get("vnp_SecureHash"))
    {
        return (StatusCode::OK, "Sai chữ ký (invalid signature)".into());
    }
    let amount = get("vnp_Amount").parse::<i64>().unwrap_or(0) / 100;
    let order_id = get("vnp_TxnRef").to_string();
    if amount <= 0 || order_id.is_empty() || order_id.len() > 100 {
        return (StatusCode::OK, "Dữ liệu không hợp lệ (bad request)".into());
    }
    s.slow_for(amount).await;
    let mut book = s.book();
    if book.orders.contains_key(&order_id) {
        return (StatusCode::OK, format!("VNPay sandbox: {order_id} is open"));
    }
    if book.orders.len() >= super::ORDERS_MAX {
        return (StatusCode::OK, "VNPay sandbox: too many orders".into());
    }
    book.next += 1;
    let seq = book.next;
    book.orders.insert(
        order_id.clone(),
        Order {
            amount,
            created: Instant::now(),
            seq,
            result_code: momo::WAITING,
            trans_id: 0,
            request_id: String::new(),
            order_info: get("vnp_OrderInfo").to_string(),
            ipn_url: get("vnp_ReturnUrl").to_string(),
            paid_by_hand: false,
            notified: false,
            refunded: 0,
            vnpay: Some(get("vnp_CreateDate").to_string()),
        },
    );
    (
        StatusCode::OK,
        format!("VNPay sandbox: pay {amount} VND for {order_id}"),
    )
}

/// An answer of the merchant API, signed over `fields`.
fn signed(s: &Sandbox, mut a: Value, fields: &[&str]) -> Json<Value> {
    let raw = vnpay::pipe(&a, fields);
    a["vnp_SecureHash"] = json!(hmac_sha512_hex(&s.cfg.secret_key, &raw));
    Json(a)
}

/// `POST /merchant_webapi/api/transaction`: `querydr` and `refund`.
pub(super) async fn vnpay_api(State(s): State<Sandbox>, Json(r): Json<Value>) -> Json<Value> {
    let command = field(&r, "vnp_Command");
    let fields: &[&str] = match command.as_str() {
        "querydr" => &QUERY_FIELDS,
        "refund" => &REFUND_FIELDS,
        _ => {
            return Json(json!({"vnp_ResponseCode": "99", "vnp_Message": "unknown command"}));
        }
    };
    if field(&r, "vnp_TmnCode") != s.cfg.partner_code
        || !verify_sha512_hex(
            &s.cfg.secret_key,
            &vnpay::pipe(&r, fields),
            &field(&r, "vnp_SecureHash"),
        )
    {
        return Json(
            json!({"vnp_ResponseCode": vnpay::BAD_CHECKSUM, "vnp_Message": "Invalid Checksum"}),
        );
    }
    let order_id = field(&r, "vnp_TxnRef");
    let amount = s.book().orders.get(&order_id).map(|o| o.amount);
    if let Some(a) = amount {
        s.slow_for(a).await;
    }
    let mut book = s.book();
    let Book { orders, next, .. } = &mut *book;
    let Some(o) = orders.get_mut(&order_id).filter(|o| o.vnpay.is_some()) else {
        return Json(json!({
            "vnp_ResponseId": next.to_string(), "vnp_Command": command,
            "vnp_ResponseCode": vnpay::NOT_FOUND, "vnp_Message": "Transaction not found",
        }));
    };
    s.advance(o, next);
    let (status, _) = codes(o);
    let mut a = json!({
        "vnp_ResponseId": format!("{}", now_ms()),
        "vnp_Command": command,
        "vnp_ResponseCode": vnpay::OK,
        "vnp_Message": "Success",
        "vnp_TmnCode": s.cfg.partner_code,
        "vnp_TxnRef": order_id,
        "vnp_Amount": (o.amount * 100).to_string(),
        "vnp_BankCode": "NCB",
        "vnp_PayDate": vnpay::vnp_date(now_ms() as u64),
        "vnp_TransactionNo": o.trans_id.to_string(),
        "vnp_TransactionType": "01",
        "vnp_TransactionStatus": status,
        "vnp_OrderInfo": o.order_info,
        "vnp_PromotionCode": "",
        "vnp_PromotionAmount": "",
    });
    if command == "querydr" {
        return signed(&s, a, &QUERY_ANSWER_FIELDS);
    }
    let amount = field(&r, "vnp_Amount").parse::<i64>().unwrap_or(0) / 100;
    let refundable = o.result_code == momo::OK
        && field(&r, "vnp_TransactionNo") == o.trans_id.to_string()
        && amount > 0
        && amount <= o.amount - o.refunded;
    if !refundable {
        a["vnp_ResponseCode"] = json!("02");
        a["vnp_Message"] =
            json!("Refund refused: not paid, another transaction, or more than what is left");
    } else {
        o.refunded += amount;
        a["vnp_TransactionType"] = json!(field(&r, "vnp_TransactionType"));
        a["vnp_TransactionStatus"] = json!("05");
        a["vnp_Amount"] = json!((amount * 100).to_string());
    }
    signed(&s, a, &QUERY_ANSWER_FIELDS[..REFUND_ANSWER_FIELDS])
}
