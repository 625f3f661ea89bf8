//! The HTTP API of the cloud: store uploads and master-data pulls (store credentials), HQ
//! administration and reports (admin credentials), health, metrics, the OpenAPI document and
//! the dashboard page. Every error is JSON `{error, message}`.

mod admin;
mod enrol;
mod error;
mod reconcile;
mod reports;
mod sync;

pub use admin::*;
pub use enrol::*;
pub use error::*;
pub use reconcile::*;
pub use reports::*;
pub use sync::*;

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
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tillmesh_cloud_proto::openapi::{BearerAuth, ErrorResponses};
use tillmesh_cloud_proto::{
    BATCH_BYTES_MAX, BATCH_EVENTS_MAX, BINARY_CONTENT_TYPE, Batch, IngestAck, MASTER_CHANGES_MAX,
    MasterBody, MasterChanges, MasterKind,
};
use tillmesh_pos::calendar::{civil_from_days, days_from_civil};
use utoipa::OpenApi;

/// Largest admin request body.
pub const ADMIN_BODY_MAX: usize = 16 << 20;
/// Longest report range, days.
pub const REPORT_DAYS_MAX: i64 = 3_700;

type AppState = Arc<Cloud>;

/// A store's credential; a refused one that HQ signed (expired) is noted against its store
/// for the fleet view.
fn store_credential(cloud: &Cloud, headers: &HeaderMap) -> Result<Claims, ApiError> {
    credential(cloud, headers, Role::Store).inspect_err(|_| {
        if let Some(c) = bearer(headers).and_then(|t| cloud.keys.signed_claims(t))
            && c.role == Role::Store
        {
            cloud.note_refused(&c.sub);
        }
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn credential(cloud: &Cloud, headers: &HeaderMap, role: Role) -> Result<Claims, ApiError> {
    let token = bearer(headers).ok_or(AuthError::Missing)?;
    let claims = cloud.keys.verify(token)?;
    if claims.role != role {
        return Err(AuthError::Forbidden.into());
    }
    if claims.role == Role::Admin && claims.iat_ms < cloud.admin_valid_after_ms {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "credential_revoked",
            "admin credentials issued before the configured cut-off are revoked: sign in again",
        ));
    }
    // Admin credentials are short-lived: one issued for longer than a day (as older builds
    // allowed, up to 400 days) is refused.
    if claims.role == Role::Admin
        && claims
            .exp
            .saturating_mul(1000)
            .saturating_sub(claims.iat_ms)
            > ADMIN_CREDENTIAL_MS_MAX
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "credential_too_long",
            "admin credentials last at most a day: sign in again or issue a new one",
        ));
    }
    Ok(claims)
}

/// Longest an admin credential may be valid (a day, and a minute of rounding).
pub const ADMIN_CREDENTIAL_MS_MAX: u64 = 86_400_000 + 60_000;

/// The router.
pub fn router(cloud: Arc<Cloud>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/dashboard.js", get(dashboard_js))
        .route("/dashboard.css", get(dashboard_css))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/api/v1/sync/upload", post(upload))
        .route("/api/v1/sync/master", get(sync_master))
        .route("/api/v1/sync/watermarks", get(sync_watermarks))
        .route("/api/v1/sync/tills", post(report_tills))
        .route("/api/v1/sync/bundle", post(upload_bundle))
        .route("/api/v1/sync/credential", post(renew_credential))
        .route("/api/v1/sync/enrolments", post(enrol))
        .route("/api/v1/auth/login", post(admin_login))
        .route("/api/v1/admin/stores", get(list_stores))
        .route("/api/v1/admin/stores/{id}", put(put_store))
        .route("/api/v1/admin/stores/{id}/token", post(store_token))
        .route("/api/v1/admin/stores/{id}/sync", post(store_sync))
        .route(
            "/api/v1/admin/stores/{id}/bundle",
            post(ask_store_bundle).get(get_store_bundle),
        )
        .route("/api/v1/admin/stores/{id}/ca", put(put_store_ca))
        .route(
            "/api/v1/admin/master",
            post(admin_master).get(admin_master_list),
        )
        .route("/api/v1/reports/sales", get(report_sales))
        .route("/api/v1/reports/payments", get(report_payments))
        .route("/api/v1/reports/top-skus", get(report_top))
        .route("/api/v1/reports/inventory", get(report_inventory))
        .route("/api/v1/reports/stored-value", get(report_stored_value))
        .route("/api/v1/reports/fleet", get(report_fleet))
        .route("/api/v1/admin/reconciliation", post(reconcile_statement))
        .route_layer(axum::middleware::from_fn_with_state(
            cloud.metrics.http.clone(),
            crate::metrics::HttpMetrics::track,
        ))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such endpoint; see /openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see /openapi.json",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(ADMIN_BODY_MAX))
        .layer(axum::middleware::map_response(batch_versions))
        .with_state(cloud)
}

/// Every answer names the batch formats this cloud reads, so a store's uplink can send the
/// newest both speak (and say which side to upgrade when they do not meet).
async fn batch_versions(mut r: axum::response::Response) -> axum::response::Response {
    use tillmesh_cloud_proto::{BATCH_VERSION, BATCH_VERSION_MIN, BATCH_VERSIONS_HEADER};
    if let Ok(v) =
        axum::http::HeaderValue::from_str(&format!("{BATCH_VERSION_MIN}-{BATCH_VERSION}"))
    {
        r.headers_mut().insert(BATCH_VERSIONS_HEADER, v);
    }
    r
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
        report_tills,
        renew_credential,
        enrol,
        admin_login,
        list_stores,
        put_store,
        store_token,
        store_sync,
        ask_store_bundle,
        get_store_bundle,
        upload_bundle,
        put_store_ca,
        admin_master,
        admin_master_list,
        report_sales,
        report_payments,
        report_top,
        report_inventory,
        report_stored_value,
        report_fleet,
        reconcile_statement
    ),
    modifiers(&BearerAuth, &CLOUD_ERROR_DOCS),
    components(schemas(
        ErrorBody,
        IngestAck,
        StoreInfo,
        StoreInput,
        TokenRequest,
        TokenAnswer,
        StoreCaInput,
        EnrolmentInput,
        tillmesh_cloud_proto::EnrolmentGrant,
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
        crate::reconcile::Reconciliation,
        crate::reconcile::Exception,
        crate::reconcile::ExceptionKind,
        DayRow,
        PaymentRow
    ))
)]
struct ApiDoc;

/// Every cloud operation's error statuses in the document.
const CLOUD_ERROR_DOCS: ErrorResponses = ErrorResponses(CLOUD_ERRORS);

/// The error statuses every cloud operation can answer.
const CLOUD_ERRORS: &[(&str, &str)] = &[
    ("400", "Malformed request: body, query or path"),
    ("403", "This credential does not allow that"),
    ("404", "What it names does not exist"),
    (
        "409",
        "Conflicts with the store's state (a deposed leader's term)",
    ),
    ("413", "Body too large"),
    ("415", "Body of a type this operation does not take"),
    ("422", "Well-formed, but breaks a rule"),
    ("503", "The database is unavailable: try again"),
];

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The dashboard's policy: its own files and its own API only; no inline script or style,
/// no framing, no plugins.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn dashboard_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

async fn dashboard() -> Response {
    dashboard_file(
        "text/html; charset=utf-8",
        include_str!("../dashboard.html"),
    )
}

async fn dashboard_js() -> Response {
    dashboard_file(
        "text/javascript; charset=utf-8",
        include_str!("../dashboard.js"),
    )
}

async fn dashboard_css() -> Response {
    dashboard_file("text/css; charset=utf-8", include_str!("../dashboard.css"))
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

/// The metrics, as they stand: a scrape runs no query (the fleet gauges are refreshed in
/// the background every `metrics::FLEET_REFRESH_MS`).
async fn metrics(State(cloud): State<AppState>, headers: HeaderMap) -> Response {
    cloud.metrics.expose(&headers)
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
