//! The tillmesh daemon: configuration, the till service, its HTTP API, the mesh wiring, and
//! `start`/`run`, which the thin `main` calls after parsing arguments and installing logging.

/// mimalloc rather than glibc's allocator, for the binary and every test that links this
/// crate: after PIN hashing (Argon2, 19 MiB per hash) glibc kept its freed blocks, and a
/// simulated chain of a thousand tills grew by tens of MiB a till; mimalloc gives them back.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api;
pub mod clock;
pub mod compaction;
pub mod config;
pub mod consensus;
pub mod enrol;
pub mod error;
pub mod links;
pub mod logs;
pub mod master_check;
pub mod memory;
pub mod metrics;
pub mod sim;
pub mod support;
pub mod systemd;
pub mod till;

use std::net::SocketAddr;
use std::sync::Arc;
use tillmesh_crdt::{ReplicaId, VersionVector};
use tillmesh_mesh::discovery::{Discovery, Interfaces};
use tillmesh_mesh::{Mesh, MeshConfig, ReplicaError, Replicator};
use tillmesh_pos::event::Event;
use tokio::net::TcpListener;
use tracing::info;

/// The mesh's view of a till: its events, and its Raft node for requests from peers.
#[derive(Debug, Clone)]
pub struct MeshLink(pub Arc<till::Till>, pub Arc<links::StoreLinks>);

impl Replicator for MeshLink {
    fn version_vector(&self) -> VersionVector {
        self.0.version_vector()
    }

    async fn events_after(
        &self,
        origin: ReplicaId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, ReplicaError> {
        self.0.events_after(origin, after, limit).await
    }

    async fn apply(
        &self,
        from_terminal: u64,
        events: Vec<Event>,
    ) -> Result<VersionVector, ReplicaError> {
        self.0.apply_remote(from_terminal, events).await
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.changes()
    }

    fn now_ms(&self) -> u64 {
        self.0.now_ms()
    }

    fn own_origin(&self) -> Option<ReplicaId> {
        Some(self.0.replica_id())
    }

    fn floor(&self) -> VersionVector {
        self.0.compaction().floor
    }

    async fn base(&self) -> Result<Option<Vec<u8>>, ReplicaError> {
        self.0.base_bytes().await
    }

    async fn apply_base(
        &self,
        from_terminal: u64,
        base: Vec<u8>,
    ) -> Result<VersionVector, ReplicaError> {
        self.0.apply_base(from_terminal, base).await
    }

    fn keys_count(&self) -> usize {
        self.0.keys_count()
    }

    fn key_records(&self) -> Vec<tillmesh_pos::seal::KeyRecord> {
        self.0.key_records()
    }

    async fn admit_keys(
        &self,
        from_terminal: u64,
        records: Vec<tillmesh_pos::seal::KeyRecord>,
    ) -> Result<(), ReplicaError> {
        self.0.admit_keys(from_terminal, records).await
    }

    async fn rpc(&self, from_terminal: u64, body: Vec<u8>) -> Vec<u8> {
        // The sender as its certificate names it: a request in another node's name is refused.
        match self.1.store_raft() {
            Some(raft) => raft.serve(from_terminal, &body).await,
            None => Vec::new(),
        }
    }
}

/// A running till: HTTP API, and the mesh when configured.
pub struct Node {
    /// The till service.
    pub till: Arc<till::Till>,
    /// The mesh, when `[mesh]` is configured.
    pub mesh: Option<Arc<Mesh<MeshLink>>>,
    /// The store's Raft node, with the mesh.
    pub raft: Option<tillmesh_consensus::node::StoreRaft>,
    /// Membership, uplink, master-data applier, compaction and late-capture tasks.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The HTTP address.
    pub http_addr: SocketAddr,
    discovery: Option<Discovery>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("http_addr", &self.http_addr)
            .finish()
    }
}

/// The parts of a meshed till above its mesh: the Raft node and the tasks around it.
#[derive(Debug)]
pub struct StoreParts {
    /// The store's Raft node.
    pub raft: tillmesh_consensus::node::StoreRaft,
    /// Membership, and with a cloud the uplink, master-data applier and compaction.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How the uplink reaches the cloud, and the seed of its retry jitter.
pub type CloudWiring = (Arc<dyn tillmesh_uplink::CloudHttp>, u64);

/// Starts a meshed till's Raft node over `mesh`, its membership rule and, when `[cloud]` is
/// configured and `cloud` given, its uplink, master-data applier and compaction. Shared by
/// `start` (QUIC) and the simulator (in-memory network).
pub async fn join_store<T: tillmesh_mesh::Transport>(
    cfg: &config::TerminalConfig,
    till: &Arc<till::Till>,
    mesh: &Arc<Mesh<MeshLink, T>>,
    links: &links::StoreLinks,
    timing: tillmesh_consensus::node::Timing,
    cloud: Option<CloudWiring>,
) -> anyhow::Result<StoreParts> {
    let m = cfg
        .mesh
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("a store needs [mesh]"))?;
    let transport = Arc::new(consensus::MeshRaft::<T>::default());
    transport.attach(mesh);
    // The Raft database runs as the event store does (no fsync in the simulator).
    let mode = till.store().mode();
    let check = cfg
        .security
        .hq_master_key
        .as_deref()
        .map(|k| master_check::master_check(&cfg.store.store_id, k))
        .transpose()?;
    let raft = tillmesh_consensus::node::StoreRaft::start_with(
        cfg.terminal.id,
        &cfg.terminal.data_dir.join("raft.db"),
        transport.clone(),
        timing,
        mode,
        check,
    )
    .await
    .map_err(|e| anyhow::anyhow!("raft: {e}"))?;
    links.set_raft(raft.clone());
    let mut tasks = vec![consensus::spawn_membership(
        raft.clone(),
        transport,
        m.raft_discovery_window_ms,
        m.raft_remove_after_ms,
        m.store_tills,
    )];
    links.set_mesh(mesh);
    // Every member applies the store's master data, whether or not it could lead uploads.
    tasks.push(consensus::spawn_master_applier(till.clone(), raft.clone()));
    if let (Some(c), Some((http, seed))) = (&cfg.cloud, cloud) {
        let uplink = tillmesh_uplink::Uplink::with_http(
            till.clone(),
            raft.clone(),
            c.uplink(&cfg.store.store_id),
            till.metrics_arc(),
            http,
            seed,
        );
        links.set_cloud(uplink.state());
        let sync = uplink.sync_handle();
        raft.set_sync_hook(Arc::new(move || sync.ask()));
        tasks.push(tokio::spawn(uplink.run()));
        // Compaction needs the cloud's acknowledgements: without a cloud the sync log is the
        // store's only record and nothing is pruned.
        if let Some(settings) = compaction::Settings::from_mesh(m) {
            tasks.push(compaction::spawn(
                till.clone(),
                raft.clone(),
                mesh.clone(),
                settings,
            ));
        }
        info!(url = %c.url, "cloud link configured: the store's leader uploads");
    }
    Ok(StoreParts { raft, tasks })
}

/// Opens the till, binds the HTTP API and starts the mesh.
pub async fn start(cfg: config::TerminalConfig) -> anyhow::Result<Node> {
    cfg.validate()?;
    // One crypto provider for everything that speaks TLS (quinn, rustls, later reqwest).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listen = cfg.terminal.listen;
    let mut metrics = metrics::Metrics::default();
    metrics.http.node = format!("{}/T{}", cfg.store.store_id, cfg.terminal.id).into();
    let metrics = Arc::new(metrics);
    let links = Arc::new(links::StoreLinks::new(metrics.clone()));
    let cfg2 = cfg.clone();
    let m2 = metrics.clone();
    let l2: Arc<dyn links::Links> = if cfg.mesh.is_some() {
        links.clone()
    } else {
        Arc::new(links::Standalone)
    };
    // mDNS first when the mesh port is fixed: announcing (with mdns-sd's probing, about a
    // second) and browsing run while the till opens, which is the slow part of start-up; the
    // peers found meanwhile wait for the mesh.
    let sink = Arc::new(std::sync::Mutex::new(PeerSink::default()));
    let early = match &cfg.mesh {
        Some(m) if m.mdns && m.listen.port() != 0 => {
            Some(start_discovery(&cfg, m, m.listen.port(), sink.clone())?)
        }
        _ => None,
    };
    // Opening replays the event log and may hash seed PINs: keep it off the async workers.
    let till = tokio::task::spawn_blocking(move || {
        till::Till::open(cfg2, Arc::new(clock::SystemClock), m2, l2)
    })
    .await??;
    let till = Arc::new(till);
    let (mesh, discovery, parts) = match &cfg.mesh {
        None => (None, None, None),
        Some(m) => {
            let identity = tillmesh_mesh::identity::TillIdentity::load(
                &cfg.store.store_id,
                &m.ca_cert,
                &m.cert,
                &m.key,
            )?;
            if identity.terminal != cfg.terminal.id {
                anyhow::bail!(
                    "certificate {} is for terminal {}, this till is terminal {}",
                    m.cert.display(),
                    identity.terminal,
                    cfg.terminal.id
                );
            }
            let mesh_cfg = MeshConfig {
                listen: m.listen,
                peers: m.peers.clone(),
                disable_gso: m.disable_gso,
                anti_entropy_ms: m.anti_entropy_ms,
                batch_events_max: m.batch_events_max,
                ..MeshConfig::default()
            };
            till.enable_seals(&identity).await?;
            let revocations_identity = identity.clone();
            let mesh = Arc::new(Mesh::start(
                mesh_cfg,
                identity,
                Arc::new(MeshLink(till.clone(), links.clone())),
            )?);
            let cloud = match &cfg.cloud {
                Some(c) => {
                    let mut seed = [0_u8; 8];
                    getrandom::fill(&mut seed)
                        .map_err(|e| anyhow::anyhow!("no OS random source: {e}"))?;
                    let http: Arc<dyn tillmesh_uplink::CloudHttp> = Arc::new(
                        tillmesh_uplink::ReqwestCloud::new(&c.uplink(&cfg.store.store_id))
                            .map_err(|e| anyhow::anyhow!("cloud link: {e}"))?,
                    );
                    Some((http, u64::from_le_bytes(seed)))
                }
                None => None,
            };
            let parts = join_store(&cfg, &till, &mesh, &links, m.raft_timing(), cloud).await?;
            let mut parts = parts;
            parts.tasks.push(consensus::spawn_revocations(
                parts.raft.clone(),
                mesh.clone(),
                revocations_identity,
                links.clone(),
                till.clone(),
            ));
            info!(addr = %mesh.local_addr(), "mesh listening");
            let weak = Arc::downgrade(&mesh);
            PeerSink::connect(
                &sink,
                Box::new(move |addr| {
                    if let Some(m) = weak.upgrade() {
                        m.add_peer(addr);
                    }
                }),
            );
            let discovery = if m.mdns {
                let d = match early {
                    Some(d) => d,
                    None => start_discovery(&cfg, m, mesh.local_addr().port(), sink.clone())?,
                };
                let (found, gone) = (links.clone(), links.clone());
                d.browse_joining(
                    &cfg.store.store_id,
                    move |j| found.note_joining(j),
                    move |code| gone.forget_joining(code),
                )
                .map_err(|e| anyhow::anyhow!("mDNS discovery: {e}"))?;
                Some(d)
            } else {
                None
            };
            (Some(mesh), discovery, Some(parts))
        }
    };
    let (raft, mut tasks) = match parts {
        Some(p) => (Some(p.raft), p.tasks),
        None => (None, Vec::new()),
    };
    // QR payments the till let expire are watched for a late capture.
    tasks.push(till::spawn_poller(till.clone()));
    // What start-up freed (PIN hashing, the log's replay) goes back to the system.
    tasks.push(memory::spawn_releaser());
    // A big database opened unchecked is checked now, beside the till's work.
    tasks.extend(till.spawn_deferred_check());
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let http_addr = listener.local_addr()?;
    till.set_http_addr(http_addr);
    info!(%http_addr, terminal = cfg.terminal.id, store = %cfg.store.store_id, "till listening");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = api::router(till.clone());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .await
    });
    Ok(Node {
        till,
        mesh,
        raft,
        tasks,
        http_addr,
        discovery,
        stop,
        server,
    })
}

impl Node {
    /// Stops the HTTP API, the mesh and discovery, and waits for them. A leader first hands
    /// the store's leadership to an up-to-date voter and stops its Raft node (no more
    /// heartbeats), so the next leader takes over as soon as the followers' lease allows.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_with(true).await
    }

    /// [`Node::stop`], handing the leadership over first or not (`false` leaves the store
    /// as a crash would: it elects its next leader when the followers' timers run out).
    pub async fn stop_with(self, hand_over: bool) -> anyhow::Result<()> {
        if hand_over
            && let Some(r) = &self.raft
            && let Some(to) = r.hand_over().await
        {
            // The uplink goes on uploading until the successor leads (a few election
            // timeouts at most).
            let took = r.wait_for_successor(HAND_OVER_WAIT).await;
            r.shutdown().await;
            info!(
                to,
                took, "handed the store's leadership over before stopping"
            );
        }
        let _ = self.stop.send(());
        self.server.await??;
        // Aborted tasks are dropped when they next run: wait for each, so that what they hold
        // (the till, its databases) is released before `stop` returns.
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        if let Some(r) = &self.raft {
            r.shutdown().await;
        }
        if let Some(m) = &self.mesh {
            m.shutdown().await;
        }
        if let Some(d) = self.discovery {
            tokio::task::spawn_blocking(move || d.stop()).await?;
        }
        info!("till stopped");
        Ok(())
    }
}

/// Longest a stopping leader waits for its successor (the uplink uploads meanwhile).
const HAND_OVER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A till stopped because its memory went ahead of its disk (a commit of applied events
/// failed); a restart rebuilds its state from disk. `tillmesh terminal` exits with
/// [`Fatal::EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
#[error("the till stopped: {0}")]
pub struct Fatal(pub String);

impl Fatal {
    /// The process exit code (EX_SOFTWARE).
    pub const EXIT_CODE: u8 = 70;
}

/// The interfaces `[mesh] mdns_interfaces` names: `all`, `loopback`, or a comma list.
/// Where mDNS puts the peers it finds: into the mesh once it runs, kept until then (at
/// most [`EARLY_PEERS_MAX`]).
#[derive(Default)]
struct PeerSink {
    add: Option<Box<dyn Fn(std::net::SocketAddr) + Send>>,
    pending: Vec<std::net::SocketAddr>,
}

/// Most peer addresses kept before the mesh runs.
const EARLY_PEERS_MAX: usize = 64;

impl PeerSink {
    fn found(sink: &std::sync::Mutex<PeerSink>, addr: std::net::SocketAddr) {
        let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
        match &s.add {
            Some(add) => add(addr),
            None if s.pending.len() < EARLY_PEERS_MAX && !s.pending.contains(&addr) => {
                s.pending.push(addr)
            }
            None => {}
        }
    }

    /// The mesh runs: the addresses found so far go to it, and every later one.
    fn connect(sink: &std::sync::Mutex<PeerSink>, add: Box<dyn Fn(std::net::SocketAddr) + Send>) {
        let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
        for addr in std::mem::take(&mut s.pending) {
            add(addr);
        }
        s.add = Some(add);
    }
}

/// Advertises this till on mDNS (its mesh on `port`) and browses for the store's tills.
fn start_discovery(
    cfg: &config::TerminalConfig,
    m: &config::MeshSection,
    port: u16,
    sink: Arc<std::sync::Mutex<PeerSink>>,
) -> anyhow::Result<Discovery> {
    Discovery::start(
        &cfg.store.store_id,
        cfg.terminal.id,
        port,
        // The HTTP API, when other hosts can reach it.
        Some(cfg.terminal.listen)
            .filter(|l| l.port() != 0 && !l.ip().is_loopback())
            .map(|l| l.port()),
        &interfaces(&m.mdns_interfaces),
        move |addr| PeerSink::found(&sink, addr),
    )
    .map_err(|e| anyhow::anyhow!("mDNS discovery: {e}"))
}

pub fn interfaces(names: &str) -> Interfaces {
    match names {
        "all" => Interfaces::All,
        "loopback" => Interfaces::Loopback,
        names => Interfaces::Named(names.split(',').map(|n| n.trim().to_string()).collect()),
    }
}

/// Runs a till until `shutdown` resolves, or until the till raises a fatal storage error
/// (answered as [`Fatal`]).
pub async fn run(
    cfg: config::TerminalConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut shutdown = Box::pin(shutdown);
    // One crypto provider for the process (a waiting till already calls its store's tills).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A till with no certificate and `[mesh] enrol` waits for a join token first.
    if enrol::waiting(&cfg) && !enrol::wait(cfg.clone(), &mut shutdown).await? {
        return Ok(());
    }
    let cfg = enrol::adopt(cfg)?;
    let node = start(cfg).await?;
    systemd::ready();
    let watchdog = systemd::spawn_watchdog(node.till.clone());
    let mut fatal = node.till.fatal();
    let cause = tokio::select! {
        () = &mut shutdown => None,
        r = fatal.wait_for(Option::is_some) => r.ok().and_then(|c| c.clone()),
    };
    systemd::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    node.stop().await?;
    match cause {
        Some(c) => Err(Fatal(c).into()),
        None => Ok(()),
    }
}
