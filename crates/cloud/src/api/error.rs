//! Errors as every endpoint answers them: a status and JSON `{error, message}`; JSON bodies
//! whose rejection is such an error.

use super::*;

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
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
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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
            LedgerError::TermJump { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "term_jump"),
            LedgerError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            LedgerError::Db(m) => {
                tracing::error!(error = %m, "database error");
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

pub(super) fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

pub(super) fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

pub(super) fn too_large(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
}

/// A JSON body whose rejection is a JSON 400 (or 413).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Every body is a JSON object: serde would also read a struct from an array.
        match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(v)) if !v.is_object() => Err(bad(
                "malformed_body",
                "the body must be a JSON object".to_string(),
            )),
            Ok(Json(v)) => serde_json::from_value(v)
                .map(JsonBody)
                .map_err(|e| bad("malformed_body", e.to_string())),
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
