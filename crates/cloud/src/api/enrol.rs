//! Enrolment at HQ: HQ holds a store's CA (`PUT /api/v1/admin/stores/{id}/ca`, or `tillmesh
//! hq add-store --ca-dir`), and a store's till, with the store credential, asks it to sign
//! the certificate of a new till a manager approved (`POST /api/v1/sync/enrolments`: the
//! new till's signing request and the code the manager confirmed). HQ issues the store's
//! next terminal id (the same id again for a key it issued one to: a retried request),
//! signs a certificate for that id on the new till's own key, and signs the grant with its
//! master-data key when it has one.

use super::*;
use crate::ledger::{Enrolment, StoreCa};
use tillmesh_cloud_proto::EnrolmentGrant;

/// Highest terminal id (terminal ids are 16 bits in transaction ids).
pub const TERMINAL_ID_MAX: u64 = 65_535;
/// Longest `approved_by`.
const APPROVED_BY_MAX: usize = 128;

/// A store's CA handed to HQ.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreCaInput {
    /// The CA's certificate (PEM, `store-ca.pem`).
    pub cert: String,
    /// The CA's private key (PEM, `store-ca.key`).
    pub key: String,
    /// The next terminal id HQ issues (above every id issued from the CA folder).
    #[serde(default = "one")]
    pub next_terminal: u64,
}

fn one() -> u64 {
    1
}

/// Why HQ refused to hold a CA.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The CA does not check, or the next id is out of range.
    #[error("{0}")]
    Invalid(String),
    /// Another CA is pinned or held for the store.
    #[error("store {0} has another CA already; it stays")]
    Other(String),
    /// The database.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl Cloud {
    /// Holds `ca` for `store` (registered): checks its key, pins it for seals, keeps it to
    /// sign approved tills' certificates from `next_terminal` on.
    pub async fn hold_store_ca(
        &self,
        store: &str,
        ca: tillmesh_pki::Pem,
        next_terminal: u64,
    ) -> Result<(), HoldError> {
        if !(1..=TERMINAL_ID_MAX).contains(&next_terminal) {
            return Err(HoldError::Invalid(format!(
                "the next terminal id must be 1 to {TERMINAL_ID_MAX}"
            )));
        }
        if self.ledger.store(store).await?.is_none() {
            return Err(LedgerError::UnknownStore(store.into()).into());
        }
        tillmesh_pki::check_ca(&ca, store).map_err(HoldError::Invalid)?;
        let der = {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            CertificateDer::from_pem_slice(ca.cert.as_bytes())
                .map_err(|e| HoldError::Invalid(e.to_string()))?
                .to_vec()
        };
        self.ledger
            .put_seal_keys(store, Some(der.clone()), Vec::new(), None)
            .await?;
        if self.ledger.seal_keys(store).await?.ca != Some(der) {
            return Err(HoldError::Other(store.into()));
        }
        if let Some(held) = self.ledger.store_ca(store).await?
            && held.cert != ca.cert
        {
            return Err(HoldError::Other(store.into()));
        }
        self.ledger
            .put_store_ca(
                store,
                StoreCa {
                    cert: ca.cert,
                    key: ca.key,
                    next_terminal,
                },
            )
            .await?;
        Ok(())
    }
}

#[utoipa::path(put, path = "/api/v1/admin/stores/{id}/ca", request_body = StoreCaInput,
    responses((status = 204, description = "HQ holds the store's CA"), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn put_store_ca(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<StoreCaInput>,
) -> Result<StatusCode, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let ca = tillmesh_pki::Pem {
        cert: input.cert,
        key: input.key,
    };
    match cloud.hold_store_ca(&id, ca, input.next_terminal).await {
        Ok(()) => {
            tracing::info!(store = %id, "HQ holds the store's CA");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(HoldError::Invalid(m)) => Err(unprocessable("invalid_ca", m)),
        Err(e @ HoldError::Other(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "other_ca",
            e.to_string(),
        )),
        Err(HoldError::Ledger(e)) => Err(e.into()),
    }
}

/// A store asking HQ to enrol a till a manager approved.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentInput {
    /// The new till's certificate signing request (PEM; ECDSA P-256).
    pub csr: String,
    /// The code the manager confirmed (what the new till shows for its key).
    pub code: String,
    /// Who approved, on which till (for HQ's records).
    pub approved_by: String,
}

#[utoipa::path(post, path = "/api/v1/sync/enrolments", request_body = EnrolmentInput,
    responses((status = 200, body = EnrolmentGrant), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn enrol(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<EnrolmentInput>,
) -> Result<Json<EnrolmentGrant>, ApiError> {
    let claims = store_credential(&cloud, &headers)?;
    known_store(&cloud, &claims).await?;
    let store = claims.sub;
    let request =
        tillmesh_pki::Request::parse(&input.csr).map_err(|m| unprocessable("bad_request", m))?;
    if request.code() != input.code.trim().to_ascii_uppercase() {
        return Err(unprocessable(
            "code_mismatch",
            "the code confirmed is not the code of the request's key: this is not the till the manager approved",
        ));
    }
    if input.approved_by.trim().is_empty() || input.approved_by.len() > APPROVED_BY_MAX {
        return Err(unprocessable(
            "bad_request",
            format!("approved_by names who approved, in 1 to {APPROVED_BY_MAX} characters"),
        ));
    }
    let e = Enrolment {
        key_sha256: request.key_sha256(),
        code: request.code(),
        approved_by: input.approved_by,
        at_ms: now_ms(),
    };
    let Some((terminal, ca)) = cloud.ledger.enrol(&store, e).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_store_ca",
            format!(
                "HQ does not hold store {store}'s CA: admit the till with a join token (tillmesh store token), or hand HQ the CA (tillmesh hq add-store --ca-dir)"
            ),
        ));
    };
    if terminal > TERMINAL_ID_MAX {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "terminal_ids_exhausted",
            format!("store {store} has used every terminal id up to {TERMINAL_ID_MAX}"),
        ));
    }
    let pem = tillmesh_pki::Pem {
        cert: ca.cert.clone(),
        key: ca.key,
    };
    let cert = request
        .sign(&pem, &store, terminal)
        .map_err(|m| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot_sign", m))?;
    let (key_id, sig) = match cloud.sign_enrolment(&store, terminal, &cert, &ca.cert) {
        Some((id, sig)) => (Some(id), Some(sig)),
        None => (None, None),
    };
    tracing::info!(%store, terminal, code = %request.code(), "enrolled a till a manager approved");
    Ok(Json(EnrolmentGrant {
        store_id: store,
        terminal,
        cert,
        ca: ca.cert,
        key_id,
        sig,
    }))
}
