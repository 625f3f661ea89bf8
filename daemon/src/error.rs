//! The API error: an HTTP status, a stable machine code and a human sentence, rendered as
//! `{"error": code, "message": text}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tillmesh_pos::cart::CartError;
use tillmesh_pos::cashier::AuthError;
use tillmesh_pos::catalog::CatalogError;
use tillmesh_pos::customer::CustomerError;
use tillmesh_pos::inventory::InventoryError;
use tillmesh_pos::payment::PaymentError;
use tillmesh_pos::transaction::TransitionError;
use tillmesh_store::StoreError;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`unknown_barcode`, `invalid_transition`, ...).
    pub code: &'static str,
    /// Human sentence saying what is wrong and what to do.
    pub message: String,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine code.
    pub error: String,
    /// Human text.
    pub message: String,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 422.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::UnknownBarcode(_) => {
                ApiError::not_found("unknown_barcode", e.to_string())
            }
            CatalogError::UnknownSku(_) => ApiError::not_found("unknown_sku", e.to_string()),
            CatalogError::InvalidBarcode(..) => {
                ApiError::bad_request("invalid_barcode", e.to_string())
            }
            CatalogError::Inactive(_) => ApiError::conflict("inactive_item", e.to_string()),
            CatalogError::DuplicateBarcode(..) | CatalogError::InvalidItem(..) => {
                ApiError::unprocessable("invalid_item", e.to_string())
            }
        }
    }
}

impl From<CartError> for ApiError {
    fn from(e: CartError) -> Self {
        match e {
            CartError::Catalog(c) => c.into(),
            CartError::DuplicateScan { .. } => ApiError::conflict("duplicate_scan", e.to_string()),
            CartError::UnknownLine(_) => ApiError::not_found("unknown_line", e.to_string()),
            CartError::BadQuantity(_) => ApiError::unprocessable("bad_quantity", e.to_string()),
            CartError::TooManyLines => ApiError::unprocessable("too_many_lines", e.to_string()),
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        ApiError::conflict("invalid_transition", e.to_string())
    }
}

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::WrongAmount { .. } => {
                ApiError::unprocessable("wrong_amount", e.to_string())
            }
            PaymentError::Unknown(_) => ApiError::not_found("unknown_payment", e.to_string()),
            PaymentError::NotPending(_) => ApiError::conflict("payment_not_pending", e.to_string()),
            PaymentError::TooMany => ApiError::unprocessable("too_many_payments", e.to_string()),
        }
    }
}

impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> Self {
        ApiError::unprocessable("bad_adjustment", e.to_string())
    }
}

impl From<CustomerError> for ApiError {
    fn from(e: CustomerError) -> Self {
        ApiError::unprocessable("bad_customer", e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadCredentials { .. } => ApiError::unauthorized(e.to_string()),
            AuthError::Locked { .. } => {
                ApiError::new(StatusCode::LOCKED, "account_locked", e.to_string())
            }
            AuthError::PinFormat => ApiError::bad_request("pin_format", e.to_string()),
            AuthError::BadHash => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "bad_hash", e.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
        } else {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
        }
    }
}
