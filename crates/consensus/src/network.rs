//! Raft RPCs over any request/response transport between tills. The mesh carries them over
//! its QUIC connections (same mutual TLS); tests and the simulator use memory. A request and
//! its answer are bincode-encoded [`RaftRpc`] / [`RaftReply`] values with a size limit.

use crate::TypeConfig;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, Raft};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;

/// Largest encoded RPC or answer.
pub const RPC_BYTES_MAX: usize = 16 << 20;

/// Sends one request to a till and returns its answer.
pub trait RaftTransport: Send + Sync + 'static {
    /// Calls `target` (a terminal id) with `body`; errors are unreachability.
    fn call(
        &self,
        target: u64,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

/// A Raft request.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpc {
    /// Replication and heartbeats.
    Append(AppendEntriesRequest<TypeConfig>),
    /// Elections.
    Vote(VoteRequest<u64>),
    /// A snapshot chunk.
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// "Are you in a group, and who leads it?" (the bootstrap rule asks before founding).
    Probe,
    /// From the leader, before a planned stop: "campaign in `after_ms`" (Raft's TimeoutNow,
    /// delayed past the followers' leader lease, which openraft 0.9 keeps for the longest
    /// election timeout after the last heartbeat and during which they refuse any vote).
    ElectNow {
        /// When to campaign, from receipt.
        after_ms: u64,
    },
    /// Pre-vote: "would you vote for me now?" (asked before campaigning, so that a till that
    /// lost touch with a healthy leader does not depose it). Granted by a node that has not
    /// heard from a leader for longer than its lease, when the asker's log is not behind.
    PreVote {
        /// The asker's last log index.
        last_log_index: Option<u64>,
    },
    /// To the leader: "sync with the cloud now" (a manager's request on any till: the
    /// leader's uplink pulls master data and uploads at once).
    SyncNow,
}

/// The answer to a [`RaftRpc`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    /// To `Append`.
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To `Vote`.
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To `Snapshot`.
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// To `Probe`.
    Probe {
        /// The node has a membership (is part of a group).
        initialized: bool,
        /// Its current leader.
        leader: Option<u64>,
    },
    /// To `ElectNow`: whether the node will campaign (it is a voter, and the sender is the
    /// leader it follows).
    ElectNow {
        /// It will.
        accepted: bool,
    },
    /// To `PreVote`.
    PreVote {
        /// It would vote.
        granted: bool,
    },
    /// To `SyncNow`: whether this node leads and asked its uplink to sync.
    SyncNow {
        /// It did.
        asked: bool,
    },
}

/// When a node last heard from a leader (an append it took), on tokio's clock (the
/// simulator's is simulated).
#[derive(Debug)]
pub struct Contact {
    since: std::sync::Mutex<tokio::time::Instant>,
}

impl Default for Contact {
    fn default() -> Self {
        Contact {
            since: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }
}

impl Contact {
    /// Heard from a leader now.
    pub fn touch(&self) {
        *self.since.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
    }

    /// Time since a leader was last heard from.
    pub fn elapsed(&self) -> std::time::Duration {
        self.since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<RPC_BYTES_MAX>()
}

/// Encodes a request or answer as the mesh carries it.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(v, config()).map_err(|e| e.to_string())
}

/// Decodes a request or answer as the mesh carries it.
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice(b, config())
        .map(|(v, _)| v)
        .map_err(|e| e.to_string())
}

/// Serves one encoded request on the local Raft node; a request that does not decode gets
/// an empty answer (the caller sees a network error).
///
/// `from` is the sender's terminal id as its TLS certificate names it: a vote, append or
/// snapshot that speaks for another node is refused (empty answer), so one till cannot vote
/// or lead in another's name.
pub async fn serve(raft: &Raft<TypeConfig>, from: u64, body: &[u8]) -> Vec<u8> {
    serve_with(raft, from, body, None).await
}

/// [`serve`], noting each append taken from a leader in `contact` and answering pre-votes
/// from it: granted when no leader was heard from for longer than `lease` (the longest
/// election timeout, openraft's leader lease) and the asker's log is not behind this node's.
/// Without a contact every pre-vote is granted (plain Raft).
pub async fn serve_with(
    raft: &Raft<TypeConfig>,
    from: u64,
    body: &[u8],
    contact: Option<(&Contact, std::time::Duration)>,
) -> Vec<u8> {
    let rpc = decode::<RaftRpc>(body);
    if let Ok(r) = &rpc
        && let Some(node) = speaks_for(r)
        && node != from
    {
        tracing::warn!(
            from,
            node,
            "a Raft request speaks for another node than its sender's certificate; refused"
        );
        return Vec::new();
    }
    let reply = match rpc {
        Ok(RaftRpc::Append(r)) => {
            let answer = raft.append_entries(r).await;
            // Taken (a higher vote here refuses it: that sender no longer leads).
            if let (Some((c, _)), Ok(a)) = (contact, &answer)
                && !matches!(a, AppendEntriesResponse::HigherVote(_))
            {
                c.touch();
            }
            RaftReply::Append(answer)
        }
        Ok(RaftRpc::Vote(r)) => RaftReply::Vote(raft.vote(r).await),
        Ok(RaftRpc::Snapshot(r)) => RaftReply::Snapshot(raft.install_snapshot(r).await),
        Ok(RaftRpc::Probe) => {
            let m = raft.metrics().borrow().clone();
            RaftReply::Probe {
                initialized: m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .next()
                    .is_some(),
                leader: m.current_leader,
            }
        }
        Ok(RaftRpc::ElectNow { after_ms }) => RaftReply::ElectNow {
            accepted: elect_later(raft, from, after_ms),
        },
        // Answered by `StoreRaft::serve`, which holds the uplink's hook.
        Ok(RaftRpc::SyncNow) => RaftReply::SyncNow { asked: false },
        Ok(RaftRpc::PreVote { last_log_index }) => {
            let m = raft.metrics().borrow().clone();
            let quiet = contact.is_none_or(|(c, lease)| c.elapsed() > lease);
            let leads = m.current_leader == Some(m.id);
            RaftReply::PreVote {
                granted: quiet && !leads && last_log_index >= m.last_log_index,
            }
        }
        Err(e) => {
            tracing::warn!(cause = %e, "malformed Raft request");
            return Vec::new();
        }
    };
    encode(&reply).unwrap_or_default()
}

/// The node a request speaks for: a vote's candidate, an append's or a snapshot's leader.
pub fn speaks_for(rpc: &RaftRpc) -> Option<u64> {
    match rpc {
        RaftRpc::Append(r) => r.vote.leader_id().voted_for(),
        RaftRpc::Vote(r) => r.vote.leader_id().voted_for(),
        RaftRpc::Snapshot(r) => r.vote.leader_id().voted_for(),
        // Checked against the leader this node follows instead (`elect_later`).
        RaftRpc::Probe | RaftRpc::ElectNow { .. } | RaftRpc::PreVote { .. } | RaftRpc::SyncNow => {
            None
        }
    }
}

/// Most a leader may ask a node to wait before campaigning.
pub const ELECT_AFTER_MS_MAX: u64 = 10_000;

/// Accepts a hand-over from the leader this node follows, if it is a voter: campaigns after
/// `after_ms`, and again every 150 ms (at most ten rounds) while no new leader showed up (a
/// follower whose lease runs longer, or was renewed later, refuses the first rounds).
fn elect_later(raft: &Raft<TypeConfig>, from: u64, after_ms: u64) -> bool {
    let m = raft.metrics().borrow().clone();
    let voter = m
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == m.id);
    if !voter || m.current_leader != Some(from) || m.id == from || after_ms > ELECT_AFTER_MS_MAX {
        tracing::warn!(
            from,
            after_ms,
            "a hand-over not from the leader this node follows; refused"
        );
        return false;
    }
    let raft = raft.clone();
    let term = m.current_term;
    // Someone leads a later term (this node, another, or the old leader back after a
    // restart), or another node leads: the hand-over is over.
    let settled = move |m: &openraft::RaftMetrics<u64, BasicNode>| {
        m.current_leader.is_some() && (m.current_term > term || m.current_leader != Some(from))
    };
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(after_ms)).await;
        for round in 0..10 {
            if settled(&raft.metrics().borrow()) {
                return;
            }
            tracing::info!(round, "taking over the store's leadership (hand-over)");
            if raft.trigger().elect().await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
    });
    true
}

/// Builds a [`Client`] per target.
#[derive(Debug)]
pub struct Network<T> {
    transport: Arc<T>,
}

impl<T> Network<T> {
    /// A factory over `transport`.
    pub fn new(transport: Arc<T>) -> Self {
        Self { transport }
    }
}

impl<T: RaftTransport> RaftNetworkFactory<TypeConfig> for Network<T> {
    type Network = Client<T>;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Self::Network {
        Client {
            target,
            transport: self.transport.clone(),
        }
    }
}

/// Sends RPCs to one till.
#[derive(Debug)]
pub struct Client<T> {
    target: u64,
    transport: Arc<T>,
}

type RpcResult<R, E> = Result<R, RPCError<u64, BasicNode, E>>;

impl<T: RaftTransport> Client<T> {
    async fn exchange<E: std::error::Error>(
        &self,
        rpc: RaftRpc,
        option: &RPCOption,
    ) -> RpcResult<RaftReply, E> {
        let body = encode(&rpc).map_err(|e| NetworkError::new(&AnyError::error(e)))?;
        let answer =
            tokio::time::timeout(option.hard_ttl(), self.transport.call(self.target, body))
                .await
                .map_err(|_| Unreachable::new(&AnyError::error("timed out")))?
                .map_err(|e| Unreachable::new(&AnyError::error(e)))?;
        decode(&answer).map_err(|e| NetworkError::new(&AnyError::error(e)).into())
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    NetworkError::new(&AnyError::error("answer of another kind")).into()
}

impl<T: RaftTransport> RaftNetwork<TypeConfig> for Client<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, RaftError<u64>> {
        match self.exchange(RaftRpc::Append(rpc), &option).await? {
            RaftReply::Append(r) => r.map_err(|e| RemoteError::new(self.target, e).into()),
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        match self.exchange(RaftRpc::Snapshot(rpc), &option).await? {
            RaftReply::Snapshot(r) => r.map_err(|e| RemoteError::new(self.target, e).into()),
            _ => Err(unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, RaftError<u64>> {
        match self.exchange(RaftRpc::Vote(rpc), &option).await? {
            RaftReply::Vote(r) => r.map_err(|e| RemoteError::new(self.target, e).into()),
            _ => Err(unexpected()),
        }
    }
}

/// Asks a till whether it is part of a group (for the bootstrap rule).
pub async fn probe<T: RaftTransport>(
    transport: &T,
    target: u64,
) -> Result<(bool, Option<u64>), String> {
    let answer = transport.call(target, encode(&RaftRpc::Probe)?).await?;
    match decode(&answer)? {
        RaftReply::Probe {
            initialized,
            leader,
        } => Ok((initialized, leader)),
        _ => Err("answer of another kind".into()),
    }
}
