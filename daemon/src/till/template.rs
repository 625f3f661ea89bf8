//! Simulated tills start from a copy: the first simulated till of a store seeds a database
//! once per process, and every later one (other tills, later seeds of a fuzz run) copies it
//! and takes its own replica id, instead of migrating, parsing the catalog and writing its
//! opening stock again. Real tills always seed their own.

use super::*;
use std::collections::BTreeMap;
use std::path::Path;

/// A seeded database and what its seed answered.
struct Template {
    /// The database file, closed (no WAL beside it).
    bytes: Vec<u8>,
    master: MasterData,
    catalog: Catalog,
}

/// What a seed depends on, besides the replica id: the catalog file's bytes, the store (the
/// seed's audit record), the time (its `seeded` mark) and the staff (their PIN hashes).
type Key = [u8; 32];

/// Templates kept at once (a chain simulation has a catalog per run; the oldest goes first).
const TEMPLATES_MAX: usize = 8;

static TEMPLATES: Mutex<BTreeMap<Key, (u64, Arc<Template>)>> = Mutex::new(BTreeMap::new());
static USES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn key(cfg: &TerminalConfig, now: u64) -> anyhow::Result<Key> {
    use sha2::{Digest, Sha256};
    let text = std::fs::read(&cfg.catalog.path)
        .map_err(|e| anyhow::anyhow!("cannot read catalog {}: {e}", cfg.catalog.path.display()))?;
    let mut h = Sha256::new();
    h.update(text);
    h.update(cfg.store.store_id.as_bytes());
    h.update(now.to_le_bytes());
    for s in &cfg.staff {
        h.update(serde_json::to_vec(&(
            &s.employee_id,
            &s.name,
            s.role,
            &s.pin,
        ))?);
    }
    Ok(h.finalize().into())
}

/// For a simulated till with no database yet: writes a copy of the seeded template into its
/// data directory (seeding the template first when this process has none for its catalog),
/// and answers the master data and catalog the seed answered. `None` otherwise.
pub(super) fn place(
    cfg: &TerminalConfig,
    now: u64,
) -> anyhow::Result<Option<(MasterData, Catalog)>> {
    let path = cfg.terminal.data_dir.join("till.db");
    if cfg.terminal.simulated.is_none() || path.exists() {
        return Ok(None);
    }
    let k = key(cfg, now)?;
    let use_no = USES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let held = TEMPLATES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(&k)
        .map(|(used, t)| {
            *used = use_no;
            t.clone()
        });
    let t = match held {
        Some(t) => t,
        None => {
            let t = Arc::new(build(cfg, now)?);
            let mut all = TEMPLATES.lock().unwrap_or_else(|p| p.into_inner());
            if all.len() >= TEMPLATES_MAX
                && let Some(oldest) = all.iter().min_by_key(|(_, (u, _))| *u).map(|(k, _)| *k)
            {
                all.remove(&oldest);
            }
            all.insert(k, (use_no, t.clone()));
            t
        }
    };
    std::fs::create_dir_all(&cfg.terminal.data_dir)?;
    std::fs::write(&path, &t.bytes)?;
    Ok(Some((t.master.clone(), t.catalog.clone())))
}

/// Seeds a database beside the till's data directory, closes it and reads it back.
fn build(cfg: &TerminalConfig, now: u64) -> anyhow::Result<Template> {
    let dir = cfg.terminal.data_dir.with_extension("template");
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("till.db");
    let made = (|| {
        let store = Store::open_with(&file, tillmesh_store::Mode::Inline)?;
        let (master, catalog) = super::open::seed(&store, cfg, now)?;
        // A simulated till's connections leave their WAL at close
        // (`tillmesh_store::keep_wal_at_close`): folded into the file here.
        drop(store);
        tillmesh_store::fold_wal(&file)?;
        if wal_of(&file).exists() {
            anyhow::bail!("the template database kept a WAL after closing");
        }
        Ok(Template {
            bytes: std::fs::read(&file)?,
            master,
            catalog,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    made
}

fn wal_of(file: &Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}-wal", file.display()))
}

/// Makes a copy placed by [`place`] this till's own: its replica id.
pub(super) fn claim(store: &Store, cfg: &TerminalConfig) -> anyhow::Result<()> {
    store.commit_blocking(WriteBatch {
        meta: vec![(
            "replica_id".into(),
            super::open::new_replica_id(cfg)?.0.to_string(),
        )],
        ..Default::default()
    })?;
    Ok(())
}
