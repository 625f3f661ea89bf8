//! Support bundles: one `tar.zst` with what a support case needs from a till: its status
//! (version vectors, peers, Raft, cloud link), metrics, config with secrets masked,
//! quarantine, late QR captures, the head of its audit chain and its recent log lines.
//! `GET /api/v1/support/bundle` (a manager) and `tillmesh support-bundle`.

use crate::till::{Till, TillError};

/// Audit entries the bundle carries (the chain's newest).
pub const AUDIT_HEAD: usize = 200;

/// Content type of a bundle.
pub const CONTENT_TYPE: &str = "application/zstd";

/// Words that make a config key secret (its value is masked): case-insensitive substrings.
const SECRET_WORDS: &[&str] = &["token", "pin", "secret", "password", "seed", "key"];

/// The config text with every secret value masked (`"***"`). A text that does not parse is
/// left out whole, never shown unmasked.
pub fn masked_config(text: &str) -> String {
    if text.trim().is_empty() {
        return "# (this till's config was not loaded from a file)\n".into();
    }
    match text.parse::<toml::Table>() {
        Ok(mut t) => {
            mask(&mut t);
            format!(
                "# The till's config as loaded (file and environment), secrets masked.\n{}",
                toml::to_string(&t).unwrap_or_default()
            )
        }
        Err(_) => "# (the config did not parse again: left out)\n".into(),
    }
}

fn mask(t: &mut toml::Table) {
    for (k, v) in t.iter_mut() {
        let lower = k.to_ascii_lowercase();
        if SECRET_WORDS.iter().any(|w| lower.contains(w)) && !v.is_bool() {
            *v = toml::Value::String("***".into());
            continue;
        }
        mask_value(v);
    }
}

fn mask_value(v: &mut toml::Value) {
    match v {
        toml::Value::Table(t) => mask(t),
        toml::Value::Array(a) => a.iter_mut().for_each(mask_value),
        _ => {}
    }
}

/// Pretty JSON of a part of the bundle (or why it could not be written).
fn pretty<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_else(|e| e.to_string().into_bytes())
}

/// The bundle's files, by name.
pub async fn files(till: &Till) -> Result<Vec<(&'static str, Vec<u8>)>, TillError> {
    let status = till.status();
    let quarantine = till.quarantine().await?;
    let audit = till.audit_head(AUDIT_HEAD).await?;
    let logs = crate::logs::recent();
    let readme = format!(
        "Support bundle of till T{} of store {}, tillmesh {}, made at {}.\n\
         status.json: version vectors, peers, Raft group, cloud link, seals, clocks.\n\
         metrics.txt: /metrics (OpenMetrics).\n\
         config.toml: the config as loaded, secrets masked.\n\
         quarantine.json, late-captures.json: events held unapplied; QR payments to refund.\n\
         audit-head.json: the newest {AUDIT_HEAD} entries of the audit chain, newest first.\n\
         logs.txt: the process's last {} log lines (at most {}).\n",
        status.terminal_id,
        status.store_id,
        env!("CARGO_PKG_VERSION"),
        status.now,
        logs.len(),
        crate::logs::LINES_MAX,
    );
    Ok(vec![
        ("README.txt", readme.into_bytes()),
        ("status.json", pretty(&status)),
        ("metrics.txt", till.metrics().render().into_bytes()),
        (
            "config.toml",
            masked_config(&till.config().source).into_bytes(),
        ),
        ("quarantine.json", pretty(&quarantine)),
        ("late-captures.json", pretty(&till.late_captures())),
        ("audit-head.json", pretty(&audit)),
        ("logs.txt", (logs.join("\n") + "\n").into_bytes()),
    ])
}

/// The files in a tar archive under `support/`, zstd-compressed (CPU work: run it off the
/// async executor).
pub fn pack(files: &[(&'static str, Vec<u8>)], mtime_s: u64) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime_s);
        h.set_cksum();
        tar.append_data(&mut h, format!("support/{name}"), &bytes[..])?;
    }
    let tar = tar.into_inner()?;
    Ok(ruzstd::encoding::compress_to_vec(
        &tar[..],
        ruzstd::encoding::CompressionLevel::Fastest,
    ))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        let text = r#"
            [store]
            store_id = "S001"
            [cloud]
            url = "https://hq"
            token = "eyJsecret"
            allow_plain_http = false
            [payments.qr]
            access_key = "AK"
            secret_key_env = "MOMO_SECRET"
            [[staff]]
            employee_id = "E001"
            pin = "1111"
        "#;
        let m = masked_config(text);
        for secret in ["eyJsecret", "\"AK\"", "1111", "MOMO_SECRET"] {
            assert!(!m.contains(secret), "{secret} shows: {m}");
        }
        for kept in ["S001", "https://hq", "E001", "allow_plain_http = false"] {
            assert!(m.contains(kept), "{kept} lost: {m}");
        }
        assert!(masked_config("not = [toml").contains("left out"));
    }
}
