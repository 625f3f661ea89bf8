//! The delta-sync engine over QUIC.
//!
//! Each till *pushes* to every peer over a connection it dialed, and *receives* on the
//! connections peers dialed to it, so every pair has one connection per direction:
//!
//! 1. Both sides send `Hello` (protocol version, store, terminal, version vector); the
//!    terminal must match the peer's certificate.
//! 2. The pusher sends what the receiver's vector lacks, in `Events` batches of at most
//!    `batch_events_max` events, in per-origin sequence order, reading them from durable
//!    storage (so only durable events are ever forwarded).
//! 3. The receiver applies each batch durably, then answers `Ack(vector)`. The pusher waits
//!    for that answer before the next batch: one batch in flight per peer bounds memory.
//! 4. Caught up, the pusher waits for a local change (pushed as soon as it commits) or the
//!    anti-entropy timer, which sends `Probe` and re-reads the receiver's vector (it may have
//!    lost data and need a resend).
//!
//! A malformed, oversized or wrong-version frame ends the connection with a logged reason and
//! nothing of it applied. Reconnects back off exponentially with jitter.

use crate::identity::{TillIdentity, store_dns, store_label};
use crate::protocol::{self, frame_name};
use crate::transport::{Link, QuicTransport, Transport};
use crate::wire::{self, Frame, WireError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tillmesh_crdt::{ReplicaId, VersionVector};
use tillmesh_pos::event::Event;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};

mod push;
mod receive;

use push::*;
pub use receive::*;

/// Why a till did not answer or apply what the mesh asked.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// What a peer sent is refused (malformed, forged, stamped in the future, ...): nothing
    /// of it was applied.
    #[error("refused: {0}")]
    Refused(String),
    /// The till's own storage failed (not the peer's fault).
    #[error("storage: {0}")]
    Storage(String),
    /// This till does not take it.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// What the mesh needs from a till.
pub trait Replicator: Send + Sync + 'static {
    /// The till's version vector (events held).
    fn version_vector(&self) -> VersionVector;
    /// Durable events of `origin` with `seq > after`, at most `limit`.
    fn events_after(
        &self,
        origin: ReplicaId,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, ReplicaError>> + Send;
    /// Applies a peer's events durably (idempotent) and returns the vector afterwards.
    /// An error refuses the whole batch.
    fn apply(
        &self,
        from_terminal: u64,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<VersionVector, ReplicaError>> + Send;
    /// Changes after every durable change.
    fn changes(&self) -> watch::Receiver<u64>;
    /// Wall clock, ms since the epoch (for status).
    fn now_ms(&self) -> u64;
    /// The origin id of this till's own events.
    fn own_origin(&self) -> Option<ReplicaId>;
    /// Events at or below this, per origin, may be pruned from this till's sync log: a peer
    /// lacking any of them gets the base instead. Nothing is pruned by default.
    fn floor(&self) -> VersionVector {
        VersionVector::new()
    }
    /// The encoded compacted base (`None` when nothing was ever pruned).
    fn base(&self) -> impl Future<Output = Result<Option<Vec<u8>>, ReplicaError>> + Send {
        async { Ok(None) }
    }
    /// Merges a peer's base durably and returns the vector afterwards. An error refuses it.
    fn apply_base(
        &self,
        from_terminal: u64,
        base: Vec<u8>,
    ) -> impl Future<Output = Result<VersionVector, ReplicaError>> + Send {
        let _ = (from_terminal, base);
        async { Err(ReplicaError::Unsupported("this till does not take bases")) }
    }
    /// How many key records this till holds (a pusher sends them again when it grows).
    fn keys_count(&self) -> usize {
        0
    }
    /// The key records this till holds, sent first to a peer that speaks protocol 2.
    fn key_records(&self) -> Vec<tillmesh_pos::seal::KeyRecord> {
        Vec::new()
    }
    /// Admits a peer's key records: each is checked against the store CA; one that fails is
    /// logged and left out.
    fn admit_keys(
        &self,
        from_terminal: u64,
        records: Vec<tillmesh_pos::seal::KeyRecord>,
    ) -> impl Future<Output = Result<(), ReplicaError>> + Send {
        let _ = (from_terminal, records);
        async { Ok(()) }
    }
    /// Answers a request from a peer (Raft RPCs). By default there is nothing to answer.
    fn rpc(&self, from_terminal: u64, body: Vec<u8>) -> impl Future<Output = Vec<u8>> + Send {
        let _ = (from_terminal, body);
        async { Vec::new() }
    }
}

/// Mesh settings.
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// UDP address of this till's QUIC endpoint.
    pub listen: SocketAddr,
    /// Peers to dial without discovery.
    pub peers: Vec<SocketAddr>,
    /// Disable UDP segmentation offload (fails on some loopback/container setups).
    pub disable_gso: bool,
    /// Anti-entropy period.
    pub anti_entropy_ms: u64,
    /// Most events per batch.
    pub batch_events_max: usize,
    /// Longest reconnect back-off.
    pub reconnect_ms_max: u64,
    /// How long to wait for an `Ack` before giving up on a connection.
    pub ack_timeout_ms: u64,
    /// Seed of the reconnect jitter (the simulator's); `None` draws one from the OS.
    pub jitter_seed: Option<u64>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:7400".parse().expect("literal"),
            peers: vec![],
            disable_gso: false,
            anti_entropy_ms: 2000,
            batch_events_max: 256,
            reconnect_ms_max: 5000,
            ack_timeout_ms: 10_000,
            jitter_seed: None,
        }
    }
}

/// Mesh errors.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// Could not set up the endpoint.
    #[error("mesh setup failed: {0}")]
    Setup(String),
    /// The connection failed or was closed.
    #[error("connection: {0}")]
    Connection(String),
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The peer sent a bad frame.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Local storage refused.
    #[error("local: {0}")]
    Local(String),
    /// The peer broke the sync protocol.
    #[error("protocol: {0}")]
    Rules(#[from] crate::protocol::ProtocolError),
    /// The till refused or failed what the mesh asked of it.
    #[error("till: {0}")]
    Replica(#[from] ReplicaError),
}

/// Connection state of one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Dialing or backing off.
    Connecting,
    /// Connected and in sync or syncing.
    Connected,
    /// Cut off by a fault injection (tests, simulator).
    Blocked,
}

/// What this till knows of one peer.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerView {
    /// Peer terminal id.
    pub terminal: u64,
    /// Address last dialed or seen.
    pub addr: String,
    /// Our push connection to it.
    pub outbound: PeerState,
    /// Whether it is pushing to us.
    pub inbound: bool,
    /// Events we hold that it lacks (from its last acknowledgement).
    pub lag_events: u64,
    /// Last frame exchanged (ms since epoch).
    pub last_contact_ms: u64,
    /// Events sent to it.
    pub events_sent: u64,
    /// Events received from it.
    pub events_received: u64,
    /// Bytes of `Events` frames sent to it (length prefix included).
    pub frame_bytes_sent: u64,
    /// UDP bytes sent on the push connection (QUIC and TLS overhead, acks, keep-alives).
    pub udp_bytes_sent: u64,
    /// Last error on either direction.
    pub last_error: Option<String>,
    /// Inbound connections from it closed for being over [`INBOUND_PER_PEER_MAX`].
    #[serde(default)]
    pub inbound_refused: u64,
    /// The protocol version of the last session with it (the highest both speak).
    #[serde(default)]
    pub protocol: Option<u16>,
    #[serde(skip)]
    their_vv: VersionVector,
}

impl PeerView {
    fn new(terminal: u64, addr: String) -> Self {
        Self {
            terminal,
            addr,
            outbound: PeerState::Connecting,
            inbound: false,
            lag_events: 0,
            last_contact_ms: 0,
            events_sent: 0,
            events_received: 0,
            frame_bytes_sent: 0,
            udp_bytes_sent: 0,
            last_error: None,
            inbound_refused: 0,
            protocol: None,
            their_vv: VersionVector::new(),
        }
    }
}

/// Peers whose traffic is cut (both directions, this till's side): by fault injection, or
/// because the store CA revoked their certificate.
#[derive(Debug, Default)]
pub struct Faults {
    blocked: Mutex<HashSet<u64>>,
    /// Per terminal: certificates issued at or before this instant (s) are revoked.
    revoked: Mutex<BTreeMap<u64, u64>>,
    changed: watch::Sender<u64>,
}

impl Faults {
    /// Cuts this till off from `terminal`.
    pub fn block(&self, terminal: u64) {
        self.blocked.lock().expect("faults lock").insert(terminal);
        self.changed.send_modify(|v| *v += 1);
    }
    /// Restores traffic with `terminal`.
    pub fn unblock(&self, terminal: u64) {
        self.blocked.lock().expect("faults lock").remove(&terminal);
        self.changed.send_modify(|v| *v += 1);
    }
    /// Whether `terminal` is cut off.
    pub fn is_blocked(&self, terminal: u64) -> bool {
        self.blocked
            .lock()
            .expect("faults lock")
            .contains(&terminal)
    }
    /// Sets the revoked certificates (a list the store CA signed, checked by the caller):
    /// every connection of a till they cover closes, and it is refused from then on.
    pub fn revoke(&self, revoked: BTreeMap<u64, u64>) {
        *self.revoked.lock().expect("faults lock") = revoked;
        self.changed.send_modify(|v| *v += 1);
    }
    /// Whether `terminal`'s certificate issued at `issued_s` is revoked.
    pub fn is_revoked(&self, terminal: u64, issued_s: u64) -> bool {
        crate::revocation::covers(
            &self.revoked.lock().expect("faults lock"),
            terminal,
            issued_s,
        )
    }
    /// Why traffic with the peer on `link` is cut, if it is.
    fn cut<L: crate::Link>(&self, link: &L) -> Option<&'static str> {
        let peer = link.peer().1;
        if self.is_blocked(peer) {
            Some("blocked by fault injection")
        } else if self.is_revoked(peer, link.issued_s()) {
            Some("its certificate is revoked")
        } else {
            None
        }
    }
}

struct Shared<R, T: Transport> {
    store_id: String,
    terminal: u64,
    cfg: MeshConfig,
    transport: T,
    replicator: Arc<R>,
    peers: Mutex<BTreeMap<u64, PeerView>>,
    pushing_to: Mutex<HashSet<u64>>,
    targets: Mutex<HashSet<SocketAddr>>,
    faults: Faults,
    stop: watch::Sender<bool>,
    /// The outbound link to each peer, for requests (`Mesh::call`).
    links: Mutex<HashMap<u64, Arc<T::Link>>>,
    /// Inbound connections open per peer terminal (bounded by [`INBOUND_PER_PEER_MAX`]).
    inbound: Mutex<HashMap<u64, usize>>,
    /// Addresses of another till presenting this till's own terminal id.
    duplicates: Mutex<std::collections::BTreeSet<SocketAddr>>,
}

impl<R: Replicator, T: Transport> Shared<R, T> {
    /// A link whose certificate names this till's own terminal: this till itself (its own
    /// address, found again through discovery) or another till enrolled with the same id.
    /// It is this till when it comes from this till's port on one of this host's addresses
    /// (a till listens on one port); any other address is another till. Answers whether it
    /// is another till, and remembers it.
    fn same_terminal_is_another(&self, addr: SocketAddr) -> bool {
        if addr.port() == self.transport.local_addr().port()
            && crate::discovery::is_this_host(addr.ip())
        {
            return false;
        }
        let mut d = self.duplicates.lock().unwrap_or_else(|p| p.into_inner());
        if d.len() < 64 && d.insert(addr) {
            warn!(%addr, terminal = self.terminal, "another till presents this till's terminal id; refusing it");
        }
        true
    }
}

/// Most inbound connections one peer may hold open at once (a pusher needs one; a reconnect
/// may briefly overlap the old one). Past it a connection is closed at once: a peer cannot
/// make this till buffer a base and a full set of requests per connection without bound.
pub const INBOUND_PER_PEER_MAX: usize = 4;

/// Most inbound connections open at once, from all peers and handshakes in progress.
pub const INBOUND_MAX: usize = 256;

/// A running mesh over transport `T` (QUIC unless a test or the simulator plugs another).
pub struct Mesh<R: Replicator, T: Transport = QuicTransport> {
    shared: Arc<Shared<R, T>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The runtime the mesh was started on: discovery calls `add_peer` from its own thread.
    runtime: tokio::runtime::Handle,
}

impl<R: Replicator, T: Transport> std::fmt::Debug for Mesh<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("terminal", &self.shared.terminal)
            .finish()
    }
}

impl<R: Replicator> Mesh<R, QuicTransport> {
    /// Binds the QUIC endpoint, starts accepting, and dials the static peers.
    pub fn start(
        cfg: MeshConfig,
        identity: TillIdentity,
        replicator: Arc<R>,
    ) -> Result<Self, MeshError> {
        let transport = QuicTransport::bind(cfg.listen, &identity, cfg.disable_gso)?;
        Ok(Self::with_transport(
            cfg,
            &identity.store_id,
            identity.terminal,
            transport,
            replicator,
        ))
    }
}

impl<R: Replicator, T: Transport> Mesh<R, T> {
    /// Starts the mesh on an already bound transport.
    pub fn with_transport(
        cfg: MeshConfig,
        store_id: &str,
        terminal: u64,
        transport: T,
        replicator: Arc<R>,
    ) -> Self {
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            store_id: store_id.to_string(),
            terminal,
            cfg: cfg.clone(),
            transport,
            replicator,
            peers: Mutex::new(BTreeMap::new()),
            pushing_to: Mutex::new(HashSet::new()),
            links: Mutex::new(HashMap::new()),
            inbound: Mutex::new(HashMap::new()),
            duplicates: Mutex::new(std::collections::BTreeSet::new()),
            targets: Mutex::new(HashSet::new()),
            faults: Faults::default(),
            stop,
        });
        let mesh = Mesh {
            shared: shared.clone(),
            tasks: Mutex::new(Vec::new()),
            runtime: tokio::runtime::Handle::current(),
        };
        mesh.spawn(accept_loop(shared));
        for p in cfg.peers {
            mesh.add_peer(p);
        }
        mesh
    }

    fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        self.tasks
            .lock()
            .expect("tasks lock")
            .push(self.runtime.spawn(f));
    }

    /// The address peers dial.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.transport.local_addr()
    }

    /// Addresses of other tills presenting this till's own terminal id (a misconfiguration:
    /// their events and this till's would collide; they are refused).
    pub fn duplicate_terminal(&self) -> Vec<SocketAddr> {
        self.shared
            .duplicates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Starts pushing to a peer address (idempotent per address).
    pub fn add_peer(&self, addr: SocketAddr) {
        if self
            .shared
            .targets
            .lock()
            .expect("targets lock")
            .insert(addr)
        {
            self.spawn(push_loop(self.shared.clone(), addr));
        }
    }

    /// Peers and their state.
    pub fn peers(&self) -> Vec<PeerView> {
        let ours = self.shared.replicator.version_vector();
        let mut out: Vec<PeerView> = self
            .shared
            .peers
            .lock()
            .expect("peers lock")
            .values()
            .cloned()
            .collect();
        for p in &mut out {
            p.lag_events = lag(&ours, &p.their_vv);
            if self.shared.faults.is_blocked(p.terminal) {
                p.outbound = PeerState::Blocked;
            }
        }
        out
    }

    /// What each peer held as of its last acknowledgement on this till's push link (a lower
    /// bound: vectors only grow; empty until the first acknowledgement).
    pub fn peer_vectors(&self) -> BTreeMap<u64, VersionVector> {
        self.shared
            .peers
            .lock()
            .expect("peers lock")
            .values()
            .map(|p| (p.terminal, p.their_vv.clone()))
            .collect()
    }

    /// Sends a request to a peer over this till's connection to it and returns the answer
    /// (Raft RPCs). Fails when there is no connection, the peer is blocked, or the answer is
    /// not one; the caller bounds the wait.
    pub async fn call(&self, terminal: u64, body: Vec<u8>) -> Result<Vec<u8>, MeshError> {
        let s = &self.shared;
        if s.faults.is_blocked(terminal) {
            return Err(MeshError::Connection("blocked by fault injection".into()));
        }
        let link = s
            .links
            .lock()
            .expect("links lock")
            .get(&terminal)
            .cloned()
            .ok_or_else(|| {
                MeshError::Connection(format!("no connection to terminal {terminal}"))
            })?;
        if let Some(why) = s.faults.cut(&*link) {
            return Err(MeshError::Connection(format!("terminal {terminal}: {why}")));
        }
        let (mut send, mut recv) = link.open().await?;
        write_frame(&mut send, &Frame::Rpc(body)).await?;
        match read_frame(&mut recv).await? {
            Frame::RpcReply(answer) => Ok(answer),
            other => Err(MeshError::Protocol(format!(
                "{} in answer to a request",
                frame_name(&other)
            ))),
        }
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Stops every task and closes the transport.
    pub async fn shutdown(&self) {
        let _ = self.shared.stop.send(true);
        self.shared.transport.close();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        self.shared.transport.wait_idle().await;
    }
}

/// Events `ours` holds beyond `theirs`.
pub fn lag(ours: &VersionVector, theirs: &VersionVector) -> u64 {
    ours.iter()
        .map(|(o, s)| s.saturating_sub(theirs.get(o)))
        .sum()
}

async fn write_bytes(send: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> Result<(), MeshError> {
    send.write_all(bytes)
        .await
        .map_err(|e| MeshError::Connection(e.to_string()))?;
    send.flush()
        .await
        .map_err(|e| MeshError::Connection(e.to_string()))
}

async fn write_frame(send: &mut (impl AsyncWrite + Unpin), frame: &Frame) -> Result<(), MeshError> {
    write_bytes(send, &wire::encode(frame)).await
}

async fn read_frame(recv: &mut (impl AsyncRead + Unpin)) -> Result<Frame, MeshError> {
    let mut prefix = [0_u8; 4];
    recv.read_exact(&mut prefix)
        .await
        .map_err(|e| MeshError::Connection(e.to_string()))?;
    let n = wire::check_len(prefix)?;
    let mut body = vec![0_u8; n];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| MeshError::Connection(e.to_string()))?;
    Ok(wire::decode(&body)?)
}

fn hello<R: Replicator, T: Transport>(s: &Shared<R, T>) -> Frame {
    protocol::hello(&s.store_id, s.terminal, s.replicator.version_vector())
}

fn check_hello<R: Replicator, T: Transport>(
    s: &Shared<R, T>,
    frame: Frame,
    cert_terminal: u64,
) -> Result<protocol::Greeting, MeshError> {
    Ok(protocol::check_hello(&s.store_id, frame, cert_terminal)?)
}

fn with_peer<R: Replicator, T: Transport>(
    s: &Shared<R, T>,
    terminal: u64,
    addr: SocketAddr,
    f: impl FnOnce(&mut PeerView),
) {
    let mut peers = s.peers.lock().expect("peers lock");
    let p = peers
        .entry(terminal)
        .or_insert_with(|| PeerView::new(terminal, addr.to_string()));
    p.last_contact_ms = s.replicator.now_ms();
    f(p);
}
