//! Schema migrations of an SQLite database with refinery: each pending migration runs in its
//! own transaction with its history row; a database written by a newer version is refused
//! before anything is written to it (its files stay byte-identical); a database made before
//! migrations were tracked is adopted at the version its schema already has.

use refinery::{Runner, Target};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::Path;

/// Refinery's history table.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// Why a database could not be brought to this build's schema.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Written by a newer version: nothing was changed.
    #[error(
        "{path} was written by a newer tillmesh (schema version {found}; this version knows up to {supported}): run the newer version or restore a backup; nothing was changed"
    )]
    TooNew {
        /// The database.
        path: String,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The database could not be read (a damaged file lands here: see
    /// [`MigrateError::sqlite`]).
    #[error("{path}: {source}")]
    Sqlite {
        /// The database.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A migration failed (its transaction rolled back).
    #[error("{path}: schema migration failed: {reason}")]
    Failed {
        /// The database.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl MigrateError {
    /// SQLite's own error, when that is what failed.
    pub fn sqlite(&self) -> Option<&rusqlite::Error> {
        match self {
            MigrateError::Sqlite { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn sqlite(path: &Path) -> impl FnOnce(rusqlite::Error) -> MigrateError + '_ {
    move |source| MigrateError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// A database made before its migrations were tracked: when its `user_version` is
/// `user_version` and it has no history table, migrations up to `as_version` are recorded as
/// applied without running.
#[derive(Clone, Copy, Debug)]
pub struct Legacy {
    /// The `PRAGMA user_version` such a database has (0: none set, but tables exist).
    pub user_version: i64,
    /// The migration its schema equals.
    pub as_version: i32,
}

/// The newest migration `runner` knows.
pub fn latest(runner: &Runner) -> i64 {
    runner
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

fn failed(path: &Path, reason: impl std::fmt::Display) -> MigrateError {
    MigrateError::Failed {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Whether refinery's history table exists.
fn has_history(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [HISTORY_TABLE],
        |r| r.get(0),
    )
}

/// The schema version recorded in a database: its history's newest migration, else the
/// legacy version its `user_version` shows, else 0 (empty).
fn recorded(conn: &Connection, legacy: Option<Legacy>) -> rusqlite::Result<i64> {
    let has_history = has_history(conn)?;
    if has_history {
        let v: Option<i64> = conn
            .query_row(
                &format!("SELECT MAX(version) FROM {HISTORY_TABLE}"),
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        return Ok(v.unwrap_or(0));
    }
    let user_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    Ok(match legacy {
        Some(l) if tables > 0 && user_version == l.user_version => i64::from(l.as_version),
        // Not a schema this build can name: treat as newer, so it is left alone.
        _ if user_version > 0 || tables > 0 => i64::MAX,
        _ => 0,
    })
}

/// Opens `path` to read without creating or changing any file: with no WAL beside it the
/// main file is the whole database, read as immutable (no `-wal` or `-shm` is created);
/// with one, a plain read-only connection reads through it.
fn open_untouched(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    if wal.exists() {
        return Connection::open_with_flags(path, flags);
    }
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
}

/// Refuses, without writing to it, a database at `path` newer than `runner` knows (or one
/// this build cannot name). A missing file is fine.
pub fn check_not_newer(
    path: &Path,
    runner: &Runner,
    legacy: Option<Legacy>,
) -> Result<(), MigrateError> {
    if !path.exists() {
        return Ok(());
    }
    let conn = open_untouched(path).map_err(sqlite(path))?;
    let found = recorded(&conn, legacy).map_err(sqlite(path))?;
    let supported = latest(runner);
    if found > supported {
        return Err(MigrateError::TooNew {
            path: path.display().to_string(),
            found: if found == i64::MAX { -1 } else { found },
            supported,
        });
    }
    Ok(())
}

/// Brings the database open on `conn` (at `path`, for messages) to `runner`'s newest
/// migration: a legacy database is adopted first; a newer one is refused. Answers how many
/// migrations ran.
pub fn migrate(
    conn: &mut Connection,
    path: &Path,
    runner: &Runner,
    legacy: Option<Legacy>,
) -> Result<usize, MigrateError> {
    let found = recorded(conn, legacy).map_err(sqlite(path))?;
    let supported = latest(runner);
    if found > supported {
        return Err(MigrateError::TooNew {
            path: path.display().to_string(),
            found: if found == i64::MAX { -1 } else { found },
            supported,
        });
    }
    let has_history = has_history(conn).map_err(sqlite(path))?;
    if !has_history && found > 0 {
        let adopt = i32::try_from(found).map_err(|e| failed(path, e))?;
        Runner::new(runner.get_migrations())
            .set_target(Target::FakeVersion(adopt))
            .run(conn)
            .map_err(|e| failed(path, e))?;
    }
    let report = Runner::new(runner.get_migrations())
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run(conn)
        .map_err(|e| failed(path, e))?;
    Ok(report.applied_migrations().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use refinery::Migration;

    fn runner(n: usize) -> Runner {
        let all = [
            ("V1__one", "CREATE TABLE a (x INTEGER);"),
            ("V2__two", "CREATE TABLE b (y INTEGER);"),
            (
                "V3__bad",
                "CREATE TABLE c (z INTEGER); INSERT INTO nowhere VALUES (1);",
            ),
        ];
        let ms: Vec<_> = all[..n]
            .iter()
            .map(|(n, s)| Migration::unapplied(n, s).unwrap())
            .collect();
        Runner::new(&ms)
    }

    #[test]
    fn migrates_refuses_newer_untouched_and_rolls_back_a_failed_step() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        let mut c = Connection::open(&p).unwrap();
        assert_eq!(migrate(&mut c, &p, &runner(2), None).unwrap(), 2);
        assert_eq!(migrate(&mut c, &p, &runner(2), None).unwrap(), 0);
        // As every database here runs: WAL (the file is checkpointed and the WAL removed when
        // the last connection closes).
        c.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        drop(c);
        // An older build: refused before writing, the file byte-identical, nothing beside it.
        let before = std::fs::read(&p).unwrap();
        let listing = || {
            let mut v: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let files = listing();
        let err = check_not_newer(&p, &runner(1), None).unwrap_err();
        assert!(
            err.to_string().contains("newer tillmesh (schema version 2"),
            "{err}"
        );
        assert_eq!(listing(), files, "no -wal or -shm appeared");
        let mut c = Connection::open(&p).unwrap();
        assert!(matches!(
            migrate(&mut c, &p, &runner(1), None),
            Err(MigrateError::TooNew { found: 2, .. })
        ));
        drop(c);
        assert_eq!(std::fs::read(&p).unwrap(), before);
        // A failing migration leaves nothing of itself behind.
        let mut c = Connection::open(&p).unwrap();
        assert!(migrate(&mut c, &p, &runner(3), None).is_err());
        let c_exists: bool = c
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'c')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!c_exists);
        assert_eq!(recorded(&c, None).unwrap(), 2);
    }

    #[test]
    fn a_legacy_database_is_adopted_and_an_unnamed_one_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        let mut c = Connection::open(&p).unwrap();
        c.execute_batch("CREATE TABLE a (x INTEGER); PRAGMA user_version = 7;")
            .unwrap();
        let legacy = Some(Legacy {
            user_version: 7,
            as_version: 1,
        });
        assert_eq!(migrate(&mut c, &p, &runner(2), legacy).unwrap(), 1);
        assert_eq!(recorded(&c, None).unwrap(), 2);
        let q = dir.path().join("y.db");
        let mut c = Connection::open(&q).unwrap();
        c.execute_batch("CREATE TABLE z (x INTEGER);").unwrap();
        assert!(matches!(
            migrate(&mut c, &q, &runner(2), legacy),
            Err(MigrateError::TooNew { .. })
        ));
    }
}
