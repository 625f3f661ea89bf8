//! What the simulator watches while a scenario runs: who leads in which term (by the tills'
//! metrics, and by the votes each till persisted), each till's cloud watermarks (which must
//! never move back), and a timeline sampled every `timing.sample_ms` for the report (leader
//! per till, LAN cuts, lag, cloud backlog).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One timeline sample.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Simulated seconds since the start.
    pub t_s: f64,
    /// The leader as each till sees it (0: none, or the till is down), by terminal.
    pub leader_seen: BTreeMap<u64, u64>,
    /// Tills up.
    pub up: Vec<u64>,
    /// Pairs of tills whose LAN link is cut or blackholed (either way).
    pub cut_pairs: u64,
    /// The WAN is down (for everyone).
    pub wan_down: bool,
    /// Events each till lacks of what the most advanced till holds.
    pub lag: BTreeMap<u64, u64>,
    /// Events the store holds that the cloud's ledger does not.
    pub backlog: u64,
}

/// The observations of one run.
#[derive(Debug, Default)]
pub struct Observations {
    /// Terms and the tills that thought they led in them.
    pub leaders: BTreeMap<u64, BTreeSet<u64>>,
    /// Highest watermark seen per (till, origin).
    pub watermarks: BTreeMap<(u64, u64), u64>,
    /// Watermarks seen moving back: `(till, origin, from, to, t_s)`.
    pub backwards: Vec<(u64, u64, u64, u64, f64)>,
    /// Timeline.
    pub samples: Vec<Sample>,
    /// Every vote each till persisted, in order: `(term, voted for, committed)`. A committed
    /// vote for `(T, X)` means X led term T (it won a quorum, or the till followed it).
    pub votes: BTreeMap<u64, Vec<PersistedVote>>,
}

pub use tillmesh_consensus::storage::PersistedVote;

impl Observations {
    /// Adds votes till `t` persisted (drained from its journal, also when it crashes).
    pub fn record_votes(&mut self, t: u64, votes: Vec<PersistedVote>) {
        if votes.is_empty() {
            return;
        }
        let list = self.votes.entry(t).or_default();
        list.extend(votes);
    }
}
