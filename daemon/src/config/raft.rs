//! The `[mesh]` section's Raft timing: its defaults (a store's LAN, `Timing::default()`)
//! and the `Timing` it sets.

use super::MeshSection;

pub(super) fn default_raft_heartbeat() -> u64 {
    tillmesh_consensus::node::Timing::default().heartbeat_ms
}

pub(super) fn default_raft_election_min() -> u64 {
    tillmesh_consensus::node::Timing::default().election_min_ms
}

pub(super) fn default_raft_election_max() -> u64 {
    tillmesh_consensus::node::Timing::default().election_max_ms
}

impl MeshSection {
    /// The Raft timing this section sets.
    pub fn raft_timing(&self) -> tillmesh_consensus::node::Timing {
        tillmesh_consensus::node::Timing {
            heartbeat_ms: self.raft_heartbeat_ms,
            election_min_ms: self.raft_election_min_ms,
            election_max_ms: self.raft_election_max_ms,
            pre_vote: self.raft_pre_vote,
        }
    }

    /// Sets the Raft timing.
    pub fn set_raft_timing(&mut self, t: tillmesh_consensus::node::Timing) {
        self.raft_heartbeat_ms = t.heartbeat_ms;
        self.raft_election_min_ms = t.election_min_ms;
        self.raft_election_max_ms = t.election_max_ms;
        self.raft_pre_vote = t.pre_vote;
    }
}
