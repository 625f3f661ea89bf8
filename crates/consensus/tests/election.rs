//! Election safety, as DESIGN.md's invariant 4 states it: at most one leader per term. A till
//! grants its vote to one candidate per term, and keeps refusing the others after a restart
//! (the vote is persisted before it is answered). openraft's default leader id is
//! `(term, node id)`, under which a second candidate of the same term wins a vote already
//! given; the store runs openraft with `single-term-leader`, plain Raft's rule.

use openraft::Vote;
use openraft::raft::VoteRequest;
use std::sync::Arc;
use tillmesh_consensus::network::RaftTransport;
use tillmesh_consensus::node::{StoreRaft, Timing};

/// A transport to no one: the node under test only answers.
struct Nowhere;

impl RaftTransport for Nowhere {
    async fn call(&self, _target: u64, _body: Vec<u8>) -> Result<Vec<u8>, String> {
        Err("unreachable".into())
    }
}

/// Timing that never lets the node under test start an election of its own.
fn quiet() -> Timing {
    Timing {
        heartbeat_ms: 1_000,
        election_min_ms: 600_000,
        election_max_ms: 600_001,
        pre_vote: false,
    }
}

async fn ask(node: &StoreRaft, term: u64, candidate: u64) -> bool {
    let req = VoteRequest::new(Vote::new(term, candidate), None);
    node.raft.vote(req).await.unwrap().vote_granted
}

#[tokio::test]
async fn a_till_votes_for_one_candidate_per_term_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.db");
    let node = StoreRaft::start(3, &path, Arc::new(Nowhere), quiet())
        .await
        .unwrap();
    assert!(
        ask(&node, 4, 1).await,
        "the first candidate of term 4 gets the vote"
    );
    assert!(
        !ask(&node, 4, 2).await,
        "a second candidate of term 4 must not get the vote given to till 1"
    );
    assert!(
        ask(&node, 4, 1).await,
        "the same candidate asking again keeps it"
    );
    node.shutdown().await;
    drop(node);

    let node = StoreRaft::start(3, &path, Arc::new(Nowhere), quiet())
        .await
        .unwrap();
    assert!(
        !ask(&node, 4, 2).await,
        "after a restart, the persisted vote still refuses till 2 in term 4"
    );
    assert!(ask(&node, 5, 2).await, "a higher term may win the vote");
    assert_eq!(node.term(), 5);
    node.shutdown().await;
}
