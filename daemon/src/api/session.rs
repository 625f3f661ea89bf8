//! Signing in and out: a cashier's PIN for a bearer session.

use super::*;

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
    responses((status = 200, body = LoginView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 423, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn login(
    State(till): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<LoginView> {
    // Wrong PINs slow down their sender's address, not the cashier's account.
    let asker = peer.ip().to_string();
    Ok(Json(till.login(&req.employee_id, &req.pin, &asker).await?))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", responses((status = 204)), security(("bearer" = [])))]
pub(super) async fn logout(
    State(till): State<AppState>,
    auth: Auth,
) -> Result<StatusCode, ApiError> {
    till.logout(&auth.token, &auth.session).await?;
    Ok(StatusCode::NO_CONTENT)
}
