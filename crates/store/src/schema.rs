//! Connection set-up (WAL, synchronous=FULL) and schema migrations (refinery, SQL files in
//! `crates/store/migrations/`; a shipped migration is never edited, a change is a new one).

use crate::StoreError;
use rusqlite::Connection;
use std::path::Path;
use tillmesh_checkpoint::migrate::{self, Legacy};

refinery::embed_migrations!("migrations");

/// A store made before migrations were tracked (`user_version` 3) has the schema of `V1`.
const LEGACY: Legacy = Legacy {
    user_version: 3,
    as_version: 1,
};

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    tillmesh_checkpoint::migrate::latest(&migrations::runner())
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Io(format!(
            "could not switch to WAL (got {mode})"
        )));
    }
    // FULL: the WAL is fsync'd at every commit, so a commit that returned survives power loss.
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    tillmesh_checkpoint::stable_plans(conn)?;
    Ok(())
}

/// Opens the write connection and runs pending migrations.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
    }
    let runner = migrations::runner();
    // Checked read-only first: a newer database is refused before anything writes to it.
    migrate::check_not_newer(path, &runner, Some(LEGACY))?;
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    // The store's checkpoint thread does this work; see `Store::open`.
    conn.execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864;")?;
    migrate::migrate(&mut conn, path, &runner, Some(LEGACY))?;
    crate::write::materialise_unapplied(&mut conn)?;
    Ok(conn)
}

/// Opens a read connection (after [`open`] has migrated).
pub(crate) fn open_read(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    Ok(conn)
}
