//! Checkpoints a WAL database off the commit path, from its own thread and connection: the
//! writers run with `wal_autocheckpoint=0`, so a commit waits only for its own WAL fsync.
//! PASSIVE checkpoints never block a writer; past [`WAL_BYTES_MAX`] a RESTART waits for the
//! writer so the WAL cannot grow without bound under constant load. Stops when dropped.

pub mod migrate;

use crossbeam_channel::{Sender, bounded};
use std::path::{Path, PathBuf};

/// How often the background thread checkpoints the WAL into the database file.
pub const CHECKPOINT_INTERVAL_MS: u64 = 250;
/// WAL size past which the checkpointer waits for the writer and restarts the WAL from its
/// start. Under constant load passive checkpoints never catch up with the writer, so without
/// this the WAL would grow without bound.
pub const WAL_BYTES_MAX: u64 = 32 << 20;

/// Turns on SQLite's query planner stability guarantee on `conn`. Without it, a statement
/// whose plan read a bound value (a `LIMIT ?`, a range bound against stat4 samples, a `LIKE ?`
/// pattern) is re-prepared at every new binding: a cached statement was parsed again on each
/// use. Plans then never depend on bound values, which no query here relies on.
pub fn stable_plans(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// The background checkpointer of one database; stops (and joins its thread) when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// Why the checkpointer could not start.
#[derive(Debug)]
pub enum StartError {
    /// The database could not be opened in WAL mode.
    Sqlite(rusqlite::Error),
    /// The database is not in WAL mode (and could not be switched).
    NotWal(String),
    /// The thread could not be spawned.
    Thread(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Sqlite(e) => write!(f, "checkpointer: {e}"),
            StartError::NotWal(m) => write!(f, "checkpointer: could not switch to WAL (got {m})"),
            StartError::Thread(e) => write!(f, "checkpointer thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl Checkpointer {
    /// Starts checkpointing the database at `path` every [`CHECKPOINT_INTERVAL_MS`].
    pub fn start(path: &Path) -> Result<Self, StartError> {
        let conn = rusqlite::Connection::open(path).map_err(StartError::Sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(StartError::Sqlite)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(StartError::Sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StartError::NotWal(mode));
        }
        let wal_path = PathBuf::from(format!("{}-wal", path.display()));
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let handle = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let every = std::time::Duration::from_millis(CHECKPOINT_INTERVAL_MS);
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(every)
                {
                    let big = std::fs::metadata(&wal_path).is_ok_and(|m| m.len() > WAL_BYTES_MAX);
                    let sql = if big {
                        "PRAGMA wal_checkpoint(RESTART)"
                    } else {
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    };
                    if let Err(e) = conn.query_row(sql, [], |_| Ok(())) {
                        tracing::warn!(cause = %e, "WAL checkpoint failed; will retry");
                    }
                }
            })
            .map_err(StartError::Thread)?;
        Ok(Self {
            stop: Some(stop_tx),
            handle: Some(handle),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpointer_empties_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x BLOB);")
            .unwrap();
        for _ in 0..200 {
            conn.execute("INSERT INTO t VALUES (randomblob(1000))", [])
                .unwrap();
        }
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let before = std::fs::metadata(&wal).unwrap().len();
        assert!(before > 100_000, "the WAL holds the inserts: {before}");
        let c = Checkpointer::start(&path).unwrap();
        // The checkpoint copies the WAL's frames into the database file; wait for it.
        let db_len = || std::fs::metadata(&path).unwrap().len();
        let mut waited = 0;
        while db_len() < 100_000 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            waited += 1;
            assert!(waited < 400, "no checkpoint after 20 s");
        }
        drop(c);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        assert!(Checkpointer::start(Path::new("/nonexistent/dir/db.sqlite")).is_err());
    }
}
