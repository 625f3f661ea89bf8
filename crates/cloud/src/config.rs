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

/// Environment variables that override the cloud config: `TILLMESH_HQ_<SECTION>__<KEY>`.
pub const CLOUD_ENV_PREFIX: &str = "TILLMESH_HQ_";

/// Applies `<prefix><SECTION>__<KEY>=<value>` variables from `vars` to a TOML config: the
/// key `key` of table `[section]` (lower case) takes the value, read as TOML (`8`, `true`,
/// `["a", "b"]`, `"text"`) or else as a bare string. Variables starting with one of `skip`
/// are another program's. Answers the new text and the variables applied (the text is
/// unchanged when none is set).
pub fn with_env_overrides(
    text: &str,
    prefix: &str,
    skip: &[&str],
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(String, Vec<String>), String> {
    let mut found: Vec<(String, String, String, String)> = Vec::new();
    for (name, raw) in vars {
        if skip.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        if section.is_empty() || key.is_empty() || key.contains("__") {
            return Err(format!(
                "{name}: name a section and a key, as {prefix}SECTION__KEY"
            ));
        }
        found.push((
            name.clone(),
            section.to_ascii_lowercase(),
            key.to_ascii_lowercase(),
            raw,
        ));
    }
    if found.is_empty() {
        return Ok((text.to_owned(), Vec::new()));
    }
    let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut applied = Vec::new();
    found.sort();
    for (name, section, key, raw) in found {
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(t) = entry else {
            return Err(format!("{name}: [{section}] is not a table in the config"));
        };
        t.insert(key, value);
        applied.push(name);
    }
    let text = toml::to_string(&table).map_err(|e| e.to_string())?;
    Ok((text, applied))
}

/// " (with X, Y from the environment)" when variables were applied.
pub fn env_note(vars: &[String]) -> String {
    if vars.is_empty() {
        String::new()
    } else {
        format!(" (with {} from the environment)", vars.join(", "))
    }
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
        let (text, vars) = with_env_overrides(&text, CLOUD_ENV_PREFIX, &[], std::env::vars())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let cfg: CloudConfig = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid cloud config{}: {e}",
                path.display(),
                env_note(&vars)
            )
        })?;
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
    use super::with_env_overrides;

    #[test]
    fn environment_variables_override_keys_as_toml_values_or_strings() {
        let text = "[a]\nx = 1\n[b]\ny = \"s\"\n";
        let vars = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let (out, applied) = with_env_overrides(
            text,
            "TM_",
            &["TM_HQ_"],
            vars(&[
                ("TM_A__X", "7"),
                ("TM_B__Z", "[1, 2]"),
                ("TM_C__NAME", "plain words"),
                ("TM_HQ_A__X", "9"),
                ("TM_NOSECTION", "1"),
                ("OTHER__X", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(applied, vec!["TM_A__X", "TM_B__Z", "TM_C__NAME"]);
        let t: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(t["a"]["x"].as_integer(), Some(7));
        assert_eq!(t["b"]["y"].as_str(), Some("s"));
        assert_eq!(t["b"]["z"].as_array().map(Vec::len), Some(2));
        assert_eq!(t["c"]["name"].as_str(), Some("plain words"));
        let (same, none) = with_env_overrides(text, "TM_", &[], vars(&[])).unwrap();
        assert_eq!((same.as_str(), none.len()), (text, 0));
        assert!(with_env_overrides(text, "TM_", &[], vars(&[("TM_A__", "1")])).is_err());
        assert!(with_env_overrides("a = 1\n", "TM_", &[], vars(&[("TM_A__X", "1")])).is_err());
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../../configs/cloud.example.toml");
        let cfg: super::CloudConfig = toml::from_str(text).unwrap();
        cfg.check().unwrap();
        assert_eq!(cfg.stores[0].id, "S001");
    }
}
