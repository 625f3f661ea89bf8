//! Store identity: the store CA (created once, key kept off the tills) and till certificates
//! that name their store and terminal. Peers are accepted only if their certificate chains
//! to the store CA and names the same store.
//!
//! A till certificate carries two DNS names: `t<terminal>.<store>.tillmesh` (who it is) and
//! `<store>.tillmesh` (which store it belongs to; the name a till dials, so the server side is
//! checked by ordinary name verification). The client side is checked after the handshake by
//! reading the same names from the presented certificate.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::path::Path;
use std::sync::Arc;

/// Identity errors.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A certificate or key could not be made.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file is missing or unreadable.
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    /// A certificate does not carry the expected names.
    #[error("certificate does not name a till of a store: {0}")]
    Names(String),
    /// rustls refused the material.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

pub use tillmesh_pki::{Pem, store_dns, store_label};

/// Creates a store CA for `store_id`.
pub fn create_store_ca(store_id: &str) -> Result<Pem, IdentityError> {
    Ok(tillmesh_pki::create_store_ca(store_id)?)
}

/// Issues a till certificate (and its key) for `terminal` of `store_id`, signed by the
/// store CA.
pub fn enroll(ca: &Pem, store_id: &str, terminal: u64) -> Result<Pem, IdentityError> {
    Ok(tillmesh_pki::enroll(ca, store_id, terminal)?)
}

/// When a certificate was issued: its `notBefore`, seconds since the epoch.
pub fn issued_s(cert: &CertificateDer<'_>) -> Result<u64, IdentityError> {
    use x509_parser::prelude::*;
    let (_, x) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| IdentityError::Names(e.to_string()))?;
    Ok(u64::try_from(x.validity().not_before.timestamp()).unwrap_or(0))
}

/// Reads `(store label, terminal)` from a till certificate's DNS names.
pub fn peer_names(cert: &CertificateDer<'_>) -> Result<(String, u64), IdentityError> {
    tillmesh_pos::seal::cert_names(cert.as_ref()).map_err(IdentityError::Names)
}

/// A till's loaded identity: the store it belongs to, its terminal id, its certificate chain
/// and key, and the store CA it trusts.
#[derive(Debug)]
pub struct TillIdentity {
    /// Store id.
    pub store_id: String,
    /// Terminal id (from the certificate).
    pub terminal: u64,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<rustls::RootCertStore>,
    ca: CertificateDer<'static>,
}

impl Clone for TillIdentity {
    fn clone(&self) -> Self {
        Self {
            store_id: self.store_id.clone(),
            terminal: self.terminal,
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
            ca: self.ca.clone(),
        }
    }
}

fn read(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path)
        .map_err(|e| IdentityError::Read(path.display().to_string(), e.to_string()))
}

impl TillIdentity {
    /// Loads PEM files from disk.
    pub fn load(
        store_id: &str,
        ca_cert: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<Self, IdentityError> {
        Self::from_pem(
            store_id,
            &read(ca_cert)?,
            &Pem {
                cert: read(cert)?,
                key: read(key)?,
            },
        )
    }

    /// Builds an identity from PEM text, checking the certificate names `store_id`.
    pub fn from_pem(store_id: &str, ca_cert: &str, till: &Pem) -> Result<Self, IdentityError> {
        let bad = |what: &str, e: String| IdentityError::Read(what.to_string(), e);
        let ca = CertificateDer::from_pem_slice(ca_cert.as_bytes())
            .map_err(|e| bad("store CA certificate", e.to_string()))?;
        let chain = vec![
            CertificateDer::from_pem_slice(till.cert.as_bytes())
                .map_err(|e| bad("till certificate", e.to_string()))?,
        ];
        let key = PrivateKeyDer::from_pem_slice(till.key.as_bytes())
            .map_err(|e| bad("till key", e.to_string()))?;
        let (label, terminal) = peer_names(&chain[0])?;
        if label != store_label(store_id) {
            return Err(IdentityError::Names(format!(
                "certificate is for store {label}, this till is configured for {store_id}"
            )));
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone())?;
        Ok(TillIdentity {
            store_id: store_id.to_string(),
            terminal,
            chain,
            key,
            roots: Arc::new(roots),
            ca,
        })
    }

    /// This till's certificate (DER).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// This till's private key (PKCS#8 DER), for its seals.
    pub(crate) fn key_der(&self) -> &[u8] {
        self.key.secret_der()
    }

    /// The store CA's certificate (DER).
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// When this till's own certificate was issued (seconds since the epoch).
    pub fn issued_s(&self) -> u64 {
        issued_s(&self.chain[0]).unwrap_or(0)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// TLS 1.3 server config that requires a client certificate from the store CA.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, IdentityError> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            self.roots.clone(),
            Self::provider(),
        )
        .build()
        .map_err(|e| IdentityError::Tls(rustls::Error::General(e.to_string())))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![crate::wire::ALPN.to_vec()];
        Ok(cfg)
    }

    /// TLS 1.3 client config presenting this till's certificate and trusting only the CA.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, IdentityError> {
        let mut cfg = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = vec![crate::wire::ALPN.to_vec()];
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolled_certificates_name_store_and_terminal() {
        let ca = create_store_ca("S001").unwrap();
        let till = enroll(&ca, "S001", 7).unwrap();
        let id = TillIdentity::from_pem("S001", &ca.cert, &till).unwrap();
        assert_eq!(id.terminal, 7);
        assert!(TillIdentity::from_pem("S002", &ca.cert, &till).is_err());
        id.server_config().unwrap();
        id.client_config().unwrap();
    }
}
