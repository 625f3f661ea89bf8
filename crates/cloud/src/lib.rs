//! The cloud sync endpoint (`tillmesh cloud`): ingests batches of store events exactly once,
//! serves master data down as versioned changes, and answers HQ's reports.
//!
//! - [`ledger`]: the storage trait, implemented by [`sqlite`] (default) and [`postgres`].
//! - [`api`]: the HTTP API (axum), its OpenAPI document and the HQ dashboard page.
//! - [`auth`]: store and admin credentials (signed tokens with expiry and key rotation).
//! - [`project`]: how ledger events become report facts.
//! - [`master`]: validation of HQ's master-data edits and the catalog import.
//!
//! Ingestion is stateless: everything it needs is in the request and the database, so several
//! instances can share one PostgreSQL database behind a load balancer.

pub mod api;
pub mod auth;
pub mod config;
pub mod ledger;
pub mod loyalty;
pub mod master;
pub mod metrics;
pub mod postgres;
pub mod project;
pub mod reconcile;
mod sql;
pub mod sqlite;
pub mod telemetry;

use crate::auth::{Keyring, Role};
use crate::config::{CloudConfig, DatabaseConfig};
use crate::ledger::{Ledger, LedgerError, StoreInfo};
use std::net::SocketAddr;
use std::sync::Arc;
use tillmesh_pos::event::EventBody;
use tokio::sync::Notify;

/// Most events folded into the reports per projection step.
pub const PROJECTION_STEP: usize = 5_000;
/// Most projection steps a report request runs to catch up before it answers.
pub const CATCH_UP_STEPS_MAX: usize = 1_000;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks a store id: 1 to 32 characters of `A-Z a-z 0-9 - _`.
pub fn check_store_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "store id {id:?} must be 1 to 32 letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

/// Decodes a stored event body of kind `kind` (a kind this cloud does not know is kept as
/// `EventBody::Unknown`).
pub fn decode_body(kind: &str, bytes: &[u8]) -> Result<EventBody, LedgerError> {
    tillmesh_pos::codec::decode(kind, bytes)
        .map_err(|e| LedgerError::Db(format!("a stored event does not decode: {e}")))
}

/// Opens the configured database.
pub async fn open_ledger(db: &DatabaseConfig) -> anyhow::Result<Arc<dyn Ledger>> {
    Ok(match db {
        DatabaseConfig::Sqlite { path } => Arc::new(sqlite::SqliteLedger::open(path)?),
        DatabaseConfig::Postgres { url, pool_size } => {
            Arc::new(postgres::PgLedger::connect(url, *pool_size).await?)
        }
    })
}

/// HQ's Ed25519 master-data key.
pub struct MasterKey {
    pair: ring::signature::Ed25519KeyPair,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    /// The key from its 32-byte seed, as 64 hex digits.
    pub fn from_seed_hex(seed: &str) -> anyhow::Result<Self> {
        let seed = hex::decode(seed.trim())
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or_else(|| anyhow::anyhow!("auth.master_key_seed must be 64 hex digits"))?;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| anyhow::anyhow!("auth.master_key_seed is not an Ed25519 seed"))?;
        Ok(Self { pair })
    }

    /// The public key, hex (what tills are configured with).
    pub fn public_hex(&self) -> String {
        use ring::signature::KeyPair;
        hex::encode(self.pair.public_key().as_ref())
    }

    /// The key's id: the first 8 bytes of the public key, hex.
    pub fn id(&self) -> String {
        self.public_hex().chars().take(16).collect()
    }
}

/// How long a stopping cloud waits for requests in flight.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Most stores whose refused credentials one cloud instance tracks.
pub const REFUSED_STORES_MAX: usize = 100_000;

/// The cloud service: the ledger, the keys and the metrics.
#[derive(Debug)]
pub struct Cloud {
    /// Storage.
    pub ledger: Arc<dyn Ledger>,
    /// Credential keys.
    pub keys: Keyring,
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// Lifetime of store credentials, ms.
    pub store_token_ms: u64,
    /// Dashboard sign-ins: user -> argon2id hash.
    pub admins: std::collections::BTreeMap<String, String>,
    /// Admin credentials issued before this (ms) are refused.
    pub admin_valid_after_ms: u64,
    /// Store credentials refused (expired or revoked, but signed by HQ, so the store is
    /// known), per store: how many and when last, since this instance started. In memory:
    /// an operations signal, bounded by [`REFUSED_STORES_MAX`].
    refused: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
    /// Each store's newest report of its tills, and when it arrived (ms). In memory (the
    /// leader reports every few seconds), bounded by [`REFUSED_STORES_MAX`] stores.
    tills: std::sync::Mutex<
        std::collections::BTreeMap<String, (u64, tillmesh_cloud_proto::TillsReport)>,
    >,
    /// Stores HQ asked to sync now, and when (ms): the leader hears it in the answer to its
    /// next till report (every few seconds). In memory, like the reports (an instance that
    /// restarts forgets the request), bounded by [`REFUSED_STORES_MAX`] stores.
    sync_asked: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Support bundles HQ asked stores for, and the newest received (in memory: at most
    /// [`BUNDLES_KEPT`] stores, the oldest request dropped first).
    bundles: std::sync::Mutex<std::collections::BTreeMap<String, StoreBundle>>,
    /// HQ's master-data signing key, if configured.
    master_key: Option<MasterKey>,
    project_now: Notify,
    /// One catch-up at a time in this instance (the projector task and report requests).
    projecting: tokio::sync::Mutex<()>,
}

/// Stores whose support bundle HQ keeps at once.
pub const BUNDLES_KEPT: usize = 8;

/// A support bundle HQ asked a store for.
#[derive(Clone, Debug)]
pub struct StoreBundle {
    /// When asked (ms).
    pub asked_ms: u64,
    /// The request went out with a till report answer.
    pub handed_on: bool,
    /// When it arrived (ms), from which till, and the archive.
    pub received: Option<(u64, u64, Vec<u8>)>,
}

impl Cloud {
    /// Builds the service on an open ledger.
    pub fn new(cfg: &CloudConfig, ledger: Arc<dyn Ledger>) -> anyhow::Result<Self> {
        Ok(Self {
            ledger,
            keys: Keyring::new(&cfg.auth)?,
            metrics: metrics::Metrics::default(),
            store_token_ms: u64::from(cfg.auth.store_token_days) * 86_400_000,
            admin_valid_after_ms: cfg.auth.admin_valid_after_ms,
            admins: cfg
                .auth
                .admins
                .iter()
                .map(|a| (a.user.clone(), a.password_hash.clone()))
                .collect(),
            refused: std::sync::Mutex::default(),
            tills: std::sync::Mutex::default(),
            sync_asked: std::sync::Mutex::default(),
            bundles: std::sync::Mutex::default(),
            master_key: cfg
                .auth
                .master_key_seed
                .as_deref()
                .map(MasterKey::from_seed_hex)
                .transpose()?,
            project_now: Notify::new(),
            projecting: tokio::sync::Mutex::new(()),
        })
    }

    /// HQ's master-data public key (hex), if the cloud signs master data.
    pub fn master_public_key(&self) -> Option<String> {
        self.master_key.as_ref().map(MasterKey::public_hex)
    }

    /// Signs a master-data page for `store` (nothing when no key is configured).
    pub fn sign_master(
        &self,
        store: &str,
        since: u64,
        page: &tillmesh_cloud_proto::MasterChanges,
    ) -> Result<Option<tillmesh_cloud_proto::MasterSignature>, String> {
        let Some(k) = &self.master_key else {
            return Ok(None);
        };
        let pairs = tillmesh_cloud_proto::master_pairs(&page.changes)?;
        let msg = tillmesh_cloud_proto::master_message(store, since, page.version, &pairs);
        Ok(Some(tillmesh_cloud_proto::MasterSignature {
            store: store.to_owned(),
            since,
            version: page.version,
            key_id: k.id(),
            sig: hex::encode(k.pair.sign(&msg).as_ref()),
        }))
    }

    /// Signs an enrolment grant (`(key id, signature hex)`; nothing when no key is
    /// configured).
    pub fn sign_enrolment(
        &self,
        store: &str,
        terminal: u64,
        cert: &str,
        ca: &str,
    ) -> Option<(String, String)> {
        let k = self.master_key.as_ref()?;
        let msg = tillmesh_cloud_proto::enrolment_message(store, terminal, cert, ca);
        Some((k.id(), hex::encode(k.pair.sign(&msg).as_ref())))
    }

    /// Notes that `store`'s credential was refused (expired or revoked).
    pub fn note_refused(&self, store: &str) {
        let mut m = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= REFUSED_STORES_MAX && !m.contains_key(store) {
            return;
        }
        let e = m.entry(store.to_owned()).or_default();
        e.0 = e.0.saturating_add(1);
        e.1 = now_ms();
    }

    /// Keeps a store leader's report of its tills, unless one from a later term is held
    /// (then `Err` with that term: the sender was deposed).
    pub fn note_tills(
        &self,
        store: &str,
        report: tillmesh_cloud_proto::TillsReport,
    ) -> Result<(), u64> {
        let mut m = self.tills.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(store) {
            Some((_, held)) if held.term > report.term => return Err(held.term),
            None if m.len() >= REFUSED_STORES_MAX => return Ok(()),
            _ => {}
        }
        m.insert(store.to_owned(), (now_ms(), report));
        Ok(())
    }

    /// HQ asks `store`'s leader for a support bundle; it comes with the leader's next till
    /// report. A newer request replaces the store's bundle held so far.
    pub fn ask_bundle(&self, store: &str) {
        let mut m = self.bundles.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= BUNDLES_KEPT && !m.contains_key(store) {
            let oldest = m
                .iter()
                .min_by_key(|(_, b)| b.asked_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                m.remove(&k);
            }
        }
        m.insert(
            store.to_owned(),
            StoreBundle {
                asked_ms: now_ms(),
                handed_on: false,
                received: None,
            },
        );
    }

    /// Whether a bundle asked of `store` is still to be asked of its leader (once).
    pub fn take_bundle_request(&self, store: &str) -> bool {
        let mut m = self.bundles.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(store) {
            Some(b) if !b.handed_on && b.received.is_none() => {
                b.handed_on = true;
                true
            }
            _ => false,
        }
    }

    /// Keeps a bundle `terminal` of `store` uploaded; false when none was asked.
    pub fn keep_bundle(&self, store: &str, terminal: u64, bytes: Vec<u8>) -> bool {
        let mut m = self.bundles.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(store) {
            Some(b) => {
                b.received = Some((now_ms(), terminal, bytes));
                true
            }
            None => false,
        }
    }

    /// `store`'s bundle: when asked, and what arrived (when, from which till, the bytes).
    pub fn bundle(&self, store: &str) -> Option<StoreBundle> {
        let m = self.bundles.lock().unwrap_or_else(|e| e.into_inner());
        m.get(store).cloned()
    }

    /// HQ asks `store` to sync now ("push now"): its leader pulls master data and uploads at
    /// once after its next till report. False when too many stores are waiting already.
    pub fn ask_sync(&self, store: &str) -> bool {
        let mut m = self.sync_asked.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= REFUSED_STORES_MAX && !m.contains_key(store) {
            return false;
        }
        m.insert(store.to_owned(), now_ms());
        true
    }

    /// Whether HQ asked `store` to sync since the last call (the request is then handed on).
    pub fn take_sync(&self, store: &str) -> bool {
        let mut m = self.sync_asked.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(store).is_some()
    }

    /// A store's newest report of its tills and when it arrived (ms).
    pub fn till_states(&self, store: &str) -> Option<(u64, tillmesh_cloud_proto::TillsReport)> {
        let m = self.tills.lock().unwrap_or_else(|e| e.into_inner());
        m.get(store).cloned()
    }

    /// How many times `store`'s credential was refused, and when last (ms; 0 if never).
    pub fn refused(&self, store: &str) -> (u64, u64) {
        let m = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        m.get(store).copied().unwrap_or_default()
    }

    /// Issues a credential for a store (which must be registered) or for HQ admin.
    pub async fn issue(
        &self,
        store: Option<&str>,
        ttl_ms: Option<u64>,
    ) -> anyhow::Result<(String, auth::Claims)> {
        let now = now_ms();
        Ok(match store {
            Some(id) => {
                if self.ledger.store(id).await?.is_none() {
                    anyhow::bail!("store {id} is not registered; add it first");
                }
                self.keys
                    .issue(id, Role::Store, now, ttl_ms.unwrap_or(self.store_token_ms))
            }
            None => self
                .keys
                .issue("hq", Role::Admin, now, ttl_ms.unwrap_or(86_400_000)),
        })
    }

    /// Wakes the projector (new events were stored).
    pub fn kick(&self) {
        self.project_now.notify_one();
    }

    /// Folds pending events into the reports until none are left (bounded).
    pub async fn catch_up(&self) -> Result<(), LedgerError> {
        let _one = self.projecting.lock().await;
        for _ in 0..CATCH_UP_STEPS_MAX {
            if self.ledger.project(PROJECTION_STEP).await? == 0 {
                break;
            }
        }
        // The customers the projection touched: HQ's record of each, rebuilt.
        for _ in 0..CATCH_UP_STEPS_MAX {
            if crate::loyalty::rebuild(&*self.ledger).await? < crate::loyalty::REBUILD_MAX {
                break;
            }
        }
        Ok(())
    }

    /// Registers the configured stores and imports the master seed on first start.
    pub async fn seed(&self, cfg: &CloudConfig) -> anyhow::Result<()> {
        for s in &cfg.stores {
            if self.ledger.store(&s.id).await?.is_none() {
                self.ledger
                    .put_store(StoreInfo {
                        store_id: s.id.clone(),
                        name: s.name.clone(),
                        utc_offset_minutes: s.utc_offset_minutes,
                        enabled: true,
                        tokens_valid_after_ms: 0,
                    })
                    .await?;
            }
        }
        if let Some(path) = &cfg.master_seed
            && self.ledger.master_version().await? == 0
        {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let edits = master::import(&text).map_err(anyhow::Error::msg)?;
            let v = self.ledger.master_apply(edits).await?;
            tracing::info!(version = v, file = %path.display(), "imported master data");
        }
        Ok(())
    }
}

/// A running cloud.
#[derive(Debug)]
pub struct CloudHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The service.
    pub cloud: Arc<Cloud>,
    server: axum_server::Handle<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl CloudHandle {
    /// Stops serving (in-flight requests finish) and waits.
    pub async fn stop(self) {
        // New connections are refused at once; requests in flight (an upload half received)
        // are answered, for at most the grace period, before this returns and the process
        // may exit. Then the background tasks (the projector) stop.
        self.server.graceful_shutdown(Some(SHUTDOWN_GRACE));
        let mut tasks = self.tasks.into_iter();
        if let Some(server) = tasks.next() {
            let _ = server.await;
        }
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// How long the projector, woken by an upload, lets more uploads gather before it folds them
/// (bounded by the interval): steps of many events cost less per event than one per upload.
const PROJECTION_GATHER_MS: u64 = 100;

/// The background projector: folds new events into the reports when woken by an upload (after
/// gathering for at most `PROJECTION_GATHER_MS`), and at least every `every_ms`.
fn projector(cloud: Arc<Cloud>, every_ms: u64) -> tokio::task::JoinHandle<()> {
    let every = std::time::Duration::from_millis(every_ms.max(10));
    let gather = std::time::Duration::from_millis(PROJECTION_GATHER_MS.min(every_ms));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cloud.project_now.notified() => tokio::time::sleep(gather).await,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = cloud.catch_up().await {
                tracing::warn!(error = %e, "projection failed; retrying");
            }
        }
    })
}

/// Refreshes the fleet-derived gauges (per-store lag, backlog, last upload; events not yet
/// projected) at once and every `metrics::FLEET_REFRESH_MS`, so that a scrape queries nothing.
fn fleet_gauges(cloud: Arc<Cloud>) -> tokio::task::JoinHandle<()> {
    let every = std::time::Duration::from_millis(metrics::FLEET_REFRESH_MS);
    tokio::spawn(async move {
        loop {
            match cloud.ledger.fleet().await {
                Ok(rows) => cloud.metrics.fleet(&rows),
                Err(e) => tracing::warn!(error = %e, "fleet gauges not refreshed"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// Opens the database, seeds it, and serves the API; returns once listening.
pub async fn start(cfg: CloudConfig) -> anyhow::Result<CloudHandle> {
    cfg.check()?;
    // One crypto provider in the process (ring); a second install is a harmless no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ledger = open_ledger(&cfg.database).await?;
    let cloud = Arc::new(Cloud::new(&cfg, ledger)?);
    match cloud.master_public_key() {
        Some(k) => tracing::info!(
            hq_master_key = %k,
            "master data is signed: tills trust it with security.hq_master_key"
        ),
        None => tracing::warn!(
            "master data is not signed (no auth.master_key_seed): tills cannot tell HQ's master data from a leader's"
        ),
    }
    cloud.seed(&cfg).await?;
    let app = api::router(cloud.clone());
    let handle = axum_server::Handle::new();
    let listener = std::net::TcpListener::bind(cfg.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let mut tasks = Vec::new();
    let server = {
        let handle = handle.clone();
        let svc = app.into_make_service();
        match &cfg.tls {
            Some(tls) => {
                let rustls =
                    axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                        .await
                        .map_err(|e| anyhow::anyhow!("TLS certificate or key unusable: {e}"))?;
                let srv = axum_server::from_tcp_rustls(listener, rustls)?.handle(handle);
                tokio::spawn(async move {
                    if let Err(e) = srv.serve(svc).await {
                        tracing::error!(error = %e, "server stopped");
                    }
                })
            }
            None => {
                let srv = axum_server::from_tcp(listener)?.handle(handle);
                tokio::spawn(async move {
                    if let Err(e) = srv.serve(svc).await {
                        tracing::error!(error = %e, "server stopped");
                    }
                })
            }
        }
    };
    tasks.push(server);
    if cfg.projection_interval_ms > 0 {
        tasks.push(projector(cloud.clone(), cfg.projection_interval_ms));
    }
    tasks.push(fleet_gauges(cloud.clone()));
    tracing::info!(%addr, backend = cloud.ledger.backend(), tls = cfg.tls.is_some(), "cloud listening");
    Ok(CloudHandle {
        addr,
        cloud,
        server: handle,
        tasks,
    })
}
