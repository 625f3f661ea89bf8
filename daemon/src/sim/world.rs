//! A simulated store: the real cloud (its HTTP router called in process, SQLite inline), and
//! real tills (till service, SQLite inline, the mesh sync engine on the in-memory network,
//! the Raft node, uplink and compaction) on one deterministic thread with simulated time.
//! Faults act on the network, the cloud link, the tills' processes and clocks.

use crate::MeshLink;
use crate::clock::Clock;
use crate::config::{CloudSection, MeshSection, Simulated, TerminalConfig};
use crate::links::StoreLinks;
use crate::till::Till;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tillmesh_consensus::node::{StoreRaft, Timing};
use tillmesh_mesh::{MemNet, MemTransport, Mesh, MeshConfig};
use tillmesh_uplink::{CloudAnswer, CloudHttp, CloudRequest};

/// The store's id in every simulation.
pub const STORE: &str = "S001";
/// Simulated wall-clock start: 2026-01-01T00:00:00Z (fixed, so a seed replays exactly).
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// Simulated time: the epoch plus tokio's (paused, auto-advancing) clock, plus a skew.
#[derive(Debug)]
pub struct SimClock {
    start: tokio::time::Instant,
    skew_ms: AtomicI64,
}

impl SimClock {
    /// A clock starting at [`EPOCH_MS`] now.
    pub fn new(start: tokio::time::Instant) -> Self {
        Self {
            start,
            skew_ms: AtomicI64::new(0),
        }
    }

    /// Sets this clock's offset from true simulated time.
    pub fn skew(&self, ms: i64) {
        self.skew_ms.store(ms, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let t = EPOCH_MS + self.start.elapsed().as_millis() as u64;
        t.saturating_add_signed(self.skew_ms.load(Ordering::Relaxed))
    }
}

/// The cloud link's faults, shared by every till's client.
#[derive(Debug, Default)]
pub struct CloudSwitch {
    /// The WAN is down for everyone.
    pub down: AtomicBool,
    /// Added latency, ms.
    pub delay_ms: AtomicU64,
    /// Tills that alone lost the cloud.
    pub cut: Mutex<BTreeSet<u64>>,
    /// Batches each till sent (for "a follower never uploads").
    pub uploads: Mutex<BTreeMap<u64, u64>>,
    /// When the cloud accepted each of the store's batches, and from which till (at most
    /// [`ACCEPTED_MAX`]).
    pub accepted: Mutex<Vec<(tokio::time::Instant, u64)>>,
}

/// Most accepted batches remembered (upload gaps around a leader's stop).
pub const ACCEPTED_MAX: usize = 1_000_000;

/// One till's way to the cloud: the cloud's own router, in process.
#[derive(Debug)]
pub struct SimCloudHttp {
    /// The observed store's terminal id (`None` for a till of another chain store, which
    /// only the chain-wide WAN faults reach).
    terminal: Option<u64>,
    router: axum::Router,
    switch: Arc<CloudSwitch>,
}

impl CloudHttp for SimCloudHttp {
    fn call(&self, req: CloudRequest) -> CloudAnswer<'_> {
        Box::pin(async move {
            use tower::ServiceExt;
            let reachable = |s: &CloudSwitch| {
                !s.down.load(Ordering::Relaxed)
                    && !s
                        .cut
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains(&self.terminal.unwrap_or(0))
            };
            if !reachable(&self.switch) {
                return Err("connection refused (simulated WAN outage)".into());
            }
            let delay = self.switch.delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let mut b = axum::http::Request::builder()
                .uri(&req.path)
                .header("authorization", format!("Bearer {}", req.token));
            let uploading = req.batch_gzip.is_some();
            let body = match req.batch_gzip {
                Some(bytes) => {
                    if let Some(t) = self.terminal {
                        *self
                            .switch
                            .uploads
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(t)
                            .or_default() += 1;
                    }
                    b = b
                        .method("POST")
                        .header("content-type", tillmesh_cloud_proto::BINARY_CONTENT_TYPE)
                        .header("content-encoding", "gzip")
                        .header("content-length", bytes.len());
                    axum::body::Body::from(bytes)
                }
                None => match req.json {
                    Some(json) => {
                        b = b.method("POST").header("content-type", "application/json");
                        axum::body::Body::from(json)
                    }
                    None if req.bundle.is_some() => {
                        b = b.method("POST").header(
                            "content-type",
                            tillmesh_cloud_proto::tills::BUNDLE_CONTENT_TYPE,
                        );
                        axum::body::Body::from(req.bundle.unwrap_or_default())
                    }
                    None => {
                        b = b.method(if req.post { "POST" } else { "GET" });
                        axum::body::Body::empty()
                    }
                },
            };
            let request = b.body(body).map_err(|e| e.to_string())?;
            // The router's error is `Infallible`.
            let Ok(resp) = self.router.clone().oneshot(request).await;
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
                .await
                .map_err(|e| e.to_string())?;
            // The answer is lost if the link fell while the request was in flight.
            if !reachable(&self.switch) {
                return Err("connection reset (simulated WAN outage)".into());
            }
            if let (true, 200, Some(t)) = (uploading, status, self.terminal) {
                let mut a = self
                    .switch
                    .accepted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if a.len() < ACCEPTED_MAX {
                    a.push((tokio::time::Instant::now(), t));
                }
            }
            Ok((status, bytes.to_vec()))
        })
    }
}

/// A running simulated till.
pub struct SimTill {
    /// Terminal id.
    pub id: u64,
    /// The till service.
    pub till: Arc<Till>,
    /// Its mesh on the in-memory network.
    pub mesh: Arc<Mesh<MeshLink, MemTransport>>,
    /// Its Raft node.
    pub raft: StoreRaft,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for SimTill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimTill").field("id", &self.id).finish()
    }
}

impl SimTill {
    /// Adds a task that dies with the till (its cashier).
    pub fn own(&mut self, t: tokio::task::JoinHandle<()>) {
        self.tasks.push(t);
    }

    /// Whether this till leads, by its own Raft metrics, and in which term.
    pub fn leads(&self) -> Option<u64> {
        self.raft.leads()
    }

    /// A planned stop: hands the leadership over when it leads (as `tillmesh terminal` does
    /// on SIGTERM), then stops like [`SimTill::crash`]. Answers whether it handed over.
    pub async fn stop(self) -> (bool, Vec<tillmesh_consensus::storage::PersistedVote>) {
        let handed = self.raft.hand_over().await.is_some();
        if handed {
            self.raft
                .wait_for_successor(std::time::Duration::from_secs(5))
                .await;
        }
        (handed, self.crash().await)
    }

    /// Stops everything of the till at once: what it committed stays on its disk. Answers
    /// the votes it persisted that no observer drained yet.
    pub async fn crash(self) -> Vec<tillmesh_consensus::storage::PersistedVote> {
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        self.raft.shutdown().await;
        self.mesh.shutdown().await;
        self.raft.drain_votes()
    }
}

/// Another store of the chain: one or more tills selling and uploading to the same cloud;
/// the invariants check the cloud's view of it.
#[derive(Debug)]
pub struct ChainStore {
    /// Store id.
    pub id: String,
    /// Its running tills.
    pub tills: BTreeMap<u64, SimTill>,
}

/// Which store a till belongs to.
struct StoreSpec<'a> {
    id: &'a str,
    token: &'a str,
    /// Tills in that store.
    n: u64,
    /// 0 for the observed store, 1.. for the rest of the chain.
    index: u64,
}

/// The store under simulation (and the rest of its chain).
pub struct World {
    /// Data directory (each till's SQLite files, the cloud's).
    pub dir: PathBuf,
    /// The in-memory LAN.
    pub net: Arc<MemNet>,
    /// The cloud service.
    pub cloud: Arc<tillmesh_cloud::Cloud>,
    router: axum::Router,
    /// The WAN's faults.
    pub switch: Arc<CloudSwitch>,
    token: String,
    /// Running tills.
    pub tills: BTreeMap<u64, SimTill>,
    /// Every till's clock (kept across crashes: skew is the machine's).
    pub clocks: BTreeMap<u64, Arc<SimClock>>,
    seed: u64,
    timing: crate::sim::scenario::SimTiming,
    n: u64,
    /// The other stores of the chain, against the same cloud.
    pub chain: Vec<ChainStore>,
    chain_clock: Arc<SimClock>,
    /// The catalog every till starts from and HQ seeds.
    catalog: PathBuf,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World").field("dir", &self.dir).finish()
    }
}

/// The mesh address of a till of the observed store on the in-memory LAN.
pub fn addr(t: u64) -> SocketAddr {
    store_addr(0, t)
}

/// The mesh address of till `t` of the chain's store `index` (0: the observed store).
fn store_addr(index: u64, t: u64) -> SocketAddr {
    let (hi, lo) = if index == 0 {
        (0, 0)
    } else {
        (1 + index / 256, index % 256)
    };
    SocketAddr::from(([10, hi as u8, lo as u8, t as u8], 7400))
}

/// The id of the chain's store `index` (1..).
pub fn chain_store_id(index: u64) -> String {
    format!("C{index:04}")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

impl World {
    /// Builds the cloud and `n` tills in `dir`, and the rest of the chain (`chain`: other
    /// stores and tills per store; their cashiers are the caller's).
    pub async fn new(
        dir: &Path,
        n: u64,
        seed: u64,
        timing: crate::sim::scenario::SimTiming,
        chain: Option<&crate::sim::scenario::Chain>,
    ) -> anyhow::Result<World> {
        let start = tokio::time::Instant::now();
        let mut cfg =
            tillmesh_cloud::config::CloudConfig::load(&repo().join("configs/cloud.example.toml"))?;
        cfg.database = tillmesh_cloud::config::DatabaseConfig::Sqlite {
            path: dir.join("cloud.db"),
        };
        // A chain runs on the first products of the example catalog (a thousand stores each
        // uploading 1,200 opening-stock events would be most of the run).
        let catalog = match chain {
            Some(_) => small_catalog(dir, CHAIN_CATALOG_ITEMS)?,
            None => repo().join("configs/catalog.example.json"),
        };
        cfg.master_seed = Some(catalog.clone());
        let others = chain.map_or(0, |c| c.stores.saturating_sub(1));
        let template = cfg.stores.first().cloned();
        for k in 1..=others {
            if let Some(mut st) = template.clone() {
                st.id = chain_store_id(k);
                st.name = format!("Chain store {k}");
                cfg.stores.push(st);
            }
        }
        let ledger: Arc<dyn tillmesh_cloud::ledger::Ledger> = Arc::new(
            tillmesh_cloud::sqlite::SqliteLedger::open_inline(&dir.join("cloud.db"))?,
        );
        let cloud = Arc::new(tillmesh_cloud::Cloud::new(&cfg, ledger)?);
        cloud.seed(&cfg).await?;
        let token = cloud.issue(Some(STORE), None).await?.0;
        let router = tillmesh_cloud::api::router(cloud.clone());
        let mut w = World {
            dir: dir.to_path_buf(),
            net: MemNet::seeded(splitmix(seed ^ 0x4e45_5457)),
            cloud,
            router,
            switch: Arc::default(),
            token,
            tills: BTreeMap::new(),
            clocks: (1..=n)
                .map(|t| (t, Arc::new(SimClock::new(start))))
                .collect(),
            seed,
            timing,
            n,
            chain: Vec::new(),
            chain_clock: Arc::new(SimClock::new(start)),
            catalog,
        };
        for t in 1..=n {
            w.start_till(t).await?;
        }
        if let Some(c) = chain {
            for k in 1..=others {
                let id = chain_store_id(k);
                let token = w.cloud.issue(Some(&id), None).await?.0;
                let spec = StoreSpec {
                    id: &id,
                    token: &token,
                    n: c.tills,
                    index: k,
                };
                let mut tills = BTreeMap::new();
                for t in 1..=c.tills {
                    let clock = w.chain_clock.clone();
                    tills.insert(t, w.start(&spec, t, clock).await?);
                }
                w.chain.push(ChainStore { id, tills });
            }
        }
        Ok(w)
    }

    fn config(&self, spec: &StoreSpec<'_>, t: u64) -> anyhow::Result<TerminalConfig> {
        let mut cfg = TerminalConfig::load(&repo().join("configs/terminal.example.toml"))?;
        cfg.security.demo = true;
        cfg.store.store_id = spec.id.to_string();
        cfg.catalog.path = self.catalog.clone();
        cfg.terminal.id = t;
        cfg.terminal.data_dir = if spec.index == 0 {
            self.dir.join(format!("till-{t}"))
        } else {
            self.dir.join(format!("{}/till-{t}", spec.id))
        };
        // A non-zero incarnation from the seed, the store and the terminal.
        let inc = (splitmix(self.seed ^ (spec.index << 32) ^ t) as u32) | 1;
        cfg.terminal.simulated = Some(Simulated { incarnation: inc });
        // Recognition is not part of the simulated store.
        cfg.vision = None;
        // No TLS on the in-memory LAN: the paths are never read.
        let none = PathBuf::from("/nonexistent");
        let mut mesh =
            MeshSection::loopback(store_addr(spec.index, t), none.clone(), none.clone(), none);
        mesh.anti_entropy_ms = self.timing.anti_entropy_ms;
        mesh.compact_interval_ms = self.timing.compact_interval_ms;
        mesh.raft_remove_after_ms = self.timing.raft_remove_after_ms;
        mesh.store_tills = spec.n as usize;
        cfg.mesh = Some(mesh);
        let mut c = CloudSection::new("sim://cloud".into(), spec.token.to_string());
        // HQ's per-till view is not what the simulator checks: no reports (fewer requests).
        c.tills_report_ms = 0;
        // The offline limit is the production one: a 24-hour outage scenario meets it.
        c.timeout_ms = 3_000;
        cfg.cloud = Some(c);
        Ok(cfg)
    }

    /// Starts (or restarts) till `t` of the observed store on its data directory.
    pub async fn start_till(&mut self, t: u64) -> anyhow::Result<()> {
        let token = self.token.clone();
        let spec = StoreSpec {
            id: STORE,
            token: &token,
            n: self.n,
            index: 0,
        };
        let till = self.start(&spec, t, self.clocks[&t].clone()).await?;
        self.tills.insert(t, till);
        Ok(())
    }

    async fn start(
        &self,
        spec: &StoreSpec<'_>,
        t: u64,
        clock: Arc<SimClock>,
    ) -> anyhow::Result<SimTill> {
        let cfg = self.config(spec, t)?;
        let seed = self.seed ^ (spec.index << 24);
        let here = store_addr(spec.index, t);
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let links = Arc::new(StoreLinks::new(metrics.clone()));
        let till = Arc::new(Till::open(cfg.clone(), clock, metrics, links.clone())?);
        let label = tillmesh_mesh::identity::store_label(spec.id);
        let transport = self.net.attach(here, &label, t);
        let m = cfg.mesh.as_ref().expect("configured above");
        let mesh = Arc::new(Mesh::with_transport(
            MeshConfig {
                listen: here,
                peers: Vec::new(),
                disable_gso: true,
                anti_entropy_ms: m.anti_entropy_ms,
                batch_events_max: m.batch_events_max,
                jitter_seed: Some(splitmix(seed ^ (t << 8))),
                ..MeshConfig::default()
            },
            spec.id,
            t,
            transport,
            Arc::new(MeshLink(till.clone(), links.clone())),
        ));
        // Election timeouts fixed per till (from the seed): openraft draws them from an
        // unseeded generator otherwise. openraft checks them on a tick of 1.5 heartbeats, and
        // the simulated tills' ticks are in phase (they boot at one instant), so two tills
        // whose timeouts round up to the same tick would stand in the same term at every
        // round, forever (a split vote that plain Raft's one-vote-per-term never breaks).
        // Each till gets its own number of ticks (a seeded rank among the store's tills) and
        // an offset inside the tick.
        let tick = self.timing.heartbeat_ms * 3 / 2;
        let base_ticks = self.timing.election_ms.div_ceil(tick);
        let draw = |p: u64| splitmix(seed.wrapping_mul(31).wrapping_add(p));
        let rank = (1..=spec.n)
            .filter(|&p| (draw(p), p) < (draw(t), t))
            .count() as u64;
        let election = tick * (base_ticks + rank) + draw(t) % (tick / 4).max(1) + 1;
        let timing = Timing {
            heartbeat_ms: self.timing.heartbeat_ms,
            election_min_ms: election,
            election_max_ms: election + 1,
            // openraft's own timer, whose timeouts the seed fixes as above.
            pre_vote: false,
        };
        let http: Arc<dyn CloudHttp> = Arc::new(SimCloudHttp {
            terminal: (spec.index == 0).then_some(t),
            router: self.router.clone(),
            switch: self.switch.clone(),
        });
        let parts = crate::join_store(
            &cfg,
            &till,
            &mesh,
            &links,
            timing,
            Some((http, splitmix(seed ^ (t << 20)))),
        )
        .await?;
        for p in 1..=spec.n {
            if p != t {
                mesh.add_peer(store_addr(spec.index, p));
            }
        }
        Ok(SimTill {
            id: t,
            till,
            mesh,
            raft: parts.raft,
            tasks: parts.tasks,
        })
    }

    /// Cuts the LAN between every pair of tills in different groups (tills not named in any
    /// group form one more).
    pub fn split(&self, groups: &[Vec<u64>]) {
        let group_of = |t: u64| {
            groups
                .iter()
                .position(|g| g.contains(&t))
                .unwrap_or(groups.len())
        };
        for a in 1..=self.n {
            for b in a + 1..=self.n {
                if group_of(a) != group_of(b) {
                    self.net.cut(addr(a), addr(b));
                }
            }
        }
    }

    /// Heals every LAN cut and clears every link condition.
    pub fn heal(&self) {
        for a in 1..=self.n {
            for b in a + 1..=self.n {
                self.net.heal(addr(a), addr(b));
            }
        }
        self.net.clear_conds();
    }

    /// Packets from `from` to `to` vanish (the other way they pass).
    pub fn one_way(&self, from: u64, to: u64) {
        let hole = tillmesh_mesh::LinkCond {
            blackhole: true,
            ..Default::default()
        };
        self.net.set_cond(addr(from), addr(to), hole);
    }

    /// Every LAN link, both ways, gets `cond` (the default clears it).
    pub fn lan(&self, cond: tillmesh_mesh::LinkCond) {
        for a in 1..=self.n {
            for b in 1..=self.n {
                if a != b {
                    self.net.set_cond(addr(a), addr(b), cond);
                }
            }
        }
    }

    /// The till that leads now (by its own metrics, the highest term if two think so).
    pub fn leader(&self) -> Option<u64> {
        self.tills
            .values()
            .filter_map(|t| t.leads().map(|term| (term, t.id)))
            .max()
            .map(|(_, id)| id)
    }

    /// Stops every till and releases the cloud.
    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.tills.keys().copied().collect();
        for id in ids {
            if let Some(t) = self.tills.remove(&id) {
                t.crash().await;
            }
        }
        for store in std::mem::take(&mut self.chain) {
            for (_, t) in store.tills {
                t.crash().await;
            }
        }
    }
}

/// Products of the example catalog a chain simulation runs on.
const CHAIN_CATALOG_ITEMS: usize = 60;

/// Writes the first `n` products of the example catalog (their prices, promotions and
/// opening stock) into `dir`; answers its path.
fn small_catalog(dir: &Path, n: usize) -> anyhow::Result<PathBuf> {
    use serde_json::Value;
    let text = std::fs::read_to_string(repo().join("configs/catalog.example.json"))?;
    let mut c: Value = serde_json::from_str(&text)?;
    let items: Vec<Value> = c["items"].as_array().cloned().unwrap_or_default();
    let items: Vec<Value> = items.into_iter().take(n).collect();
    let skus: BTreeSet<String> = items
        .iter()
        .filter_map(|i| i["sku"].as_str().map(str::to_string))
        .collect();
    let keep = |v: &Value| v.as_str().is_some_and(|s| skus.contains(s));
    let prices: Vec<Value> = c["prices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| keep(&p["sku"]))
        .cloned()
        .collect();
    let mut promotions = Vec::new();
    for mut p in c["promotions"].as_array().cloned().unwrap_or_default() {
        if let Some(list) = p.get_mut("skus").and_then(Value::as_array_mut) {
            list.retain(keep);
            if list.is_empty() {
                continue;
            }
        }
        promotions.push(p);
    }
    let stock: serde_json::Map<String, Value> = c["opening_stock"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| skus.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    c["items"] = Value::Array(items);
    c["prices"] = Value::Array(prices);
    c["promotions"] = Value::Array(promotions);
    c["opening_stock"] = Value::Object(stock);
    let path = dir.join("catalog.json");
    std::fs::write(&path, serde_json::to_vec(&c)?)?;
    Ok(path)
}

/// One value derived from a seed (per-till seeds, incarnations, election offsets).
pub fn splitmix(x: u64) -> u64 {
    use rand::{Rng, SeedableRng};
    rand::rngs::StdRng::seed_from_u64(x).random()
}
