//! The store's Raft group (openraft 0.9, storage v2): the type configuration, the replicated
//! store state (what the cloud has acknowledged per origin, the applied master-data version,
//! store-wide settings), and its durable storage on SQLite through `tillmesh_store::raft`.
//!
//! Network, bootstrap from discovery and the uplink build on this (see ARCHITECTURE.md).

pub mod machine;
pub mod network;
pub mod node;
pub mod storage;

use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// The store setting that holds the newest revocation list (JSON of
/// `tillmesh_pos::revocation::SignedRevocations`), which the uplink also sends to HQ.
pub const REVOCATIONS_SETTING: &str = "store.revocations";

/// A change to the replicated store state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The cloud acknowledged every event of these origins up to these seqs. A watermark never
    /// moves backwards: a lower value than the one held is ignored.
    Acked {
        /// (origin, contiguous seq) pairs.
        watermarks: Vec<(u64, u64)>,
    },
    /// Every till applied this master-data version (versions only grow).
    MasterVersion(u64),
    /// Master-data changes pulled from HQ by the leader, applied by every till at the same
    /// log index. Changes at or below the held version are ignored, so a replay is harmless.
    Master {
        /// The version these changes bring the store to.
        version: u64,
        /// When the leader pulled them (ms since epoch): the time HQ prices that displace a
        /// store override take effect, the same on every till.
        at_ms: u64,
        /// The records changed: `(record key, the record as JSON, or None when deleted)`.
        /// JSON because promotions are internally tagged, which bincode cannot carry.
        changes: Vec<(String, Option<String>)>,
    },
    /// What the leader knows of the cloud link, so that every till (and the offline-sale
    /// limit) sees it.
    Cloud {
        /// The last upload or pull succeeded.
        online: bool,
        /// Last success (ms since epoch); a lower value than the one held is ignored.
        last_ok_ms: u64,
    },
    /// A compaction point (see `pos::state::Compaction`): the leader proposes it once the
    /// events at or below `floor` are acknowledged by the cloud and held by every member, and
    /// every till prunes its sync log to it. Each part only grows.
    Compact {
        /// Highest compacted seq per origin.
        floor: Vec<(u64, u64)>,
        /// Highest transaction-log dot per origin among the compacted sales.
        txlog_dots: Vec<(u64, u64)>,
        /// Settled statuses from before this leave memory (ms since epoch).
        horizon_ms: u64,
    },
    /// A store-wide setting.
    Setting {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// The store's cloud credential, renewed by the leader: every till's uplink uses it from
    /// then on (the one with the later expiry wins).
    Credential {
        /// The bearer credential.
        token: String,
        /// When it expires (ms since the epoch).
        expires_ms: u64,
    },
}

/// What applying a command answers: the log index it was applied at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Log index.
    pub index: u64,
}

openraft::declare_raft_types!(
    /// The Raft types of a store: node ids are terminal ids.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
