//! Compaction of the sync log: the store's leader proposes a compaction point through Raft
//! once events are acknowledged by the cloud and held by every member of the group, and
//! every till applies the point the Raft log holds (see ARCHITECTURE.md, "Compaction").

use crate::MeshLink;
use crate::config::MeshSection;
use crate::till::Till;
use std::sync::Arc;
use std::time::Duration;
use tillmesh_consensus::Command;
use tillmesh_consensus::machine::StoreMachine;
use tillmesh_consensus::node::StoreRaft;
use tillmesh_crdt::{ReplicaId, VersionVector};
use tillmesh_mesh::Mesh;
use tillmesh_mesh::transport::Transport;
use tillmesh_pos::event::EventBody;
use tillmesh_pos::state::Compaction;
use tracing::{info, warn};

/// Compaction timing and retention, from `[mesh]`.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How often the leader looks for a new point and every till re-applies the held one.
    pub interval: Duration,
    /// Settled statuses older than this leave memory.
    pub keep_ms: u64,
    /// Sales records kept this long after payment (0: forever).
    pub retention_ms: u64,
}

impl Settings {
    /// From the mesh section; `None` when compaction is off.
    pub fn from_mesh(m: &MeshSection) -> Option<Settings> {
        (m.compact_interval_ms > 0).then(|| Settings {
            interval: Duration::from_millis(m.compact_interval_ms),
            keep_ms: m.compact_keep_ms,
            retention_ms: m.sales_retention_days * 86_400_000,
        })
    }
}

/// Runs compaction on one till: proposes points while it leads, applies the store's point
/// whenever it moves (and on every tick, so a till that caught up prunes further).
pub fn spawn<T: Transport>(
    till: Arc<Till>,
    raft: StoreRaft,
    mesh: Arc<Mesh<MeshLink, T>>,
    settings: Settings,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = raft.watch_state();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Some(c) = proposal(&till, &raft, &mesh, settings.keep_ms)
                        && let Err(e) = raft.propose(c).await
                    {
                        warn!(cause = %e, "compaction point not committed; will retry");
                    }
                }
                changed = state.changed() => if changed.is_err() { return },
            }
            let point = point_of(&state.borrow_and_update());
            if point.floor.iter().next().is_none() {
                continue;
            }
            let now = till.now_ms();
            let retain_from = match settings.retention_ms {
                0 => 0,
                r => now.saturating_sub(r),
            };
            match till.compact(&point, retain_from).await {
                Ok(true) => info!(floor = ?till.compaction().floor, "sync log compacted"),
                Ok(false) => {}
                Err(e) => warn!(cause = %e, "compaction failed; will retry"),
            }
        }
    })
}

/// The compaction point the Raft state holds.
pub fn point_of(m: &StoreMachine) -> Compaction {
    let vv = |pairs: &std::collections::BTreeMap<u64, u64>| {
        let mut v = VersionVector::new();
        for (o, s) in pairs {
            v.advance(ReplicaId(*o), *s);
        }
        v
    };
    Compaction {
        floor: vv(&m.compact_floor),
        txlog_dots: vv(&m.compact_dots),
        horizon_ms: m.compact_horizon_ms,
    }
}

/// On the leader: the next point, if events beyond the held one are acknowledged by the
/// cloud and held by this till and every other member (as of their last acknowledgement on
/// this till's mesh links; a member never heard from holds nothing).
fn proposal<T: Transport>(
    till: &Till,
    raft: &StoreRaft,
    mesh: &Mesh<MeshLink, T>,
    keep_ms: u64,
) -> Option<Command> {
    let metrics = raft.raft.metrics().borrow().clone();
    if metrics.current_leader != Some(raft.id) {
        return None;
    }
    let members: Vec<u64> = metrics
        .membership_config
        .membership()
        .nodes()
        .map(|(id, _)| *id)
        .filter(|id| *id != raft.id)
        .collect();
    let m = raft.state();
    let own = till.version_vector();
    let peers = mesh.peer_vectors();
    let mut floor = Vec::new();
    let mut dots = Vec::new();
    for (&origin, &acked) in &m.acked {
        let o = ReplicaId(origin);
        let held = members
            .iter()
            .map(|t| peers.get(t).map_or(0, |v| v.get(o)))
            .fold(own.get(o), u64::min);
        let f = acked.min(held);
        if f <= m.compact_floor.get(&origin).copied().unwrap_or(0) {
            continue;
        }
        floor.push((origin, f));
        match till.store().read(|r| r.last_sale_upto(o, f)) {
            Ok(Some(e)) => {
                if let EventBody::SaleRecorded { txlog, .. }
                | EventBody::WeighedSaleRecorded { txlog, .. } = &e.body
                    && let Some(d) = txlog.max_dots().get(&o)
                {
                    dots.push((origin, *d));
                }
            }
            Ok(None) => {}
            Err(e) => {
                warn!(cause = %e, "cannot read the sync log for compaction");
                return None;
            }
        }
    }
    if floor.is_empty() {
        return None;
    }
    Some(Command::Compact {
        floor,
        txlog_dots: dots,
        horizon_ms: till.now_ms().saturating_sub(keep_ms),
    })
}
