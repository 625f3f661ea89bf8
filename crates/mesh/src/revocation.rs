//! Revoked till certificates: a list signed by the store CA naming, per terminal, the
//! instant up to which its certificates are revoked (a till enrolled again afterwards is
//! admitted with its new certificate). The list travels through the store's Raft group;
//! every till checks the CA's signature before it refuses anyone, and closes the connections
//! of a revoked till at once (`Faults::revoke`).

use crate::identity::{IdentityError, Pem};
use rustls::pki_types::CertificateDer;
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

impl Revocations {
    /// Signs the list with the store CA's key.
    pub fn sign(&self, ca: &Pem) -> Result<SignedRevocations, IdentityError> {
        use rcgen::SigningKey;
        if self.revoked.len() > REVOKED_MAX {
            return Err(IdentityError::Names(format!(
                "a list revokes at most {REVOKED_MAX} terminals"
            )));
        }
        let list = serde_json::to_string(self).map_err(|e| IdentityError::Names(e.to_string()))?;
        let key = rcgen::KeyPair::from_pem(&ca.key)?;
        let sig = key.sign(list.as_bytes())?;
        Ok(SignedRevocations {
            list,
            sig: hex::encode(sig),
        })
    }
}

impl SignedRevocations {
    /// [`SignedRevocations::verify`] against the store CA's certificate as PEM.
    pub fn verify_pem(&self, ca_pem: &str, store_id: &str) -> Result<Revocations, String> {
        use rustls::pki_types::pem::PemObject;
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| format!("store CA certificate: {e}"))?;
        self.verify(&ca, store_id)
    }

    /// The list, if the store CA (`ca`, its certificate) signed it for `store_id`.
    pub fn verify(&self, ca: &CertificateDer<'_>, store_id: &str) -> Result<Revocations, String> {
        use x509_parser::prelude::*;
        let (_, x) = X509Certificate::from_der(ca.as_ref()).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{TillIdentity, create_store_ca, enroll};

    #[test]
    fn only_the_store_cas_list_for_this_store_counts() {
        let ca = create_store_ca("S001").unwrap();
        let other = create_store_ca("S001").unwrap();
        let till = enroll(&ca, "S001", 3).unwrap();
        let id = TillIdentity::from_pem("S001", &ca.cert, &till).unwrap();
        let list = Revocations {
            store_id: "S001".into(),
            issued_ms: 10,
            revoked: BTreeMap::from([(3, id.issued_s())]),
        };
        let signed = list.sign(&ca).unwrap();
        assert_eq!(signed.verify(id.ca_der(), "S001"), Ok(list.clone()));
        assert!(covers(&list.revoked, 3, id.issued_s()));
        assert!(
            !covers(&list.revoked, 3, id.issued_s() + 1),
            "enrolled again later"
        );
        assert!(!covers(&list.revoked, 4, 0));
        // Another CA's signature, another store, an edited list: refused.
        assert!(
            list.sign(&other)
                .unwrap()
                .verify(id.ca_der(), "S001")
                .is_err()
        );
        assert!(
            signed
                .verify(id.ca_der(), "S002")
                .unwrap_err()
                .contains("S002")
        );
        let mut edited = signed.clone();
        edited.list = edited.list.replace("\"3\"", "\"4\"");
        assert_ne!(edited.list, signed.list);
        assert!(edited.verify(id.ca_der(), "S001").is_err());
    }
}
