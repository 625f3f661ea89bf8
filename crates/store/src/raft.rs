//! Durable storage for the store's Raft group: the log, the vote and the state-machine
//! snapshot, in their own SQLite file (`raft.db` beside the till's database) so that Raft's
//! small, frequent fsyncs never wait behind a group of sales, and the other way round.
//! Entries are opaque bytes here; the consensus crate encodes them.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

refinery::embed_migrations!("raft-migrations");

/// A `raft.db` made before migrations were tracked has the schema of `V1`.
const LEGACY: tillmesh_checkpoint::migrate::Legacy = tillmesh_checkpoint::migrate::Legacy {
    user_version: 0,
    as_version: 1,
};

/// Master-data records by key, as JSON.
pub type MasterRecords = BTreeMap<String, String>;

/// Most log entries read at once.
pub const RAFT_READ_MAX: u64 = 4_096;

/// A range of log entries, at most `?3` of them.
const RANGE: &str =
    "SELECT idx, entry FROM raft_log WHERE idx >= ?1 AND idx < ?2 ORDER BY idx LIMIT ?3";

/// The Raft database. Every write is one fsync'd transaction (WAL, `synchronous=FULL`).
#[derive(Debug)]
pub struct RaftDb {
    conn: Mutex<Connection>,
    /// A second, read-only connection for the master-data records (megabytes with a big
    /// catalog): reading them takes a WAL snapshot of the last commit, so Raft's appends and
    /// votes on `conn` never wait for such a read.
    reader: Mutex<Connection>,
}

impl RaftDb {
    /// Opens (creating when missing) the Raft database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, crate::Mode::Durable)
    }

    /// Opens with `mode`: [`crate::Mode::Inline`] (the simulator) commits with
    /// `synchronous=OFF`, for the reason the event store does (a simulated crash is a
    /// process dying, and the OS keeps what was committed).
    pub fn open_with(path: &Path, mode: crate::Mode) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
        }
        let runner = migrations::runner();
        tillmesh_checkpoint::migrate::check_not_newer(path, &runner, Some(LEGACY))?;
        let mut conn = crate::schema::open_read(path)?;
        tillmesh_checkpoint::migrate::migrate(&mut conn, path, &runner, Some(LEGACY))?;
        let reader = crate::schema::open_read(path)?;
        reader.execute_batch("PRAGMA query_only=ON;")?;
        if mode == crate::Mode::Inline {
            conn.execute_batch("PRAGMA synchronous=OFF;")?;
            crate::keep_wal_at_close(&conn)?;
            crate::keep_wal_at_close(&reader)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    /// Appends (or overwrites) entries `(index, bytes)` in one transaction.
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR REPLACE INTO raft_log (idx, entry) VALUES (?1, ?2)",
                )?;
                for (i, e) in entries {
                    st.execute(params![*i as i64, e])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Deletes every entry from `index` on (a conflicting suffix).
    pub fn truncate_from(&self, index: u64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM raft_log WHERE idx >= ?1", [index as i64])?;
            Ok(())
        })
    }

    /// Deletes every entry up to and including `index`, recording `meta` (the last purged log
    /// id) in the same transaction.
    pub fn purge_upto(&self, index: u64, key: &str, meta: &[u8]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO raft_meta (key, value) VALUES (?1, ?2)",
                params![key, meta],
            )?;
            tx.execute("DELETE FROM raft_log WHERE idx <= ?1", [index as i64])?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Entries with `from <= index < to`, at most [`RAFT_READ_MAX`], in order.
    pub fn range(&self, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare_cached(RANGE)?;
            let rows = st.query_map(
                params![
                    from as i64,
                    to.min(i64::MAX as u64) as i64,
                    RAFT_READ_MAX as i64
                ],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The last entry.
    pub fn last(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT idx, entry FROM raft_log ORDER BY idx DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
        })
    }

    /// A metadata value (vote, committed, snapshot, ...).
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT value FROM raft_meta WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
    }

    /// Sets (or with `None` deletes) metadata values in one transaction.
    pub fn set_meta(&self, values: &[(&str, Option<&[u8]>)]) -> Result<(), StoreError> {
        self.write(values, &[], false)
    }

    /// Sets (or with `None` deletes) metadata values and master-data records, in order, in
    /// one transaction; with `replace`, every record held before goes first.
    pub fn write(
        &self,
        values: &[(&str, Option<&[u8]>)],
        records: &[(String, Option<String>)],
        replace: bool,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for (k, v) in values {
                match v {
                    Some(v) => tx.execute(
                        "INSERT OR REPLACE INTO raft_meta (key, value) VALUES (?1, ?2)",
                        params![k, v],
                    )?,
                    None => tx.execute("DELETE FROM raft_meta WHERE key = ?1", [k])?,
                };
            }
            if replace {
                tx.execute("DELETE FROM raft_master", [])?;
            }
            {
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO raft_master (key, json) VALUES (?1, ?2)",
                )?;
                let mut del = tx.prepare_cached("DELETE FROM raft_master WHERE key = ?1")?;
                for (k, v) in records {
                    match v {
                        Some(v) => put.execute(params![k, v])?,
                        None => del.execute([k])?,
                    };
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// A metadata value and every master-data record, read together (as one commit wrote
    /// them), on the read-only connection: writes go on meanwhile.
    pub fn meta_and_master(
        &self,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, MasterRecords), StoreError> {
        let mut c = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let tx = c.transaction()?;
        let meta = tx
            .query_row("SELECT value FROM raft_meta WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?;
        let records = {
            let mut st = tx.prepare_cached("SELECT key, json FROM raft_master")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        tx.commit()?;
        Ok((meta, records))
    }

    /// One master-data record.
    pub fn master_record(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT json FROM raft_master WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RaftDb;

    #[test]
    fn a_master_data_read_does_not_wait_for_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = std::sync::Arc::new(RaftDb::open(&dir.path().join("raft.db")).unwrap());
        let records = [("item:A".to_string(), Some("{}".to_string()))];
        db.write(&[("machine", Some(b"m1"))], &records, false)
            .unwrap();
        // The writer's connection is held here, as during an append or a vote.
        db.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM raft_master", [])?;
            let (sent, got) = std::sync::mpsc::channel();
            let other = db.clone();
            std::thread::spawn(move || sent.send(other.meta_and_master("machine")));
            // A guard against a hang, not a timing: the read waits for nothing.
            let (meta, read) = got
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("the read waited for the writer")
                .unwrap();
            // What the last commit left, not the uncommitted delete.
            assert_eq!(meta.as_deref(), Some(&b"m1"[..]));
            assert_eq!(read.len(), 1);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn log_and_meta_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("raft.db");
        {
            let db = RaftDb::open(&p).unwrap();
            db.append(&[(1, vec![1]), (2, vec![2]), (3, vec![3])])
                .unwrap();
            db.truncate_from(3).unwrap();
            db.purge_upto(1, "purged", b"1").unwrap();
            db.set_meta(&[("vote", Some(b"v".as_slice()))]).unwrap();
        }
        let db = RaftDb::open(&p).unwrap();
        assert_eq!(db.range(0, 10).unwrap(), vec![(2, vec![2])]);
        assert_eq!(db.last().unwrap(), Some((2, vec![2])));
        assert_eq!(db.meta("vote").unwrap(), Some(b"v".to_vec()));
        assert_eq!(db.meta("purged").unwrap(), Some(b"1".to_vec()));
        db.set_meta(&[("vote", None)]).unwrap();
        assert_eq!(db.meta("vote").unwrap(), None);
    }

    /// SQLite re-prepares a statement at every new binding of a parameter its plan read (a
    /// `LIMIT ?`, a range bound compared with stat4 samples) unless the planner's stability
    /// guarantee is on: every log read re-parsed its SQL.
    #[test]
    fn reads_with_a_bound_limit_run_their_prepared_plan() {
        let dir = tempfile::tempdir().unwrap();
        let db = RaftDb::open(&dir.path().join("raft.db")).unwrap();
        db.append(&[(1, vec![1]), (2, vec![2]), (3, vec![3])])
            .unwrap();
        for from in 1..=3 {
            assert_eq!(db.range(from, 10).unwrap().len(), 4 - from as usize);
        }
        let reprepared = db
            .with(|c| {
                Ok(c.prepare_cached(super::RANGE)?
                    .get_status(rusqlite::StatementStatus::RePrepare))
            })
            .unwrap();
        assert_eq!(reprepared, 0);
    }
}
