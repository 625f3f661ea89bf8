//! A sandbox provider: the merchant APIs of [`crate::momo`] and [`crate::vnpay`] served over
//! HTTP for tests and demos (`tillmesh pay-sandbox`), one merchant's credentials for both.
//! A VNPay payment exists once its payment URL is opened (`GET /paymentv2/vpcpay.html`, what
//! the customer's phone does on scanning), and its end is notified by a GET to its
//! `vnp_ReturnUrl` with VNPay's signed parameters. It checks every signature as the provider
//! does and behaves by the amount's last two digits: by default a payment is captured `capture_after_ms` after it
//! was created (the customer scanned and paid); `decline_suffix` amounts are declined;
//! `silent_suffix` amounts stay waiting until `POST /sandbox/orders/{orderId}/pay` (a
//! customer paying late); `slow_suffix` amounts get every answer `slow_ms` late. Each
//! payment that ends is notified to its `ipnUrl` `notify_copies` times (duplicates, as real
//! providers retry). Only the sandbox captures by itself.

mod vnpay;

use crate::momo::{self, Notification};
use crate::sign::{hmac_sha256_hex, verify_sha256_hex};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};
use vnpay::{vnpay_api, vnpay_page};

/// Most orders the sandbox remembers (the oldest are forgotten first).
pub const ORDERS_MAX: usize = 100_000;
/// Most notifications sent per tick.
const NOTIFY_PER_TICK: usize = 64;

/// How the sandbox behaves.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// The merchant it accepts.
    pub partner_code: String,
    /// The merchant's access key.
    pub access_key: String,
    /// The merchant's secret key.
    pub secret_key: String,
    /// A payment is captured this long after it was created.
    pub capture_after_ms: u64,
    /// Amounts whose last two digits are this are declined.
    pub decline_suffix: Option<i64>,
    /// Amounts whose last two digits are this stay waiting until paid by hand.
    pub silent_suffix: Option<i64>,
    /// Amounts whose last two digits are this get every answer late.
    pub slow_suffix: Option<i64>,
    /// How late, ms.
    pub slow_ms: u64,
    /// How many times each end of a payment is notified.
    pub notify_copies: u32,
    /// A payment not paid within this long expires at the provider, ms.
    pub expire_after_ms: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            partner_code: "TILLMESHSANDBOX".into(),
            access_key: "sandbox-access".into(),
            secret_key: "sandbox-secret".into(),
            capture_after_ms: 2_000,
            decline_suffix: Some(13),
            silent_suffix: Some(14),
            slow_suffix: Some(15),
            slow_ms: 15_000,
            notify_copies: 2,
            expire_after_ms: 30 * 60_000,
        }
    }
}

#[derive(Debug)]
struct Order {
    amount: i64,
    created: Instant,
    seq: u64,
    result_code: i32,
    trans_id: i64,
    request_id: String,
    order_info: String,
    ipn_url: String,
    paid_by_hand: bool,
    notified: bool,
    refunded: i64,
    /// A VNPay payment: its `vnp_CreateDate` (else a MoMo one).
    vnpay: Option<String>,
}

/// A notification to send: MoMo's JSON, or VNPay's query parameters.
enum Notice {
    Momo(Box<Notification>),
    Vnpay(BTreeMap<String, String>),
}

#[derive(Debug, Default)]
struct Book {
    orders: HashMap<String, Order>,
    refunds: HashMap<String, (i64, i64)>,
    next: u64,
}

/// The sandbox's state, shared by its handlers and its notifier.
#[derive(Debug, Clone)]
pub struct Sandbox {
    cfg: Arc<SandboxConfig>,
    book: Arc<Mutex<Book>>,
    http: reqwest::Client,
}

fn suffix(amount: i64, s: Option<i64>) -> bool {
    s.is_some_and(|s| amount.rem_euclid(100) == s)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn answer(code: i32, message: &str) -> Json<Value> {
    Json(json!({"resultCode": code, "message": message, "responseTime": now_ms()}))
}

impl Sandbox {
    /// A sandbox behaving as `cfg` says.
    pub fn new(cfg: SandboxConfig) -> Self {
        crate::crypto();
        Self {
            cfg: Arc::new(cfg),
            book: Arc::new(Mutex::new(Book::default())),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves every waiting payment on by the clock: captured, declined or expired.
    fn advance(&self, o: &mut Order, next_trans: &mut u64) {
        if o.result_code != momo::WAITING {
            return;
        }
        let age = o.created.elapsed().as_millis() as u64;
        let silent = suffix(o.amount, self.cfg.silent_suffix) && !o.paid_by_hand;
        if age >= self.cfg.expire_after_ms && !o.paid_by_hand {
            o.result_code = momo::EXPIRED;
        } else if o.paid_by_hand || (!silent && age >= self.cfg.capture_after_ms) {
            if suffix(o.amount, self.cfg.decline_suffix) && !o.paid_by_hand {
                o.result_code = momo::DECLINED;
            } else {
                *next_trans += 1;
                o.trans_id = 4_000_000_000 + *next_trans as i64;
                o.result_code = momo::OK;
            }
        }
    }

    async fn slow_for(&self, amount: i64) {
        if suffix(amount, self.cfg.slow_suffix) {
            tokio::time::sleep(Duration::from_millis(self.cfg.slow_ms)).await;
        }
    }

    fn notification(&self, order_id: &str, o: &Order) -> Notification {
        let mut n = Notification {
            partner_code: self.cfg.partner_code.clone(),
            order_id: order_id.to_string(),
            request_id: o.request_id.clone(),
            amount: o.amount,
            order_info: o.order_info.clone(),
            order_type: "momo_wallet".into(),
            trans_id: o.trans_id,
            result_code: o.result_code,
            message: if o.result_code == momo::OK {
                "Successful.".into()
            } else {
                "Transaction denied by user.".into()
            },
            pay_type: "qr".into(),
            response_time: now_ms(),
            extra_data: String::new(),
            signature: String::new(),
        };
        n.signature = hmac_sha256_hex(&self.cfg.secret_key, &n.raw(&self.cfg.access_key));
        n
    }

    /// One notifier round: every payment that ended and was not notified yet is posted to
    /// its `ipnUrl`, `notify_copies` times.
    pub async fn notify_round(&self) {
        let due: Vec<(String, Notice)> = {
            let mut book = self.book();
            let Book { orders, next, .. } = &mut *book;
            let mut due = Vec::new();
            for (id, o) in orders.iter_mut() {
                self.advance(o, next);
                if o.result_code != momo::WAITING && !o.notified && due.len() < NOTIFY_PER_TICK {
                    o.notified = true;
                    if !o.ipn_url.is_empty() && o.result_code != momo::EXPIRED {
                        let n = match o.vnpay {
                            Some(_) => Notice::Vnpay(self.vnpay_params(id, o)),
                            None => Notice::Momo(Box::new(self.notification(id, o))),
                        };
                        due.push((o.ipn_url.clone(), n));
                    }
                }
            }
            due
        };
        for (url, n) in due {
            for _ in 0..self.cfg.notify_copies {
                let (order, sent) = match &n {
                    Notice::Momo(n) => (
                        &n.order_id,
                        self.http.post(&url).json(n.as_ref()).send().await,
                    ),
                    Notice::Vnpay(p) => (
                        &p["vnp_TxnRef"],
                        self.http
                            .get(format!(
                                "{url}{}{}",
                                if url.contains('?') { '&' } else { '?' },
                                form_urlencoded::Serializer::new(String::new())
                                    .extend_pairs(p)
                                    .finish()
                            ))
                            .send()
                            .await,
                    ),
                };
                match sent {
                    Ok(r) => info!(%order, status = %r.status(), "notified"),
                    Err(e) => warn!(%order, cause = %e, "notification not delivered"),
                }
            }
        }
    }

    /// The sandbox's routes.
    pub fn router(self) -> Router {
        Router::new()
            .route(momo::CREATE_PATH, post(create))
            .route(momo::QUERY_PATH, post(query))
            .route(momo::REFUND_PATH, post(refund))
            .route("/paymentv2/vpcpay.html", get(vnpay_page))
            .route(crate::vnpay::API_PATH, post(vnpay_api))
            .route("/sandbox/orders", get(orders))
            .route("/sandbox/orders/{order_id}/pay", post(pay_by_hand))
            .with_state(self)
    }
}

async fn create(State(s): State<Sandbox>, Json(r): Json<momo::CreateRequest>) -> Json<Value> {
    s.slow_for(r.amount).await;
    if r.partner_code != s.cfg.partner_code
        || !verify_sha256_hex(&s.cfg.secret_key, &r.raw(&s.cfg.access_key), &r.signature)
    {
        return answer(momo::BAD_SIGNATURE, "Signature is invalid.");
    }
    if r.request_type != momo::CAPTURE_WALLET || r.order_id.is_empty() || r.order_id.len() > 50 {
        return answer(momo::BAD_FORMAT, "Bad format request.");
    }
    if !(momo::AMOUNT_MIN..=momo::AMOUNT_MAX).contains(&r.amount) {
        return answer(momo::BAD_AMOUNT, "Amount is out of range.");
    }
    let mut book = s.book();
    if book.orders.contains_key(&r.order_id) {
        return answer(momo::DUPLICATE_ORDER, "Duplicated orderId.");
    }
    if book.orders.len() >= ORDERS_MAX
        && let Some(oldest) = book
            .orders
            .iter()
            .min_by_key(|(_, o)| o.seq)
            .map(|(k, _)| k.clone())
    {
        book.orders.remove(&oldest);
    }
    book.next += 1;
    let seq = book.next;
    book.orders.insert(
        r.order_id.clone(),
        Order {
            amount: r.amount,
            created: Instant::now(),
            seq,
            result_code: momo::WAITING,
            trans_id: 0,
            request_id: r.request_id.clone(),
            order_info: r.order_info.clone(),
            ipn_url: r.ipn_url.clone(),
            paid_by_hand: false,
            notified: false,
            refunded: 0,
            vnpay: None,
        },
    );
    let a = momo::CreateResponse {
        partner_code: r.partner_code,
        order_id: r.order_id.clone(),
        request_id: r.request_id,
        amount: r.amount,
        response_time: now_ms(),
        message: "Successful.".into(),
        result_code: momo::OK,
        pay_url: format!("https://sandbox.invalid/pay/{}", r.order_id),
        qr_code_url: format!("2|99|sandbox|{}|{}|momo", r.order_id, r.amount),
    };
    Json(serde_json::to_value(a).unwrap_or_default())
}

async fn query(State(s): State<Sandbox>, Json(r): Json<momo::QueryRequest>) -> Json<Value> {
    let amount = s.book().orders.get(&r.order_id).map(|o| o.amount);
    if let Some(a) = amount {
        s.slow_for(a).await;
    }
    if r.partner_code != s.cfg.partner_code
        || !verify_sha256_hex(&s.cfg.secret_key, &r.raw(&s.cfg.access_key), &r.signature)
    {
        return answer(momo::BAD_SIGNATURE, "Signature is invalid.");
    }
    let mut book = s.book();
    let Book { orders, next, .. } = &mut *book;
    let Some(o) = orders.get_mut(&r.order_id) else {
        return Json(json!({
            "partnerCode": r.partner_code, "orderId": r.order_id, "requestId": r.request_id,
            "resultCode": momo::NO_ORDER, "message": "Order not found.", "responseTime": now_ms(),
        }));
    };
    s.advance(o, next);
    let a = momo::QueryResponse {
        partner_code: r.partner_code,
        order_id: r.order_id,
        request_id: r.request_id,
        extra_data: String::new(),
        amount: o.amount,
        trans_id: o.trans_id,
        pay_type: "qr".into(),
        result_code: o.result_code,
        message: if o.result_code == momo::OK {
            "Successful."
        } else {
            "Waiting or ended without payment."
        }
        .into(),
        response_time: now_ms(),
    };
    Json(serde_json::to_value(a).unwrap_or_default())
}

async fn refund(State(s): State<Sandbox>, Json(r): Json<momo::RefundRequest>) -> Json<Value> {
    if r.partner_code != s.cfg.partner_code
        || !verify_sha256_hex(&s.cfg.secret_key, &r.raw(&s.cfg.access_key), &r.signature)
    {
        return answer(momo::BAD_SIGNATURE, "Signature is invalid.");
    }
    let mut book = s.book();
    if book.refunds.contains_key(&r.order_id) {
        return answer(momo::DUPLICATE_ORDER, "Duplicated orderId.");
    }
    let Some(o) = book
        .orders
        .values_mut()
        .find(|o| o.trans_id == r.trans_id && o.result_code == momo::OK)
    else {
        return answer(momo::NO_ORDER, "Transaction not found.");
    };
    if r.amount <= 0 || r.amount > o.amount - o.refunded {
        return answer(momo::BAD_AMOUNT, "Refund amount is more than what is left.");
    }
    o.refunded += r.amount;
    book.next += 1;
    let refund_trans = 5_000_000_000 + book.next as i64;
    book.refunds
        .insert(r.order_id.clone(), (r.trans_id, r.amount));
    let a = momo::RefundResponse {
        partner_code: r.partner_code,
        order_id: r.order_id,
        request_id: r.request_id,
        amount: r.amount,
        trans_id: refund_trans,
        result_code: momo::OK,
        message: "Successful.".into(),
        response_time: now_ms(),
    };
    Json(serde_json::to_value(a).unwrap_or_default())
}

/// Every order: id, amount, resultCode, transId, refunded.
async fn orders(State(s): State<Sandbox>) -> Json<Value> {
    let book = s.book();
    let mut all: Vec<(&String, &Order)> = book.orders.iter().collect();
    all.sort_by_key(|(_, o)| o.seq);
    Json(Value::Array(
        all.into_iter()
            .map(|(id, o)| {
                json!({"orderId": id, "amount": o.amount, "resultCode": o.result_code,
                       "transId": o.trans_id, "refunded": o.refunded})
            })
            .collect(),
    ))
}

/// The customer pays now (a silent payment, or one the till already gave up on).
async fn pay_by_hand(State(s): State<Sandbox>, Path(order_id): Path<String>) -> Json<Value> {
    let mut book = s.book();
    let Book { orders, next, .. } = &mut *book;
    match orders.get_mut(&order_id) {
        Some(o) if o.result_code == momo::WAITING => {
            o.paid_by_hand = true;
            s.advance(o, next);
            answer(o.result_code, "paid")
        }
        Some(o) => answer(o.result_code, "already ended"),
        None => answer(momo::NO_ORDER, "Order not found."),
    }
}

/// Serves the sandbox on `listener` until the process ends, notifying every 100 ms.
pub async fn serve(listener: tokio::net::TcpListener, cfg: SandboxConfig) -> std::io::Result<()> {
    let s = Sandbox::new(cfg);
    let notifier = s.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            notifier.notify_round().await;
        }
    });
    axum::serve(listener, s.router()).await
}
