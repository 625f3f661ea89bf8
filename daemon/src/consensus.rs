//! The till's Raft node on the mesh: RPCs ride the mesh's peer links (same mutual TLS), and
//! a task applies the membership rule every second after the discovery window: found the
//! group when no one seen is in one (lowest terminal id), or, on the leader, add connected
//! tills that are not members. A second task applies the master data the group commits, a
//! third the store CA's revocation list.

use crate::MeshLink;
use crate::till::Till;
use std::sync::{Arc, OnceLock, Weak};
use tillmesh_consensus::network::RaftTransport;
use tillmesh_consensus::node::StoreRaft;
use tillmesh_mesh::transport::{QuicTransport, Transport};
use tillmesh_mesh::{Mesh, PeerState};
use tracing::{debug, info, warn};

/// Raft's transport: the mesh (set once the mesh exists), over QUIC or, in the simulator,
/// the in-memory network.
pub struct MeshRaft<T: Transport = QuicTransport> {
    mesh: OnceLock<Weak<Mesh<MeshLink, T>>>,
}

impl<T: Transport> Default for MeshRaft<T> {
    fn default() -> Self {
        Self {
            mesh: OnceLock::new(),
        }
    }
}

impl<T: Transport> std::fmt::Debug for MeshRaft<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshRaft").finish()
    }
}

impl<T: Transport> MeshRaft<T> {
    /// Connects the transport to the mesh.
    pub fn attach(&self, mesh: &Arc<Mesh<MeshLink, T>>) {
        let _ = self.mesh.set(Arc::downgrade(mesh));
    }

    fn mesh(&self) -> Option<Arc<Mesh<MeshLink, T>>> {
        self.mesh.get().and_then(Weak::upgrade)
    }

    /// Terminals this till is connected to.
    pub fn connected(&self) -> Vec<u64> {
        self.mesh()
            .map(|m| {
                m.peers()
                    .into_iter()
                    .filter(|p| p.outbound == PeerState::Connected)
                    .map(|p| p.terminal)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl<T: Transport> RaftTransport for MeshRaft<T> {
    async fn call(&self, target: u64, body: Vec<u8>) -> Result<Vec<u8>, String> {
        let mesh = self.mesh().ok_or("the mesh is stopped")?;
        mesh.call(target, body).await.map_err(|e| e.to_string())
    }
}

/// Runs the membership rule: first after `window_ms` (sooner once every one of `store_tills`
/// is connected, or at once when this till is already a member), then every second (every
/// 200 ms while the group forms or grows); a voter this till has not been connected to for
/// `remove_after_ms` is reported unreachable.
pub fn spawn_membership<T: Transport>(
    raft: StoreRaft,
    transport: Arc<MeshRaft<T>>,
    window_ms: u64,
    remove_after_ms: u64,
    store_tills: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // The discovery window, cut short on a restart (already a member) and once every
        // till of the store is connected: every till that ends it early founds on the same
        // view (all of them), so the bootstrap rule's lowest id is the same for all.
        let window_end = tokio::time::Instant::now() + std::time::Duration::from_millis(window_ms);
        while tokio::time::Instant::now() < window_end
            && !raft.initialized()
            && !(store_tills > 0 && transport.connected().len() + 1 >= store_tills)
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let mut last = "";
        let mut seen: std::collections::HashMap<u64, tokio::time::Instant> = Default::default();
        loop {
            let connected = transport.connected();
            let now = tokio::time::Instant::now();
            for &c in &connected {
                seen.insert(c, now);
            }
            let limit = std::time::Duration::from_millis(remove_after_ms);
            let unreachable: Vec<u64> = raft
                .voters()
                .into_iter()
                .filter(|v| *v != raft.id && !connected.contains(v))
                .filter(|v| now.duration_since(*seen.entry(*v).or_insert(now)) > limit)
                .collect();
            match raft
                .membership_round(&*transport, &connected, &unreachable, store_tills)
                .await
            {
                Ok(what) => {
                    if what != last {
                        info!(terminal = raft.id, what, ?connected, "raft membership");
                        last = what;
                    }
                }
                Err(e) => debug!(terminal = raft.id, cause = %e, "raft membership round failed"),
            }
            // Settled: every second; while the group forms or grows: five times as often.
            let settled = matches!(last, "leader, membership complete" | "follower");
            let pause = if settled { 1_000 } else { 200 };
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    })
}

/// How long the Raft state must stay unchanged before the master data in it is applied.
const MASTER_SETTLE: std::time::Duration = std::time::Duration::from_millis(100);
/// At most this many waits of [`MASTER_SETTLE`] (a busy store still applies within a second).
const MASTER_SETTLE_ROUNDS: u32 = 10;

/// Applies the store's master data on this till whenever the Raft state brings a newer
/// version; on the leader, HQ's prices replace the store overrides they conflict with.
///
/// A pull commits its pages one by one, each a full rebuild of the catalog here: the applier
/// waits until the state has been still for [`MASTER_SETTLE`] (at most
/// [`MASTER_SETTLE_ROUNDS`] times) and applies the newest, so a catalog arriving in pages is
/// applied once, whole.
pub fn spawn_master_applier(till: Arc<Till>, raft: StoreRaft) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut w = raft.watch_state();
        loop {
            for _ in 0..MASTER_SETTLE_ROUNDS {
                tokio::time::sleep(MASTER_SETTLE).await;
                if !w.has_changed().unwrap_or(false) {
                    break;
                }
                w.mark_unchanged();
            }
            let newer = {
                let m = w.borrow_and_update();
                m.master_version > till.hq_version()
                    || m.master_ext_version() > till.hq_ext_version()
            };
            // The records are read only now, as the newest commit left them (with their
            // versions), and dropped once applied: no till holds them in memory meanwhile.
            let master = if newer {
                raft.master_data()
                    .await
                    .inspect_err(|e| warn!(cause = %e, "master data not read"))
                    .ok()
            } else {
                None
            };
            if let Some(m) = master.filter(|m| !m.records.is_empty()) {
                let (version, at_ms) = (m.version, m.at_ms);
                match till.apply_master(version, at_ms, &m.records).await {
                    Ok(conflicts) => {
                        let leads = raft.leadership().now().this_node;
                        for c in conflicts.iter().filter(|_| leads) {
                            if let Err(e) = till.hq_replaces_override(c, at_ms).await {
                                warn!(sku = %c.sku, cause = %e, "could not replace a store override with HQ's price");
                            }
                        }
                    }
                    Err(e) => warn!(version, cause = %e, "master data not applied"),
                }
            }
            if w.changed().await.is_err() {
                return;
            }
        }
    })
}

/// Applies the store's revocation list as the Raft group commits it: checks the store CA's
/// signature (a leader cannot forge one), keeps the newest list (remembered in the till's
/// store, so a restart applies it at once and an older list proposed again changes nothing),
/// closes and refuses the connections of every till it revokes, and shows it in status and
/// metrics.
pub fn spawn_revocations<R: tillmesh_mesh::Replicator, T: tillmesh_mesh::Transport>(
    raft: StoreRaft,
    mesh: Arc<tillmesh_mesh::Mesh<R, T>>,
    identity: tillmesh_mesh::identity::TillIdentity,
    links: Arc<crate::links::StoreLinks>,
    till: Arc<Till>,
) -> tokio::task::JoinHandle<()> {
    use tillmesh_mesh::revocation::{Revocations, SignedRevocations, covers};
    let me = (identity.terminal, identity.issued_s());
    // Cuts off the tills a list revokes and shows it; answers whether this till is one.
    let enforce = move |list: Revocations| {
        let mine = covers(&list.revoked, me.0, me.1);
        links.set_revoked(list.revoked.keys().copied().collect(), mine);
        mesh.faults().revoke(list.revoked);
        mine
    };
    // The newest list this till applied before it stopped holds from its first connection.
    let mut newest = 0;
    if let Some(list) = till.applied_revocations().and_then(|s| {
        s.verify(identity.ca_der().as_ref(), &identity.store_id)
            .ok()
    }) {
        newest = list.issued_ms;
        enforce(list);
    }
    tokio::spawn(async move {
        let mut w = raft.watch_state();
        let check =
            |s: &SignedRevocations| s.verify(identity.ca_der().as_ref(), &identity.store_id);
        loop {
            let committed = w
                .borrow_and_update()
                .settings
                .get(crate::till::REVOCATIONS_KEY)
                .cloned()
                .and_then(|v| match serde_json::from_str::<SignedRevocations>(&v) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        warn!(cause = %e, "a revocation list in the store's log does not parse: ignored");
                        None
                    }
                });
            if let Some(signed) = committed {
                match check(&signed) {
                    Ok(list) if list.issued_ms > newest => {
                        newest = list.issued_ms;
                        info!(revoked = ?list.revoked.keys().collect::<Vec<_>>(), "revocation list applied");
                        if enforce(list) {
                            warn!("the store CA revoked this till's certificate: enrol it again");
                        }
                        if let Err(e) = till.remember_revocations(&signed).await {
                            warn!(cause = %e, "could not remember the revocation list");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(cause = %e, "a revocation list that is not the store CA's: ignored")
                    }
                }
            }
            if w.changed().await.is_err() {
                return;
            }
        }
    })
}
