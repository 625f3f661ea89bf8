//! HQ administration: stores, store credentials, and master-data edits.

use super::*;
use crate::ledger::MasterEdit;
use tillmesh_cloud_proto::{MasterBody, MasterKind};
use tillmesh_pos::customer::CustomerPatch;

#[utoipa::path(get, path = "/api/v1/admin/stores", responses((status = 200, body = [StoreInfo])), security(("bearer" = [])))]
pub(super) async fn list_stores(
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

pub(super) fn yes() -> bool {
    true
}

#[utoipa::path(put, path = "/api/v1/admin/stores/{id}", request_body = StoreInput,
    responses((status = 200, body = StoreInfo), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn put_store(
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

/// HQ's "push now" for a store.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncAsked {
    /// The store.
    pub store_id: String,
    /// Its leader is told in the answer to its next till report (every 2 s by default).
    pub asked: bool,
}

#[utoipa::path(post, path = "/api/v1/admin/stores/{id}/sync",
    responses((status = 202, body = SyncAsked, description = "the store's leader pulls master data and uploads at once after its next till report"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "too many stores are already waiting")),
    security(("bearer" = [])))]
pub(super) async fn store_sync(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SyncAsked>), ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    if cloud.ledger.store(&id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_store",
            format!("store {id} is not registered"),
        ));
    }
    if !cloud.ask_sync(&id) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many stores are waiting to sync; try again in a few seconds",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncAsked {
            store_id: id,
            asked: true,
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/admin/stores/{id}/bundle",
    responses((status = 202, body = SyncAsked, description = "the store's leader uploads a support bundle after its next till report; fetch it with GET"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn ask_store_bundle(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SyncAsked>), ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    if cloud.ledger.store(&id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_store",
            format!("store {id} is not registered"),
        ));
    }
    cloud.ask_bundle(&id);
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncAsked {
            store_id: id,
            asked: true,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/admin/stores/{id}/bundle",
    responses((status = 200, content_type = "application/zstd", description = "the support bundle the store's leader uploaded (tar, zstd)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "none asked (`no_bundle`) or not arrived yet (`bundle_pending`)")),
    security(("bearer" = [])))]
pub(super) async fn get_store_bundle(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    credential(&cloud, &headers, Role::Admin)?;
    let Some(b) = cloud.bundle(&id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_bundle",
            format!("no support bundle was asked of store {id}: POST to ask for one"),
        ));
    };
    let Some((_, terminal, bytes)) = b.received else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "bundle_pending",
            format!(
                "store {id}'s leader has not uploaded the bundle yet (asked {} s ago{})",
                crate::now_ms().saturating_sub(b.asked_ms) / 1000,
                if b.handed_on {
                    ", and told"
                } else {
                    "; it has not reported since"
                }
            ),
        ));
    };
    let name = format!("attachment; filename=\"tillmesh-{id}-T{terminal}.tar.zst\"");
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                tillmesh_cloud_proto::tills::BUNDLE_CONTENT_TYPE.to_owned(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, name),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/admin/stores/{id}/token", request_body = TokenRequest,
    responses((status = 200, body = TokenAnswer), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn store_token(
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
    responses((status = 200, description = "{version}: the first stream's version after the change; with categories or customers, {ext_version} too: the second stream's"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn admin_master(
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
    let ext = edits.iter().any(|e| e.kind.is_ext());
    // HQ's edits of a customer are one source of the record among the stores' (see
    // `loyalty`): kept, then the record rebuilt.
    let (customers, edits): (Vec<MasterEdit>, Vec<MasterEdit>) = edits
        .into_iter()
        .partition(|e| e.kind == MasterKind::Customer);
    let version = match cloud.ledger.master_apply(edits).await {
        Err(LedgerError::Invalid(m)) => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", m));
        }
        other => other?,
    };
    if !ext {
        return Ok(Json(serde_json::json!({ "version": version })));
    }
    let now = crate::now_ms();
    for e in customers {
        let Some(Ok(MasterBody::Customer(c))) =
            e.body.as_deref().map(serde_json::from_str::<MasterBody>)
        else {
            continue;
        };
        let patch = CustomerPatch {
            name: c.customer.name,
            email: c.customer.email,
            phone: c.customer.phone,
            consent_marketing: c.customer.consent_marketing,
            consent_sms: c.customer.consent_sms,
        };
        let bytes = serde_json::to_vec(&patch).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })?;
        cloud.ledger.put_hq_customer(&e.key, now, bytes).await?;
    }
    crate::loyalty::rebuild(&*cloud.ledger).await?;
    // Categories and customers count their own versions (the second stream's).
    let ext_version = cloud.ledger.master_version_of(true).await?;
    Ok(Json(
        serde_json::json!({ "version": version, "ext_version": ext_version }),
    ))
}

#[utoipa::path(get, path = "/api/v1/admin/master", params(SinceQuery),
    responses((status = 200, description = "MasterChanges of every store, or of one with `store`")), security(("bearer" = [])))]
pub(super) async fn admin_master_list(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SinceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MasterChanges>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let q = query(q)?;
    Ok(Json(master_changes(&cloud, q.store.as_deref(), &q).await?))
}

/// Signing in to the dashboard.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// Lifetime of a dashboard sign-in.
pub const ADMIN_SESSION_MS: u64 = 8 * 3_600_000;

/// A hash checked for unknown users, so that user names do not show by timing.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| crate::auth::hash_password("no user has this password").unwrap_or_default())
        .clone()
}

#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses((status = 200, body = TokenAnswer), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn admin_login(
    State(cloud): State<AppState>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<TokenAnswer>, ApiError> {
    if req.user.len() > 64 || req.password.len() > 256 {
        return Err(unprocessable(
            "too_long",
            "a user name is at most 64 bytes and a password at most 256",
        ));
    }
    let hash = cloud.admins.get(&req.user).cloned();
    let known = hash.is_some();
    let ok = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(dummy_hash);
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(&hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(req.password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    if !(known && ok) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_login",
            "that user name and password do not match",
        ));
    }
    let (token, claims) = cloud
        .issue(None, Some(ADMIN_SESSION_MS))
        .await
        .map_err(|e| unprocessable("invalid", e.to_string()))?;
    Ok(Json(TokenAnswer {
        token,
        expires: claims.exp,
    }))
}
