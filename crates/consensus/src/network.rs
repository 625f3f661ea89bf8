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
        Ok(RaftRpc::Append(r)) => RaftReply::Append(raft.append_entries(r).await),
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
        RaftRpc::Probe | RaftRpc::ElectNow { .. } => None,
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
