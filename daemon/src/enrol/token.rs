//! Join tokens: the identity the store CA issued for one terminal id (certificate, key,
//! the CA, an expiry, optional peers), as text to type, paste or scan at a new till
//! (`tillmesh-join:` + base64url of deflated JSON), and the checks a waiting till makes.

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// What a join token's text starts with.
pub const TOKEN_PREFIX: &str = "tillmesh-join:";
/// Longest token text accepted (a token is about 1.5 KB).
pub const TOKEN_CHARS_MAX: usize = 8_192;
/// Largest token once inflated.
const TOKEN_BYTES_MAX: u64 = 16_384;
/// Most peers a token names.
const PEERS_MAX: usize = 64;

/// A one-time join token: the identity the store CA issued for one terminal id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// Store id.
    pub store_id: String,
    /// The terminal id the certificate names.
    pub terminal: u64,
    /// The token's id (random, hex): logged and kept by the till it enrolled.
    pub id: String,
    /// Not valid after this (ms since the epoch).
    pub expires_ms: u64,
    /// The store CA's certificate (PEM).
    pub ca: String,
    /// The till's certificate (PEM).
    pub cert: String,
    /// The till's private key (PEM).
    pub key: String,
    /// Peers to dial (for a store without mDNS on its LAN).
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
    /// Tills' HTTP addresses, where the token is redeemed (for a store without mDNS).
    #[serde(default)]
    pub http_peers: Vec<SocketAddr>,
    /// Where the cloud is, for a till whose config has no `[cloud]`.
    #[serde(default)]
    pub cloud: Option<super::CloudHint>,
}

impl JoinToken {
    /// The token as text: the prefix, then base64url of its deflated JSON.
    pub fn encode(&self) -> anyhow::Result<String> {
        use std::io::Write;
        let json = serde_json::to_vec(self)?;
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&json)?;
        let bytes = z.finish()?;
        Ok(format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// Reads a token's text (as typed, pasted or scanned: whitespace is ignored).
    pub fn decode(text: &str) -> Result<JoinToken, String> {
        use std::io::Read;
        if text.len() > TOKEN_CHARS_MAX {
            return Err(format!(
                "a join token is at most {TOKEN_CHARS_MAX} characters"
            ));
        }
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let body = text
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| format!("a join token starts with {TOKEN_PREFIX}"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| "the join token is damaged (not base64url)".to_string())?;
        let mut json = Vec::new();
        flate2::read::DeflateDecoder::new(bytes.as_slice())
            .take(TOKEN_BYTES_MAX)
            .read_to_end(&mut json)
            .map_err(|_| "the join token is damaged (does not inflate)".to_string())?;
        let t: JoinToken =
            serde_json::from_slice(&json).map_err(|e| format!("the join token is damaged: {e}"))?;
        if t.peers.len() > PEERS_MAX || t.http_peers.len() > PEERS_MAX {
            return Err(format!("a join token names at most {PEERS_MAX} peers"));
        }
        Ok(t)
    }

    /// Checks the token for a till of `store_id` at `now_ms`: not expired, for this store,
    /// its certificate issued by its store CA for its terminal, and its key the certificate's.
    pub fn check(&self, store_id: &str, now_ms: u64) -> Result<(), String> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        if self.store_id != store_id {
            return Err(format!(
                "the token is for store {}, this till is configured for {store_id}",
                self.store_id
            ));
        }
        if now_ms > self.expires_ms {
            return Err(format!(
                "the token expired at {}",
                crate::clock::rfc3339(self.expires_ms)
            ));
        }
        let der = |pem: &str, what: &str| {
            CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| format!("the token's {what} does not read: {e}"))
        };
        let (ca, cert) = (der(&self.ca, "store CA")?, der(&self.cert, "certificate")?);
        let (label, terminal) = tillmesh_pos::seal::check_issued(ca.as_ref(), cert.as_ref())?;
        if label != tillmesh_pos::seal::store_label(store_id) || terminal != self.terminal {
            return Err(format!(
                "the token's certificate is for T{terminal} of {label}, not T{} of {store_id}",
                self.terminal
            ));
        }
        let id = tillmesh_mesh::identity::TillIdentity::from_pem(
            store_id,
            &self.ca,
            &tillmesh_mesh::identity::Pem {
                cert: self.cert.clone(),
                key: self.key.clone(),
            },
        )
        .map_err(|e| e.to_string())?;
        id.server_config()
            .map_err(|e| format!("the token's key is not its certificate's: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(ca: &tillmesh_mesh::identity::Pem, store: &str, t: u64, expires_ms: u64) -> JoinToken {
        let till = tillmesh_mesh::identity::enroll(ca, store, t).unwrap();
        JoinToken {
            store_id: store.into(),
            terminal: t,
            id: "00ff".into(),
            expires_ms,
            ca: ca.cert.clone(),
            cert: till.cert,
            key: till.key,
            peers: vec!["127.0.0.1:7400".parse().unwrap()],
            http_peers: Vec::new(),
            cloud: None,
        }
    }

    #[test]
    fn a_token_round_trips_as_text_and_checks() {
        let ca = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
        let t = token(&ca, "S001", 3, u64::MAX);
        let text = t.encode().unwrap();
        assert!(text.len() < 2_500, "{} characters", text.len());
        // Scanners and pasting add line breaks and spaces.
        let broken = format!(" {}\n{} \n", &text[..40], &text[40..]);
        assert_eq!(JoinToken::decode(&broken).unwrap(), t);
        assert_eq!(t.check("S001", 1_000), Ok(()));
    }

    #[test]
    fn expired_foreign_mismatched_or_damaged_tokens_are_refused() {
        let ca = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
        let other = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
        let t = token(&ca, "S001", 3, 5_000);
        assert!(t.check("S001", 5_001).unwrap_err().contains("expired"));
        assert!(t.check("S002", 1_000).unwrap_err().contains("S002"));
        let mut wrong_ca = t.clone();
        wrong_ca.ca = other.cert.clone();
        assert!(wrong_ca.check("S001", 1_000).unwrap_err().contains("CA"));
        let mut wrong_terminal = t.clone();
        wrong_terminal.terminal = 4;
        assert!(wrong_terminal.check("S001", 1_000).is_err());
        let mut wrong_key = t.clone();
        wrong_key.key = token(&ca, "S001", 3, 5_000).key;
        assert!(wrong_key.check("S001", 1_000).unwrap_err().contains("key"));
        for bad in [
            "",
            "tillmesh-join:",
            "tillmesh-join:!!!",
            "hello",
            &"x".repeat(9_000),
        ] {
            assert!(JoinToken::decode(bad).is_err(), "{bad:.20}");
        }
    }
}
