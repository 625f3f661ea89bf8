//! Credentials: HS256 JSON Web Tokens naming a store (or HQ admin), with expiry, a key id for
//! rotation of signing keys, and an issue instant so HQ can revoke a store's older tokens.

use crate::config::AuthConfig;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Shortest accepted secret.
pub const SECRET_BYTES_MIN: usize = 32;

/// Who a credential is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A store's leader: uploads and pulls master data for `sub`.
    Store,
    /// HQ staff: master data, stores, reports.
    Admin,
}

/// The claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Store id, or `hq` for an admin.
    pub sub: String,
    /// Role.
    pub role: Role,
    /// Issued at, ms (revocation compares against it).
    pub iat_ms: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Unique id.
    pub jti: String,
}

/// Why a credential is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no credential: send `Authorization: Bearer <token>`")]
    Missing,
    /// Expired.
    #[error("the credential has expired; ask HQ for a new one")]
    Expired,
    /// Bad signature, unknown key, malformed.
    #[error("the credential is not valid: {0}")]
    Invalid(String),
    /// Valid, but for another role.
    #[error("this credential does not allow that")]
    Forbidden,
}

/// The signing keys.
pub struct Keyring {
    keys: Vec<(String, EncodingKey, DecodingKey)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<_> = self.keys.iter().map(|k| &k.0).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// Builds the keyring, refusing short secrets, duplicate ids and an empty list.
    pub fn new(cfg: &AuthConfig) -> anyhow::Result<Self> {
        if cfg.keys.is_empty() {
            anyhow::bail!("auth.keys is empty: at least one signing key is needed");
        }
        let mut keys = Vec::new();
        for k in &cfg.keys {
            if k.secret.len() < SECRET_BYTES_MIN {
                anyhow::bail!(
                    "auth key {:?} is {} bytes; secrets must be at least {SECRET_BYTES_MIN}",
                    k.id,
                    k.secret.len()
                );
            }
            if keys.iter().any(|(id, _, _)| id == &k.id) {
                anyhow::bail!("auth key id {:?} appears twice", k.id);
            }
            keys.push((
                k.id.clone(),
                EncodingKey::from_secret(k.secret.as_bytes()),
                DecodingKey::from_secret(k.secret.as_bytes()),
            ));
        }
        Ok(Self { keys })
    }

    /// Issues a credential valid for `ttl_ms` from `now_ms`.
    pub fn issue(&self, sub: &str, role: Role, now_ms: u64, ttl_ms: u64) -> (String, Claims) {
        let mut jti = [0u8; 12];
        getrandom::fill(&mut jti).expect("the OS random source works");
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            iat_ms: now_ms,
            exp: (now_ms + ttl_ms) / 1000,
            jti: hex::encode(jti),
        };
        let (kid, key, _) = &self.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, key).expect("HS256 signing cannot fail");
        (token, claims)
    }

    /// Verifies a credential (signature, key id, expiry) and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Invalid("no key id".into()))?;
        let (_, _, key) = self
            .keys
            .iter()
            .find(|(id, _, _)| *id == kid)
            .ok_or_else(|| AuthError::Invalid(format!("unknown signing key {kid:?}")))?;
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        jsonwebtoken::decode::<Claims>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })
    }
}

impl Keyring {
    /// The claims of a credential whose signature is good, expired or not (so a refusal
    /// can be attributed to the store HQ issued it to); `None` for anything else.
    pub fn signed_claims(&self, token: &str) -> Option<Claims> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        let (_, _, key) = self.keys.iter().find(|(id, _, _)| *id == kid)?;
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims = ["sub"].iter().map(|s| s.to_string()).collect();
        jsonwebtoken::decode::<Claims>(token, key, &v)
            .ok()
            .map(|d| d.claims)
    }
}

/// An argon2id PHC string for a dashboard password, with a fresh random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0_u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyConfig;

    fn cfg(keys: &[(&str, &str)]) -> AuthConfig {
        AuthConfig {
            keys: keys
                .iter()
                .map(|(id, s)| KeyConfig {
                    id: id.to_string(),
                    secret: s.to_string(),
                })
                .collect(),
            store_token_days: 90,
            admins: vec![],
            admin_valid_after_ms: 0,
            master_key_seed: None,
        }
    }
    const A: &str = "0123456789abcdef0123456789abcdef-a";
    const B: &str = "0123456789abcdef0123456789abcdef-b";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[test]
    fn rotation_keeps_old_tokens_until_their_key_is_removed() {
        let old = Keyring::new(&cfg(&[("k1", A)])).unwrap();
        let (t, _) = old.issue("S001", Role::Store, now(), 3_600_000);
        let both = Keyring::new(&cfg(&[("k2", B), ("k1", A)])).unwrap();
        assert_eq!(both.verify(&t).unwrap().sub, "S001");
        let (t2, _) = both.issue("S001", Role::Store, now(), 3_600_000);
        let new = Keyring::new(&cfg(&[("k2", B)])).unwrap();
        assert!(new.verify(&t2).is_ok());
        assert!(matches!(new.verify(&t), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn expired_and_forged_tokens_are_refused() {
        let k = Keyring::new(&cfg(&[("k1", A)])).unwrap();
        let (t, _) = k.issue("S001", Role::Store, now() - 7_200_000, 3_600_000);
        assert_eq!(k.verify(&t), Err(AuthError::Expired));
        let other = Keyring::new(&cfg(&[("k1", B)])).unwrap();
        let (forged, _) = other.issue("S001", Role::Admin, now(), 3_600_000);
        assert!(matches!(k.verify(&forged), Err(AuthError::Invalid(_))));
        assert!(matches!(
            k.verify("not a token"),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn short_secrets_and_duplicate_ids_are_refused() {
        assert!(Keyring::new(&cfg(&[("k1", "short")])).is_err());
        assert!(Keyring::new(&cfg(&[("k1", A), ("k1", B)])).is_err());
        assert!(Keyring::new(&cfg(&[])).is_err());
    }
}
