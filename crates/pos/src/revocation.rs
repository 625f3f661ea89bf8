//! Revoked till certificates: a list signed by the store CA naming, per terminal, the
//! instant up to which its certificates are revoked (a till enrolled again afterwards is
//! admitted with its new certificate). The list travels through the store's Raft group and
//! to HQ; every holder checks the CA's signature before it refuses anyone. Signing needs the
//! CA key and lives in `tillmesh_mesh::revocation`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most terminals one list revokes (a store has tens of tills; re-enrolments add a few).
pub const REVOKED_MAX: usize = 1_024;

/// The revocations of one store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocations {
    /// The store.
    pub store_id: String,
    /// When the list was made (ms since the epoch); a till keeps the latest it has seen.
    pub issued_ms: u64,
    /// Per terminal: its certificates issued at or before this instant (seconds since the
    /// epoch) are revoked.
    pub revoked: BTreeMap<u64, u64>,
}

/// A list as the CA signed it: its JSON and an ECDSA P-256 signature of those bytes (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedRevocations {
    /// The list, as JSON.
    pub list: String,
    /// The store CA's signature of `list`, hex.
    pub sig: String,
}

/// Whether `revoked` covers a certificate of `terminal` issued at `issued_s`.
pub fn covers(revoked: &BTreeMap<u64, u64>, terminal: u64, issued_s: u64) -> bool {
    revoked
        .get(&terminal)
        .is_some_and(|cutoff| issued_s <= *cutoff)
}

impl SignedRevocations {
    /// The list, if the store CA (`ca`, its certificate) signed it for `store_id`.
    pub fn verify(&self, ca: &[u8], store_id: &str) -> Result<Revocations, String> {
        use x509_parser::prelude::*;
        let (_, x) = X509Certificate::from_der(ca).map_err(|e| e.to_string())?;
        let point = &x.public_key().subject_public_key.data;
        let sig = hex::decode(&self.sig).map_err(|_| "the signature is not hex".to_string())?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(self.list.as_bytes(), &sig)
            .map_err(|_| "the store CA did not sign this revocation list".to_string())?;
        let list: Revocations =
            serde_json::from_str(&self.list).map_err(|e| format!("revocation list: {e}"))?;
        if list.store_id != store_id {
            return Err(format!(
                "the revocation list is for store {}, not {store_id}",
                list.store_id
            ));
        }
        if list.revoked.len() > REVOKED_MAX {
            return Err(format!("a list revokes at most {REVOKED_MAX} terminals"));
        }
        Ok(list)
    }
}
