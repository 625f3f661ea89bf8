//! The store's certificates: `tillmesh store init` creates a store CA, `tillmesh terminal
//! enroll` issues a till's certificate with it, `tillmesh store token` packs one into a join
//! token, `tillmesh store revoke` revokes a till's.

use super::write_new;
use std::path::Path;

/// The terminal ids a store CA issued, with when (ms), kept in its folder (`issued.json`), so
/// that an id is never issued to two tills.
const ISSUED: &str = "issued.json";

/// Written into a CA folder handed to HQ (`hq add-store --ca-dir`): HQ issues the store's
/// terminal ids from then on, so the folder issues none.
const AT_HQ: &str = "at-hq.json";

/// The store CA in `ca_dir` (as `store init` writes it) and its store id.
fn read_ca(ca_dir: &Path) -> anyhow::Result<(tillmesh_mesh::identity::Pem, String)> {
    let read = |name: &str| {
        let p = ca_dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let ca = tillmesh_mesh::identity::Pem {
        cert: read("store-ca.pem")?,
        key: read("store-ca.key")?,
    };
    Ok((ca, read("store.id")?.trim().to_string()))
}

fn check_terminal_id(terminal_id: u64) -> anyhow::Result<()> {
    if !(1..=65_535).contains(&terminal_id) {
        anyhow::bail!("terminal id must be between 1 and 65535");
    }
    Ok(())
}

/// Replaces `path` with `value` as pretty JSON, whole or not at all.
fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A certificate and key for `terminal_id` (or the next id never issued) from the CA in
/// `ca_dir`, recorded in its `issued.json`; an id issued before only `again`. Answers the
/// CA, the store id, the id and the till's certificate and key.
fn issue(
    ca_dir: &Path,
    terminal_id: Option<u64>,
    again: bool,
) -> anyhow::Result<(
    tillmesh_mesh::identity::Pem,
    String,
    u64,
    tillmesh_mesh::identity::Pem,
)> {
    let (ca, store_id) = read_ca(ca_dir)?;
    if ca_dir.join(AT_HQ).exists() {
        anyhow::bail!(
            "HQ holds this store's CA and issues its terminal ids ({}): make a join token with `tillmesh hq join-token --store {store_id}`, or let a manager admit the till",
            ca_dir.join(AT_HQ).display()
        );
    }
    let issued_path = ca_dir.join(ISSUED);
    let mut issued: std::collections::BTreeMap<u64, Vec<u64>> =
        match std::fs::read_to_string(&issued_path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| {
                anyhow::anyhow!("{} is not a list of issued ids: {e}", issued_path.display())
            })?,
            Err(_) => Default::default(),
        };
    let terminal_id =
        terminal_id.unwrap_or_else(|| issued.keys().next_back().map_or(1, |last| last + 1));
    check_terminal_id(terminal_id)?;
    if let Some(when) = issued.get(&terminal_id).and_then(|w| w.last())
        && !again
    {
        anyhow::bail!(
            "terminal {terminal_id} was issued already (at {} ms): a till that lost its disk re-enrols with --again; a new till takes a new id (leave out --terminal-id)",
            when
        );
    }
    let till = tillmesh_mesh::identity::enroll(&ca, &store_id, terminal_id)?;
    issued.entry(terminal_id).or_default().push(now_ms()?);
    write_json(&issued_path, &issued)?;
    Ok((ca, store_id, terminal_id, till))
}

/// The CA in `ca_dir`, its store id, and the next terminal id it would issue, for handing
/// it to HQ.
pub(super) fn for_hq(ca_dir: &Path) -> anyhow::Result<(tillmesh_mesh::identity::Pem, String, u64)> {
    let (ca, store_id) = read_ca(ca_dir)?;
    let issued: std::collections::BTreeMap<u64, Vec<u64>> =
        match std::fs::read_to_string(ca_dir.join(ISSUED)) {
            Ok(t) => serde_json::from_str(&t)?,
            Err(_) => Default::default(),
        };
    let next = issued.keys().next_back().map_or(1, |last| last + 1);
    Ok((ca, store_id, next))
}

/// Marks `ca_dir` as handed to HQ: it issues no terminal id any more.
pub(super) fn mark_at_hq(ca_dir: &Path, store_id: &str) -> anyhow::Result<()> {
    write_json(
        &ca_dir.join(AT_HQ),
        &serde_json::json!({"store": store_id, "at_ms": now_ms()?}),
    )
}

fn now_ms() -> anyhow::Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64)
}

/// `tillmesh terminal enroll`: a certificate and key for `terminal_id` (or the next id never
/// issued) from the CA in `ca_dir`, written to `out`; an id issued before only `again`.
/// Answers the id.
pub(super) fn enroll(
    ca_dir: &Path,
    terminal_id: Option<u64>,
    again: bool,
    out: &Path,
) -> anyhow::Result<u64> {
    let (ca, store_id, terminal_id, till) = issue(ca_dir, terminal_id, again)?;
    std::fs::create_dir_all(out)?;
    write_new(
        &out.join(format!("till-{terminal_id}.pem")),
        &till.cert,
        false,
    )?;
    write_new(
        &out.join(format!("till-{terminal_id}.key")),
        &till.key,
        true,
    )?;
    std::fs::write(out.join("store-ca.pem"), &ca.cert)?;
    println!(
        "enrolled terminal {terminal_id} of store {store_id}: {}",
        out.join(format!("till-{terminal_id}.pem")).display()
    );
    Ok(terminal_id)
}

/// Reads a duration such as `90s`, `30m`, `24h` or `7d` as milliseconds.
pub(super) fn duration_ms(text: &str) -> anyhow::Result<u64> {
    let bad = || anyhow::anyhow!("{text:?} is not a duration like 30m, 24h or 7d");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_ms).filter(|&ms| ms > 0).ok_or_else(bad)
}

/// `tillmesh store token`: a one-time join token for `terminal_id` (or the next id never
/// issued), valid for `valid_for_ms`, printed as text and as a QR code.
pub(super) fn token(
    ca_dir: &Path,
    terminal_id: Option<u64>,
    again: bool,
    valid_for_ms: u64,
    peers: Vec<std::net::SocketAddr>,
    http_peers: Vec<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    if valid_for_ms > 30 * 86_400_000 {
        anyhow::bail!("a join token is valid for at most 30 days (--valid-for 30d)");
    }
    let (ca, store_id, terminal_id, till) = issue(ca_dir, terminal_id, again)?;
    let expires_ms = now_ms()? + valid_for_ms;
    let token = tillmesh::enrol::JoinToken {
        store_id: store_id.clone(),
        terminal: terminal_id,
        id: token_id()?,
        expires_ms,
        ca: ca.cert,
        cert: till.cert,
        key: till.key,
        peers,
        http_peers,
        cloud: None,
    };
    print_token(&token)
}

/// A random token id (16 hex digits).
pub(super) fn token_id() -> anyhow::Result<String> {
    let mut id = [0_u8; 8];
    getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("no OS random source: {e}"))?;
    Ok(hex::encode(id))
}

/// Prints a join token as text, then as a QR code; says on stderr what it is worth.
pub(super) fn print_token(token: &tillmesh::enrol::JoinToken) -> anyhow::Result<()> {
    let text = token.encode()?;
    let qr = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("the token does not fit a QR code: {e}"))?
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build();
    println!("{text}");
    println!("{qr}");
    eprintln!(
        "join token {} for terminal {} of store {}, valid until {}: it holds the till's key, so hand it over like a password; it admits one till, once",
        token.id,
        token.terminal,
        token.store_id,
        tillmesh::clock::rfc3339(token.expires_ms)
    );
    Ok(())
}

/// `tillmesh store init`: a new store CA in `out`.
pub(super) fn init(store_id: &str, out: &Path) -> anyhow::Result<()> {
    if store_id.trim().is_empty() || store_id.len() > 32 {
        anyhow::bail!("store id must be 1 to 32 characters");
    }
    let ca = tillmesh_mesh::identity::create_store_ca(store_id)?;
    std::fs::create_dir_all(out)?;
    write_new(&out.join("store-ca.key"), &ca.key, true)?;
    write_new(&out.join("store-ca.pem"), &ca.cert, false)?;
    std::fs::write(out.join("store.id"), format!("{store_id}\n"))?;
    println!(
        "store {store_id} CA written to {} (keep store-ca.key off the tills)",
        out.display()
    );
    Ok(())
}

/// `tillmesh store revoke`: adds `terminal_id` to the revocation list kept in `ca_dir`
/// (`revocations.json`), signs the list and prints it.
pub(super) fn revoke(ca_dir: &Path, terminal_id: u64) -> anyhow::Result<()> {
    use tillmesh_mesh::revocation::{REVOKED_MAX, Revocations, RevocationsExt};
    let (ca, store_id) = read_ca(ca_dir)?;
    check_terminal_id(terminal_id)?;
    let path = ca_dir.join("revocations.json");
    let mut list: Revocations = match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| anyhow::anyhow!("{} is not a revocation list: {e}", path.display()))?,
        Err(_) => Revocations {
            store_id: store_id.clone(),
            ..Revocations::default()
        },
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    if list.revoked.len() >= REVOKED_MAX && !list.revoked.contains_key(&terminal_id) {
        anyhow::bail!("the list already revokes {REVOKED_MAX} terminals");
    }
    // Every certificate issued to the terminal until this second.
    list.revoked.insert(terminal_id, now / 1000);
    list.issued_ms = now.max(list.issued_ms + 1);
    let signed = list.sign(&ca)?;
    write_json(&path, &list)?;
    println!("{}", serde_json::to_string(&signed)?);
    eprintln!(
        "terminal {terminal_id} of store {store_id} revoked ({} in the list); POST the line above to the store's leader: /api/v1/security/revocations",
        list.revoked.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_ids_are_issued_once_unless_a_till_re_enrols() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("pki");
        init("S001", &ca).unwrap();
        let out = |n: &str| dir.path().join(n);
        assert_eq!(enroll(&ca, None, false, &out("a")).unwrap(), 1);
        assert_eq!(enroll(&ca, None, false, &out("b")).unwrap(), 2);
        let twice = enroll(&ca, Some(1), false, &out("c"))
            .unwrap_err()
            .to_string();
        assert!(twice.contains("issued already"), "{twice}");
        assert!(!out("c").join("till-1.pem").exists(), "nothing written");
        // A till that lost its disk re-enrols under its old id.
        assert_eq!(enroll(&ca, Some(1), true, &out("d")).unwrap(), 1);
        assert_eq!(enroll(&ca, Some(7), false, &out("e")).unwrap(), 7);
        assert_eq!(enroll(&ca, None, false, &out("f")).unwrap(), 8);
        assert!(enroll(&ca, Some(0), false, &out("g")).is_err());
    }
}
