//! The till's HTTP API (axum): routes, authentication, JSON errors, OpenAPI and metrics.

use crate::error::{ApiError, ErrorBody};
use crate::till::*;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tillmesh_cloud_proto::openapi::{BearerAuth, ErrorResponses};
use tillmesh_pos::customer::CustomerPatch;
use utoipa::OpenApi;

mod giftcard;
mod office;
mod sale;
mod session;
mod vision;

use giftcard::*;
use office::*;
use sale::*;
use session::*;
use vision::*;

/// Largest request body accepted.
pub const BODY_BYTES_MAX: usize = 256 * 1024;

/// Largest image upload read (one byte over the vision limit, so that the limit itself
/// answers with its JSON error).
pub const IMAGE_BYTES_MAX: usize = tillmesh_vision::frame::MAX_BYTES + 1;

/// Shared state of the handlers.
pub type AppState = Arc<Till>;

/// The router.
pub fn router(till: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .route("/", get(ui_page))
        .route("/ui/{file}", get(ui_asset))
        .route("/api/v1/status", get(status))
        .route("/api/v1/quarantine", get(quarantine))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/catalog/items", get(lookup))
        .route("/api/v1/transactions", post(create_txn).get(history))
        .route("/api/v1/catalog/search", get(search))
        .route("/api/v1/catalog/favourites", get(favourites))
        .route("/api/v1/customers", get(customers_by_phone))
        .route("/api/v1/categories", get(categories))
        .route("/api/v1/cashiers", get(cashiers))
        .route("/api/v1/cashiers/{id}/unlock", post(unlock))
        .route(
            "/api/v1/transactions/{id}/refund/decline",
            post(decline_refund),
        )
        .route("/api/v1/transactions/{id}", get(get_txn))
        .route("/api/v1/transactions/{id}/items", post(add_item))
        .route(
            "/api/v1/transactions/{id}/items/{line}",
            patch(set_quantity).delete(remove_line),
        )
        .route("/api/v1/transactions/{id}/totals", get(get_txn))
        .route("/api/v1/transactions/{id}/customer", post(attach_customer))
        .route("/api/v1/transactions/open", get(open_txns))
        .route("/api/v1/transactions/{id}/hold", post(hold))
        .route("/api/v1/transactions/{id}/recall", post(recall))
        .route("/api/v1/transactions/{id}/checkout", post(checkout))
        .route("/api/v1/transactions/{id}/reopen", post(reopen))
        .route("/api/v1/transactions/{id}/payments", post(add_payment))
        .route("/api/v1/transactions/{id}/finalize", post(finalize))
        .route("/api/v1/transactions/{id}/void", post(void))
        .route("/api/v1/transactions/{id}/refund", post(request_refund))
        .route(
            "/api/v1/transactions/{id}/refund/approve",
            post(approve_refund),
        )
        .route("/api/v1/transactions/{id}/return", post(return_items))
        .route("/api/v1/giftcards", post(activate_gift_card))
        .route("/api/v1/giftcards/{card}", get(gift_card))
        .route("/api/v1/giftcards/{card}/top-up", post(top_up_gift_card))
        .route("/api/v1/coupons", post(issue_coupon))
        .route("/api/v1/coupons/{code}", get(coupon))
        .route(
            "/api/v1/customers/{id}/credit",
            get(store_credit).post(credit_customer),
        )
        .route("/api/v1/payments/late", get(late_captures))
        .route(
            "/api/v1/payments/late/{id}/refund",
            post(refund_late_capture),
        )
        .route("/api/v1/payments/notify/momo", post(momo_notification))
        .route("/api/v1/payments/notify/vnpay", get(vnpay_notification))
        .route("/api/v1/payments/{id}", get(payment_status))
        .route("/api/v1/payments/{id}/cancel", post(cancel_payment))
        .route("/api/v1/payments/{id}/qr.svg", get(payment_qr))
        .route("/api/v1/receipts/{id}", get(receipt))
        .route("/api/v1/reports/end-of-day", get(end_of_day))
        .route("/api/v1/reports/cashiers", get(cashier_report))
        .route("/api/v1/reports/inventory", get(inventory_report))
        .route("/api/v1/cash/drawer", get(drawer))
        .route("/api/v1/cash/shift/open", post(open_shift))
        .route("/api/v1/cash/pay-in", post(pay_in))
        .route("/api/v1/cash/pay-out", post(pay_out))
        .route("/api/v1/cash/no-sale", post(no_sale))
        .route("/api/v1/cash/shift/close", post(close_shift))
        .route("/api/v1/inventory/adjust", post(adjust))
        .route("/api/v1/inventory/receive", post(receive))
        .route("/api/v1/inventory/count", post(count))
        .route("/api/v1/inventory/{sku}/movements", get(movements))
        .route("/api/v1/prices/override", post(override_price))
        .route("/api/v1/offline-override", post(offline_override))
        .route("/api/v1/security/revocations", post(publish_revocations))
        .route("/api/v1/enrolment/waiting", get(waiting_tills))
        .route("/api/v1/support/bundle", get(support_bundle))
        .route("/api/v1/sync/now", post(sync_now))
        .route("/api/v1/enrolment/approve", post(approve_till))
        .route("/api/v1/enrolment/redeem", post(redeem_token))
        .route(
            "/api/v1/customers/{id}",
            get(get_customer).put(upsert_customer),
        )
        .route(
            "/api/v1/vision/recognize",
            post(recognize).layer(DefaultBodyLimit::max(IMAGE_BYTES_MAX)),
        )
        .route(
            "/api/v1/vision/skus/{sku}/photos",
            post(enroll).layer(DefaultBodyLimit::max(IMAGE_BYTES_MAX)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            till.metrics().http.clone(),
            tillmesh_cloud::metrics::HttpMetrics::track,
        ))
        .fallback(|| async { ApiError::not_found("no_route", "no such endpoint; see /docs") })
        .layer(axum::middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(till)
}

/// Every error answer is `{"error", "message"}`: axum's own rejections (a query or path that
/// does not parse, a method not allowed) come as plain text or empty, and are rewritten here.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "no_route",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "refused",
    };
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = if text.trim().is_empty() {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    } else {
        text
    };
    let mut out = ApiError::new(status, code, message).into_response();
    // Keep what axum said beside the body (Allow on a 405).
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// A JSON body whose rejection is a JSON 400 (or 413) naming the problem.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Every body is a JSON object: serde would also read a struct from an array.
        match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(v)) if !v.is_object() => Err(ApiError::bad_request(
                "malformed_body",
                "the body must be a JSON object",
            )),
            Ok(Json(v)) => serde_json::from_value(v)
                .map(Body)
                .map_err(|e| ApiError::bad_request("malformed_body", e.to_string())),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("request bodies are limited to {BODY_BYTES_MAX} bytes"),
                ))
            }
            Err(e) => Err(ApiError::bad_request("malformed_body", e.body_text())),
        }
    }
}

/// An authenticated cashier session (from `Authorization: Bearer <token>`).
#[derive(Debug)]
pub struct Auth {
    token: String,
    session: Session,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        till: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "log in first: send 'Authorization: Bearer <token>' from /api/v1/auth/login",
                )
            })?
            .trim()
            .to_string();
        let session = till.session(&token)?;
        Ok(Auth { token, session })
    }
}

pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;

pub(super) fn line_no(s: &str) -> Result<u32, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request("bad_line", format!("line {s:?} is not a line number")))
}

#[utoipa::path(get, path = "/health", responses((status = 200, description = "alive")))]
async fn health(State(till): State<AppState>) -> Json<serde_json::Value> {
    let s = till.status();
    Json(
        serde_json::json!({ "status": "ok", "terminal_id": s.terminal_id, "store_id": s.store_id }),
    )
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(till): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let _ = till.status(); // refreshes the gauges read at scrape time
    till.metrics().expose(&headers)
}

async fn openapi() -> Json<serde_json::Value> {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    link_keys(&mut doc, false);
    Json(doc)
}

/// utoipa 5 writes a link's fields in snake case (`operation_id`); OpenAPI spells them
/// `operationId`, `operationRef` and `requestBody`.
fn link_keys(v: &mut serde_json::Value, in_links: bool) {
    match v {
        serde_json::Value::Object(m) => {
            if in_links {
                for (from, to) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(x) = m.remove(from) {
                        m.insert(to.to_string(), x);
                    }
                }
            }
            for (k, x) in m.iter_mut() {
                // Inside `links`, each value is one link (its keys renamed, nothing deeper).
                let links = k == "links";
                if links && let serde_json::Value::Object(each) = x {
                    for l in each.values_mut() {
                        link_keys(l, true);
                    }
                } else if !in_links {
                    link_keys(x, false);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| link_keys(x, in_links)),
        _ => {}
    }
}

async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

/// The cashier UI's page: assets are compiled into the binary, so the till serves its UI
/// with no network beyond itself.
async fn ui_page() -> Response {
    ui_response(
        "text/html; charset=utf-8",
        include_str!("../../ui/index.html"),
    )
}

/// The cashier UI's script and style sheet.
async fn ui_asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => ui_response(
            "text/javascript; charset=utf-8",
            include_str!("../../ui/app.js"),
        ),
        "app.css" => ui_response("text/css; charset=utf-8", include_str!("../../ui/app.css")),
        _ => ApiError::not_found("no_route", "no such UI file").into_response(),
    }
}

fn ui_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; object-src 'none'; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = StatusView)))]
async fn status(State(till): State<AppState>) -> Json<StatusView> {
    Json(till.status())
}

/// A peer's events that failed validation, held in quarantine (kept, relayed, never applied).
#[utoipa::path(get, path = "/api/v1/quarantine", responses((status = 200, body = [tillmesh_store::QuarantineRow])))]
async fn quarantine(State(till): State<AppState>) -> ApiResult<Vec<tillmesh_store::QuarantineRow>> {
    Ok(Json(till.quarantine().await?))
}

/// Links from every answer that is a transaction (`TxnView`) to the operations on it, so
/// generated clients and stateful API fuzzers can follow a sale: open, add, check out, pay,
/// finalise, void, return, print.
struct SaleLinks;

/// Operations answering a `TxnView`.
const TXN_ANSWERS: &[&str] = &[
    "create_txn",
    "get_txn",
    "add_item",
    "set_quantity",
    "remove_line",
    "attach_customer",
    "hold",
    "recall",
    "checkout",
    "reopen",
    "add_payment",
    "finalize",
    "void",
    "return_items",
];

/// Operations on a transaction by its id (`{id}`), and whether they also name a line.
const TXN_OPERATIONS: &[(&str, bool)] = &[
    ("get_txn", false),
    ("add_item", false),
    ("set_quantity", true),
    ("remove_line", true),
    ("attach_customer", false),
    ("hold", false),
    ("recall", false),
    ("checkout", false),
    ("reopen", false),
    ("add_payment", false),
    ("finalize", false),
    ("void", false),
    ("request_refund", false),
    ("return_items", false),
    ("receipt", false),
];

impl utoipa::Modify for SaleLinks {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        for op in tillmesh_cloud_proto::openapi::operations_mut(api) {
            let Some(id) = op.operation_id.as_deref() else {
                continue;
            };
            if !TXN_ANSWERS.contains(&id) {
                continue;
            }
            for (status, response) in op.responses.responses.iter_mut() {
                let utoipa::openapi::RefOr::T(r) = response else {
                    continue;
                };
                if !(status == "200" || status == "201") {
                    continue;
                }
                for (target, line) in TXN_OPERATIONS {
                    let mut link = LinkBuilder::new()
                        .operation_id(*target)
                        .parameter("id", "$response.body#/txn_id");
                    if *line {
                        link = link.parameter("line", "$response.body#/lines/0/line_no");
                    }
                    r.links.insert((*target).to_string(), link.build().into());
                }
            }
        }
    }
}

/// Every till operation's error statuses in the document.
const TILL_ERROR_DOCS: ErrorResponses = ErrorResponses(TILL_ERRORS);

/// The error statuses every till operation can answer (`daemon/src/error.rs`).
const TILL_ERRORS: &[(&str, &str)] = &[
    ("400", "Malformed request: body, query or path"),
    (
        "403",
        "Not allowed for this role, or a manager's approval is needed",
    ),
    ("404", "What it names does not exist"),
    ("409", "Conflicts with the state the till is in"),
    ("413", "Body too large"),
    ("415", "Body of a type this operation does not take"),
    ("422", "Well-formed, but breaks a rule"),
    ("423", "Account locked after wrong PINs"),
    ("429", "Too many attempts: wait (Retry-After) and try again"),
    ("503", "Busy or stopping: try again"),
    ("507", "The till's disk is full: nothing was changed"),
];

/// The OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "tillmesh till API", description = "Checkout, payments, inventory, customers and reports of one till."),
    modifiers(&BearerAuth, &TILL_ERROR_DOCS, &SaleLinks),
    paths(
        health, metrics, status, quarantine, login, logout, lookup, create_txn, get_txn, add_item, set_quantity, remove_line,
        attach_customer, open_txns, hold, recall, checkout, reopen, add_payment, finalize, void, request_refund, approve_refund, return_items,
        payment_status, payment_qr, cancel_payment, receipt, end_of_day, history, search, favourites, customers_by_phone, categories, decline_refund, cashiers, unlock, drawer, open_shift, pay_in, pay_out, no_sale, close_shift, cashier_report, inventory_report, adjust,
        receive, count, movements, override_price, offline_override, publish_revocations, support_bundle, sync_now, waiting_tills, approve_till, redeem_token, late_captures, refund_late_capture, momo_notification, vnpay_notification, activate_gift_card, top_up_gift_card, gift_card, issue_coupon, coupon, store_credit, credit_customer, upsert_customer, get_customer,
        recognize, enroll
    )
)]
pub struct ApiDoc;
