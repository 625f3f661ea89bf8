//! The cloud's configuration file (`configs/cloud.example.toml`).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// Where the ledger lives.
    pub database: DatabaseConfig,
    /// Signing keys of credentials.
    pub auth: AuthConfig,
    /// TLS; plain HTTP when absent (behind a terminating proxy, or on loopback).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Stores registered at start (kept if they exist; new ones are added).
    #[serde(default)]
    pub stores: Vec<StoreSeed>,
    /// Master data imported at start when the cloud has none yet (a catalog file).
    #[serde(default)]
    pub master_seed: Option<PathBuf>,
    /// How often the background task folds new events into the reports; 0 turns the task
    /// off (reports still catch up when they are asked for).
    #[serde(default = "default_projection_ms")]
    pub projection_interval_ms: u64,
}

fn default_projection_ms() -> u64 {
    250
}

/// The database.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DatabaseConfig {
    /// One SQLite file (default; no set-up).
    Sqlite {
        /// Path of the database file.
        path: PathBuf,
    },
    /// PostgreSQL; several cloud instances may share it.
    Postgres {
        /// `postgres://user@host:port/db`.
        url: String,
        /// Connections per instance.
        #[serde(default = "default_pool")]
        pool_size: usize,
    },
}

fn default_pool() -> usize {
    16
}

/// Credential signing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC keys; the first signs, all verify (rotation: put the new key first, remove the old
    /// one once every store holds a credential signed by the new one).
    pub keys: Vec<KeyConfig>,
    /// Lifetime of a store credential, days.
    #[serde(default = "default_store_days")]
    pub store_token_days: u32,
    /// People who sign in to the dashboard (an admin credential for 8 hours).
    #[serde(default)]
    pub admins: Vec<AdminAccount>,
    /// Admin credentials issued before this instant (ms since the epoch, `date +%s%3N`) are
    /// refused: set it to now and restart to revoke every admin credential out there.
    #[serde(default)]
    pub admin_valid_after_ms: u64,
    /// Seed of HQ's Ed25519 master-data key (64 hex digits): when set, every master-data
    /// page a store pulls is signed for it, and tills configured with the public key
    /// (`security.hq_master_key`; `tillmesh hq master-key` prints it) apply only signed
    /// pages. Turn it on once a store's tills run 0.2.0 (a 0.1.0 till cannot read the
    /// signature record).
    #[serde(default)]
    pub master_key_seed: Option<String>,
}

/// A dashboard sign-in.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminAccount {
    /// User name.
    pub user: String,
    /// argon2id PHC string (`tillmesh hq hash-password` makes one).
    pub password_hash: String,
}

fn default_store_days() -> u32 {
    90
}

/// One signing key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id, written in each credential's header.
    pub id: String,
    /// The secret, at least 32 bytes.
    pub secret: String,
}

/// TLS certificate and key (PEM).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// A store registered from the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSeed {
    /// Store id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Local time offset from UTC, minutes.
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

impl CloudConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let cfg: CloudConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a valid cloud config: {e}", path.display()))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks what the types cannot.
    pub fn check(&self) -> anyhow::Result<()> {
        crate::auth::Keyring::new(&self.auth)?;
        for a in &self.auth.admins {
            if a.user.is_empty() || a.user.len() > 64 {
                anyhow::bail!("auth.admins: a user name is 1 to 64 bytes");
            }
            argon2::password_hash::PasswordHash::new(&a.password_hash).map_err(|e| {
                anyhow::anyhow!(
                    "auth.admins: the password hash of {} is not an argon2 PHC string ({e}); make one with `tillmesh hq hash-password`",
                    a.user
                )
            })?;
        }
        for s in &self.stores {
            crate::check_store_id(&s.id).map_err(anyhow::Error::msg)?;
        }
        if let DatabaseConfig::Postgres { pool_size, .. } = self.database
            && !(1..=512).contains(&pool_size)
        {
            anyhow::bail!("database.pool_size must be between 1 and 512");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../../configs/cloud.example.toml");
        let cfg: super::CloudConfig = toml::from_str(text).unwrap();
        cfg.check().unwrap();
        assert_eq!(cfg.stores[0].id, "S001");
    }
}
