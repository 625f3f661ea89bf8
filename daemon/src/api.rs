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
use tillmesh_pos::customer::CustomerPatch;
use utoipa::OpenApi;

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
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/catalog/items", get(lookup))
        .route("/api/v1/transactions", post(create_txn))
        .route("/api/v1/transactions/{id}", get(get_txn))
        .route("/api/v1/transactions/{id}/items", post(add_item))
        .route(
            "/api/v1/transactions/{id}/items/{line}",
            patch(set_quantity).delete(remove_line),
        )
        .route("/api/v1/transactions/{id}/totals", get(get_txn))
        .route("/api/v1/transactions/{id}/customer", post(attach_customer))
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
        .route("/api/v1/payments/{id}", get(payment_status))
        .route("/api/v1/payments/{id}/cancel", post(cancel_payment))
        .route("/api/v1/payments/{id}/qr.svg", get(payment_qr))
        .route("/api/v1/receipts/{id}", get(receipt))
        .route("/api/v1/reports/end-of-day", get(end_of_day))
        .route("/api/v1/reports/cashiers", get(cashier_report))
        .route("/api/v1/reports/inventory", get(inventory_report))
        .route("/api/v1/inventory/adjust", post(adjust))
        .route("/api/v1/inventory/receive", post(receive))
        .route("/api/v1/inventory/count", post(count))
        .route("/api/v1/inventory/{sku}/movements", get(movements))
        .route("/api/v1/prices/override", post(override_price))
        .route("/api/v1/offline-override", post(offline_override))
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
        .fallback(|| async { ApiError::not_found("no_route", "no such endpoint; see /docs") })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(till)
}

/// A JSON body whose rejection is a JSON 400 (or 413) naming the problem.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
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

type ApiResult<T> = Result<Json<T>, ApiError>;

fn line_no(s: &str) -> Result<u32, ApiError> {
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
async fn metrics(State(till): State<AppState>) -> Response {
    let _ = till.status(); // refreshes the gauges read at scrape time
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        till.metrics().render(),
    )
        .into_response()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

/// The cashier UI's page: assets are compiled into the binary, so the till serves its UI
/// with no network beyond itself.
async fn ui_page() -> Response {
    ui_response("text/html; charset=utf-8", include_str!("../ui/index.html"))
}

/// The cashier UI's script and style sheet.
async fn ui_asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => ui_response(
            "text/javascript; charset=utf-8",
            include_str!("../ui/app.js"),
        ),
        "app.css" => ui_response("text/css; charset=utf-8", include_str!("../ui/app.css")),
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

/// Login request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Employee id.
    pub employee_id: String,
    /// PIN.
    pub pin: String,
}

#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses((status = 200, body = LoginView), (status = 401, body = ErrorBody), (status = 423, body = ErrorBody)))]
async fn login(
    State(till): State<AppState>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<LoginView> {
    Ok(Json(till.login(&req.employee_id, &req.pin).await?))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", responses((status = 204)), security(("bearer" = [])))]
async fn logout(State(till): State<AppState>, auth: Auth) -> Result<StatusCode, ApiError> {
    till.logout(&auth.token, &auth.session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Catalog query: by barcode or by SKU.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LookupQuery {
    /// Barcode (EAN-13, UPC-A or EAN-8).
    pub barcode: Option<String>,
    /// SKU.
    pub sku: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/catalog/items", params(LookupQuery),
    responses((status = 200, body = ItemView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn lookup(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<LookupQuery>,
) -> ApiResult<ItemView> {
    match (q.barcode, q.sku) {
        (Some(b), _) => Ok(Json(till.lookup(&b)?)),
        (None, Some(s)) => Ok(Json(till.item(&s)?)),
        (None, None) => Err(ApiError::bad_request(
            "missing_query",
            "give ?barcode= or ?sku=",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/transactions", responses((status = 201, body = TxnView)), security(("bearer" = [])))]
async fn create_txn(
    State(till): State<AppState>,
    auth: Auth,
) -> Result<(StatusCode, Json<TxnView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(till.create_txn(&auth.session).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/transactions/{id}", responses((status = 200, body = TxnView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_txn(
    State(till): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.get_txn(&id).await?))
}

/// Add an item by barcode.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemRequest {
    /// Barcode scanned.
    pub barcode: String,
    /// Units (default 1).
    pub quantity: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/items", request_body = AddItemRequest,
    responses((status = 200, body = TxnView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn add_item(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<AddItemRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.add_item(&auth.session, &id, &req.barcode, req.quantity.unwrap_or(1))
            .await?,
    ))
}

/// Change a line's quantity.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityRequest {
    /// New quantity.
    pub quantity: i64,
}

#[utoipa::path(patch, path = "/api/v1/transactions/{id}/items/{line}", request_body = QuantityRequest,
    responses((status = 200, body = TxnView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn set_quantity(
    State(till): State<AppState>,
    auth: Auth,
    Path((id, line)): Path<(String, String)>,
    Body(req): Body<QuantityRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.set_quantity(&auth.session, &id, line_no(&line)?, req.quantity)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/transactions/{id}/items/{line}", responses((status = 200, body = TxnView)), security(("bearer" = [])))]
async fn remove_line(
    State(till): State<AppState>,
    auth: Auth,
    Path((id, line)): Path<(String, String)>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.remove_line(&auth.session, &id, line_no(&line)?)
            .await?,
    ))
}

/// Attach a loyalty customer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRef {
    /// Customer id.
    pub customer_id: String,
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/customer", request_body = CustomerRef, responses((status = 200, body = TxnView)), security(("bearer" = [])))]
async fn attach_customer(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<CustomerRef>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.attach_customer(&auth.session, &id, &req.customer_id)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/checkout", responses((status = 200, body = TxnView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn checkout(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.checkout(&auth.session, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/reopen", responses((status = 200, body = TxnView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn reopen(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.reopen(&auth.session, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/payments", request_body = PaymentRequest,
    responses((status = 200, body = TxnView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn add_payment(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<PaymentRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(till.add_payment(&auth.session, &id, &req).await?))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/finalize",
    responses((status = 200, body = TxnView, description = "durable on disk"), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn finalize(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.finalize(&auth.session, &id).await?))
}

/// Void or refund request; `approval` carries a manager's PIN on a cashier's session.
#[derive(Debug, Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Manager approval.
    pub approval: Option<Approval>,
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/void", request_body = ReasonRequest,
    responses((status = 200, body = TxnView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn void(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.void(&auth.session, &id, &req.reason, req.approval.as_ref())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/refund", request_body = ReasonRequest,
    responses((status = 200, body = TxnView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn request_refund(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.request_refund(&auth.session, &id, &req.reason).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/refund/approve", request_body = ReasonRequest,
    responses((status = 200, body = TxnView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn approve_refund(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.approve_refund(&auth.session, &id, req.approval.as_ref())
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/payments/{id}", responses((status = 200, body = tillmesh_pos::payment::Payment)), security(("bearer" = [])))]
async fn payment_status(
    State(till): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<tillmesh_pos::payment::Payment> {
    Ok(Json(till.payment_status(&id)?))
}

#[utoipa::path(get, path = "/api/v1/payments/{id}/qr.svg",
    responses((status = 200, content_type = "image/svg+xml", description = "The QR code the customer scans"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn payment_qr(
    State(till): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = till.payment_status(&id)?;
    let pending = matches!(p.status, tillmesh_pos::payment::PaymentStatus::Pending);
    let Some(payload) = p.qr_payload.filter(|_| pending) else {
        return Err(ApiError::conflict(
            "no_qr",
            format!("payment {id} is not a QR payment waiting for the customer"),
        ));
    };
    let code = qrcode::QrCode::new(payload.as_bytes()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "qr_failed",
            format!("the QR code could not be drawn: {e}"),
        )
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .build();
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/payments/{id}/cancel", responses((status = 200, body = tillmesh_pos::payment::Payment)), security(("bearer" = [])))]
async fn cancel_payment(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<tillmesh_pos::payment::Payment> {
    Ok(Json(till.cancel_payment(&auth.session, &id).await?))
}

/// Receipt options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReceiptQuery {
    /// `json` (default) or `text`.
    pub format: Option<String>,
    /// Mark as a reprint (audited).
    #[serde(default)]
    pub reprint: bool,
}

#[utoipa::path(get, path = "/api/v1/receipts/{id}", params(ReceiptQuery),
    responses((status = 200, body = tillmesh_pos::receipt::Receipt)), security(("bearer" = [])))]
async fn receipt(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ReceiptQuery>,
) -> Result<Response, ApiError> {
    let r = till.receipt(&auth.session, &id, q.reprint).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(r).into_response()),
        Some("text") => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            r.to_text(),
        )
            .into_response()),
        Some(f) => Err(ApiError::bad_request(
            "bad_format",
            format!("format {f:?} is not json or text"),
        )),
    }
}

/// Report date.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DateQuery {
    /// Local date `YYYY-MM-DD` (default today).
    pub date: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/reports/end-of-day", params(DateQuery),
    responses((status = 200, body = tillmesh_pos::report::EndOfDay)), security(("bearer" = [])))]
async fn end_of_day(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<DateQuery>,
) -> ApiResult<tillmesh_pos::report::EndOfDay> {
    Ok(Json(till.end_of_day(q.date.as_deref()).await?))
}

#[utoipa::path(get, path = "/api/v1/reports/cashiers", params(DateQuery),
    responses((status = 200, body = Vec<tillmesh_pos::report::CashierPerformance>)), security(("bearer" = [])))]
async fn cashier_report(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<DateQuery>,
) -> ApiResult<Vec<tillmesh_pos::report::CashierPerformance>> {
    Ok(Json(till.cashier_report(q.date.as_deref()).await?))
}

/// Inventory snapshot options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct InventoryQuery {
    /// Only SKUs at or below their low-stock threshold.
    #[serde(default)]
    pub low_only: bool,
}

#[utoipa::path(get, path = "/api/v1/reports/inventory", params(InventoryQuery),
    responses((status = 200, body = Vec<tillmesh_pos::report::StockLine>)), security(("bearer" = [])))]
async fn inventory_report(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<InventoryQuery>,
) -> Json<Vec<tillmesh_pos::report::StockLine>> {
    Json(till.inventory_report(q.low_only))
}

#[utoipa::path(post, path = "/api/v1/inventory/adjust", request_body = AdjustRequest,
    responses((status = 200, body = ItemView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn adjust(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<AdjustRequest>,
) -> ApiResult<ItemView> {
    Ok(Json(till.adjust(&auth.session, &req).await?))
}

#[utoipa::path(post, path = "/api/v1/inventory/receive", request_body = ReceiveRequest,
    responses((status = 200, body = Vec<ItemView>), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn receive(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<ReceiveRequest>,
) -> ApiResult<Vec<ItemView>> {
    Ok(Json(till.receive(&auth.session, &req).await?))
}

#[utoipa::path(post, path = "/api/v1/inventory/count", request_body = CountRequest,
    responses((status = 200, body = Vec<tillmesh_pos::inventory::CountOutcome>)), security(("bearer" = [])))]
async fn count(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<CountRequest>,
) -> ApiResult<Vec<tillmesh_pos::inventory::CountOutcome>> {
    Ok(Json(till.count(&auth.session, &req).await?))
}

#[utoipa::path(get, path = "/api/v1/inventory/{sku}/movements",
    responses((status = 200, body = Vec<tillmesh_store::StockMovement>)), security(("bearer" = [])))]
async fn movements(
    State(till): State<AppState>,
    _auth: Auth,
    Path(sku): Path<String>,
) -> ApiResult<Vec<tillmesh_store::StockMovement>> {
    Ok(Json(till.movements(&sku).await?))
}

#[utoipa::path(post, path = "/api/v1/prices/override", request_body = PriceOverrideRequest,
    responses((status = 200, body = ItemView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn override_price(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<PriceOverrideRequest>,
) -> ApiResult<ItemView> {
    Ok(Json(till.override_price(&auth.session, &req).await?))
}

/// A manager's approval to sell past the offline limit.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct OverrideRequest {
    /// A manager's id and PIN, when the session's own role cannot approve.
    #[serde(default)]
    pub approval: Option<crate::till::Approval>,
}

#[utoipa::path(post, path = "/api/v1/offline-override", request_body = OverrideRequest,
    responses((status = 200, body = Option<crate::till::CloudView>), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "no cloud link configured")),
    security(("bearer" = [])))]
async fn offline_override(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<OverrideRequest>,
) -> ApiResult<Option<crate::till::CloudView>> {
    Ok(Json(
        till.offline_override(&auth.session, req.approval.as_ref())
            .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/customers/{id}", request_body = CustomerPatch,
    responses((status = 200, body = CustomerView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn upsert_customer(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<CustomerPatch>,
) -> ApiResult<CustomerView> {
    Ok(Json(till.upsert_customer(&auth.session, &id, &req).await?))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", responses((status = 200, body = CustomerView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_customer(
    State(till): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<CustomerView> {
    Ok(Json(till.customer(&id)?))
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// An image upload as bytes; a body over the limit or unreadable is a JSON error.
fn image_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "image_too_large",
                format!(
                    "the image is larger than {} bytes",
                    tillmesh_vision::frame::MAX_BYTES
                ),
            )
        } else {
            ApiError::bad_request("bad_body", e.body_text())
        }
    })
}

/// `?k=`: how many proposals.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct RecognizeQuery {
    /// Proposals answered (1 to 20; the till's `vision.top_k` by default).
    k: Option<usize>,
}

#[utoipa::path(post, path = "/api/v1/vision/recognize",
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "A camera frame, JPEG or PNG"),
    params(RecognizeQuery),
    responses((status = 200, body = RecognitionView), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn recognize(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<RecognizeQuery>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<RecognitionView> {
    Ok(Json(till.recognize(image_body(body)?, q.k).await?))
}

#[utoipa::path(post, path = "/api/v1/vision/skus/{sku}/photos",
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "A photo of the product, JPEG or PNG"),
    params(("sku" = String, Path, description = "Catalog SKU")),
    responses((status = 200, body = EnrolView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn enroll(
    State(till): State<AppState>,
    auth: Auth,
    Path(sku): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<EnrolView> {
    Ok(Json(
        till.enroll(&auth.session, &sku, image_body(body)?).await?,
    ))
}

/// The OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "tillmesh till API", description = "Checkout, payments, inventory, customers and reports of one till."),
    modifiers(&BearerAuth),
    paths(
        health, metrics, status, login, logout, lookup, create_txn, get_txn, add_item, set_quantity, remove_line,
        attach_customer, checkout, reopen, add_payment, finalize, void, request_refund, approve_refund,
        payment_status, payment_qr, cancel_payment, receipt, end_of_day, cashier_report, inventory_report, adjust,
        receive, count, movements, override_price, offline_override, upsert_customer, get_customer,
        recognize, enroll
    )
)]
pub struct ApiDoc;
