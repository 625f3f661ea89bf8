//! What the simulator watches while a scenario runs: who leads in which term (by the tills'
//! metrics, and by the votes each till persisted), each till's cloud watermarks (which must
//! never move back), and a timeline sampled every `timing.sample_ms` for the report (leader
//! per till, LAN cuts, lag, cloud backlog).

use crate::sim::world::World;
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

/// A vote a till persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
    pub fn of(v: &openraft::Vote<u64>) -> Self {
        Self {
            term: v.leader_id().get_term(),
            node: v.leader_id().voted_for().unwrap_or(0),
            committed: v.is_committed(),
        }
    }
}

impl Observations {
    /// Records leadership and watermarks (every tick of the sampler).
    pub fn watch(&mut self, w: &World, t_s: f64) {
        for t in w.tills.values() {
            self.record_votes(t.id, t.raft.drain_votes());
            if let Some(term) = t.leads() {
                self.leaders.entry(term).or_default().insert(t.id);
            }
            for (origin, seq) in t.raft.state().acked {
                let seen = self.watermarks.entry((t.id, origin)).or_default();
                if seq < *seen {
                    self.backwards.push((t.id, origin, *seen, seq, t_s));
                }
                *seen = (*seen).max(seq);
            }
        }
    }

    /// Adds votes till `t` persisted (drained from its journal, also when it crashes).
    pub fn record_votes(&mut self, t: u64, votes: Vec<openraft::Vote<u64>>) {
        if votes.is_empty() {
            return;
        }
        let list = self.votes.entry(t).or_default();
        list.extend(votes.iter().map(PersistedVote::of));
    }

    /// Adds a timeline sample.
    pub async fn sample(&mut self, w: &World, t_s: f64, n: u64, ledger_events: u64) {
        let held: BTreeMap<u64, u64> = w
            .tills
            .values()
            .map(|t| (t.id, t.till.version_vector().total()))
            .collect();
        let max = held.values().copied().max().unwrap_or(0);
        let mut cut = 0;
        for a in 1..=n {
            for b in a + 1..=n {
                let (x, y) = (super::world::addr(a), super::world::addr(b));
                if w.net.is_cut(x, y) || w.net.blackholed((x, y)) || w.net.blackholed((y, x)) {
                    cut += 1;
                }
            }
        }
        let mut leader_seen = BTreeMap::new();
        for t in 1..=n {
            let l = match w.tills.get(&t) {
                Some(s) => s.raft.raft.metrics().borrow().current_leader.unwrap_or(0),
                None => 0,
            };
            leader_seen.insert(t, l);
        }
        self.samples.push(Sample {
            t_s,
            leader_seen,
            up: w.tills.keys().copied().collect(),
            cut_pairs: cut,
            wan_down: w.switch.down.load(std::sync::atomic::Ordering::Relaxed),
            lag: held.iter().map(|(t, h)| (*t, max - h)).collect(),
            backlog: max.saturating_sub(ledger_events),
        });
    }
}
