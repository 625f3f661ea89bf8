//! openraft's own storage conformance suite, run against the SQLite-backed log and state
//! machine; and a restart keeps the log, the vote and the store state.

use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, Vote};
use tillmesh_consensus::TypeConfig;
use tillmesh_consensus::storage::{LogStore, StateMachineStore, open};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (log, sm) = open(&dir.path().join("raft.db"))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}

#[tokio::test]
async fn a_restart_keeps_the_vote_and_the_store_state() {
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
    use tillmesh_consensus::Command;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.db");
    {
        let (mut log, mut sm) = open(&path).unwrap();
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
        let e = Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(3, 2), 1),
            payload: EntryPayload::Normal(Command::Acked {
                watermarks: vec![(7, 42)],
            }),
        };
        sm.apply([e]).await.unwrap();
    }
    let (mut log, sm) = open(&path).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    assert_eq!(sm.machine().acked.get(&7), Some(&42));
    assert_eq!(sm.machine().last_applied.map(|l| l.index), Some(1));
}
