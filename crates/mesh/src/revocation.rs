//! Revoked till certificates (the list and its checks are `tillmesh_pos::revocation`): the
//! store CA signs the list here; every till closes the connections of a revoked till at once
//! (`Faults::revoke`).

use crate::identity::{IdentityError, Pem};
pub use tillmesh_pos::revocation::*;

/// Signing a revocation list, which needs the CA key.
pub trait RevocationsExt {
    /// Signs the list with the store CA's key.
    fn sign(&self, ca: &Pem) -> Result<SignedRevocations, IdentityError>;
}

impl RevocationsExt for Revocations {
    fn sign(&self, ca: &Pem) -> Result<SignedRevocations, IdentityError> {
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

/// [`SignedRevocations::verify`] against the store CA's certificate as PEM.
pub fn verify_pem(
    signed: &SignedRevocations,
    ca_pem: &str,
    store_id: &str,
) -> Result<Revocations, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| format!("store CA certificate: {e}"))?;
    signed.verify(ca.as_ref(), store_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{TillIdentity, create_store_ca, enroll};
    use std::collections::BTreeMap;

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
        assert_eq!(
            signed.verify(id.ca_der().as_ref(), "S001"),
            Ok(list.clone())
        );
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
                .verify(id.ca_der().as_ref(), "S001")
                .is_err()
        );
        assert!(
            signed
                .verify(id.ca_der().as_ref(), "S002")
                .unwrap_err()
                .contains("S002")
        );
        let mut edited = signed.clone();
        edited.list = edited.list.replace("\"3\"", "\"4\"");
        assert_ne!(edited.list, signed.list);
        assert!(edited.verify(id.ca_der().as_ref(), "S001").is_err());
    }
}
