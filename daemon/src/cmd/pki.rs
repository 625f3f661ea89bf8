//! The store's certificates: `tillmesh store init` creates a store CA, `tillmesh terminal
//! enroll` issues a till's certificate with it, `tillmesh store revoke` revokes a till's.

use super::write_new;
use std::path::Path;

/// `tillmesh terminal enroll`: a certificate and key for `terminal_id` from the CA in `ca_dir`.
pub(super) fn enroll(ca_dir: &Path, terminal_id: u64, out: &Path) -> anyhow::Result<()> {
    let read = |name: &str| {
        let p = ca_dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let ca = tillmesh_mesh::identity::Pem {
        cert: read("store-ca.pem")?,
        key: read("store-ca.key")?,
    };
    let store_id = read("store.id")?.trim().to_string();
    if !(1..=65_535).contains(&terminal_id) {
        anyhow::bail!("terminal id must be between 1 and 65535");
    }
    let till = tillmesh_mesh::identity::enroll(&ca, &store_id, terminal_id)?;
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
    use tillmesh_mesh::revocation::{REVOKED_MAX, Revocations};
    let read = |name: &str| {
        let p = ca_dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let ca = tillmesh_mesh::identity::Pem {
        cert: read("store-ca.pem")?,
        key: read("store-ca.key")?,
    };
    let store_id = read("store.id")?.trim().to_string();
    if !(1..=65_535).contains(&terminal_id) {
        anyhow::bail!("terminal id must be between 1 and 65535");
    }
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
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&list)?)?;
    std::fs::rename(&tmp, &path)?;
    println!("{}", serde_json::to_string(&signed)?);
    eprintln!(
        "terminal {terminal_id} of store {store_id} revoked ({} in the list); POST the line above to the store's leader: /api/v1/security/revocations",
        list.revoked.len()
    );
    Ok(())
}
