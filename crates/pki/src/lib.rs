//! The store's certificates: the store CA, till certificates that name their store and
//! terminal, issued either with a key made here (`tillmesh terminal enroll`, join tokens) or
//! for the key of a till's certificate signing request (approval in the store: the till
//! keeps its key, whoever holds the CA signs), and the short code a waiting till shows for
//! its key so that a manager confirms the very key that gets the certificate.
//!
//! A till certificate carries two DNS names: `t<terminal>.<store>.tillmesh` (who it is) and
//! `<store>.tillmesh` (which store it belongs to; the name a till dials). Every key is ECDSA
//! P-256: a till seals its events with its certificate's key.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use sha2::Digest;

pub use tillmesh_pos::seal::store_label;

/// Largest signing request accepted (PEM).
pub const REQUEST_CHARS_MAX: usize = 4_096;

/// A PEM certificate and its PEM private key.
#[derive(Clone, Debug)]
pub struct Pem {
    /// Certificate.
    pub cert: String,
    /// Private key.
    pub key: String,
}

/// The name every till of `store_id` answers to.
pub fn store_dns(store_id: &str) -> String {
    format!("{}.tillmesh", store_label(store_id))
}

/// Creates a store CA for `store_id`.
pub fn create_store_ca(store_id: &str) -> Result<Pem, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, format!("tillmesh store {store_id} CA"));
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, store_id);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(2046, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// What a till certificate for `terminal` of `store_id` says.
fn till_params(store_id: &str, terminal: u64) -> Result<CertificateParams, rcgen::Error> {
    let names = vec![
        format!("t{terminal}.{}", store_dns(store_id)),
        store_dns(store_id),
    ];
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(
        DnType::CommonName,
        format!("tillmesh till {terminal} of {store_id}"),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, store_id);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Issued now (to the second): a revocation of this terminal covers certificates issued
    // until it, so a till enrolled again afterwards is admitted.
    params.not_before = time::OffsetDateTime::now_utc();
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(params)
}

/// Issues a till certificate and a new key for `terminal` of `store_id`, signed by the
/// store CA.
pub fn enroll(ca: &Pem, store_id: &str, terminal: u64) -> Result<Pem, rcgen::Error> {
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, KeyPair::from_pem(&ca.key)?)?;
    let key = KeyPair::generate()?;
    let cert = till_params(store_id, terminal)?.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Checks that `ca`'s key is its certificate's: a till certificate for `store_id` it
/// signs checks against it.
pub fn check_ca(ca: &Pem, store_id: &str) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let ca_der = CertificateDer::from_pem_slice(ca.cert.as_bytes())
        .map_err(|e| format!("the CA certificate does not read: {e}"))?;
    tillmesh_pos::seal::Keyring::new(store_id, ca_der.as_ref())?;
    let probe = enroll(ca, store_id, 1).map_err(|e| format!("the CA cannot sign: {e}"))?;
    let probe = CertificateDer::from_pem_slice(probe.cert.as_bytes()).map_err(|e| e.to_string())?;
    tillmesh_pos::seal::check_issued(ca_der.as_ref(), probe.as_ref())
        .map_err(|_| "the CA key is not the CA certificate's".to_string())?;
    Ok(())
}

/// A waiting till's key and its certificate signing request (PEM), the key made here and
/// never sent anywhere.
pub fn request() -> Result<(KeyPair, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "tillmesh till waiting to join");
    let csr = params.serialize_request(&key)?.pem()?;
    Ok((key, csr))
}

/// The short code shown for a public key (its SubjectPublicKeyInfo DER): 40 bits of its
/// SHA-256 as eight characters without look-alikes, `ABCD-EFGH`. Confirming the code
/// confirms the key: making another key with the same code takes about 2^39 tries.
pub fn code(spki_der: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let h = sha2::Sha256::digest(spki_der);
    let bits = u64::from_be_bytes([0, 0, 0, h[0], h[1], h[2], h[3], h[4]]);
    let c: String = (0..8)
        .map(|i| ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
        .collect();
    format!("{}-{}", &c[..4], &c[4..])
}

/// The code of a key pair's public key.
pub fn key_code(key: &KeyPair) -> String {
    code(&key.subject_public_key_info())
}

/// A signing request read and checked: its signature (the sender holds the key), its key
/// type (ECDSA P-256, which seals need) and its size.
#[derive(Debug)]
pub struct Request {
    csr: CertificateSigningRequestParams,
}

impl Request {
    /// Reads a signing request (PEM).
    pub fn parse(pem: &str) -> Result<Request, String> {
        if pem.len() > REQUEST_CHARS_MAX {
            return Err(format!(
                "a signing request is at most {REQUEST_CHARS_MAX} characters"
            ));
        }
        let csr = CertificateSigningRequestParams::from_pem(pem).map_err(|e| {
            format!("the signing request does not read or its signature is bad: {e}")
        })?;
        if csr.public_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err("the signing request's key is not ECDSA P-256".into());
        }
        Ok(Request { csr })
    }

    /// The code of the request's key.
    pub fn code(&self) -> String {
        code(&self.csr.public_key.subject_public_key_info())
    }

    /// SHA-256 of the request's key (hex), which names it in HQ's records.
    pub fn key_sha256(&self) -> String {
        let h = sha2::Sha256::digest(self.csr.public_key.subject_public_key_info());
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The till certificate for `terminal` of `store_id` on the request's key, signed by
    /// the store CA (the request's own names and extensions are not used).
    pub fn sign(&self, ca: &Pem, store_id: &str, terminal: u64) -> Result<String, String> {
        let e = |e: rcgen::Error| format!("the store CA cannot sign: {e}");
        let issuer = Issuer::from_ca_cert_pem(&ca.cert, KeyPair::from_pem(&ca.key).map_err(e)?)
            .map_err(e)?;
        let cert = till_params(store_id, terminal)
            .map_err(e)?
            .signed_by(&self.csr.public_key, &issuer)
            .map_err(e)?;
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64_decode(&body)
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut n) = (0_u32, 0);
        for c in s.bytes().filter(|c| *c != b'=') {
            let v = T.iter().position(|t| *t == c).unwrap() as u32;
            acc = (acc << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((acc >> n) as u8);
            }
        }
        out
    }

    #[test]
    fn a_request_is_signed_for_its_key_and_the_code_follows_the_key() {
        let ca = create_store_ca("S001").unwrap();
        let (key, csr) = request().unwrap();
        let r = Request::parse(&csr).unwrap();
        assert_eq!(r.code(), key_code(&key));
        assert_eq!(r.code().len(), 9);
        let cert = r.sign(&ca, "S001", 7).unwrap();
        let (label, terminal) =
            tillmesh_pos::seal::check_issued(&der(&ca.cert), &der(&cert)).unwrap();
        assert_eq!((label.as_str(), terminal), ("s001", 7));
        // Another key, another code.
        let (other, _) = request().unwrap();
        assert_ne!(key_code(&other), key_code(&key));
    }

    #[test]
    fn a_ca_is_checked_against_its_key_and_store() {
        let ca = create_store_ca("S001").unwrap();
        let other = create_store_ca("S001").unwrap();
        assert_eq!(check_ca(&ca, "S001"), Ok(()));
        let mixed = Pem {
            cert: ca.cert.clone(),
            key: other.key.clone(),
        };
        assert!(check_ca(&mixed, "S001").unwrap_err().contains("key"));
    }

    #[test]
    fn a_damaged_or_foreign_request_is_refused() {
        let (_, csr) = request().unwrap();
        let mut bad = csr.clone().into_bytes();
        let mid = bad.len() / 2;
        bad[mid] = if bad[mid] == b'A' { b'B' } else { b'A' };
        assert!(Request::parse(&String::from_utf8(bad).unwrap()).is_err());
        assert!(Request::parse("hello").is_err());
        assert!(Request::parse(&"x".repeat(5_000)).is_err());
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let ed_csr = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&ed)
            .unwrap()
            .pem()
            .unwrap();
        assert!(Request::parse(&ed_csr).unwrap_err().contains("P-256"));
    }
}
