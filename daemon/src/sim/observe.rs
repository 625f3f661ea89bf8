//! The driver's side of the observations: reading leadership, watermarks and the timeline
//! off the running world (the data types are `tillmesh_sim::observe`'s).

pub use tillmesh_sim::observe::*;

use crate::sim::world::World;
use std::collections::BTreeMap;

/// Records leadership, votes and watermarks (every tick of the sampler).
pub fn watch(obs: &mut Observations, w: &World, t_s: f64) {
    for t in w.tills.values() {
        obs.record_votes(t.id, t.raft.drain_votes());
        if let Some(term) = t.leads() {
            obs.leaders.entry(term).or_default().insert(t.id);
        }
        for (origin, seq) in t.raft.state().acked {
            let seen = obs.watermarks.entry((t.id, origin)).or_default();
            if seq < *seen {
                obs.backwards.push((t.id, origin, *seen, seq, t_s));
            }
            *seen = (*seen).max(seq);
        }
    }
}

/// Adds a timeline sample.
pub async fn sample(obs: &mut Observations, w: &World, t_s: f64, n: u64, ledger_events: u64) {
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
            Some(s) => s.raft.leadership().now().leader.unwrap_or(0),
            None => 0,
        };
        leader_seen.insert(t, l);
    }
    obs.samples.push(Sample {
        t_s,
        leader_seen,
        up: w.tills.keys().copied().collect(),
        cut_pairs: cut,
        wan_down: w.switch.down.load(std::sync::atomic::Ordering::Relaxed),
        lag: held.iter().map(|(t, h)| (*t, max - h)).collect(),
        backlog: max.saturating_sub(ledger_events),
    });
}
