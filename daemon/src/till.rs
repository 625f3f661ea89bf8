//! The till service: sessions, open transactions, and every checkout, inventory, customer
//! and report operation, on top of the pure domain (`tillmesh-pos`) and the durable store.
//!
//! Concurrency: one short `std::sync::Mutex` over the in-memory state. Operations that create
//! events assign sequence numbers and queue their write batch while holding it (so the
//! store receives events in sequence order), then release it and wait for the group commit.
//! Nothing is answered as done before its commit returned.

mod vision;

pub use vision::{EnrolView, ProposalView, RecognitionView, Vision};

use crate::clock::{Clock, local_day_range, rfc3339};
use crate::config::TerminalConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tillmesh_crdt::ReplicaId;
use tillmesh_pos::audit::AuditRecord;
use tillmesh_pos::cart::{Cart, Line, PricingContext, Totals};
use tillmesh_pos::cashier::{self, Account, LockPolicy, Permission, Role};
use tillmesh_pos::catalog::{Catalog, Item};
use tillmesh_pos::customer::{Customer, CustomerPatch};
use tillmesh_pos::event::{Event, EventBody, Sale};
use tillmesh_pos::inventory::{self, CountOutcome, Reason};
use tillmesh_pos::payment::{
    self, Method, Payment, PaymentProvider, PaymentStatus, SimulatedProvider,
};
use tillmesh_pos::pricing::{PriceBook, PriceScope, ScheduledPrice};
use tillmesh_pos::promotion::Promotion;
use tillmesh_pos::receipt::Receipt;
use tillmesh_pos::report::{self, CashierPerformance, EndOfDay, ReportedSale, StockLine};
use tillmesh_pos::state::{Base, Compaction, Replica};
use tillmesh_pos::transaction::Status;
use tillmesh_store::{CommitInfo, Store, StoreError, WriteBatch};
use tracing::{info, warn};
use utoipa::ToSchema;

/// Meta key of a manager's override of the offline limit (ms until which it holds).
const OVERRIDE_KEY: &str = "offline_override_until";

/// Meta key prefix of persisted open transactions.
const DRAFT_KEY: &str = "draft:";
/// Meta key: the highest transaction number this till has used (kept because retention
/// deletes old sales records, which the next number is otherwise derived from).
const TXN_HIGH_KEY: &str = "txn_number_high";

fn draft_key(id: &str) -> String {
    format!("{DRAFT_KEY}{id}")
}

fn draft_json(d: &Draft) -> String {
    serde_json::to_string(d).expect("a draft always serialises")
}

/// Most sales one report reads.
pub const REPORT_SALES_MAX: usize = 100_000;

/// Master data as loaded from the catalog file and kept in the store.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MasterData {
    /// Version of this master data.
    #[serde(default)]
    pub version: u64,
    /// Items.
    pub items: Vec<Item>,
    /// Scheduled chain prices.
    #[serde(default)]
    pub prices: Vec<ScheduledPrice>,
    /// Promotions.
    #[serde(default)]
    pub promotions: Vec<Promotion>,
    /// Opening stock per SKU, received once on first start.
    #[serde(default)]
    pub opening_stock: HashMap<String, i64>,
}

/// A logged-in cashier.
#[derive(Clone, Debug)]
pub struct Session {
    /// Employee id.
    pub employee_id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Expiry.
    pub expires_ms: u64,
}

/// A manager's PIN given to approve an operation on someone else's session.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct Approval {
    /// Manager employee id.
    pub employee_id: String,
    /// Manager PIN.
    pub pin: String,
}

/// An open transaction. Persisted (as JSON under the meta key `draft:<txn id>`) in the same
/// commit as every change to it, so a restart keeps carts and taken payments.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Draft {
    txn_id: String,
    cashier: String,
    created_ms: u64,
    status: Status,
    cart: Cart,
    payments: Vec<Payment>,
    customer_id: Option<String>,
}

/// A transaction as the API shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TxnView {
    /// Transaction id.
    pub txn_id: String,
    /// Status.
    pub status: Status,
    /// Cashier.
    pub cashier: String,
    /// Opened at (RFC 3339).
    pub created_at: String,
    /// Lines.
    pub lines: Vec<Line>,
    /// Totals.
    pub totals: Totals,
    /// Payments.
    pub payments: Vec<Payment>,
    /// Still to pay.
    pub remaining_due: i64,
    /// Change to give back.
    pub change_due: i64,
    /// Loyalty customer.
    pub customer_id: Option<String>,
}

/// A catalog item with its price now and its stock.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ItemView {
    /// The item.
    #[serde(flatten)]
    pub item: Item,
    /// Price in force now.
    pub price: i64,
    /// Units on hand.
    pub stock: i64,
    /// Whether stock is positive.
    pub in_stock: bool,
}

/// The answer to a login.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LoginView {
    /// Bearer token for the other calls.
    pub token: String,
    /// Employee id.
    pub employee_id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Expiry (RFC 3339).
    pub expires_at: String,
}

/// Human status of the till.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StatusView {
    /// Store id.
    pub store_id: String,
    /// Terminal id.
    pub terminal_id: u64,
    /// Events held per origin terminal.
    pub version_vector: Vec<(u64, u64)>,
    /// Events held.
    pub events: u64,
    /// Events compacted out of the sync log (in the base only).
    pub events_compacted: u64,
    /// Open transactions.
    pub drafts_open: usize,
    /// Active sessions.
    pub sessions_active: usize,
    /// Requests queued for the disk.
    pub write_queue: usize,
    /// Catalog size.
    pub catalog_items: usize,
    /// Master data version.
    pub master_version: u64,
    /// Mesh peers.
    pub peers: Vec<tillmesh_mesh::PeerView>,
    /// The store's Raft group as this till sees it (with a mesh).
    pub raft: Option<RaftView>,
    /// The cloud link, when `[cloud]` is configured.
    pub cloud: Option<CloudView>,
    /// Now (RFC 3339).
    pub now: String,
    /// The store's currency (ISO 4217) and its minor-unit digits, for displays.
    pub currency: String,
    /// Minor-unit digits of the currency (0 for VND).
    pub currency_decimals: u32,
    /// Product recognition is configured on this till.
    pub vision: bool,
}

/// The store's Raft group as one till sees it.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct RaftView {
    /// Current leader (terminal id), if known.
    pub leader: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Voting members.
    pub voters: Vec<u64>,
    /// Master-data version the store applied through Raft.
    pub master_version: u64,
}

/// The store's link to the cloud as one till sees it.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct CloudView {
    /// The last exchange with the cloud succeeded (the leader's own view on the leader,
    /// the view the leader replicated through Raft elsewhere).
    pub online: bool,
    /// Last successful exchange (RFC 3339), if any.
    pub last_ok: Option<String>,
    /// This till is the store's uploader (the Raft leader).
    pub uploading: bool,
    /// Events not yet acknowledged by the cloud (the leader's count).
    pub backlog: u64,
    /// Last failure, on the leader.
    pub last_error: Option<String>,
    /// New sales are refused: the store has been out of touch past the offline limit.
    pub sales_refused: bool,
    /// A manager's override of the offline limit holds until then (RFC 3339).
    pub override_until: Option<String>,
}

/// What the uplink and the Raft state say about the cloud link (fed to the till).
#[derive(Clone, Debug, Default)]
pub struct CloudLink {
    /// Online.
    pub online: bool,
    /// Last success, ms since epoch (0: never).
    pub last_ok_ms: u64,
    /// This till uploads.
    pub uploading: bool,
    /// Backlog (leader only).
    pub backlog: u64,
    /// Last failure (leader only).
    pub last_error: Option<String>,
}

/// A store price override HQ displaced (HQ wins): the leader records it.
#[derive(Clone, Debug, PartialEq)]
pub struct MasterConflict {
    /// SKU.
    pub sku: String,
    /// The store override that was in force.
    pub store_price: i64,
    /// HQ's price that replaces it.
    pub hq_price: i64,
}

struct Core {
    replica: Replica,
    catalog: Catalog,
    prices: PriceBook,
    promotions: Vec<Promotion>,
    master_version: u64,
    drafts: HashMap<String, Draft>,
    sessions: HashMap<String, Session>,
    provider: SimulatedProvider,
    next_txn: u64,
    /// The compaction this till's sync log is pruned to (its base's point).
    compaction: Compaction,
}

/// The till.
pub struct Till {
    cfg: Arc<TerminalConfig>,
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    core: Mutex<Core>,
    prefix: String,
    changes: tokio::sync::watch::Sender<u64>,
    mesh_peers: std::sync::OnceLock<Box<dyn Fn() -> Vec<tillmesh_mesh::PeerView> + Send + Sync>>,
    raft_view: std::sync::OnceLock<Box<dyn Fn() -> RaftView + Send + Sync>>,
    cloud_link: std::sync::OnceLock<Box<dyn Fn() -> CloudLink + Send + Sync>>,
    /// First start (ms): the offline limit counts from here until the cloud is first reached.
    seeded_ms: u64,
    /// A manager's override of the offline limit holds until then (ms; persisted).
    override_until: std::sync::atomic::AtomicU64,
    /// The store's (Raft-applied) master-data version this till last switched to; 0 while
    /// it still runs the catalog file it was seeded from.
    hq_version: std::sync::atomic::AtomicU64,
    /// Product recognition, when `[vision]` names a model.
    vision: Option<Arc<Vision>>,
}

impl std::fmt::Debug for Till {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Till")
            .field("terminal", &self.cfg.terminal.id)
            .finish()
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0_u8; N];
    getrandom::fill(&mut b).expect("the OS random source is available");
    b
}

fn audit_rec(
    now_ms: u64,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: String,
) -> AuditRecord {
    AuditRecord {
        at_ms: now_ms,
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        outcome: outcome.to_string(),
        detail,
    }
}

impl Till {
    /// Opens the store, seeds it on first start (master data, opening stock, staff), and
    /// rebuilds the in-memory state from the event log.
    pub fn open(
        cfg: TerminalConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Till> {
        let now = clock.now_ms();
        // A model that does not match its card stops the till here, with the reason.
        let vision = match &cfg.vision {
            Some(v) => Some(Arc::new(Vision::load(v)?)),
            None => None,
        };
        let store = open_store(&cfg, now)?;
        let seeded = store.read(|r| r.meta("seeded"))?.is_some();
        if !seeded {
            seed(&store, &cfg, now)?;
        }
        let me = match store.read(|r| r.meta("replica_id"))? {
            Some(v) => ReplicaId(v.parse()?),
            None => anyhow::bail!("the database has no replica id"),
        };
        if me.terminal() != cfg.terminal.id {
            anyhow::bail!(
                "the database in {} belongs to terminal {}, not {}",
                cfg.terminal.data_dir.display(),
                me.terminal(),
                cfg.terminal.id
            );
        }
        let master: MasterData = match store.read(|r| r.meta("master"))? {
            Some(m) => serde_json::from_str(&m)?,
            None => anyhow::bail!("the database has no master data"),
        };
        let seeded_ms = store
            .read(|r| r.meta("seeded"))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(now);
        let override_until = store
            .read(|r| r.meta(OVERRIDE_KEY))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let hq_version = store
            .read(|r| r.meta(HQ_VERSION_KEY))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let base = match store.read(|r| r.base())? {
            Some(bytes) => Base::decode(&bytes).map_err(|e| {
                anyhow::anyhow!("the compacted base in the database is unreadable: {e}")
            })?,
            None => Base::default(),
        };
        let compaction = base.compaction.clone();
        let events = store.read(|r| r.events_all())?;
        let replica = Replica::restore_from(me, base, &events);
        let catalog = Catalog::new(master.items.clone())?;
        let mut prices = PriceBook::new(master.prices.clone());
        for (sku, (price, eff)) in replica.state().store_prices.iter() {
            prices.insert(ScheduledPrice {
                sku: sku.clone(),
                price: *price,
                effective_from_ms: *eff,
                scope: PriceScope::Store,
            });
        }
        // Transaction ids carry the database incarnation, so a till rebuilt on a new disk never
        // reuses an id its peers still hold.
        let prefix = format!("T{}-{:04X}-", cfg.terminal.id, me.incarnation() & 0xFFFF);
        let mut drafts = HashMap::new();
        let mut provider = SimulatedProvider::new(
            cfg.payments.qr_approve_after_ms,
            cfg.payments.qr_fail_suffix,
        );
        for (_, json) in store.read(|r| r.meta_prefix(DRAFT_KEY))? {
            let d: Draft = serde_json::from_str(&json)?;
            for p in d.payments.iter().filter(|p| p.method == Method::Qr) {
                provider.restore(p);
            }
            drafts.insert(d.txn_id.clone(), d);
        }
        let draft_max = drafts
            .keys()
            .filter_map(|id| id.strip_prefix(&prefix).and_then(|n| n.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);
        // Records of old sales may have been deleted (retention): the highest number ever
        // used is kept beside them.
        let used_high = store
            .read(|r| r.meta(TXN_HIGH_KEY))?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let next_txn = store
            .read(|r| r.max_txn_number(me, &prefix))?
            .max(draft_max)
            .max(used_high)
            + 1;
        metrics.drafts.set(drafts.len() as i64);
        metrics.events.set(events.len() as i64);
        info!(
            terminal = me.0,
            events = events.len(),
            items = catalog.len(),
            "till state restored"
        );
        Ok(Till {
            core: Mutex::new(Core {
                replica,
                catalog,
                prices,
                promotions: master.promotions,
                master_version: master.version,
                drafts,
                sessions: HashMap::new(),
                provider,
                next_txn,
                compaction,
            }),
            cfg: Arc::new(cfg),
            store,
            clock,
            metrics,
            prefix,
            changes: tokio::sync::watch::channel(0).0,
            mesh_peers: std::sync::OnceLock::new(),
            raft_view: std::sync::OnceLock::new(),
            cloud_link: std::sync::OnceLock::new(),
            seeded_ms,
            override_until: override_until.into(),
            hq_version: hq_version.into(),
            vision,
        })
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock is a bug that already crashed a request; the state
        // itself is only mutated by complete operations, so continuing is sound.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Runs blocking work (SQLite reads, PIN hashing) off the async executor's core threads;
    /// in place when the store runs inline (the simulator's single deterministic thread).
    async fn off_executor<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        if self.store.is_inline() {
            return Ok(f());
        }
        tokio::task::spawn_blocking(f).await
    }

    /// Now, by this till's clock (ms since the epoch).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The store handle.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The config.
    pub fn config(&self) -> &TerminalConfig {
        &self.cfg
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics, shared.
    pub fn metrics_arc(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    fn observe(&self, info: &CommitInfo) {
        self.metrics.fsync.observe(info.commit_us as f64 / 1e6);
        self.metrics.group_size.observe(info.group_size as f64);
    }

    /// Waits for a queued batch. A failed commit after events were applied in memory would
    /// leave memory ahead of disk; the process stops so that a restart rebuilds from disk.
    async fn durable(
        &self,
        rx: tokio::sync::oneshot::Receiver<Result<CommitInfo, StoreError>>,
    ) -> Result<CommitInfo, ApiError> {
        let cause = match rx.await {
            Ok(Ok(info)) => {
                self.observe(&info);
                if info.events_new > 0 {
                    self.changes.send_modify(|v| *v += 1);
                }
                return Ok(info);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "writer stopped".to_string(),
        };
        tracing::error!(%cause, "commit of applied events failed; stopping so that a restart rebuilds state from disk");
        std::process::exit(70);
    }

    /// Waits for a queued batch that holds no events (drafts, audit records): a failure is an
    /// error for this request only.
    async fn committed(
        &self,
        rx: tokio::sync::oneshot::Receiver<Result<CommitInfo, StoreError>>,
    ) -> Result<CommitInfo, ApiError> {
        match rx.await {
            Ok(Ok(info)) => {
                self.observe(&info);
                Ok(info)
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Closed.into()),
        }
    }

    /// Appends one audit record and waits until it is durable.
    async fn audit(&self, rec: AuditRecord) -> Result<(), ApiError> {
        let info = self.store.commit(WriteBatch::audit(rec)).await?;
        self.observe(&info);
        Ok(())
    }

    /// Runs `op`; on a refusal, records it in the audit log before answering.
    async fn audited<T>(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        op: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let out = op.await;
        if let Err(e) = &out {
            self.metrics.refusals.inc();
            let rec = audit_rec(
                self.now(),
                actor,
                action,
                target,
                &format!("refused: {}", e.code),
                e.message.clone(),
            );
            if let Err(ae) = self.audit(rec).await {
                warn!(cause = %ae, "could not record a refusal in the audit log");
            }
        }
        out
    }

    // ----- sessions ------------------------------------------------------------------

    /// Checks a bearer token.
    pub fn session(&self, token: &str) -> Result<Session, ApiError> {
        let now = self.now();
        let mut core = self.core();
        match core.sessions.get(token) {
            Some(s) if s.expires_ms > now => Ok(s.clone()),
            Some(_) => {
                core.sessions.remove(token);
                self.metrics.sessions.set(core.sessions.len() as i64);
                Err(ApiError::unauthorized(
                    "your session has expired; log in again",
                ))
            }
            None => Err(ApiError::unauthorized(
                "log in first: send 'Authorization: Bearer <token>' from /api/v1/auth/login",
            )),
        }
    }

    /// Verifies employee id + PIN, persisting the lock-out state either way.
    async fn verify_pin(&self, employee_id: &str, pin: &str) -> Result<Account, ApiError> {
        let id = employee_id.to_string();
        let store = self.store.clone();
        let account = self
            .off_executor(move || store.read(|r| r.account(&id)))
            .await
            .map_err(|e| ApiError::bad_request("internal", e.to_string()))??;
        let Some(mut account) = account else {
            // Same answer as a wrong PIN, so ids cannot be probed.
            return Err(cashier::AuthError::BadCredentials { locked_now: false }.into());
        };
        let policy = LockPolicy {
            attempts_max: self.cfg.security.lock_attempts_max,
            lock_ms: self.cfg.security.lock_ms,
        };
        let now = self.now();
        let pin = pin.to_string();
        let (account, outcome) = self
            .off_executor(move || {
                let r = cashier::authenticate(&mut account, &pin, now, policy);
                (account, r)
            })
            .await
            .map_err(|e| ApiError::bad_request("internal", e.to_string()))?;
        if matches!(
            outcome,
            Err(cashier::AuthError::BadCredentials { locked_now: true })
        ) {
            warn!(employee_id, "account locked after repeated wrong PINs");
            self.audit(audit_rec(
                now,
                employee_id,
                "auth.locked",
                employee_id,
                "alert",
                "too many wrong PINs".into(),
            ))
            .await?;
        }
        if !matches!(outcome, Err(cashier::AuthError::Locked { .. })) {
            let info = self
                .store
                .commit(WriteBatch {
                    accounts: vec![account.clone()],
                    ..Default::default()
                })
                .await?;
            self.observe(&info);
        }
        outcome?;
        Ok(account)
    }

    /// Logs a cashier in; an existing session of the same cashier on this till ends.
    pub async fn login(&self, employee_id: &str, pin: &str) -> Result<LoginView, ApiError> {
        self.audited(employee_id, "auth.login", employee_id, async {
            let account = self.verify_pin(employee_id, pin).await?;
            let now = self.now();
            let token = hex::encode(random_bytes::<32>());
            let expires_ms = now + self.cfg.security.session_ttl_ms;
            {
                let mut core = self.core();
                core.sessions
                    .retain(|_, s| s.employee_id != account.employee_id && s.expires_ms > now);
                if core.sessions.len() >= self.cfg.security.sessions_max {
                    return Err(ApiError::conflict(
                        "too_many_sessions",
                        "too many cashiers are logged in on this till; log one out first",
                    ));
                }
                core.sessions.insert(
                    token.clone(),
                    Session {
                        employee_id: account.employee_id.clone(),
                        name: account.name.clone(),
                        role: account.role,
                        expires_ms,
                    },
                );
                self.metrics.sessions.set(core.sessions.len() as i64);
            }
            self.audit(audit_rec(
                now,
                employee_id,
                "auth.login",
                employee_id,
                "ok",
                String::new(),
            ))
            .await?;
            Ok(LoginView {
                token,
                employee_id: account.employee_id,
                name: account.name,
                role: account.role,
                expires_at: rfc3339(expires_ms),
            })
        })
        .await
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str, s: &Session) -> Result<(), ApiError> {
        {
            let mut core = self.core();
            core.sessions.remove(token);
            self.metrics.sessions.set(core.sessions.len() as i64);
        }
        self.audit(audit_rec(
            self.now(),
            &s.employee_id,
            "auth.logout",
            &s.employee_id,
            "ok",
            String::new(),
        ))
        .await
    }

    /// Returns who approves `perm`: the session's own role, or a manager's PIN.
    async fn approve(
        &self,
        s: &Session,
        perm: Permission,
        approval: Option<&Approval>,
    ) -> Result<String, ApiError> {
        if s.role.allows(perm) {
            return Ok(s.employee_id.clone());
        }
        let Some(a) = approval else {
            return Err(ApiError::forbidden(
                "approval_required",
                format!(
                    "{perm:?} needs a manager: add an approval with a manager's employee id and PIN"
                ),
            ));
        };
        let account = self.verify_pin(&a.employee_id, &a.pin).await?;
        if !account.role.allows(perm) {
            return Err(ApiError::forbidden(
                "approval_refused",
                format!("{} is not allowed to approve {perm:?}", account.employee_id),
            ));
        }
        Ok(account.employee_id)
    }

    // ----- catalog --------------------------------------------------------------------

    /// Looks up an item by barcode.
    pub fn lookup(&self, barcode: &str) -> Result<ItemView, ApiError> {
        let now = self.now();
        let core = self.core();
        let item = core.catalog.lookup(barcode)?.clone();
        Ok(item_view(&core, item, now))
    }

    /// Looks up an item by SKU.
    pub fn item(&self, sku: &str) -> Result<ItemView, ApiError> {
        let now = self.now();
        let core = self.core();
        let item = core.catalog.get(sku)?.clone();
        Ok(item_view(&core, item, now))
    }

    // ----- transactions ---------------------------------------------------------------

    fn view(&self, d: &Draft) -> TxnView {
        let totals = d.cart.totals();
        let due = payment::remaining_due(totals.total, &d.payments);
        TxnView {
            txn_id: d.txn_id.clone(),
            status: d.status,
            cashier: d.cashier.clone(),
            created_at: rfc3339(d.created_ms),
            lines: d.cart.lines().to_vec(),
            totals,
            payments: d.payments.clone(),
            remaining_due: due.max(0),
            change_due: d.payments.iter().map(|p| p.change).sum(),
            customer_id: d.customer_id.clone(),
        }
    }

    /// Opens a new transaction.
    pub async fn create_txn(&self, s: &Session) -> Result<TxnView, ApiError> {
        self.audited(&s.employee_id, "transaction.create", "-", async {
            let now = self.now();
            self.check_offline_limit(now)?;
            let (view, rx) = {
                let mut core = self.core();
                // At capacity, the oldest open transaction with no money taken is abandoned
                // (audited) rather than refusing to sell; only transactions holding captured
                // or pending payments are never dropped.
                let mut evicted = None;
                if core.drafts.len() >= self.cfg.checkout.drafts_max {
                    let victim = core
                        .drafts
                        .values()
                        .filter(|d| {
                            !d.payments.iter().any(|p| {
                                matches!(p.status, PaymentStatus::Captured | PaymentStatus::Pending)
                            })
                        })
                        .min_by_key(|d| (d.created_ms, d.txn_id.clone()))
                        .map(|d| d.txn_id.clone());
                    match victim {
                        Some(v) => {
                            core.drafts.remove(&v);
                            evicted = Some(v);
                        }
                        None => {
                            return Err(ApiError::conflict(
                                "too_many_open_transactions",
                                "every open transaction holds a payment: finish or void one first",
                            ));
                        }
                    }
                }
                let txn_id = format!("{}{}", self.prefix, core.next_txn);
                core.next_txn += 1;
                let d = Draft {
                    txn_id: txn_id.clone(),
                    cashier: s.employee_id.clone(),
                    created_ms: now,
                    status: Status::Draft,
                    cart: Cart::new(),
                    payments: vec![],
                    customer_id: None,
                };
                let v = self.view(&d);
                let mut audit = Vec::new();
                let mut meta_delete = Vec::new();
                if let Some(v) = &evicted {
                    warn!(txn = %v, "open transaction abandoned to make room for a new one");
                    audit.push(audit_rec(
                        now,
                        &s.employee_id,
                        "transaction.void",
                        v,
                        "ok",
                        "abandoned: too many open transactions".into(),
                    ));
                    meta_delete.push(draft_key(v));
                }
                audit.push(audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.create",
                    &txn_id,
                    "ok",
                    String::new(),
                ));
                let rx = self.store.submit(WriteBatch {
                    audit,
                    meta: vec![(draft_key(&txn_id), draft_json(&d))],
                    meta_delete,
                    ..Default::default()
                })?;
                core.drafts.insert(txn_id, d);
                self.metrics.drafts.set(core.drafts.len() as i64);
                (v, rx)
            };
            self.committed(rx).await?;
            Ok(view)
        })
        .await
    }

    /// A transaction: open ones from memory, finished ones from the store.
    pub async fn get_txn(&self, id: &str) -> Result<TxnView, ApiError> {
        if let Some(d) = self.core().drafts.get(id) {
            return Ok(self.view(d));
        }
        let (sale, status) = self.load_sale(id).await?;
        Ok(TxnView {
            txn_id: sale.txn_id.clone(),
            status,
            cashier: sale.cashier.clone(),
            created_at: rfc3339(sale.created_ms),
            remaining_due: 0,
            change_due: sale.payments.iter().map(|p| p.change).sum(),
            lines: sale.lines,
            totals: sale.totals,
            payments: sale.payments,
            customer_id: sale.customer_id,
        })
    }

    async fn load_sale(&self, id: &str) -> Result<(Sale, Status), ApiError> {
        let store = self.store.clone();
        let key = id.to_string();
        let found = self
            .off_executor(move || store.read(|r| r.sale(&key)))
            .await
            .map_err(|e| ApiError::bad_request("internal", e.to_string()))??;
        found.ok_or_else(|| {
            ApiError::not_found(
                "unknown_transaction",
                format!("no transaction {id} on this till"),
            )
        })
    }

    /// Applies `f` to an open transaction, then records the change in the audit log.
    async fn edit_draft(
        &self,
        s: &Session,
        action: &str,
        id: &str,
        f: impl FnOnce(&mut Core, u64) -> Result<String, ApiError>,
    ) -> Result<TxnView, ApiError> {
        self.audited(&s.employee_id, action, id, async {
            let now = self.now();
            // The change and its audit record are queued under the lock, so concurrent edits
            // of one transaction reach the disk in the order they were made.
            let (view, rx) = {
                let mut core = self.core();
                if !core.drafts.contains_key(id) {
                    return Err(missing_draft(id));
                }
                let detail = f(&mut core, now)?;
                let d = &core.drafts[id];
                let rec = audit_rec(now, &s.employee_id, action, id, "ok", detail);
                let rx = self.store.submit(WriteBatch {
                    audit: vec![rec],
                    meta: vec![(draft_key(id), draft_json(d))],
                    ..Default::default()
                })?;
                (self.view(d), rx)
            };
            self.committed(rx).await?;
            Ok(view)
        })
        .await
    }

    /// Adds an item by barcode.
    pub async fn add_item(
        &self,
        s: &Session,
        id: &str,
        barcode: &str,
        quantity: u32,
    ) -> Result<TxnView, ApiError> {
        let guard = self.cfg.checkout.scan_guard_ms;
        self.edit_draft(s, "transaction.add_item", id, |core, now| {
            let Core {
                drafts,
                catalog,
                prices,
                promotions,
                ..
            } = core;
            let d = drafts.get_mut(id).expect("checked by edit_draft");
            require_draft(d)?;
            let ctx = PricingContext {
                catalog,
                prices,
                promotions,
                scan_guard_ms: guard,
            };
            let line = d.cart.add_barcode(&ctx, barcode, quantity, now)?;
            Ok(format!("barcode {barcode} x{quantity} -> line {line}"))
        })
        .await
    }

    /// Changes a line's quantity.
    pub async fn set_quantity(
        &self,
        s: &Session,
        id: &str,
        line: u32,
        quantity: i64,
    ) -> Result<TxnView, ApiError> {
        self.edit_draft(s, "transaction.set_quantity", id, |core, now| {
            let Core {
                drafts, promotions, ..
            } = core;
            let d = drafts.get_mut(id).expect("checked by edit_draft");
            require_draft(d)?;
            d.cart.set_quantity(promotions, line, quantity, now)?;
            Ok(format!("line {line} -> {quantity}"))
        })
        .await
    }

    /// Removes a line.
    pub async fn remove_line(&self, s: &Session, id: &str, line: u32) -> Result<TxnView, ApiError> {
        self.edit_draft(s, "transaction.remove_line", id, |core, now| {
            let Core {
                drafts, promotions, ..
            } = core;
            let d = drafts.get_mut(id).expect("checked by edit_draft");
            require_draft(d)?;
            d.cart.remove_line(promotions, line, now)?;
            Ok(format!("line {line} removed"))
        })
        .await
    }

    /// Attaches a loyalty customer.
    pub async fn attach_customer(
        &self,
        s: &Session,
        id: &str,
        customer_id: &str,
    ) -> Result<TxnView, ApiError> {
        self.edit_draft(s, "transaction.attach_customer", id, |core, _| {
            if core.replica.state().customers.get(customer_id).is_none() {
                return Err(ApiError::not_found(
                    "unknown_customer",
                    format!("no customer {customer_id}; register them first"),
                ));
            }
            let d = core.drafts.get_mut(id).expect("checked by edit_draft");
            require_draft(d)?;
            d.customer_id = Some(customer_id.to_string());
            Ok(customer_id.to_string())
        })
        .await
    }

    /// Freezes the cart for payment: DRAFT -> PENDING_PAYMENT.
    pub async fn checkout(&self, s: &Session, id: &str) -> Result<TxnView, ApiError> {
        self.edit_draft(s, "transaction.checkout", id, |core, _| {
            let d = core.drafts.get_mut(id).expect("checked by edit_draft");
            if d.cart.is_empty() && d.status == Status::Draft {
                return Err(ApiError::conflict(
                    "empty_transaction",
                    "add at least one item before taking payment",
                ));
            }
            d.status = d.status.transition(Status::PendingPayment)?;
            Ok(format!("total {}", d.cart.totals().total))
        })
        .await
    }

    /// Back to editing: PENDING_PAYMENT -> DRAFT, only while no payment is captured.
    pub async fn reopen(&self, s: &Session, id: &str) -> Result<TxnView, ApiError> {
        self.edit_draft(s, "transaction.reopen", id, |core, _| {
            let d = core.drafts.get_mut(id).expect("checked by edit_draft");
            if d.payments
                .iter()
                .any(|p| matches!(p.status, PaymentStatus::Captured | PaymentStatus::Pending))
            {
                return Err(ApiError::conflict(
                    "payment_taken",
                    "a payment is captured or pending; cancel it or finish the sale",
                ));
            }
            d.status = d.status.transition(Status::Draft)?;
            Ok(String::new())
        })
        .await
    }

    /// Takes a payment: cash (captured at once, change computed) or QR (pending).
    pub async fn add_payment(
        &self,
        s: &Session,
        id: &str,
        req: &PaymentRequest,
    ) -> Result<TxnView, ApiError> {
        self.edit_draft(s, "transaction.payment", id, |core, now| {
            let Core {
                drafts, provider, ..
            } = core;
            let d = drafts.get_mut(id).expect("checked by edit_draft");
            if d.status != Status::PendingPayment {
                return Err(ApiError::conflict(
                    "invalid_transition",
                    format!(
                        "a {} transaction cannot take payment; check out first",
                        d.status
                    ),
                ));
            }
            if d.payments.len() >= payment::PAYMENTS_MAX {
                return Err(payment::PaymentError::TooMany.into());
            }
            refresh_payments(provider, d, now);
            let due = payment::remaining_due(d.cart.totals().total, &d.payments);
            // Payments are never removed from a transaction (a cancelled one stays), so the
            // position names a payment uniquely, across restarts too.
            let pid = format!("{}-P{}", d.txn_id, d.payments.len() + 1);
            let p = match req.method {
                Method::Cash => {
                    let tendered = req.tendered.or(req.amount).ok_or_else(|| {
                        ApiError::bad_request(
                            "missing_field",
                            "cash needs 'tendered' (the cash handed over)",
                        )
                    })?;
                    payment::cash(pid, tendered, due)?
                }
                Method::Qr => {
                    let amount = req.amount.unwrap_or(due);
                    payment::check_qr_amount(amount, due)?;
                    let qr = provider.create(&d.txn_id, amount, now);
                    Payment {
                        payment_id: qr.payment_id,
                        method: Method::Qr,
                        amount,
                        tendered: amount,
                        change: 0,
                        provider: Some(provider.name().to_string()),
                        provider_ref: None,
                        qr_payload: Some(qr.payload),
                        expires_at_ms: Some(qr.expires_at_ms),
                        status: PaymentStatus::Pending,
                    }
                }
            };
            let detail = format!("{} {} {}", p.payment_id, p.method.as_str(), p.amount);
            d.payments.push(p);
            Ok(detail)
        })
        .await
    }

    /// Polls a payment's status with its provider.
    pub fn payment_status(&self, payment_id: &str) -> Result<Payment, ApiError> {
        let now = self.now();
        let mut core = self.core();
        let Core {
            drafts, provider, ..
        } = &mut *core;
        for d in drafts.values_mut() {
            if d.payments.iter().any(|p| p.payment_id == payment_id) {
                refresh_payments(provider, d, now);
                return Ok(d
                    .payments
                    .iter()
                    .find(|p| p.payment_id == payment_id)
                    .cloned()
                    .expect("just found"));
            }
        }
        Err(payment::PaymentError::Unknown(payment_id.to_string()).into())
    }

    /// Cancels a pending QR payment.
    pub async fn cancel_payment(&self, s: &Session, payment_id: &str) -> Result<Payment, ApiError> {
        self.audited(&s.employee_id, "payment.cancel", payment_id, async {
            let now = self.now();
            let p = {
                let mut core = self.core();
                let Core {
                    drafts, provider, ..
                } = &mut *core;
                let d = drafts
                    .values_mut()
                    .find(|d| d.payments.iter().any(|p| p.payment_id == payment_id))
                    .ok_or_else(|| {
                        ApiError::from(payment::PaymentError::Unknown(payment_id.to_string()))
                    })?;
                refresh_payments(provider, d, now);
                let p = d
                    .payments
                    .iter_mut()
                    .find(|p| p.payment_id == payment_id)
                    .expect("just found");
                if p.status != PaymentStatus::Pending {
                    return Err(payment::PaymentError::NotPending(payment_id.to_string()).into());
                }
                p.status = provider.cancel(payment_id);
                let p = p.clone();
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "payment.cancel",
                    payment_id,
                    "ok",
                    String::new(),
                );
                let rx = self.store.submit(WriteBatch {
                    audit: vec![rec],
                    meta: vec![(draft_key(&d.txn_id), draft_json(d))],
                    ..Default::default()
                })?;
                (p, rx)
            };
            self.committed(p.1).await?;
            Ok(p.0)
        })
        .await
    }

    /// PENDING_PAYMENT -> PAID: records the sale, its inventory and points changes in one
    /// SQLite transaction and answers after the commit.
    pub async fn finalize(&self, s: &Session, id: &str) -> Result<TxnView, ApiError> {
        let started = std::time::Instant::now();
        let out = self
            .audited(&s.employee_id, "transaction.finalize", id, async {
                let now = self.now();
                let (rx, sale) = {
                    let mut core = self.core();
                    let Core {
                        drafts,
                        provider,
                        replica,
                        ..
                    } = &mut *core;
                    let d = drafts.get_mut(id).ok_or_else(|| missing_draft(id))?;
                    d.status.transition(Status::Paid)?;
                    refresh_payments(provider, d, now);
                    let totals = d.cart.totals();
                    let captured: Vec<Payment> = d
                        .payments
                        .iter()
                        .filter(|p| p.status == PaymentStatus::Captured)
                        .cloned()
                        .collect();
                    if d.payments
                        .iter()
                        .any(|p| p.status == PaymentStatus::Pending)
                    {
                        return Err(ApiError::conflict(
                            "payment_pending",
                            "a QR payment is still pending; wait for it or cancel it",
                        ));
                    }
                    let paid: i64 = captured.iter().map(|p| p.amount).sum();
                    if paid != totals.total {
                        return Err(ApiError::unprocessable(
                            "wrong_amount",
                            format!(
                                "payments cover {paid} of {}; take the rest first",
                                totals.total
                            ),
                        ));
                    }
                    let per = self.cfg.checkout.points_per_minor;
                    let points = if d.customer_id.is_some() && per > 0 {
                        totals.total / per
                    } else {
                        0
                    };
                    let sale = Sale {
                        txn_id: d.txn_id.clone(),
                        terminal: replica.id(),
                        cashier: d.cashier.clone(),
                        created_ms: d.created_ms,
                        paid_ms: now,
                        lines: d.cart.lines().to_vec(),
                        totals,
                        payments: captured,
                        customer_id: d.customer_id.clone(),
                        points_earned: points,
                    };
                    let events = replica.record_sale(sale.clone(), now);
                    let rec = audit_rec(
                        now,
                        &s.employee_id,
                        "transaction.finalize",
                        id,
                        "ok",
                        format!("total {}", totals.total),
                    );
                    let rx = self.store.submit(WriteBatch {
                        events,
                        audit: vec![rec],
                        meta_delete: vec![draft_key(id)],
                        ..Default::default()
                    })?;
                    drafts.remove(id);
                    self.metrics.drafts.set(drafts.len() as i64);
                    (rx, sale)
                };
                let info = self.durable(rx).await?;
                self.metrics.events.inc_by(info.events_new as i64);
                self.metrics.sales.inc();
                self.metrics
                    .sales_value
                    .inc_by(sale.totals.total.max(0) as u64);
                Ok(TxnView {
                    txn_id: sale.txn_id.clone(),
                    status: Status::Paid,
                    cashier: sale.cashier.clone(),
                    created_at: rfc3339(sale.created_ms),
                    remaining_due: 0,
                    change_due: sale.payments.iter().map(|p| p.change).sum(),
                    lines: sale.lines,
                    totals: sale.totals,
                    payments: sale.payments,
                    customer_id: sale.customer_id,
                })
            })
            .await;
        if out.is_ok() {
            self.metrics
                .sale_latency
                .observe(started.elapsed().as_secs_f64());
        }
        out
    }

    /// Cancels an open transaction or voids a paid one (manager), restocking its items.
    pub async fn void(
        &self,
        s: &Session,
        id: &str,
        reason: &str,
        approval: Option<&Approval>,
    ) -> Result<TxnView, ApiError> {
        self.audited(&s.employee_id, "transaction.void", id, async {
            let now = self.now();
            // An open transaction is simply abandoned: nothing was sold.
            let abandoned = {
                let mut core = self.core();
                match core.drafts.get(id) {
                    Some(d)
                        if d.payments.iter().any(|p| {
                            matches!(p.status, PaymentStatus::Captured | PaymentStatus::Pending)
                        }) =>
                    {
                        return Err(ApiError::conflict(
                            "payment_taken",
                            "cancel the pending payment or finish the sale, then void it",
                        ));
                    }
                    Some(d) => {
                        d.status.transition(Status::Void)?;
                        let mut d = core.drafts.remove(id).expect("present");
                        d.status = Status::Void;
                        self.metrics.drafts.set(core.drafts.len() as i64);
                        let rec = audit_rec(
                            now,
                            &s.employee_id,
                            "transaction.void",
                            id,
                            "ok",
                            format!("abandoned: {reason}"),
                        );
                        let rx = self.store.submit(WriteBatch {
                            audit: vec![rec],
                            meta_delete: vec![draft_key(id)],
                            ..Default::default()
                        })?;
                        Some((self.view(&d), rx))
                    }
                    None => None,
                }
            };
            if let Some((v, rx)) = abandoned {
                self.committed(rx).await?;
                return Ok(v);
            }
            let (sale, _) = self.load_sale(id).await?;
            let approver = self.approve(s, Permission::Void, approval).await?;
            let rx = {
                let mut core = self.core();
                let current = status_of(&core, id);
                current.transition(Status::Void)?;
                let mut events = vec![core.replica.set_status(
                    id,
                    Status::Void,
                    |status| EventBody::TransactionVoided {
                        txn_id: id.into(),
                        by: s.employee_id.clone(),
                        approved_by: approver.clone(),
                        reason: reason.into(),
                        status,
                    },
                    now,
                )];
                events.extend(restock(&mut core.replica, &sale, &s.employee_id, now));
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.void",
                    id,
                    "ok",
                    format!("approved by {approver}: {reason}"),
                );
                self.store.submit(WriteBatch {
                    events,
                    audit: vec![rec],
                    ..Default::default()
                })?
            };
            self.durable(rx).await?;
            self.get_txn(id).await
        })
        .await
    }

    /// PAID -> REFUND_REQUESTED (any cashier).
    pub async fn request_refund(
        &self,
        s: &Session,
        id: &str,
        reason: &str,
    ) -> Result<TxnView, ApiError> {
        self.audited(&s.employee_id, "transaction.refund_request", id, async {
            let now = self.now();
            let (sale, _) = self.load_sale(id).await?;
            let rx = {
                let mut core = self.core();
                let current = status_of(&core, id);
                current.transition(Status::RefundRequested)?;
                let ev = core.replica.set_status(
                    id,
                    Status::RefundRequested,
                    |status| EventBody::RefundRecorded {
                        txn_id: id.into(),
                        amount: 0,
                        by: s.employee_id.clone(),
                        approved_by: String::new(),
                        reason: reason.into(),
                        status,
                    },
                    now,
                );
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.refund_request",
                    id,
                    "ok",
                    format!("total {}: {reason}", sale.totals.total),
                );
                self.store.submit(WriteBatch {
                    events: vec![ev],
                    audit: vec![rec],
                    ..Default::default()
                })?
            };
            self.durable(rx).await?;
            self.get_txn(id).await
        })
        .await
    }

    /// REFUND_REQUESTED -> REFUNDED (manager), restocking and reversing points.
    pub async fn approve_refund(
        &self,
        s: &Session,
        id: &str,
        approval: Option<&Approval>,
    ) -> Result<TxnView, ApiError> {
        self.audited(&s.employee_id, "transaction.refund_approve", id, async {
            let now = self.now();
            let (sale, _) = self.load_sale(id).await?;
            let approver = self.approve(s, Permission::Refund, approval).await?;
            let rx = {
                let mut core = self.core();
                let current = status_of(&core, id);
                current.transition(Status::Refunded)?;
                let mut events = vec![core.replica.set_status(
                    id,
                    Status::Refunded,
                    |status| EventBody::RefundRecorded {
                        txn_id: id.into(),
                        amount: sale.totals.total,
                        by: s.employee_id.clone(),
                        approved_by: approver.clone(),
                        reason: String::new(),
                        status,
                    },
                    now,
                )];
                events.extend(restock(&mut core.replica, &sale, &s.employee_id, now));
                if let Some(c) = &sale.customer_id
                    && sale.points_earned != 0
                {
                    events.push(core.replica.change_points(c, -sale.points_earned, now));
                }
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.refund_approve",
                    id,
                    "ok",
                    format!("approved by {approver}, amount {}", sale.totals.total),
                );
                self.store.submit(WriteBatch {
                    events,
                    audit: vec![rec],
                    ..Default::default()
                })?
            };
            self.durable(rx).await?;
            self.get_txn(id).await
        })
        .await
    }

    /// A receipt; a reprint is marked and audited.
    pub async fn receipt(&self, s: &Session, id: &str, reprint: bool) -> Result<Receipt, ApiError> {
        let (sale, status) = self.load_sale(id).await?;
        if reprint {
            self.audit(audit_rec(
                self.now(),
                &s.employee_id,
                "receipt.reprint",
                id,
                "ok",
                String::new(),
            ))
            .await?;
        }
        Ok(Receipt {
            store: self.cfg.store.clone(),
            paid_at: rfc3339(sale.paid_ms),
            sale,
            status,
            reprint,
        })
    }

    // ----- inventory ------------------------------------------------------------------

    async fn stock_events(
        &self,
        s: &Session,
        action: &str,
        target: &str,
        approval: Option<&Approval>,
        make: impl FnOnce(&mut Core, u64) -> Result<(Vec<Event>, String), ApiError>,
    ) -> Result<Vec<Event>, ApiError> {
        self.audited(&s.employee_id, action, target, async {
            let approver = self.approve(s, Permission::AdjustStock, approval).await?;
            let now = self.now();
            let (rx, events) = {
                let mut core = self.core();
                let (events, detail) = make(&mut core, now)?;
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    action,
                    target,
                    "ok",
                    format!("approved by {approver}; {detail}"),
                );
                let rx = self.store.submit(WriteBatch {
                    events: events.clone(),
                    audit: vec![rec],
                    ..Default::default()
                })?;
                (rx, events)
            };
            self.durable(rx).await?;
            Ok(events)
        })
        .await
    }

    /// A manual adjustment with a reason code (manager).
    pub async fn adjust(&self, s: &Session, req: &AdjustRequest) -> Result<ItemView, ApiError> {
        inventory::check_adjustment(req.change, req.reason).map_err(ApiError::from)?;
        let sku = req.sku.clone();
        self.stock_events(
            s,
            "inventory.adjust",
            &sku,
            req.approval.as_ref(),
            |core, now| {
                core.catalog.get(&req.sku)?;
                let e = core.replica.adjust(
                    &req.sku,
                    req.change,
                    req.reason,
                    None,
                    req.note.clone(),
                    &s.employee_id,
                    now,
                );
                Ok((vec![e], format!("{} {:?}", req.change, req.reason)))
            },
        )
        .await?;
        self.item(&sku)
    }

    /// Receiving a delivery from a supplier.
    pub async fn receive(
        &self,
        s: &Session,
        req: &ReceiveRequest,
    ) -> Result<Vec<ItemView>, ApiError> {
        if req.supplier.trim().is_empty() {
            return Err(ApiError::unprocessable(
                "missing_supplier",
                "name the supplier of the delivery",
            ));
        }
        if req.lines.is_empty() || req.lines.len() > 1000 {
            return Err(ApiError::unprocessable(
                "bad_lines",
                "a delivery has 1 to 1000 lines",
            ));
        }
        for l in &req.lines {
            inventory::check_adjustment(l.quantity, Reason::Receiving)?;
        }
        self.stock_events(
            s,
            "inventory.receive",
            &req.supplier,
            req.approval.as_ref(),
            |core, now| {
                for l in &req.lines {
                    core.catalog.get(&l.sku)?;
                }
                let events = req
                    .lines
                    .iter()
                    .map(|l| {
                        core.replica.adjust(
                            &l.sku,
                            l.quantity,
                            Reason::Receiving,
                            Some(req.supplier.clone()),
                            req.reference.clone(),
                            &s.employee_id,
                            now,
                        )
                    })
                    .collect();
                Ok((
                    events,
                    format!("{} lines from {}", req.lines.len(), req.supplier),
                ))
            },
        )
        .await?;
        req.lines.iter().map(|l| self.item(&l.sku)).collect()
    }

    /// A physical count: records COUNT adjustments and returns shrinkage, flagging > 5 %.
    pub async fn count(
        &self,
        s: &Session,
        req: &CountRequest,
    ) -> Result<Vec<CountOutcome>, ApiError> {
        if req.counts.is_empty() || req.counts.len() > 10_000 {
            return Err(ApiError::unprocessable(
                "bad_lines",
                "a count has 1 to 10000 lines",
            ));
        }
        let mut outcomes = Vec::new();
        self.stock_events(
            s,
            "inventory.count",
            "-",
            req.approval.as_ref(),
            |core, now| {
                let mut events = Vec::new();
                for c in &req.counts {
                    core.catalog.get(&c.sku)?;
                    outcomes.push(inventory::count(
                        &c.sku,
                        core.replica.state().stock(&c.sku),
                        c.counted,
                    )?);
                }
                for o in &outcomes {
                    if o.shrinkage != 0 {
                        events.push(core.replica.adjust(
                            &o.sku,
                            -o.shrinkage,
                            Reason::Count,
                            None,
                            Some(format!("counted {}", o.counted)),
                            &s.employee_id,
                            now,
                        ));
                    }
                }
                let flagged = outcomes.iter().filter(|o| o.flagged).count();
                if flagged > 0 {
                    warn!(flagged, "stock count discrepancies above 5% need review");
                }
                Ok((
                    events,
                    format!("{} counted, {flagged} flagged", outcomes.len()),
                ))
            },
        )
        .await?;
        Ok(outcomes)
    }

    /// Recent stock movements of one SKU.
    pub async fn movements(
        &self,
        sku: &str,
    ) -> Result<Vec<tillmesh_store::StockMovement>, ApiError> {
        self.item(sku)?;
        let store = self.store.clone();
        let sku = sku.to_string();
        Ok(self
            .off_executor(move || store.read(|r| r.movements(&sku, 200)))
            .await
            .map_err(|e| ApiError::bad_request("internal", e.to_string()))??)
    }

    /// A store price override from a time on (manager).
    pub async fn override_price(
        &self,
        s: &Session,
        req: &PriceOverrideRequest,
    ) -> Result<ItemView, ApiError> {
        if req.price < 0 {
            return Err(ApiError::unprocessable(
                "wrong_amount",
                "a price cannot be negative",
            ));
        }
        self.audited(&s.employee_id, "price.override", &req.sku, async {
            let approver = self
                .approve(s, Permission::PriceOverride, req.approval.as_ref())
                .await?;
            let now = self.now();
            let eff = req.effective_from_ms.unwrap_or(now);
            let rx = {
                let mut core = self.core();
                core.catalog.get(&req.sku)?;
                let e = core
                    .replica
                    .override_price(&req.sku, req.price, eff, &s.employee_id, now);
                core.prices.insert(ScheduledPrice {
                    sku: req.sku.clone(),
                    price: req.price,
                    effective_from_ms: eff,
                    scope: PriceScope::Store,
                });
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "price.override",
                    &req.sku,
                    "ok",
                    format!("{} from {} approved by {approver}", req.price, rfc3339(eff)),
                );
                self.store.submit(WriteBatch {
                    events: vec![e],
                    audit: vec![rec],
                    ..Default::default()
                })?
            };
            self.durable(rx).await?;
            self.item(&req.sku)
        })
        .await
    }

    // ----- customers ------------------------------------------------------------------

    /// Creates or updates a customer (per-field last writer wins).
    pub async fn upsert_customer(
        &self,
        s: &Session,
        id: &str,
        patch: &CustomerPatch,
    ) -> Result<CustomerView, ApiError> {
        self.audited(&s.employee_id, "customer.update", id, async {
            let now = self.now();
            let rx = {
                let mut core = self.core();
                let me = core.replica.id();
                let change = core.replica.customers_mut().edit(me, id, patch)?;
                let e = core.replica.update_customer(id, change, now);
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "customer.update",
                    id,
                    "ok",
                    String::new(),
                );
                self.store.submit(WriteBatch {
                    events: vec![e],
                    audit: vec![rec],
                    ..Default::default()
                })?
            };
            self.durable(rx).await?;
            self.customer(id)
        })
        .await
    }

    /// One customer with points.
    pub fn customer(&self, id: &str) -> Result<CustomerView, ApiError> {
        let core = self.core();
        let c =
            core.replica.state().customers.get(id).ok_or_else(|| {
                ApiError::not_found("unknown_customer", format!("no customer {id}"))
            })?;
        Ok(CustomerView {
            points: core.replica.state().points_of(id),
            customer: c,
        })
    }

    // ----- reports --------------------------------------------------------------------

    async fn sales_of_day(
        &self,
        date: Option<&str>,
    ) -> Result<(u64, u64, Vec<(Sale, Status)>), ApiError> {
        let off = self.cfg.checkout.utc_offset_minutes;
        let date = date
            .map(str::to_string)
            .unwrap_or_else(|| crate::clock::local_date(self.now(), off));
        let (from, to) = local_day_range(&date, off).ok_or_else(|| {
            ApiError::bad_request("bad_date", format!("date {date:?} is not YYYY-MM-DD"))
        })?;
        let store = self.store.clone();
        let sales = self
            .off_executor(move || store.read(|r| r.sales_between(from, to, REPORT_SALES_MAX)))
            .await
            .map_err(|e| ApiError::bad_request("internal", e.to_string()))??;
        Ok((from, to, sales))
    }

    /// End-of-day report for a local date (default today).
    pub async fn end_of_day(&self, date: Option<&str>) -> Result<EndOfDay, ApiError> {
        let (from, to, sales) = self.sales_of_day(date).await?;
        let rs: Vec<ReportedSale<'_>> = sales
            .iter()
            .map(|(sale, status)| ReportedSale {
                sale,
                status: *status,
            })
            .collect();
        Ok(report::end_of_day(&rs, from, to))
    }

    /// Cashier performance for a local date (default today).
    pub async fn cashier_report(
        &self,
        date: Option<&str>,
    ) -> Result<Vec<CashierPerformance>, ApiError> {
        let (from, to, sales) = self.sales_of_day(date).await?;
        let rs: Vec<ReportedSale<'_>> = sales
            .iter()
            .map(|(sale, status)| ReportedSale {
                sale,
                status: *status,
            })
            .collect();
        Ok(report::cashier_performance(&rs, from, to))
    }

    /// Inventory snapshot (all SKUs, or only those at or below their threshold).
    pub fn inventory_report(&self, low_only: bool) -> Vec<StockLine> {
        let core = self.core();
        core.catalog
            .items()
            .map(|i| {
                report::stock_line(
                    &i.sku,
                    &i.name,
                    core.replica.state().stock(&i.sku),
                    i.low_stock_threshold,
                )
            })
            .filter(|l| !low_only || l.low)
            .collect()
    }

    // ----- mesh -------------------------------------------------------------------------

    /// Wires the mesh's peer list into status (called once when the mesh starts).
    pub fn set_mesh_peers(&self, f: Box<dyn Fn() -> Vec<tillmesh_mesh::PeerView> + Send + Sync>) {
        let _ = self.mesh_peers.set(f);
    }

    /// Sets how the cloud link is read (the daemon wires it when `[cloud]` is set).
    pub fn set_cloud_link(&self, f: Box<dyn Fn() -> CloudLink + Send + Sync>) {
        let _ = self.cloud_link.set(f);
    }

    /// The cloud link as status shows it.
    fn cloud_view_at(&self, now: u64) -> Option<CloudView> {
        let link = self.cloud_link.get()?();
        let until = self
            .override_until
            .load(std::sync::atomic::Ordering::Relaxed);
        Some(CloudView {
            online: link.online,
            last_ok: (link.last_ok_ms > 0).then(|| rfc3339(link.last_ok_ms)),
            uploading: link.uploading,
            backlog: link.backlog,
            last_error: link.last_error,
            sales_refused: self.offline_refusal(now).is_some(),
            override_until: (until > now).then(|| rfc3339(until)),
        })
    }

    /// Why new sales are refused now, if they are: the store has not reached the cloud for
    /// longer than `cloud.offline_limit_ms` (counted from the first start until the cloud is
    /// first reached), and no manager override holds.
    fn offline_refusal(&self, now: u64) -> Option<String> {
        let limit = self.cfg.cloud.as_ref()?.offline_limit_ms;
        let link = self.cloud_link.get()?();
        if limit == 0 || link.online {
            return None;
        }
        let since = link.last_ok_ms.max(self.seeded_ms);
        let until = self
            .override_until
            .load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(since) <= limit || now < until {
            return None;
        }
        Some(format!(
            "this store has not reached the cloud since {} (the limit is {} h); a manager can allow sales for {} h with POST /api/v1/offline-override and their PIN",
            rfc3339(since),
            limit / 3_600_000,
            self.cfg
                .cloud
                .as_ref()
                .map_or(0, |c| c.override_ms / 3_600_000),
        ))
    }

    fn check_offline_limit(&self, now: u64) -> Result<(), ApiError> {
        match self.offline_refusal(now) {
            Some(why) => Err(ApiError::forbidden("offline_limit", why)),
            None => Ok(()),
        }
    }

    /// A manager allows new sales past the offline limit for `cloud.override_ms`.
    pub async fn offline_override(
        &self,
        s: &Session,
        approval: Option<&Approval>,
    ) -> Result<Option<CloudView>, ApiError> {
        self.audited(&s.employee_id, "sales.offline_override", "-", async {
            let Some(cloud) = &self.cfg.cloud else {
                return Err(ApiError::conflict(
                    "no_cloud",
                    "this till has no [cloud] link, so there is no offline limit to override",
                ));
            };
            let approver = self.approve(s, Permission::SellOffline, approval).await?;
            let now = self.now();
            let until = now.saturating_add(cloud.override_ms);
            let rx = self.store.submit(WriteBatch {
                audit: vec![audit_rec(
                    now,
                    &s.employee_id,
                    "sales.offline_override",
                    "-",
                    "ok",
                    format!(
                        "sales allowed offline until {} by {approver}",
                        rfc3339(until)
                    ),
                )],
                meta: vec![(OVERRIDE_KEY.into(), until.to_string())],
                ..Default::default()
            })?;
            self.committed(rx).await?;
            self.override_until
                .store(until, std::sync::atomic::Ordering::Relaxed);
            Ok(self.cloud_view_at(now))
        })
        .await
    }

    /// The store's master-data version this till last switched to (0: none yet).
    pub fn hq_version(&self) -> u64 {
        self.hq_version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Switches to the master data the store's Raft group applied at `version` (records by
    /// key, as JSON `MasterBody`): catalog, chain prices, promotions and cashier accounts,
    /// durably and in one commit. Opening stock is kept. Answers the store overrides HQ's
    /// new prices displace (the leader records them), or nothing when this till already
    /// runs `version` or later.
    pub async fn apply_master(
        &self,
        version: u64,
        at_ms: u64,
        records: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<Vec<MasterConflict>> {
        use tillmesh_cloud_proto::MasterBody;
        if version <= self.hq_version() {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        let mut chain = Vec::new();
        let mut promotions = Vec::new();
        let mut cashiers = Vec::new();
        for (key, json) in records {
            let body: MasterBody = serde_json::from_str(json)
                .map_err(|e| anyhow::anyhow!("master record {key}: {e}"))?;
            match body {
                MasterBody::Item(i) => items.push(i),
                MasterBody::Price(p) => chain.push(p),
                MasterBody::Promotion(p) => promotions.push(p),
                MasterBody::Cashier(a) => cashiers.push(a),
            }
        }
        let catalog = Catalog::new(items.clone())?;
        let old: MasterData = match self.store.read(|r| r.meta("master"))? {
            Some(m) => serde_json::from_str(&m)?,
            None => MasterData::default(),
        };
        // Accounts: HQ's name, role and PIN; a till keeps its lock-out counters. A cashier
        // HQ deleted is locked out for good.
        let mut accounts = Vec::new();
        let held: HashMap<String, Account> = self
            .store
            .read(|r| r.accounts_all())?
            .into_iter()
            .map(|a| (a.employee_id.clone(), a))
            .collect();
        let hq_ids: std::collections::HashSet<&str> =
            cashiers.iter().map(|a| a.employee_id.as_str()).collect();
        for mut a in cashiers.iter().cloned() {
            if let Some(h) = held.get(&a.employee_id) {
                if h.pin_hash == a.pin_hash && h.name == a.name && h.role == a.role {
                    continue;
                }
                if h.pin_hash == a.pin_hash {
                    a.failed_attempts = h.failed_attempts;
                    a.locked_until_ms = h.locked_until_ms;
                }
            }
            accounts.push(a);
        }
        let was_hq: std::collections::HashSet<String> = old_cashiers(&self.store)?;
        for id in was_hq.iter().filter(|id| !hq_ids.contains(id.as_str())) {
            if let Some(h) = held.get(id) {
                let mut a = h.clone();
                a.locked_until_ms = i64::MAX as u64;
                accounts.push(a);
            }
        }
        let master = MasterData {
            version,
            items,
            prices: chain,
            promotions,
            opening_stock: old.opening_stock,
        };
        let now = self.now();
        let (conflicts, rx) = {
            let mut core = self.core();
            if version <= self.hq_version() {
                return Ok(Vec::new());
            }
            let mut prices = PriceBook::new(master.prices.clone());
            for (sku, (price, eff)) in core.replica.state().store_prices.iter() {
                prices.insert(ScheduledPrice {
                    sku: sku.clone(),
                    price: *price,
                    effective_from_ms: *eff,
                    scope: PriceScope::Store,
                });
            }
            // HQ wins over a store override when HQ changes that item's price.
            let chain_only = PriceBook::new(master.prices.clone());
            let old_chain = PriceBook::new(old.prices.clone());
            let mut conflicts = Vec::new();
            for (sku, (price, eff)) in core.replica.state().store_prices.iter() {
                let (Ok(new_item), Ok(old_item)) = (catalog.get(sku), core.catalog.get(sku)) else {
                    continue;
                };
                let hq_new = chain_only.price_at(sku, new_item.base_price, at_ms);
                let hq_old = old_chain.price_at(sku, old_item.base_price, at_ms);
                if *eff <= at_ms && hq_new != hq_old && hq_new != *price {
                    conflicts.push(MasterConflict {
                        sku: sku.clone(),
                        store_price: *price,
                        hq_price: hq_new,
                    });
                }
            }
            let mut audit = vec![audit_rec(
                now,
                "hq",
                "master.apply",
                &format!("v{version}"),
                "ok",
                format!(
                    "{} items, {} prices, {} promotions, {} cashiers (was v{})",
                    master.items.len(),
                    master.prices.len(),
                    master.promotions.len(),
                    cashiers.len(),
                    core.master_version
                ),
            )];
            for c in &conflicts {
                audit.push(audit_rec(
                    now,
                    "hq",
                    "master.conflict",
                    &c.sku,
                    "hq wins",
                    format!(
                        "store override {} replaced by HQ price {} (v{version})",
                        c.store_price, c.hq_price
                    ),
                ));
            }
            let rx = self.store.submit(WriteBatch {
                accounts,
                audit,
                meta: vec![
                    ("master".into(), serde_json::to_string(&master)?),
                    (
                        HQ_CASHIERS_KEY.into(),
                        serde_json::to_string(&hq_ids.iter().collect::<Vec<_>>())?,
                    ),
                    (HQ_VERSION_KEY.into(), version.to_string()),
                ],
                ..Default::default()
            })?;
            core.catalog = catalog;
            core.prices = prices;
            core.promotions = master.promotions;
            core.master_version = version;
            self.hq_version
                .store(version, std::sync::atomic::Ordering::Release);
            (conflicts, rx)
        };
        self.committed(rx)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        info!(version, conflicts = conflicts.len(), "master data applied");
        Ok(conflicts)
    }

    /// HQ's price replaces a store override (the leader, after a master-data conflict): a
    /// store price equal to HQ's, effective `at_ms`, replicated like any override.
    pub async fn hq_replaces_override(
        &self,
        c: &MasterConflict,
        at_ms: u64,
    ) -> Result<(), ApiError> {
        let now = self.now();
        let rx = {
            let mut core = self.core();
            let e = core
                .replica
                .override_price(&c.sku, c.hq_price, at_ms, "hq", now);
            core.prices.insert(ScheduledPrice {
                sku: c.sku.clone(),
                price: c.hq_price,
                effective_from_ms: at_ms,
                scope: PriceScope::Store,
            });
            self.store.submit(WriteBatch {
                events: vec![e],
                ..Default::default()
            })?
        };
        self.durable(rx).await?;
        Ok(())
    }

    /// Gives status a view of the store's Raft group.
    pub fn set_raft_view(&self, f: Box<dyn Fn() -> RaftView + Send + Sync>) {
        let _ = self.raft_view.set(f);
    }

    /// This till's replica id (the origin of its own events).
    pub fn replica_id(&self) -> ReplicaId {
        self.core().replica.id()
    }

    /// The version vector: events held per origin.
    pub fn version_vector(&self) -> tillmesh_crdt::VersionVector {
        self.core().replica.state().vv.clone()
    }

    /// A copy of the replicated state (for convergence checks).
    pub fn state(&self) -> tillmesh_pos::state::StoreState {
        self.core().replica.state().clone()
    }

    /// Ticks after every durable change of the event log.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Durable events of `origin` after `after`.
    pub async fn events_after(
        &self,
        origin: ReplicaId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, String> {
        let store = self.store.clone();
        self.off_executor(move || store.read(|r| r.events_after(origin, after, limit)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Applies a peer's events: checks each one, makes the new ones durable, then merges
    /// them into the in-memory state. Refuses the whole batch on any bad event.
    /// The compaction this till's sync log is pruned to: events at or below its floor are
    /// only in the base.
    pub fn compaction(&self) -> Compaction {
        self.core().compaction.clone()
    }

    /// Applies the store's compaction point (from the Raft log): forgets compacted sales
    /// from the transaction-log set and settled statuses from memory, prunes the sync log
    /// to the point's floor as far as this till holds it, and writes the new base in the
    /// same transaction. Sales records paid before `retain_from_ms` whose events are pruned
    /// are deleted (0 keeps them). Answers whether anything moved.
    pub async fn compact(&self, point: &Compaction, retain_from_ms: u64) -> anyhow::Result<bool> {
        let rx = {
            let mut core = self.core();
            // Only what this till holds contiguously is in its state, hence in the base.
            let vv = core.replica.state().vv.clone();
            let mut floor = tillmesh_crdt::VersionVector::new();
            for (o, f) in point.floor.iter() {
                floor.advance(o, f.min(vv.get(o)));
            }
            let target = Compaction {
                floor,
                txlog_dots: point.txlog_dots.clone(),
                horizon_ms: point.horizon_ms,
            };
            if !core.compaction.advanced_by(&target) {
                return Ok(false);
            }
            core.compaction.merge(&target);
            let c = core.compaction.clone();
            core.replica.compact(&c);
            self.prune_batch(&core, retain_from_ms)?
        };
        let info = rx.await??;
        self.observe(&info);
        self.log_sizes()?;
        Ok(true)
    }

    /// The batch that writes the current base and prunes to the current floor (built and
    /// submitted under the core lock, so it is ordered after every event the state holds).
    fn prune_batch(
        &self,
        core: &Core,
        retain_from_ms: u64,
    ) -> anyhow::Result<
        tokio::sync::oneshot::Receiver<Result<CommitInfo, tillmesh_store::StoreError>>,
    > {
        let c = core.compaction.clone();
        let base = core
            .replica
            .base(c.clone())
            .encode()
            .map_err(|e| anyhow::anyhow!("cannot encode the base: {e}"))?;
        Ok(self.store.submit(WriteBatch {
            meta: vec![(TXN_HIGH_KEY.into(), (core.next_txn - 1).to_string())],
            prune: Some(tillmesh_store::Prune {
                floor: c.floor.iter().map(|(o, s)| (o.0, s)).collect(),
                base,
                retain_from_ms,
            }),
            ..Default::default()
        })?)
    }

    /// Reads the sync log's size into the metrics: events still in the log, sales records
    /// in the archive, sales and statuses held in memory.
    fn log_sizes(&self) -> anyhow::Result<()> {
        let (log, archived) = self.store.read(|r| r.log_sizes())?;
        self.metrics.events.set(log as i64);
        self.metrics.sales_archived.set(archived as i64);
        self.metrics.memory_txns.set(self.memory_txns() as i64);
        Ok(())
    }

    /// Stock of one SKU as this till's state holds it.
    pub fn stock_of(&self, sku: &str) -> i64 {
        self.core().replica.state().stock(sku)
    }

    /// Transactions tracked in memory: transaction-log entries plus statuses (what
    /// compaction bounds).
    pub fn memory_txns(&self) -> usize {
        let (txlog, statuses) = self.core().replica.state().held();
        txlog + statuses
    }

    /// This till's encoded base, for a peer that lacks compacted events.
    pub async fn base_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        let store = self.store.clone();
        self.off_executor(move || store.read(|r| r.base()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Merges a peer's base (it pruned events this till lacks): the state joins it, the
    /// floor moves up to the peer's, and the merged base is written before the answer.
    pub async fn apply_base(
        &self,
        from: u64,
        bytes: Vec<u8>,
    ) -> Result<tillmesh_crdt::VersionVector, String> {
        let now = self.now();
        let base = Base::decode(&bytes).map_err(|e| format!("base from T{from}: {e}"))?;
        let rx = {
            let mut core = self.core();
            let me = core.replica.id();
            if base.state.vv.get(me) >= core.replica.next_seq() {
                return Err(format!(
                    "base from T{from} holds events of this till that it never made"
                ));
            }
            let before = core.replica.state().store_prices.clone();
            core.replica
                .merge_base(&base, now)
                .map_err(|e| format!("base from T{from}: {e}"))?;
            core.compaction.merge(&base.compaction);
            let changed: Vec<(String, (i64, u64))> = core
                .replica
                .state()
                .store_prices
                .iter()
                .filter(|(sku, v)| before.get(sku) != Some(v))
                .map(|(sku, v)| (sku.clone(), *v))
                .collect();
            for (sku, (price, eff)) in changed {
                core.prices.insert(ScheduledPrice {
                    sku,
                    price,
                    effective_from_ms: eff,
                    scope: PriceScope::Store,
                });
            }
            self.prune_batch(&core, 0).map_err(|e| e.to_string())?
        };
        let info = rx
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.observe(&info);
        let _ = self.log_sizes();
        self.changes.send_modify(|v| *v += 1);
        Ok(self.version_vector())
    }

    pub async fn apply_remote(
        &self,
        from: u64,
        events: Vec<Event>,
    ) -> Result<tillmesh_crdt::VersionVector, String> {
        let now = self.now();
        let fresh: Vec<Event> = {
            let core = self.core();
            let me = core.replica.id();
            let mut fresh = Vec::new();
            for e in events {
                e.check()?;
                if e.origin == me && e.seq >= core.replica.next_seq() {
                    return Err(format!(
                        "peer T{from} sent event {}/{} of this till that it never made",
                        e.origin, e.seq
                    ));
                }
                if e.hlc.wall_ms > now + tillmesh_pos::state::CLOCK_DRIFT_MS_MAX {
                    return Err(format!(
                        "event {}/{} is stamped {} ms in the future",
                        e.origin,
                        e.seq,
                        e.hlc.wall_ms - now
                    ));
                }
                if !core.replica.state().holds(e.origin, e.seq) {
                    fresh.push(e);
                }
            }
            fresh
        };
        if !fresh.is_empty() {
            let info = self
                .store
                .commit(WriteBatch {
                    events: fresh.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            self.observe(&info);
            self.metrics.events.inc_by(info.events_new as i64);
            self.metrics.events_received.inc_by(fresh.len() as u64);
            let mut core = self.core();
            for e in &fresh {
                // Drift was checked above; observing cannot fail for these stamps.
                let _ = core.replica.apply_remote(e, now);
                if let EventBody::PriceOverridden { prices, .. } = &e.body {
                    for (sku, (price, eff)) in prices.iter() {
                        core.prices.insert(ScheduledPrice {
                            sku: sku.clone(),
                            price: *price,
                            effective_from_ms: *eff,
                            scope: PriceScope::Store,
                        });
                    }
                }
            }
            drop(core);
            self.changes.send_modify(|v| *v += 1);
        }
        Ok(self.version_vector())
    }

    /// Status for humans and `tillmesh status`.
    pub fn status(&self) -> StatusView {
        let now = self.now();
        // The mesh's peer list reads the version vector, which takes the core lock: read it
        // before taking that lock here.
        let peers = self.mesh_peers.get().map(|f| f()).unwrap_or_default();
        let core = self.core();
        let vv = &core.replica.state().vv;
        self.metrics.write_queue.set(self.store.queue_len() as i64);
        self.metrics.peers_connected.set(
            peers
                .iter()
                .filter(|p| p.outbound == tillmesh_mesh::PeerState::Connected)
                .count() as i64,
        );
        self.metrics
            .mesh_lag
            .set(peers.iter().map(|p| p.lag_events as i64).sum());
        for p in &peers {
            let label = vec![("peer".to_string(), format!("T{}", p.terminal))];
            self.metrics
                .peer_lag
                .get_or_create(&label)
                .set(p.lag_events as i64);
            self.metrics
                .peer_silence
                .get_or_create(&label)
                .set(now.saturating_sub(p.last_contact_ms) as i64);
        }
        StatusView {
            store_id: self.cfg.store.store_id.clone(),
            terminal_id: self.cfg.terminal.id,
            version_vector: vv.iter().map(|(o, s)| (o.0, s)).collect(),
            events: vv.total(),
            events_compacted: core.compaction.floor.total(),
            drafts_open: core.drafts.len(),
            sessions_active: core
                .sessions
                .values()
                .filter(|s| s.expires_ms > now)
                .count(),
            write_queue: self.store.queue_len(),
            catalog_items: core.catalog.len(),
            master_version: core.master_version,
            peers,
            raft: self.raft_view.get().map(|f| f()),
            cloud: self.cloud_view_at(now),
            now: rfc3339(now),
            currency: self.cfg.store.currency.clone(),
            currency_decimals: self.cfg.store.currency_decimals,
            vision: self.vision.is_some(),
        }
    }
}

/// A customer with their points.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CustomerView {
    /// Document fields.
    #[serde(flatten)]
    pub customer: Customer,
    /// Points balance.
    pub points: i64,
}

/// A payment request.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// `cash` or `qr`.
    pub method: Method,
    /// QR: amount to charge (default: all that is due). Cash: same as `tendered`.
    pub amount: Option<i64>,
    /// Cash handed over.
    pub tendered: Option<i64>,
}

/// A manual stock adjustment.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// SKU.
    pub sku: String,
    /// Signed change in units.
    pub change: i64,
    /// Reason code.
    pub reason: Reason,
    /// Free text.
    pub note: Option<String>,
    /// Manager approval when the session is a cashier's.
    pub approval: Option<Approval>,
}

/// One line of a delivery.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveLine {
    /// SKU.
    pub sku: String,
    /// Units received.
    pub quantity: i64,
}

/// A delivery.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    /// Supplier.
    pub supplier: String,
    /// Delivery note number.
    pub reference: Option<String>,
    /// Lines.
    pub lines: Vec<ReceiveLine>,
    /// Manager approval when the session is a cashier's.
    pub approval: Option<Approval>,
}

/// One counted SKU.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountLine {
    /// SKU.
    pub sku: String,
    /// Units counted on the shelf.
    pub counted: i64,
}

/// A physical count.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// Counted lines.
    pub counts: Vec<CountLine>,
    /// Manager approval when the session is a cashier's.
    pub approval: Option<Approval>,
}

/// A store price override.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceOverrideRequest {
    /// SKU.
    pub sku: String,
    /// New price in minor units.
    pub price: i64,
    /// From when (ms since epoch; default now).
    pub effective_from_ms: Option<u64>,
    /// Manager approval when the session is a cashier's.
    pub approval: Option<Approval>,
}

fn item_view(core: &Core, item: Item, now: u64) -> ItemView {
    let stock = core.replica.state().stock(&item.sku);
    ItemView {
        price: core.prices.price_at(&item.sku, item.base_price, now),
        stock,
        in_stock: stock > 0,
        item,
    }
}

/// The replicated status of a finished transaction (a sale's status is PAID until a later
/// status event says otherwise).
fn status_of(core: &Core, id: &str) -> Status {
    core.replica
        .state()
        .txn_status
        .get(&id.to_string())
        .copied()
        .unwrap_or(Status::Paid)
}

fn missing_draft(id: &str) -> ApiError {
    ApiError::not_found(
        "unknown_transaction",
        format!("no open transaction {id} on this till"),
    )
}

fn require_draft(d: &Draft) -> Result<(), ApiError> {
    if d.status == Status::Draft {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "invalid_transition",
            format!(
                "a {} transaction cannot be edited; reopen it first",
                d.status
            ),
        ))
    }
}

fn refresh_payments(provider: &mut SimulatedProvider, d: &mut Draft, now: u64) {
    for p in d
        .payments
        .iter_mut()
        .filter(|p| p.status == PaymentStatus::Pending && p.method == Method::Qr)
    {
        let (status, reference) = provider.status(&p.payment_id, now);
        p.status = status;
        p.provider_ref = reference;
    }
}

fn restock(replica: &mut Replica, sale: &Sale, by: &str, now: u64) -> Vec<Event> {
    sale.lines
        .iter()
        .map(|l| {
            replica.adjust(
                &l.sku,
                i64::from(l.quantity),
                Reason::Sale,
                None,
                Some(format!("reversal of {}", sale.txn_id)),
                by,
                now,
            )
        })
        .collect()
}

/// Opens the till's database. A file that cannot be opened as a database or fails SQLite's
/// quick check is moved aside when the till has a mesh to rebuild from: it then starts fresh
/// under a new incarnation and its peers send everything back, its own old events included.
/// Without a mesh there is nothing to rebuild from, and the till refuses to start.
fn open_store(cfg: &TerminalConfig, now: u64) -> anyhow::Result<Store> {
    if cfg.terminal.simulated.is_some() {
        let path = cfg.terminal.data_dir.join("till.db");
        return Ok(Store::open_with(&path, tillmesh_store::Mode::Inline)?);
    }
    let path = cfg.db_path();
    if path.exists() {
        let verdict = Store::open(&path).and_then(|s| s.read(|r| r.quick_check()));
        let why = match verdict {
            Ok(v) if v == "ok" => return Ok(Store::open(&path)?),
            Ok(v) => v,
            Err(e) => e.to_string(),
        };
        if cfg.mesh.is_none() {
            anyhow::bail!(
                "database {} is damaged ({why}) and no mesh is configured to rebuild it from; restore it from a backup",
                path.display()
            );
        }
        tracing::error!(path = %path.display(), cause = %why, "database is damaged; moving it aside and rebuilding from peers");
        for suffix in ["", "-wal", "-shm"] {
            let from = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if from.exists() {
                std::fs::rename(&from, format!("{}.damaged-{now}{suffix}", path.display()))?;
            }
        }
    }
    Ok(Store::open(&path)?)
}

/// First start: master data, opening stock, staff accounts.
/// Meta key of the store master-data version this till last switched to.
const HQ_VERSION_KEY: &str = "master_hq_version";

/// Meta key of the cashier ids HQ's master data last held (those HQ deletes are locked out).
const HQ_CASHIERS_KEY: &str = "hq_cashiers";

fn old_cashiers(store: &Store) -> anyhow::Result<std::collections::HashSet<String>> {
    Ok(match store.read(|r| r.meta(HQ_CASHIERS_KEY))? {
        Some(j) => serde_json::from_str(&j)?,
        None => Default::default(),
    })
}

fn seed(store: &Store, cfg: &TerminalConfig, now: u64) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&cfg.catalog.path)
        .map_err(|e| anyhow::anyhow!("cannot read catalog {}: {e}", cfg.catalog.path.display()))?;
    let master: MasterData = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("catalog {} is invalid: {e}", cfg.catalog.path.display()))?;
    Catalog::new(master.items.clone())?;
    // Opening stock is recorded under the reserved origin 0 at time 0, so every till of a
    // store seeding from the same file produces identical events, which dedupe on merge.
    let mut replica = Replica::new(ReplicaId(0));
    let mut events = Vec::new();
    let mut opening: Vec<_> = master
        .opening_stock
        .iter()
        .filter(|(_, q)| **q > 0)
        .collect();
    opening.sort();
    for (sku, qty) in opening {
        events.push(replica.adjust(
            sku,
            *qty,
            Reason::Receiving,
            Some("opening stock".into()),
            None,
            "system",
            0,
        ));
    }
    let terminal = u32::try_from(cfg.terminal.id)?;
    let incarnation = loop {
        let i = match &cfg.terminal.simulated {
            Some(sim) => sim.incarnation,
            None => u32::from_le_bytes(random_bytes::<4>()),
        };
        if i != 0 {
            break i;
        }
    };
    let mut accounts = Vec::new();
    for s in &cfg.staff {
        accounts.push(Account {
            employee_id: s.employee_id.clone(),
            name: s.name.clone(),
            role: s.role,
            pin_hash: cashier::hash_pin_with(
                &s.pin,
                &random_bytes::<16>(),
                if cfg.terminal.simulated.is_some() {
                    cashier::PinCost::Simulation
                } else {
                    cashier::PinCost::Standard
                },
            )?,
            failed_attempts: 0,
            locked_until_ms: 0,
        });
    }
    let batch = WriteBatch {
        events,
        accounts,
        audit: vec![audit_rec(
            now,
            "system",
            "till.seed",
            &cfg.store.store_id,
            "ok",
            format!("{} items, master v{}", master.items.len(), master.version),
        )],
        meta: vec![
            ("master".into(), serde_json::to_string(&master)?),
            ("seeded".into(), now.to_string()),
            (
                "replica_id".into(),
                ReplicaId::for_terminal(terminal, incarnation).0.to_string(),
            ),
        ],
        ..Default::default()
    };
    store.commit_blocking(batch)?;
    Ok(())
}
