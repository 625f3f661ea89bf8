//! What a till reads of the layers built around it (the mesh's peers, the store's Raft
//! group, the cloud link), for its status and its offline limit. The wiring (`join_store`)
//! fills one [`StoreLinks`] as it builds those layers; the till reads it through the
//! [`Links`] trait it was given when it opened. No layer below calls up into the till.

use crate::metrics::Metrics;
use crate::till::{CloudLink, RaftView};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tillmesh_consensus::node::StoreRaft;
use tillmesh_mesh::discovery::{JOINING_MAX, Joining};
use tillmesh_mesh::{Mesh, PeerView, Replicator, Transport};
use tillmesh_uplink::{self as uplink, LinkState};

/// The till's view of the layers around it.
pub trait Links: Send + Sync + std::fmt::Debug {
    /// The mesh's peers (empty without a mesh).
    fn peers(&self) -> Vec<PeerView>;
    /// The store's Raft group, once this till runs a Raft node.
    fn raft(&self) -> Option<RaftView>;
    /// The cloud link, once this till runs an uplink.
    fn cloud(&self) -> Option<CloudLink>;
    /// Addresses of other tills presenting this till's terminal id.
    fn duplicate_terminal(&self) -> Vec<String> {
        Vec::new()
    }
    /// The terminals whose certificates the store CA revoked (as of the newest list this
    /// till applied), and whether this till's own certificate is among them.
    fn revoked(&self) -> (Vec<u64>, bool) {
        (Vec::new(), false)
    }
    /// The store's Raft node, for the few administrative changes a till proposes itself
    /// (a revocation list an admin hands it).
    fn store_raft(&self) -> Option<StoreRaft> {
        None
    }
    /// Tills waiting to join the store that mDNS found, newest first.
    fn joining(&self) -> Vec<Joining> {
        Vec::new()
    }
    /// The mesh's own address (its port is what a new till dials).
    fn mesh_addr(&self) -> Option<std::net::SocketAddr> {
        None
    }
}

/// A till on its own: no mesh, no Raft group, no cloud link.
#[derive(Debug, Default)]
pub struct Standalone;

impl Links for Standalone {
    fn peers(&self) -> Vec<PeerView> {
        Vec::new()
    }
    fn raft(&self) -> Option<RaftView> {
        None
    }
    fn cloud(&self) -> Option<CloudLink> {
        None
    }
}

/// A mesh as the till's status sees it: its peer list.
trait PeerList: Send + Sync {
    fn peers(&self) -> Vec<PeerView>;
    fn duplicates(&self) -> Vec<String>;
    fn local_addr(&self) -> std::net::SocketAddr;
}

impl<R: Replicator, T: Transport> PeerList for Mesh<R, T> {
    fn peers(&self) -> Vec<PeerView> {
        Mesh::peers(self)
    }
    fn duplicates(&self) -> Vec<String> {
        self.duplicate_terminal()
            .iter()
            .map(ToString::to_string)
            .collect()
    }
    fn local_addr(&self) -> std::net::SocketAddr {
        Mesh::local_addr(self)
    }
}

/// The layers of a meshed till, each set once by the wiring as it starts them. The mesh is
/// held weakly: it holds the till, which holds these links.
pub struct StoreLinks {
    metrics: Arc<Metrics>,
    mesh: OnceLock<Weak<dyn PeerList>>,
    raft: OnceLock<StoreRaft>,
    cloud: OnceLock<Arc<Mutex<LinkState>>>,
    revoked: Mutex<(Vec<u64>, bool)>,
    /// Tills waiting to join, newest first (at most [`JOINING_MAX`]).
    joining: Mutex<Vec<Joining>>,
}

impl std::fmt::Debug for StoreLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLinks")
            .field("mesh", &self.mesh.get().is_some())
            .field("raft", &self.raft.get().map(|r| r.id))
            .field("cloud", &self.cloud.get().is_some())
            .finish()
    }
}

impl StoreLinks {
    /// Empty links; `metrics` gets the Raft gauges each time status reads the group.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            mesh: OnceLock::new(),
            raft: OnceLock::new(),
            cloud: OnceLock::new(),
            revoked: Mutex::default(),
            joining: Mutex::default(),
        }
    }

    /// mDNS found a till waiting to join (again: it moves to the front).
    pub fn note_joining(&self, j: Joining) {
        let mut list = self.joining.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|o| o.code != j.code);
        list.insert(0, j);
        list.truncate(JOINING_MAX);
    }

    /// A waiting till withdrew (it joined, or stopped).
    pub fn forget_joining(&self, code: &str) {
        self.joining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|o| o.code != code);
    }

    /// The mesh started.
    pub fn set_mesh<R: Replicator, T: Transport>(&self, mesh: &Arc<Mesh<R, T>>) {
        let weak: Weak<dyn PeerList> = Arc::downgrade(mesh) as Weak<dyn PeerList>;
        let _ = self.mesh.set(weak);
    }

    /// The revocation list applied: the terminals it revokes, and whether this till is one.
    pub fn set_revoked(&self, tills: Vec<u64>, this_till: bool) {
        self.metrics.revoked_tills.set(tills.len() as i64);
        *self.revoked.lock().unwrap_or_else(|p| p.into_inner()) = (tills, this_till);
    }

    /// The Raft node started.
    pub fn set_raft(&self, raft: StoreRaft) {
        let _ = self.raft.set(raft);
    }

    /// The uplink started; status reads its state.
    pub fn set_cloud(&self, state: Arc<Mutex<LinkState>>) {
        let _ = self.cloud.set(state);
    }

    /// The Raft node, for requests from peers (none before it starts).
    pub fn store_raft(&self) -> Option<&StoreRaft> {
        self.raft.get()
    }
}

impl Links for StoreLinks {
    fn peers(&self) -> Vec<PeerView> {
        self.mesh
            .get()
            .and_then(Weak::upgrade)
            .map(|m| m.peers())
            .unwrap_or_default()
    }

    fn duplicate_terminal(&self) -> Vec<String> {
        self.mesh
            .get()
            .and_then(Weak::upgrade)
            .map(|m| m.duplicates())
            .unwrap_or_default()
    }

    fn revoked(&self) -> (Vec<u64>, bool) {
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn store_raft(&self) -> Option<StoreRaft> {
        self.raft.get().cloned()
    }

    fn joining(&self) -> Vec<Joining> {
        self.joining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn mesh_addr(&self) -> Option<std::net::SocketAddr> {
        self.mesh
            .get()
            .and_then(Weak::upgrade)
            .map(|m| m.local_addr())
    }

    fn raft(&self) -> Option<RaftView> {
        let view = self.raft.get()?;
        let m = view.raft.metrics().borrow().clone();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        self.metrics.raft_term.set(m.current_term as i64);
        self.metrics
            .raft_leader
            .set(i64::from(m.current_leader == Some(view.id)));
        self.metrics.raft_voters.set(voters.len() as i64);
        Some(RaftView {
            leader: m.current_leader,
            term: m.current_term,
            voters,
            master_version: view.state().master_version,
            master_refused: view.master_refused().map(|(v, why)| format!("v{v}: {why}")),
        })
    }

    fn cloud(&self) -> Option<CloudLink> {
        let state = self.cloud.get()?;
        Some(uplink::link_view(state, self.raft.get()?))
    }
}
