//! The HTTP API of the cloud: store uploads and master-data pulls (store credentials), HQ
//! administration and reports (admin credentials), health, metrics, the OpenAPI document and
//! the dashboard page. Every error is JSON `{error, message}`.

use crate::auth::{AuthError, Claims, Role};
use crate::ledger::{
    DayRow, FleetRow, IngestRequest, LedgerError, PaymentRow, Row, SkuRow, StockRow, StoreInfo,
};
use crate::master::{EditsInput, validate};
use crate::{Cloud, now_ms};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tillmesh_cloud_proto::{
    BATCH_BYTES_MAX, BATCH_EVENTS_MAX, BINARY_CONTENT_TYPE, Batch, IngestAck, MASTER_CHANGES_MAX,
    MasterBody, MasterChanges, MasterKind, decode_batch,
};
use tillmesh_pos::calendar::{civil_from_days, days_from_civil};
use utoipa::OpenApi;

/// Largest admin request body.
pub const ADMIN_BODY_MAX: usize = 16 << 20;
/// Longest report range, days.
pub const REPORT_DAYS_MAX: i64 = 3_700;

type AppState = Arc<Cloud>;

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine code.
    pub error: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.code.to_owned(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let (status, code) = match e {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, "missing_credential"),
            AuthError::Expired => (StatusCode::UNAUTHORIZED, "expired_credential"),
            AuthError::Invalid(_) => (StatusCode::UNAUTHORIZED, "invalid_credential"),
            AuthError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        let (status, code) = match &e {
            LedgerError::UnknownStore(_) => (StatusCode::UNAUTHORIZED, "unknown_store"),
            LedgerError::Revoked(_) => (StatusCode::UNAUTHORIZED, "revoked_credential"),
            LedgerError::StaleTerm { .. } => (StatusCode::CONFLICT, "stale_term"),
            LedgerError::TermConflict { .. } => (StatusCode::CONFLICT, "term_conflict"),
            LedgerError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            LedgerError::Db(m) => {
                tracing::error!(error = %m, "database error");
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn too_large(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
}

/// A JSON body whose rejection is a JSON 400 (or 413).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(too_large(format!(
                    "request bodies are limited to {ADMIN_BODY_MAX} bytes"
                )))
            }
            Err(e) => Err(bad("malformed_body", e.body_text())),
        }
    }
}

fn credential(cloud: &Cloud, headers: &HeaderMap, role: Role) -> Result<Claims, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AuthError::Missing)?;
    let claims = cloud.keys.verify(token.trim())?;
    if claims.role != role {
        return Err(AuthError::Forbidden.into());
    }
    Ok(claims)
}

/// The router.
pub fn router(cloud: Arc<Cloud>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/api/v1/sync/upload", post(upload))
        .route("/api/v1/sync/master", get(sync_master))
        .route("/api/v1/sync/watermarks", get(sync_watermarks))
        .route("/api/v1/admin/stores", get(list_stores))
        .route("/api/v1/admin/stores/{id}", put(put_store))
        .route("/api/v1/admin/stores/{id}/token", post(store_token))
        .route(
            "/api/v1/admin/master",
            post(admin_master).get(admin_master_list),
        )
        .route("/api/v1/reports/sales", get(report_sales))
        .route("/api/v1/reports/payments", get(report_payments))
        .route("/api/v1/reports/top-skus", get(report_top))
        .route("/api/v1/reports/inventory", get(report_inventory))
        .route("/api/v1/reports/fleet", get(report_fleet))
        .layer(axum::extract::DefaultBodyLimit::max(ADMIN_BODY_MAX))
        .with_state(cloud)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tillmesh cloud",
        description = "Store uploads, master data and HQ reports."
    ),
    paths(
        health,
        upload,
        sync_master,
        sync_watermarks,
        list_stores,
        put_store,
        store_token,
        admin_master,
        admin_master_list,
        report_sales,
        report_payments,
        report_top,
        report_inventory,
        report_fleet
    ),
    components(schemas(
        ErrorBody,
        IngestAck,
        StoreInfo,
        StoreInput,
        TokenRequest,
        TokenAnswer,
        EditsInput,
        SalesReport,
        PeriodRow,
        PaymentsReport,
        PaymentTotal,
        TopReport,
        SkuRow,
        InventoryReport,
        StockView,
        StockRow,
        FleetReport,
        FleetRow,
        DayRow,
        PaymentRow
    ))
)]
struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

#[utoipa::path(get, path = "/health", responses((status = 200, description = "database reachable"), (status = 503, body = ErrorBody)))]
async fn health(State(cloud): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    cloud.ledger.ping().await?;
    Ok(Json(serde_json::json!({
        "status": "ok",
        "database": cloud.ledger.backend(),
        "master_version": cloud.ledger.master_version().await?,
    })))
}

async fn metrics(State(cloud): State<AppState>) -> Response {
    if let Ok(rows) = cloud.ledger.fleet().await {
        cloud.metrics.fleet(&rows, now_ms());
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        cloud.metrics.render(),
    )
        .into_response()
}

/// Checks a batch against the credential's store and turns its events into ledger rows.
pub fn prepare(store: &str, batch: &Batch) -> Result<Vec<Row>, ApiError> {
    if batch.events.len() > BATCH_EVENTS_MAX {
        return Err(too_large(format!(
            "the batch holds {} events; at most {BATCH_EVENTS_MAX} per batch",
            batch.events.len()
        )));
    }
    if batch.term == 0 || batch.leader == 0 {
        return Err(unprocessable(
            "invalid_batch",
            "a batch needs the uploader's Raft term and leader id (both at least 1)",
        ));
    }
    if batch.tills.len() > 1_024 {
        return Err(unprocessable(
            "invalid_batch",
            "at most 1024 tills per store",
        ));
    }
    let mut rows = Vec::with_capacity(batch.events.len());
    for (i, se) in batch.events.iter().enumerate() {
        if se.store != store {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_store",
                format!(
                    "event {i} belongs to store {:?} but the credential is for store {store}; nothing in this batch was stored",
                    se.store
                ),
            ));
        }
        let e = &se.event;
        e.check().map_err(|m| {
            unprocessable(
                "invalid_event",
                format!(
                    "event {i} ({}/{}): {m}; nothing in this batch was stored",
                    e.origin, e.seq
                ),
            )
        })?;
        let body = tillmesh_pos::codec::encode(&e.body)
            .map_err(|m| unprocessable("invalid_event", format!("event {i}: {m}")))?;
        rows.push(Row {
            origin: e.origin.0,
            seq: e.seq,
            kind: e.body.kind(),
            hlc_ms: e.hlc.wall_ms,
            body,
        });
    }
    Ok(rows)
}

#[utoipa::path(post, path = "/api/v1/sync/upload",
    request_body(content = String, description = "a Batch, as JSON or as application/x-tillmesh-batch (bincode)"),
    responses((status = 200, body = IngestAck, description = "durable"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "stale_term or term_conflict"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn upload(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestAck>, ApiError> {
    let result = upload_inner(&cloud, &headers, body).await;
    match &result {
        Ok(_) => cloud.metrics.batch("accepted"),
        Err(e) => cloud.metrics.batch(e.code),
    }
    result
}

/// Inflates a gzip body, refusing one that inflates past the batch limit.
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ApiError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(BATCH_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            bad(
                "malformed_batch",
                format!("the gzip body does not inflate: {e}"),
            )
        })?;
    if out.len() > BATCH_BYTES_MAX {
        return Err(too_large(format!(
            "the batch inflates past {BATCH_BYTES_MAX} bytes"
        )));
    }
    Ok(out)
}

async fn upload_inner(
    cloud: &Cloud,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<IngestAck>, ApiError> {
    let claims = credential(cloud, headers, Role::Store)?;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > BATCH_BYTES_MAX
    {
        return Err(too_large(format!(
            "the batch is {len} bytes; at most {BATCH_BYTES_MAX} per batch"
        )));
    }
    let bytes = axum::body::to_bytes(body, BATCH_BYTES_MAX)
        .await
        .map_err(|_| too_large(format!("at most {BATCH_BYTES_MAX} bytes per batch")))?;
    let t0 = std::time::Instant::now();
    let bytes = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None | Some("identity") => bytes.to_vec(),
        Some("gzip") => gunzip(&bytes)?,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("content encoding {other:?} is not accepted; send gzip or none"),
            ));
        }
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let batch: Batch = if ctype.starts_with(BINARY_CONTENT_TYPE) {
        decode_batch(&bytes).map_err(|e| {
            bad(
                "malformed_batch",
                format!("the binary batch does not decode: {e}"),
            )
        })?
    } else if ctype.starts_with("application/json") {
        serde_json::from_slice(&bytes).map_err(|e| {
            bad(
                "malformed_batch",
                format!("the JSON batch does not parse: {e}"),
            )
        })?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the batch as application/json or {BINARY_CONTENT_TYPE}"),
        ));
    };
    let rows = prepare(&claims.sub, &batch)?;
    let n = rows.len();
    let outcome = cloud
        .ledger
        .ingest(IngestRequest {
            store: claims.sub.clone(),
            credential_issued_ms: claims.iat_ms,
            term: batch.term,
            leader: batch.leader,
            backlog: batch.backlog,
            tills: batch.tills,
            received_ms: now_ms(),
            rows,
        })
        .await?;
    let master_version = outcome.master_version;
    cloud
        .metrics
        .batch_latency
        .observe(t0.elapsed().as_secs_f64());
    let label = crate::metrics::StoreLabel {
        store: claims.sub.clone(),
    };
    cloud
        .metrics
        .events_received
        .get_or_create(&label)
        .inc_by(outcome.accepted);
    cloud
        .metrics
        .events_duplicate
        .get_or_create(&label)
        .inc_by(outcome.duplicate);
    cloud
        .metrics
        .batches_by_leader
        .get_or_create(&crate::metrics::UploaderLabel {
            store: claims.sub.clone(),
            leader: batch.leader,
        })
        .inc();
    if outcome.accepted > 0 {
        cloud.kick();
    }
    tracing::debug!(store = %claims.sub, events = n, accepted = outcome.accepted, term = batch.term, "batch stored");
    Ok(Json(IngestAck {
        accepted: outcome.accepted,
        duplicate: outcome.duplicate,
        watermarks: outcome.watermarks,
        term: outcome.term,
        master_version,
        master_stale: master_version > batch.master_version,
    }))
}

/// `since` and `limit` of a master-data pull.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SinceQuery {
    /// Version the caller has (0 for everything).
    #[serde(default)]
    pub since: u64,
    /// Most changes to return (at most 2000).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Admin only: one store's view.
    #[serde(default)]
    pub store: Option<String>,
}

fn query<T: DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| bad("bad_query", e.body_text()))
}

async fn master_changes(
    cloud: &Cloud,
    store: Option<&str>,
    q: &SinceQuery,
) -> Result<MasterChanges, ApiError> {
    let limit = q.limit.unwrap_or(MASTER_CHANGES_MAX);
    if !(1..=MASTER_CHANGES_MAX).contains(&limit) {
        return Err(bad(
            "bad_limit",
            format!("limit must be 1 to {MASTER_CHANGES_MAX}"),
        ));
    }
    let current = cloud.ledger.master_version().await?;
    let rows = cloud.ledger.master_since(store, q.since, limit).await?;
    Ok(crate::master::changes(rows, current, limit)?)
}

#[utoipa::path(get, path = "/api/v1/sync/master", params(SinceQuery),
    responses((status = 200, description = "MasterChanges: records created, updated or deleted since `since`"), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn sync_master(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SinceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MasterChanges>, ApiError> {
    let claims = credential(&cloud, &headers, Role::Store)?;
    let q = query(q)?;
    if q.store.is_some() {
        return Err(bad(
            "bad_query",
            "a store credential pulls its own store's data; drop `store`",
        ));
    }
    known_store(&cloud, &claims).await?;
    Ok(Json(master_changes(&cloud, Some(&claims.sub), &q).await?))
}

async fn known_store(cloud: &Cloud, claims: &Claims) -> Result<(), ApiError> {
    match cloud.ledger.store(&claims.sub).await? {
        Some(s) if s.enabled && claims.iat_ms >= s.tokens_valid_after_ms => Ok(()),
        Some(s) if s.enabled => Err(LedgerError::Revoked(claims.sub.clone()).into()),
        _ => Err(LedgerError::UnknownStore(claims.sub.clone()).into()),
    }
}

#[utoipa::path(get, path = "/api/v1/sync/watermarks",
    responses((status = 200, body = [tillmesh_cloud_proto::Watermark]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn sync_watermarks(
    State(cloud): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<tillmesh_cloud_proto::Watermark>>, ApiError> {
    let claims = credential(&cloud, &headers, Role::Store)?;
    known_store(&cloud, &claims).await?;
    Ok(Json(cloud.ledger.watermarks(&claims.sub).await?))
}

#[utoipa::path(get, path = "/api/v1/admin/stores", responses((status = 200, body = [StoreInfo])), security(("bearer" = [])))]
async fn list_stores(
    State(cloud): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<StoreInfo>>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    Ok(Json(cloud.ledger.stores().await?))
}

/// A store as HQ registers it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreInput {
    /// Display name.
    pub name: String,
    /// Local time offset from UTC, minutes (-720 to 840).
    #[serde(default)]
    pub utc_offset_minutes: i32,
    /// Whether the store may upload.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(put, path = "/api/v1/admin/stores/{id}", request_body = StoreInput,
    responses((status = 200, body = StoreInfo), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn put_store(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<StoreInput>,
) -> Result<Json<StoreInfo>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    crate::check_store_id(&id).map_err(|m| unprocessable("invalid_store", m))?;
    if !(-720..=840).contains(&input.utc_offset_minutes) || input.name.trim().is_empty() {
        return Err(unprocessable(
            "invalid_store",
            "a store needs a name and a UTC offset between -720 and 840 minutes",
        ));
    }
    let valid_after = cloud
        .ledger
        .store(&id)
        .await?
        .map_or(0, |s| s.tokens_valid_after_ms);
    let info = StoreInfo {
        store_id: id,
        name: input.name,
        utc_offset_minutes: input.utc_offset_minutes,
        enabled: input.enabled,
        tokens_valid_after_ms: valid_after,
    };
    cloud.ledger.put_store(info.clone()).await?;
    Ok(Json(info))
}

/// Request for a store credential.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime in days (default from the config, at most 400).
    #[serde(default)]
    pub days: Option<u32>,
    /// Refuse every credential of this store issued before this one.
    #[serde(default)]
    pub revoke_older: bool,
}

/// A new credential.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenAnswer {
    /// The bearer token.
    pub token: String,
    /// Expiry, seconds since the epoch.
    pub expires: u64,
}

#[utoipa::path(post, path = "/api/v1/admin/stores/{id}/token", request_body = TokenRequest,
    responses((status = 200, body = TokenAnswer), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn store_token(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<TokenRequest>,
) -> Result<Json<TokenAnswer>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let Some(mut store) = cloud.ledger.store(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_store",
            format!("store {id} is not registered"),
        ));
    };
    if req.days.is_some_and(|d| !(1..=400).contains(&d)) {
        return Err(unprocessable("invalid_days", "days must be 1 to 400"));
    }
    let (token, claims) = cloud
        .issue(Some(&id), req.days.map(|d| u64::from(d) * 86_400_000))
        .await
        .map_err(|e| unprocessable("invalid", e.to_string()))?;
    if req.revoke_older {
        store.tokens_valid_after_ms = claims.iat_ms;
        cloud.ledger.put_store(store).await?;
    }
    Ok(Json(TokenAnswer {
        token,
        expires: claims.exp,
    }))
}

#[utoipa::path(post, path = "/api/v1/admin/master", request_body = EditsInput,
    responses((status = 200, description = "{version}: the version of the last change"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn admin_master(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<EditsInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    if input.changes.is_empty() || input.changes.len() > crate::master::EDITS_MAX {
        return Err(unprocessable(
            "invalid_changes",
            format!("send 1 to {} changes", crate::master::EDITS_MAX),
        ));
    }
    let mut edits = Vec::with_capacity(input.changes.len());
    for (i, c) in input.changes.into_iter().enumerate() {
        edits.push(
            validate(c).map_err(|m| unprocessable("invalid_change", format!("change {i}: {m}")))?,
        );
    }
    let version = match cloud.ledger.master_apply(edits).await {
        Err(LedgerError::Invalid(m)) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", m));
        }
        other => other?,
    };
    Ok(Json(serde_json::json!({ "version": version })))
}

#[utoipa::path(get, path = "/api/v1/admin/master", params(SinceQuery),
    responses((status = 200, description = "MasterChanges of every store, or of one with `store`")), security(("bearer" = [])))]
async fn admin_master_list(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SinceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MasterChanges>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let q = query(q)?;
    Ok(Json(master_changes(&cloud, q.store.as_deref(), &q).await?))
}

/// Range of a report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// One store; all stores when absent.
    #[serde(default)]
    pub store: Option<String>,
    /// First local date, `YYYY-MM-DD` (default: 29 days before `to`).
    #[serde(default)]
    pub from: Option<String>,
    /// Last local date, inclusive (default: today, UTC).
    #[serde(default)]
    pub to: Option<String>,
    /// `day`, `week` (ISO, from Monday) or `month` (sales only).
    #[serde(default)]
    pub group: Option<String>,
    /// Rows of a top list (default 10, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

fn parse_date(s: &str) -> Result<i64, ApiError> {
    let bad_date = || bad("bad_date", format!("{s:?} is not a date: use YYYY-MM-DD"));
    let mut it = s.splitn(3, '-');
    let (y, m, d) = (it.next(), it.next(), it.next());
    let (Some(y), Some(m), Some(d)) = (y, m, d) else {
        return Err(bad_date());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad_date())?,
        m.parse().map_err(|_| bad_date())?,
        d.parse().map_err(|_| bad_date())?,
    );
    let day = days_from_civil(y, m, d);
    if !(1..=12).contains(&m) || civil_from_days(day) != (y, m, d) {
        return Err(bad_date());
    }
    Ok(day)
}

/// A local day number as `YYYY-MM-DD`.
pub fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

struct Range {
    store: Option<String>,
    from: i64,
    to: i64,
}

fn range(q: &RangeQuery) -> Result<Range, ApiError> {
    let to = match &q.to {
        Some(s) => parse_date(s)?,
        None => (now_ms() / 86_400_000) as i64,
    };
    let from = match &q.from {
        Some(s) => parse_date(s)?,
        None => to - 29,
    };
    if from > to || to - from >= REPORT_DAYS_MAX {
        return Err(bad(
            "bad_range",
            format!(
                "`from` must not be after `to`, and a range spans at most {REPORT_DAYS_MAX} days"
            ),
        ));
    }
    if let Some(s) = &q.store {
        crate::check_store_id(s).map_err(|m| bad("bad_store", m))?;
    }
    Ok(Range {
        store: q.store.clone(),
        from,
        to,
    })
}

/// One period of the sales report.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct PeriodRow {
    /// Store.
    pub store: String,
    /// `YYYY-MM-DD` (day; the Monday of a week) or `YYYY-MM` (month).
    pub period: String,
    /// Transactions.
    pub transactions: u64,
    /// Items.
    pub items: u64,
    /// Before discounts.
    pub subtotal: i64,
    /// Discounts.
    pub discount: i64,
    /// Tax.
    pub tax: i64,
    /// Gross sales (totals of every sale recorded).
    pub gross: i64,
    /// Voided after payment: count.
    pub voided: u64,
    /// ... amount.
    pub voided_amount: i64,
    /// Refunded: count.
    pub refunded: u64,
    /// ... amount.
    pub refunded_amount: i64,
    /// Gross minus voided minus refunded.
    pub net: i64,
}

impl PeriodRow {
    fn add(&mut self, d: &DayRow) {
        self.transactions += d.transactions;
        self.items += d.items;
        self.subtotal += d.subtotal;
        self.discount += d.discount;
        self.tax += d.tax;
        self.gross += d.total;
        self.voided += d.voided;
        self.voided_amount += d.voided_amount;
        self.refunded += d.refunded;
        self.refunded_amount += d.refunded_amount;
        self.net += d.total - d.voided_amount - d.refunded_amount;
    }
}

/// The sales report.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SalesReport {
    /// First date.
    pub from: String,
    /// Last date.
    pub to: String,
    /// `day`, `week` or `month`.
    pub group: String,
    /// Per store and period.
    pub rows: Vec<PeriodRow>,
    /// Sum of the rows.
    pub totals: PeriodRow,
}

fn period(day: i64, group: &str) -> String {
    match group {
        "week" => date(day - (day + 3).rem_euclid(7)),
        "month" => date(day)[..7].to_owned(),
        _ => date(day),
    }
}

#[utoipa::path(get, path = "/api/v1/reports/sales", params(RangeQuery),
    responses((status = 200, body = SalesReport), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
async fn report_sales(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SalesReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let q = query(q)?;
    let r = range(&q)?;
    let group = q.group.clone().unwrap_or_else(|| "day".into());
    if !["day", "week", "month"].contains(&group.as_str()) {
        return Err(bad("bad_group", "group is day, week or month"));
    }
    cloud.catch_up().await?;
    let days = cloud
        .ledger
        .sales_by_day(r.store.as_deref(), r.from, r.to)
        .await?;
    let mut rows: Vec<PeriodRow> = Vec::new();
    let mut totals = PeriodRow {
        store: r.store.clone().unwrap_or_else(|| "*".into()),
        period: "total".into(),
        ..Default::default()
    };
    for d in &days {
        let p = period(d.day, &group);
        match rows.last_mut() {
            Some(last) if last.store == d.store && last.period == p => last.add(d),
            _ => {
                let mut row = PeriodRow {
                    store: d.store.clone(),
                    period: p,
                    ..Default::default()
                };
                row.add(d);
                rows.push(row);
            }
        }
        totals.add(d);
    }
    Ok(Json(SalesReport {
        from: date(r.from),
        to: date(r.to),
        group,
        rows,
        totals,
    }))
}

/// Payments per store, method and provider over the range.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct PaymentTotal {
    /// Store.
    pub store: String,
    /// `cash` / `qr`.
    pub method: String,
    /// Provider (`""` for cash).
    pub provider: String,
    /// Payments.
    pub count: u64,
    /// Captured.
    pub amount: i64,
    /// Captured on sales later voided or refunded.
    pub reversed_amount: i64,
    /// Captured minus reversed: what the provider should settle.
    pub net: i64,
}

/// The payment reconciliation report.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentsReport {
    /// First date.
    pub from: String,
    /// Last date.
    pub to: String,
    /// Per store, method and provider.
    pub rows: Vec<PaymentTotal>,
}

#[utoipa::path(get, path = "/api/v1/reports/payments", params(RangeQuery),
    responses((status = 200, body = PaymentsReport)), security(("bearer" = [])))]
async fn report_payments(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PaymentsReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let r = range(&query(q)?)?;
    cloud.catch_up().await?;
    let days = cloud
        .ledger
        .payments_by_day(r.store.as_deref(), r.from, r.to)
        .await?;
    let mut map: std::collections::BTreeMap<(String, String, String), PaymentTotal> =
        Default::default();
    for p in days {
        let t = map
            .entry((p.store.clone(), p.method.clone(), p.provider.clone()))
            .or_insert_with(|| PaymentTotal {
                store: p.store.clone(),
                method: p.method.clone(),
                provider: p.provider.clone(),
                ..Default::default()
            });
        t.count += p.count;
        t.amount += p.amount;
        t.reversed_amount += p.reversed_amount;
        t.net += p.amount - p.reversed_amount;
    }
    Ok(Json(PaymentsReport {
        from: date(r.from),
        to: date(r.to),
        rows: map.into_values().collect(),
    }))
}

/// Best sellers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopReport {
    /// First date.
    pub from: String,
    /// Last date.
    pub to: String,
    /// SKUs by units sold.
    pub rows: Vec<SkuRow>,
}

#[utoipa::path(get, path = "/api/v1/reports/top-skus", params(RangeQuery),
    responses((status = 200, body = TopReport)), security(("bearer" = [])))]
async fn report_top(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TopReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let q = query(q)?;
    let r = range(&q)?;
    let limit = q.limit.unwrap_or(10);
    if !(1..=1000).contains(&limit) {
        return Err(bad("bad_limit", "limit must be 1 to 1000"));
    }
    cloud.catch_up().await?;
    let rows = cloud
        .ledger
        .top_skus(r.store.as_deref(), r.from, r.to, limit)
        .await?;
    Ok(Json(TopReport {
        from: date(r.from),
        to: date(r.to),
        rows,
    }))
}

/// Stock of one store.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InventoryReport {
    /// Store.
    pub store: String,
    /// Per SKU (sum of every till's PN-counter entries), with its catalog name and
    /// low-stock threshold (items are chain-wide master data).
    pub rows: Vec<StockView>,
    /// SKUs at or below their low-stock threshold.
    pub low: usize,
}

/// One SKU's stock in a store.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockView {
    /// SKU.
    pub sku: String,
    /// Catalog name (empty when HQ has no record of the SKU).
    pub name: String,
    /// Units on hand.
    pub on_hand: i64,
    /// Reorder point from the catalog (0: none).
    pub low_stock_threshold: i64,
    /// At or below the threshold (with a threshold set), or below zero.
    pub low: bool,
}

/// Most catalog records read to name an inventory report's SKUs.
const CATALOG_READ_MAX: usize = 200_000;

/// Which store.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StoreQuery {
    /// Store id.
    pub store: String,
}

#[utoipa::path(get, path = "/api/v1/reports/inventory", params(StoreQuery),
    responses((status = 200, body = InventoryReport), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn report_inventory(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<StoreQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InventoryReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let q = query(q)?;
    if cloud.ledger.store(&q.store).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_store",
            format!("store {} is not registered", q.store),
        ));
    }
    cloud.catch_up().await?;
    let stock = cloud.ledger.inventory(&q.store).await?;
    // Name and reorder point of every current catalog item (deleted ones have no body).
    let mut items = std::collections::HashMap::<String, (String, i64)>::new();
    for r in cloud
        .ledger
        .master_since(Some(&q.store), 0, CATALOG_READ_MAX)
        .await?
        .into_iter()
        .filter(|r| r.kind == MasterKind::Item)
    {
        let Some(json) = r.body.as_deref() else {
            continue;
        };
        if let MasterBody::Item(i) = serde_json::from_str::<MasterBody>(json)
            .map_err(|e| LedgerError::Db(format!("stored {} {}: {e}", r.kind.as_str(), r.key)))?
        {
            items.insert(i.sku, (i.name, i.low_stock_threshold));
        }
    }
    let rows: Vec<StockView> = stock
        .into_iter()
        .map(|r| {
            let (name, threshold) = items.get(&r.sku).cloned().unwrap_or_default();
            StockView {
                low: r.on_hand < 0 || (threshold > 0 && r.on_hand <= threshold),
                sku: r.sku,
                name,
                on_hand: r.on_hand,
                low_stock_threshold: threshold,
            }
        })
        .collect();
    Ok(Json(InventoryReport {
        store: q.store,
        low: rows.iter().filter(|r| r.low).count(),
        rows,
    }))
}

/// Fleet status.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetReport {
    /// When this was read (ms).
    pub now_ms: u64,
    /// Per store.
    pub stores: Vec<FleetRow>,
}

#[utoipa::path(get, path = "/api/v1/reports/fleet",
    responses((status = 200, body = FleetReport)), security(("bearer" = [])))]
async fn report_fleet(
    State(cloud): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<FleetReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let stores = cloud.ledger.fleet().await?;
    let now = now_ms();
    cloud.metrics.fleet(&stores, now);
    Ok(Json(FleetReport {
        now_ms: now,
        stores,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_periods() {
        let d = parse_date("2026-11-22").unwrap();
        assert_eq!(date(d), "2026-11-22");
        assert_eq!(period(d, "week"), "2026-11-16"); // a Sunday belongs to the week of Monday the 16th
        assert_eq!(period(d, "month"), "2026-11");
        assert!(parse_date("2026-02-30").is_err());
        assert!(parse_date("22/11/2026").is_err());
    }
}
