//! openraft's log storage and state machine on `tillmesh_store::raft::RaftDb` (SQLite, every
//! write fsync'd). Entries, the vote and snapshots are encoded with bincode (serde); the
//! state machine is persisted after each applied run of entries: its small part (watermarks,
//! versions, settings, cloud link) every time, with the master-data records a run changed as
//! rows of their own (`raft_master`, read back only when a till applies them or a snapshot is
//! built, never held in memory).

// openraft's StorageError (over 200 bytes) is the error type its traits require.
#![allow(clippy::result_large_err)]

use crate::machine::StoreMachine;
use crate::{Applied, Command, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tillmesh_store::raft::RaftDb;

type Error = StorageError<u64>;

const VOTE: &str = "vote";
const PURGED: &str = "last_purged";
const MACHINE: &str = "machine";
const SNAPSHOT: &str = "snapshot";
/// Where the master-data records were kept before they had a table (one encoded map): moved
/// to `raft_master` at open.
const MASTER_LEGACY: &str = "master";

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 64 << 20 }>()
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, AnyError> {
    bincode::serde::encode_to_vec(v, config()).map_err(|e| AnyError::error(e.to_string()))
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, AnyError> {
    bincode::serde::decode_from_slice(b, config())
        .map(|(v, _)| v)
        .map_err(|e| AnyError::error(e.to_string()))
}

fn db_err(e: tillmesh_store::StoreError) -> AnyError {
    AnyError::error(e.to_string())
}

/// Most votes a [`VoteJournal`] keeps before it drops the oldest (one or two per election).
pub const VOTE_JOURNAL_MAX: usize = 4096;

/// Every vote this node persisted, in order, after it was durable: whom it voted for in which
/// term, and whether that vote was committed (the node led, or followed a leader, in that
/// term). The evidence for election safety that does not depend on sampling metrics: a
/// leader of term T is the node whose committed vote for T a till persisted. Bounded; the
/// simulator drains it as it runs.
#[derive(Debug, Default)]
pub struct VoteJournal {
    votes: Mutex<VecDeque<PersistedVote>>,
}

/// A vote a node persisted: the journal's record, free of openraft's types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PersistedVote {
    /// Term.
    pub term: u64,
    /// The candidate or leader voted for.
    pub node: u64,
    /// Whether it is a leader's committed vote.
    pub committed: bool,
}

impl PersistedVote {
    /// From openraft's vote.
    pub fn of(v: &Vote<u64>) -> Self {
        Self {
            term: v.leader_id().get_term(),
            node: v.leader_id().voted_for().unwrap_or(0),
            committed: v.is_committed(),
        }
    }
}

impl VoteJournal {
    fn record(&self, v: Vote<u64>) {
        let v = PersistedVote::of(&v);
        let mut q = self.votes.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= VOTE_JOURNAL_MAX {
            q.pop_front();
        }
        q.push_back(v);
    }

    /// Takes the votes recorded since the last call, oldest first.
    pub fn drain(&self) -> Vec<PersistedVote> {
        let mut q = self.votes.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).collect()
    }
}

/// Opens the Raft database of a till.
pub fn open(path: &Path) -> Result<(LogStore, StateMachineStore), Error> {
    open_with(path, tillmesh_store::Mode::Durable, None)
}

/// Opens the Raft database of a till with `mode` (`Inline` in the simulator: no fsync).
pub fn open_with(
    path: &Path,
    mode: tillmesh_store::Mode,
    check: Option<crate::machine::MasterCheck>,
) -> Result<(LogStore, StateMachineStore), Error> {
    let db = Arc::new(RaftDb::open_with(path, mode).map_err(|e| StorageIOError::write(db_err(e)))?);
    let machine = match db
        .meta(MACHINE)
        .map_err(|e| StorageIOError::read_state_machine(db_err(e)))?
    {
        Some(b) => decode(&b).map_err(StorageIOError::read_state_machine)?,
        None => StoreMachine::default(),
    };
    let mut machine: StoreMachine = machine;
    if let Some(b) = db
        .meta(MASTER_LEGACY)
        .map_err(|e| StorageIOError::read_state_machine(db_err(e)))?
    {
        let records: BTreeMap<String, String> =
            decode(&b).map_err(StorageIOError::read_state_machine)?;
        db.write(
            &[(MASTER_LEGACY, None)],
            &records
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect::<Vec<_>>(),
            true,
        )
        .map_err(|e| StorageIOError::write_state_machine(db_err(e)))?;
    }
    let ext = db
        .master_record(crate::machine::MASTER_EXT_VERSION_KEY)
        .map_err(|e| StorageIOError::read_state_machine(db_err(e)))?;
    machine.set_master_ext_version(crate::machine::ext_version_from(ext.as_deref()));
    let (published, _) = tokio::sync::watch::channel(machine.clone());
    Ok((
        LogStore {
            db: db.clone(),
            journal: Arc::default(),
        },
        StateMachineStore {
            db,
            machine,
            published: Arc::new(published),
            check: Check(check),
            refused: Arc::default(),
        },
    ))
}

/// The Raft log and vote.
#[derive(Clone, Debug)]
pub struct LogStore {
    db: Arc<RaftDb>,
    journal: Arc<VoteJournal>,
}

impl LogStore {
    /// The journal of the votes this store persists.
    pub fn journal(&self) -> Arc<VoteJournal> {
        self.journal.clone()
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageIOError<u64>> {
        match self
            .db
            .meta(key)
            .map_err(|e| StorageIOError::read(db_err(e)))?
        {
            Some(b) => Ok(Some(decode(&b).map_err(StorageIOError::read)?)),
            None => Ok(None),
        }
    }

    fn set_meta<T: Serialize>(&self, key: &str, v: &T) -> Result<(), StorageIOError<u64>> {
        let b = encode(v).map_err(StorageIOError::write)?;
        self.db
            .set_meta(&[(key, Some(b.as_slice()))])
            .map_err(|e| StorageIOError::write(db_err(e)))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, Error> {
        let mut from = match range.start_bound() {
            Bound::Included(&x) => x,
            Bound::Excluded(&x) => x + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&x) => x.saturating_add(1),
            Bound::Excluded(&x) => x,
            Bound::Unbounded => u64::MAX,
        };
        let mut out = Vec::new();
        while from < to {
            let chunk = self
                .db
                .range(from, to)
                .map_err(|e| StorageIOError::read_logs(db_err(e)))?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            for (_, b) in chunk {
                out.push(decode(&b).map_err(StorageIOError::read_logs)?);
            }
            from = last + 1;
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, Error> {
        let last_purged_log_id: Option<LogId<u64>> = self.meta(PURGED)?;
        let last = self
            .db
            .last()
            .map_err(|e| StorageIOError::read_logs(db_err(e)))?;
        let last_log_id = match last {
            Some((_, b)) => {
                let e: Entry<TypeConfig> = decode(&b).map_err(StorageIOError::read_logs)?;
                Some(e.log_id)
            }
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), Error> {
        self.set_meta(VOTE, vote)
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        self.journal.record(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, Error> {
        Ok(self.meta(VOTE)?)
    }

    /// Not persisted: the commit index is volatile state in Raft, and the state machine
    /// persists its last applied entry at every apply, which is what a restart resumes from
    /// (an entry committed but not yet applied is committed again by the group's leader, or
    /// by this till's own next term when it is alone). Writing it was a commit (and, on a
    /// real till, an fsync) at every advance of the commit index.
    async fn save_committed(&mut self, _committed: Option<LogId<u64>>) -> Result<(), Error> {
        Ok(())
    }

    /// None: see `save_committed` (a value an older build wrote is left unread).
    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, Error> {
        Ok(None)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), Error>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        for e in entries {
            rows.push((
                e.log_id.index,
                encode(&e).map_err(StorageIOError::write_logs)?,
            ));
        }
        let r = self.db.append(&rows);
        // The append is durable (fsync'd COMMIT) before openraft hears it is flushed.
        callback.log_io_completed(
            r.as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        r.map_err(|e| StorageIOError::write_logs(db_err(e)).into())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        self.db
            .truncate_from(log_id.index)
            .map_err(|e| StorageIOError::write_logs(db_err(e)).into())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        let b = encode(&log_id).map_err(StorageIOError::write_logs)?;
        self.db
            .purge_upto(log_id.index, PURGED, &b)
            .map_err(|e| StorageIOError::write_logs(db_err(e)).into())
    }
}

/// The state machine: the store state, persisted after every applied run of entries, and
/// the latest snapshot.
#[derive(Clone, Debug)]
pub struct StateMachineStore {
    db: Arc<RaftDb>,
    machine: StoreMachine,
    published: Arc<tokio::sync::watch::Sender<StoreMachine>>,
    check: Check,
    refused: Arc<std::sync::Mutex<Option<(u64, String)>>>,
}

/// The till's master-data check (a function, shown by whether it is set).
#[derive(Clone, Default)]
struct Check(Option<crate::machine::MasterCheck>);

impl Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Check({})",
            if self.0.is_some() { "set" } else { "none" }
        )
    }
}

impl StateMachineStore {
    /// The current store state.
    pub fn machine(&self) -> &StoreMachine {
        &self.machine
    }

    /// The last master-data page this till refused (its version and why), if any since it
    /// started.
    pub fn master_refused(&self) -> Arc<std::sync::Mutex<Option<(u64, String)>>> {
        self.refused.clone()
    }

    /// Follows the store state as entries are applied.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<StoreMachine> {
        self.published.subscribe()
    }

    /// The database, for reading the master-data records (see [`master_data`]).
    pub fn db(&self) -> Arc<RaftDb> {
        self.db.clone()
    }

    /// Persists the state and the master-data record writes of the entries applied since
    /// (one commit).
    fn persist(&self, records: &[(String, Option<String>)]) -> Result<(), StorageIOError<u64>> {
        let b = encode(&self.machine).map_err(StorageIOError::write_state_machine)?;
        self.db
            .write(&[(MACHINE, Some(b.as_slice()))], records, false)
            .map_err(|e| StorageIOError::write_state_machine(db_err(e)))?;
        self.published.send_replace(self.machine.clone());
        Ok(())
    }
}

/// The master data a state machine's database holds: its versions and records as one commit
/// left them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MasterData {
    /// The master-data version.
    pub version: u64,
    /// The second stream's version.
    pub ext_version: u64,
    /// When the master data last changed (ms since epoch).
    pub at_ms: u64,
    /// The records by key, as JSON (the second stream's version among them).
    pub records: BTreeMap<String, String>,
}

/// Reads the master data from a state machine's database (blocking: megabytes with a big
/// catalog; read once per version a till applies).
pub fn master_data(db: &RaftDb) -> Result<MasterData, crate::node::ConsensusError> {
    let err = crate::node::ConsensusError::Storage;
    let (machine, records) = db
        .meta_and_master(MACHINE)
        .map_err(|e| err(e.to_string()))?;
    let machine: StoreMachine = match machine {
        Some(b) => decode(&b).map_err(|e| err(e.to_string()))?,
        None => StoreMachine::default(),
    };
    Ok(MasterData {
        version: machine.master_version,
        ext_version: crate::machine::ext_version_of(&records),
        at_ms: machine.master_at_ms,
        records,
    })
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, Error> {
        // What a snapshot carries did not change with where the records are kept: the
        // machine, then the records as one map.
        let (_, records) = self
            .db
            .meta_and_master(MACHINE)
            .map_err(|e| StorageIOError::read_state_machine(db_err(e)))?;
        let data =
            encode(&(&self.machine, &records)).map_err(StorageIOError::write_state_machine)?;
        drop(records);
        let last = self.machine.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: self.machine.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                last.map_or(0, |l| l.leader_id.term),
                last.map_or(0, |l| l.index)
            ),
        };
        let stored =
            encode(&(&meta, &data)).map_err(|e| StorageIOError::write_snapshot(None, e))?;
        self.db
            .set_meta(&[(SNAPSHOT, Some(stored.as_slice()))])
            .map_err(|e| StorageIOError::write_snapshot(None, db_err(e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), Error> {
        Ok((self.machine.last_applied, self.machine.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, Error>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut records = Vec::new();
        for e in entries {
            self.machine.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(c) => {
                    match self.machine.apply_checked(&c, self.check.0.as_ref()) {
                        Ok(true) => records.extend(crate::machine::master_writes(&c)),
                        Ok(false) => {}
                        Err(why) => {
                            if let Command::Master { version, .. } = &c {
                                tracing::warn!(version, %why, "master data refused: not applied");
                                *self.refused.lock().unwrap_or_else(|p| p.into_inner()) =
                                    Some((*version, why));
                            }
                        }
                    }
                }
                EntryPayload::Membership(m) => {
                    self.machine.membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            out.push(Applied {
                index: e.log_id.index,
            });
        }
        self.persist(&records)?;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Error> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Error> {
        let data = snapshot.into_inner();
        let (mut machine, master): (StoreMachine, BTreeMap<String, String>) =
            decode(&data).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), e))?;
        machine.last_applied = meta.last_log_id;
        machine.membership = meta.last_membership.clone();
        machine.set_master_ext_version(crate::machine::ext_version_of(&master));
        self.machine = machine;
        let stored = encode(&(meta, &data))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), e))?;
        let m = encode(&self.machine).map_err(StorageIOError::write_state_machine)?;
        let records: Vec<_> = master.into_iter().map(|(k, v)| (k, Some(v))).collect();
        self.db
            .write(
                &[
                    (SNAPSHOT, Some(stored.as_slice())),
                    (MACHINE, Some(m.as_slice())),
                ],
                &records,
                true,
            )
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), db_err(e)))?;
        self.published.send_replace(self.machine.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, Error> {
        let Some(b) = self
            .db
            .meta(SNAPSHOT)
            .map_err(|e| StorageIOError::read_snapshot(None, db_err(e)))?
        else {
            return Ok(None);
        };
        let (meta, data): (SnapshotMeta<u64, BasicNode>, Vec<u8>) =
            decode(&b).map_err(|e| StorageIOError::read_snapshot(None, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn page(
        index: u64,
        version: u64,
        ext: bool,
        changes: &[(&str, Option<&str>)],
    ) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::Master {
                version,
                at_ms: version * 10,
                changes: changes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                    .chain(ext.then(|| (crate::machine::MASTER_EXT_KEY.into(), Some("1".into()))))
                    .collect(),
            }),
        }
    }

    fn held(db: &RaftDb) -> Vec<(String, String)> {
        master_data(db).unwrap().records.into_iter().collect()
    }

    #[tokio::test]
    async fn master_records_are_rows_that_survive_a_restart_and_travel_in_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.db");
        {
            let (_, mut sm) = open(&path).unwrap();
            sm.apply([
                page(
                    1,
                    2,
                    false,
                    &[("item:A", Some("a1")), ("item:B", Some("b1"))],
                ),
                page(2, 3, false, &[("item:A", None), ("item:B", Some("b2"))]),
                page(3, 4, true, &[("customer:C", Some("c"))]),
                // Already held: nothing of it is written.
                page(4, 3, false, &[("item:Z", Some("z"))]),
            ])
            .await
            .unwrap();
        }
        let (_, mut sm) = open(&path).unwrap();
        assert_eq!(sm.machine().master_ext_version(), 4);
        let m = master_data(&sm.db).unwrap();
        assert_eq!((m.version, m.ext_version, m.at_ms), (3, 4, 30));
        let want: Vec<(String, String)> = [
            ("customer:C", "c"),
            ("item:B", "b2"),
            (crate::machine::MASTER_EXT_VERSION_KEY, "4"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(held(&sm.db), want);
        // A snapshot carries the machine and the records as one map, as before the table.
        let snap = sm.build_snapshot().await.unwrap();
        let (machine, records): (StoreMachine, BTreeMap<String, String>) =
            decode(snap.snapshot.get_ref()).unwrap();
        assert_eq!(machine.master_version, 3);
        assert_eq!(records.into_iter().collect::<Vec<_>>(), want);
        // A till installing it holds the same records, and no record it had before.
        let other = dir.path().join("other.db");
        let (_, mut sm2) = open(&other).unwrap();
        sm2.apply([page(1, 1, false, &[("item:OLD", Some("o"))])])
            .await
            .unwrap();
        sm2.install_snapshot(&snap.meta, snap.snapshot)
            .await
            .unwrap();
        assert_eq!(held(&sm2.db), want);
        assert_eq!(sm2.machine().master_ext_version(), 4);
    }

    #[tokio::test]
    async fn a_database_holding_the_records_as_one_map_has_them_moved_to_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.db");
        let map: BTreeMap<String, String> = [
            ("item:A".to_string(), "a".to_string()),
            (
                crate::machine::MASTER_EXT_VERSION_KEY.to_string(),
                "6".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        {
            let db = RaftDb::open(&path).unwrap();
            let mut machine = StoreMachine::default();
            machine.master_version = 5;
            db.set_meta(&[
                (MACHINE, Some(encode(&machine).unwrap().as_slice())),
                (MASTER_LEGACY, Some(encode(&map).unwrap().as_slice())),
            ])
            .unwrap();
        }
        let (_, sm) = open(&path).unwrap();
        assert_eq!(sm.machine().master_ext_version(), 6);
        assert_eq!(sm.db.meta(MASTER_LEGACY).unwrap(), None);
        let m = master_data(&sm.db).unwrap();
        assert_eq!((m.version, m.ext_version, m.records), (5, 6, map));
    }
}
