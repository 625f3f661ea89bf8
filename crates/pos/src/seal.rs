//! Event seals: each till signs the events it originates with the key of its certificate
//! (ECDSA P-256, the key the store CA bound to its terminal id), and every receiver checks
//! the signature before it applies or stores an event.
//!
//! What is signed is [`message`]: a domain tag, the store, the event's id, stamp, kind and
//! encoded body, so a seal cannot be moved to another event, another store or another
//! protocol. A till announces its key with a [`KeyRecord`]: its certificate (which the
//! store CA signed and which names its terminal) and, signed by that key, the origin it
//! speaks for and the first sequence number it sealed. Records are self-authenticating:
//! a [`Keyring`] admits one only if the certificate chains to the store CA, names this
//! store and the origin's terminal, and its key signed the record; any till may relay them.
//!
//! Events from before a till started sealing (older versions) carry no seal: an unsealed
//! event is accepted only below its origin's `signs_from`, or for an origin that has
//! announced no key at all (see ARCHITECTURE.md "Authenticity" for what that leaves open).
//! Signing needs randomness and lives with the key, in `tillmesh_mesh::seal`.

use crate::event::Event;
use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tillmesh_crdt::ReplicaId;

/// Length of a seal: an ECDSA P-256 signature as `r || s`.
pub const SEAL_LEN: usize = 64;
/// Most key records one keyring holds (origins, that is till incarnations, times re-enrolments).
pub const KEYS_MAX: usize = 4_096;
/// Most keys one origin may have announced (a till enrolled again keeps its origin).
pub const KEYS_PER_ORIGIN_MAX: usize = 4;
/// Largest certificate a record may carry.
pub const CERT_BYTES_MAX: usize = 4_096;

const EVENT_TAG: &[u8] = b"tillmesh event seal v1\0";
const RECORD_TAG: &[u8] = b"tillmesh key record v1\0";
/// ecdsa-with-SHA256, the store CA's signature algorithm.
const ECDSA_SHA256_OID: &str = "1.2.840.10045.4.3.2";

/// The DNS-safe form of a store id (what till certificates name).
pub fn store_label(store_id: &str) -> String {
    store_id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The bytes a till signs for `event` of `store_id`.
pub fn message(store_id: &str, e: &Event) -> Result<Vec<u8>, String> {
    let body = crate::codec::encode(&e.body)?;
    let kind = e.body.kind();
    let mut m = Vec::with_capacity(body.len().saturating_add(128));
    m.extend_from_slice(EVENT_TAG);
    m.extend_from_slice(store_id.as_bytes());
    m.push(0);
    m.extend_from_slice(&e.origin.0.to_be_bytes());
    m.extend_from_slice(&e.seq.to_be_bytes());
    m.extend_from_slice(&e.hlc.wall_ms.to_be_bytes());
    m.extend_from_slice(&e.hlc.logical.to_be_bytes());
    m.extend_from_slice(kind.as_bytes());
    m.push(0);
    m.extend_from_slice(&body);
    Ok(m)
}

/// Appends what a batch seal covers of one event: its id, and its seal, or its body's
/// SHA-256 when it has none (see `tillmesh_cloud_proto::batch_message`).
pub fn batch_entry(e: &Event, out: &mut Vec<u8>) {
    use sha2::Digest;
    out.extend_from_slice(&e.origin.0.to_be_bytes());
    out.extend_from_slice(&e.seq.to_be_bytes());
    match &e.sig {
        Some(sig) => {
            out.push(1);
            out.extend_from_slice(sig);
        }
        None => {
            out.push(0);
            let body = crate::codec::encode(&e.body).unwrap_or_default();
            out.extend_from_slice(&sha2::Sha256::digest(&body));
        }
    }
}

/// A till's announcement of the key that seals `origin`'s events from `signs_from` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The origin (till incarnation) it speaks for.
    pub origin: u64,
    /// The first sequence number sealed with this key.
    pub signs_from: u64,
    /// The till's certificate (DER), issued by the store CA.
    pub cert: Vec<u8>,
    /// The certificate key's signature of [`KeyRecord::message`] (`r || s`).
    pub sig: Vec<u8>,
}

impl KeyRecord {
    /// The bytes the certificate's key signs.
    pub fn message(store_id: &str, origin: u64, signs_from: u64) -> Vec<u8> {
        let mut m = RECORD_TAG.to_vec();
        m.extend_from_slice(store_id.as_bytes());
        m.push(0);
        m.extend_from_slice(&origin.to_be_bytes());
        m.extend_from_slice(&signs_from.to_be_bytes());
        m
    }
}

/// Reads `(store label, terminal)` from a till certificate's `t<terminal>.<store>.tillmesh`
/// DNS name.
pub fn cert_names(cert: &[u8]) -> Result<(String, u64), String> {
    use x509_parser::prelude::*;
    let (_, x) = X509Certificate::from_der(cert).map_err(|e| e.to_string())?;
    names(&x)
}

fn names(x: &x509_parser::certificate::X509Certificate<'_>) -> Result<(String, u64), String> {
    use x509_parser::prelude::*;
    let san = x
        .subject_alternative_name()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no subject alternative names".to_string())?;
    for name in &san.value.general_names {
        if let GeneralName::DNSName(dns) = name
            && let Some(rest) = dns.strip_prefix('t')
            && let Some((num, store)) = rest.split_once('.')
            && let Some(label) = store.strip_suffix(".tillmesh")
            && let Ok(terminal) = num.parse::<u64>()
        {
            return Ok((label.to_string(), terminal));
        }
    }
    Err("no t<terminal>.<store>.tillmesh name".into())
}

/// Checks that the CA whose public key is `ca_point` signed `x`; answers the store label
/// and terminal the certificate names.
fn issued_by(
    ca_point: &[u8],
    x: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<(String, u64), String> {
    if x.signature_algorithm.algorithm.to_id_string() != ECDSA_SHA256_OID {
        return Err("the certificate is not signed with ECDSA P-256".into());
    }
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ca_point)
        .verify(x.tbs_certificate.as_ref(), &x.signature_value.data)
        .map_err(|_| "the certificate was not issued by this store's CA".to_string())?;
    names(x)
}

/// Checks that the store CA `ca` (DER) issued the till certificate `cert` (DER); answers
/// the store label and terminal it names.
pub fn check_issued(ca: &[u8], cert: &[u8]) -> Result<(String, u64), String> {
    use x509_parser::prelude::*;
    let (_, ca) =
        X509Certificate::from_der(ca).map_err(|e| format!("store CA certificate: {e}"))?;
    let (_, x) = X509Certificate::from_der(cert).map_err(|e| format!("certificate: {e}"))?;
    issued_by(&public_key(&ca), &x)
}

/// The public key (for ECDSA P-256: the uncompressed point) a certificate (DER) binds.
pub fn cert_public_key(cert: &[u8]) -> Result<Vec<u8>, String> {
    use x509_parser::prelude::*;
    let (_, x) = X509Certificate::from_der(cert).map_err(|e| format!("certificate: {e}"))?;
    Ok(public_key(&x))
}

/// The public key (uncompressed point) of a certificate.
fn public_key(x: &x509_parser::certificate::X509Certificate<'_>) -> Vec<u8> {
    x.public_key().subject_public_key.data.to_vec()
}

/// A key admitted for an origin.
#[derive(Clone, Debug)]
struct Admitted {
    record: KeyRecord,
    point: Vec<u8>,
    /// The certificate's `notBefore` (seconds since the epoch), which revocation compares.
    issued_s: u64,
}

/// What a seal check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealed {
    /// The origin's key signed it.
    Signed,
    /// Unsealed, from before its origin sealed (or from an origin that never announced a key).
    Legacy,
}

/// The keys of a store's tills, as far as this holder has learned them: the store CA it
/// checks records against, and per origin the admitted records.
#[derive(Clone, Debug)]
pub struct Keyring {
    store_id: String,
    label: String,
    ca_point: Vec<u8>,
    keys: BTreeMap<u64, Vec<Admitted>>,
}

impl Keyring {
    /// An empty keyring for `store_id`, checking records against the store CA's
    /// certificate (DER).
    pub fn new(store_id: &str, ca_cert: &[u8]) -> Result<Self, String> {
        use x509_parser::prelude::*;
        let (_, ca) =
            X509Certificate::from_der(ca_cert).map_err(|e| format!("store CA certificate: {e}"))?;
        Ok(Keyring {
            store_id: store_id.to_string(),
            label: store_label(store_id),
            ca_point: public_key(&ca),
            keys: BTreeMap::new(),
        })
    }

    /// Admits a record if it is genuine; `Ok(true)` when it is new to this keyring.
    pub fn admit(&mut self, r: &KeyRecord) -> Result<bool, String> {
        use x509_parser::prelude::*;
        if self.keys.get(&r.origin).is_some_and(|ks| {
            ks.iter()
                .any(|k| k.record.signs_from == r.signs_from && k.record.cert == r.cert)
        }) {
            return Ok(false);
        }
        if r.cert.len() > CERT_BYTES_MAX {
            return Err(format!(
                "a certificate of {} bytes is too large",
                r.cert.len()
            ));
        }
        let (_, x) = X509Certificate::from_der(&r.cert).map_err(|e| format!("certificate: {e}"))?;
        let (label, terminal) = issued_by(&self.ca_point, &x)?;
        if label != self.label {
            return Err(format!("the certificate is for store {label}"));
        }
        let origin = ReplicaId(r.origin);
        if origin.terminal() != terminal {
            return Err(format!(
                "a certificate of T{terminal} cannot speak for origin {origin}"
            ));
        }
        if r.signs_from == 0 {
            return Err("sequence numbers start at 1".into());
        }
        let point = public_key(&x);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(
                &KeyRecord::message(&self.store_id, r.origin, r.signs_from),
                &r.sig,
            )
            .map_err(|_| "the record is not signed by its certificate's key".to_string())?;
        let total = self.len();
        let ks = self.keys.entry(r.origin).or_default();
        if ks.len() >= KEYS_PER_ORIGIN_MAX || total >= KEYS_MAX {
            return Err(format!(
                "origin {origin} has announced {KEYS_PER_ORIGIN_MAX} keys already, or the keyring is full"
            ));
        }
        ks.push(Admitted {
            record: r.clone(),
            point,
            issued_s: u64::try_from(x.validity().not_before.timestamp()).unwrap_or(0),
        });
        Ok(true)
    }

    /// Every admitted record (what a till relays to its peers and the leader uploads).
    pub fn records(&self) -> Vec<KeyRecord> {
        self.keys
            .values()
            .flatten()
            .map(|k| k.record.clone())
            .collect()
    }

    /// Checks `sig` over `msg` against the keys terminal `terminal` announced; answers
    /// the `notBefore` of the certificate whose key made it (for revocation).
    pub fn check_terminal(&self, terminal: u64, msg: &[u8], sig: &[u8]) -> Result<u64, String> {
        self.keys
            .values()
            .flatten()
            .filter(|k| ReplicaId(k.record.origin).terminal() == terminal)
            .find(|k| {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &k.point)
                    .verify(msg, sig)
                    .is_ok()
            })
            .map(|k| k.issued_s)
            .ok_or_else(|| format!("not signed by a key T{terminal} announced"))
    }

    /// How many records it holds (without copying them: pushers ask before every batch).
    pub fn len(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `e`'s seal: signed by a key its origin announced for that sequence number, or
    /// unsealed from before the origin sealed.
    pub fn check(&self, e: &Event) -> Result<Sealed, String> {
        let keys = self.keys.get(&e.origin.0).map(Vec::as_slice).unwrap_or(&[]);
        let Some(sig) = &e.sig else {
            return match keys.iter().map(|k| k.record.signs_from).min() {
                Some(from) if e.seq >= from => Err(format!(
                    "event {}/{} carries no seal, but its origin seals from {from}",
                    e.origin, e.seq
                )),
                _ => Ok(Sealed::Legacy),
            };
        };
        if sig.len() != SEAL_LEN {
            return Err(format!("event {}/{} has a malformed seal", e.origin, e.seq));
        }
        let msg = message(&self.store_id, e)?;
        let sealed = keys.iter().any(|k| {
            k.record.signs_from <= e.seq
                && UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &k.point)
                    .verify(&msg, sig)
                    .is_ok()
        });
        if sealed {
            Ok(Sealed::Signed)
        } else if keys.is_empty() {
            Err(format!(
                "event {}/{} is sealed by a key its origin never announced",
                e.origin, e.seq
            ))
        } else {
            Err(format!(
                "event {}/{}: the seal is not its origin's",
                e.origin, e.seq
            ))
        }
    }
}
