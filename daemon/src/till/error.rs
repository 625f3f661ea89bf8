//! What a till operation answers when it does not succeed. The API maps each to an HTTP
//! status and `{"error","message"}` (`crate::error`); the till knows nothing of HTTP.

use tillmesh_pos::cart::CartError;
use tillmesh_pos::cashier::AuthError;
use tillmesh_pos::catalog::CatalogError;
use tillmesh_pos::customer::CustomerError;
use tillmesh_pos::inventory::InventoryError;
use tillmesh_pos::payment::{PaymentError, SettleError};
use tillmesh_pos::transaction::TransitionError;
use tillmesh_store::StoreError;
use tillmesh_vision::VisionError;

/// Which kind of failure a [`TillError`] is: what the caller must change (the API maps each
/// to one HTTP status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed.
    BadRequest,
    /// No valid session.
    Unauthenticated,
    /// The session's role (or the store's state) does not allow it.
    Forbidden,
    /// What it names does not exist.
    NotFound,
    /// It conflicts with the state the till is in.
    Conflict,
    /// Well-formed, but breaks a rule.
    Unprocessable,
    /// The till cannot take it now; try again.
    Unavailable,
    /// The account is locked after failed PINs.
    Locked,
    /// Too many attempts: wait (the answer says how long) and try again.
    TooManyRequests,
    /// The body is too large.
    TooLarge,
    /// The body is not of a type this operation takes.
    UnsupportedMedia,
    /// The till's disk is full: nothing was changed; it sells again once space is freed.
    InsufficientStorage,
    /// The till failed (not the caller's fault).
    Internal,
}

/// A till operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum TillError {
    /// A catalog lookup failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A basket change was refused.
    #[error(transparent)]
    Cart(#[from] CartError),
    /// A transaction cannot move to the asked state.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A payment was refused.
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// A sale's payments do not settle it.
    #[error(transparent)]
    Settle(#[from] SettleError),
    /// A stock change was refused.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// A customer change was refused.
    #[error(transparent)]
    Customer(#[from] CustomerError),
    /// A login or approval failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Storage refused or failed a request that changed nothing in memory.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recognition refused a photo or failed.
    #[error(transparent)]
    Vision(#[from] VisionError),
    /// Too many PIN attempts, or too many at once: wait and try again.
    #[error("{message}")]
    Throttled {
        /// Seconds to wait.
        retry_after_s: u64,
        /// Human sentence.
        message: String,
    },
    /// A rule of the till refused the request: `code` names the rule for machines.
    #[error("{message}")]
    Refused {
        /// What the caller must change.
        kind: ErrorKind,
        /// Stable machine code (`payment_taken`, `offline_limit`, ...).
        code: &'static str,
        /// Human sentence.
        message: String,
    },
    /// A commit of events already applied in memory failed: memory is ahead of disk, and the
    /// till stops so that a restart rebuilds its state from disk (see [`crate::till::Till::fatal`]).
    #[error("the till's storage failed after applying events in memory: {0}")]
    Fatal(String),
    /// A background task of the till failed (a bug, or the runtime shutting down).
    #[error("internal error: {0}")]
    Internal(String),
}

impl TillError {
    fn refused(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            kind,
            code,
            message: message.into(),
        }
    }
    /// Malformed request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::BadRequest, code, message)
    }
    /// No valid session.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::Unauthenticated, "unauthenticated", message)
    }
    /// Not allowed.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::Forbidden, code, message)
    }
    /// Does not exist.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::NotFound, code, message)
    }
    /// Conflicts with the till's state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::Conflict, code, message)
    }
    /// Breaks a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::Unprocessable, code, message)
    }
    /// Cannot be taken now.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::refused(ErrorKind::Unavailable, code, message)
    }
}

impl From<tokio::task::JoinError> for TillError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl TillError {
    /// What the caller must change.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            TillError::Catalog(e) => match e {
                CatalogError::UnknownBarcode(_) | CatalogError::UnknownSku(_) => K::NotFound,
                CatalogError::InvalidBarcode(..) => K::BadRequest,
                CatalogError::Inactive(_) => K::Conflict,
                CatalogError::DuplicateBarcode(..) | CatalogError::InvalidItem(..) => {
                    K::Unprocessable
                }
            },
            TillError::Cart(e) => match e {
                CartError::Catalog(c) => TillError::Catalog(c.clone()).kind(),
                CartError::DuplicateScan { .. } => K::Conflict,
                CartError::UnknownLine(_) => K::NotFound,
                CartError::BadQuantity(_)
                | CartError::TooManyLines
                | CartError::NeedsWeight(_)
                | CartError::NotByWeight(_)
                | CartError::BadWeight(_)
                | CartError::WeighedLine(_) => K::Unprocessable,
            },
            TillError::Transition(_) => K::Conflict,
            TillError::Payment(e) => match e {
                PaymentError::WrongAmount { .. } | PaymentError::TooMany => K::Unprocessable,
                PaymentError::Unknown(_) => K::NotFound,
                PaymentError::NotPending(_) => K::Conflict,
            },
            TillError::Settle(SettleError::Pending) => K::Conflict,
            TillError::Settle(SettleError::NotCovered { .. }) => K::Unprocessable,
            TillError::Inventory(_) | TillError::Customer(_) => K::Unprocessable,
            TillError::Auth(e) => match e {
                AuthError::BadCredentials { .. } => K::Unauthenticated,
                AuthError::Locked { .. } => K::Locked,
                AuthError::PinFormat => K::BadRequest,
                AuthError::BadHash => K::Internal,
            },
            TillError::Store(e) if e.is_retryable() => K::Unavailable,
            TillError::Store(e) if e.is_disk_full() => K::InsufficientStorage,
            TillError::Store(_) => K::Internal,
            TillError::Vision(e) => match e {
                VisionError::Empty => K::BadRequest,
                VisionError::TooLarge(_) => K::TooLarge,
                VisionError::NotAnImage => K::UnsupportedMedia,
                VisionError::Corrupt(_)
                | VisionError::BadSize(..)
                | VisionError::BadSku
                | VisionError::Dimension { .. }
                | VisionError::Full(_) => K::Unprocessable,
                VisionError::Card { .. } | VisionError::Model { .. } => K::Internal,
            },
            TillError::Refused { kind, .. } => *kind,
            TillError::Throttled { .. } => K::TooManyRequests,
            TillError::Fatal(_) => K::Unavailable,
            TillError::Internal(_) => K::Internal,
        }
    }

    /// The stable machine code (`unknown_barcode`, `payment_taken`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            TillError::Catalog(e) => match e {
                CatalogError::UnknownBarcode(_) => "unknown_barcode",
                CatalogError::UnknownSku(_) => "unknown_sku",
                CatalogError::InvalidBarcode(..) => "invalid_barcode",
                CatalogError::Inactive(_) => "inactive_item",
                CatalogError::DuplicateBarcode(..) | CatalogError::InvalidItem(..) => {
                    "invalid_item"
                }
            },
            TillError::Cart(e) => match e {
                CartError::Catalog(c) => TillError::Catalog(c.clone()).code(),
                CartError::DuplicateScan { .. } => "duplicate_scan",
                CartError::UnknownLine(_) => "unknown_line",
                CartError::BadQuantity(_) => "bad_quantity",
                CartError::TooManyLines => "too_many_lines",
                CartError::NeedsWeight(_) => "needs_weight",
                CartError::NotByWeight(_) => "not_by_weight",
                CartError::BadWeight(_) => "bad_weight",
                CartError::WeighedLine(_) => "weighed_line",
            },
            TillError::Transition(_) => "invalid_transition",
            TillError::Payment(e) => match e {
                PaymentError::WrongAmount { .. } => "wrong_amount",
                PaymentError::Unknown(_) => "unknown_payment",
                PaymentError::NotPending(_) => "payment_not_pending",
                PaymentError::TooMany => "too_many_payments",
            },
            TillError::Settle(SettleError::Pending) => "payment_pending",
            TillError::Settle(SettleError::NotCovered { .. }) => "wrong_amount",
            TillError::Inventory(_) => "bad_adjustment",
            TillError::Customer(_) => "bad_customer",
            TillError::Auth(e) => match e {
                AuthError::BadCredentials { .. } => "unauthenticated",
                AuthError::Locked { .. } => "account_locked",
                AuthError::PinFormat => "pin_format",
                AuthError::BadHash => "bad_hash",
            },
            TillError::Store(e) if e.is_retryable() => "overloaded",
            TillError::Store(e) if e.is_disk_full() => "disk_full",
            TillError::Store(_) => "storage",
            TillError::Vision(e) => match e {
                VisionError::Empty => "empty_image",
                VisionError::TooLarge(_) => "image_too_large",
                VisionError::NotAnImage => "not_an_image",
                VisionError::Corrupt(_) => "corrupt_image",
                VisionError::BadSize(..) => "bad_image_size",
                VisionError::BadSku => "bad_sku",
                VisionError::Dimension { .. } | VisionError::Full(_) => "gallery_refused",
                VisionError::Card { .. } | VisionError::Model { .. } => "model_failed",
            },
            TillError::Refused { code, .. } => code,
            TillError::Throttled { .. } => "too_many_attempts",
            TillError::Fatal(_) => "stopping",
            TillError::Internal(_) => "internal",
        }
    }

    /// The human sentence.
    pub fn message(&self) -> String {
        match self {
            TillError::Refused { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}
