//! The till service: sessions, open transactions, and every checkout, inventory, customer
//! and report operation, on top of the pure domain (`tillmesh-pos`) and the durable store.
//!
//! Concurrency: one short `std::sync::Mutex` over the in-memory state. Operations that create
//! events assign sequence numbers and queue their write batch while holding it (so the
//! store receives events in sequence order), then release it and wait for the group commit.
//! Nothing is answered as done before its commit returned.
//!
//! One module per responsibility, each an `impl Till` block over this module's state: `open`
//! (open, seed, restore), `session` (login, PINs, approvals), `sale` (baskets, payments,
//! finalize), `returns` (void, refund, receipts), `inventory`, `customers`, `reports`,
//! `offline` (the offline limit and its override), `master` (HQ's master data), `replication`
//! (what the mesh asks of the till), `compaction`, `status`, `vision`. This file holds the
//! types, the in-memory core, and the commit and audit plumbing they share.

mod admit;
mod cash;
mod compaction;
mod credit;
mod customers;
mod error;
mod giftcard;
mod hold;
mod inventory;
mod late;
mod master;
mod office;
mod offline;
mod open;
mod pay;
mod rebalance;
mod replication;
mod reports;
mod returns;
mod sale;
mod seals;
mod security;
pub use security::{REVOCATIONS_KEY, RevocationsView};
pub use status::{PeerSkew, RaftView, StatusView, SyncView};
mod session;
mod status;
mod template;
mod throttle;
mod traces;
mod vision;

pub use admit::{
    AdmitRequest, AdmittedTill, REDEEMED_PREFIX, Redemption, WaitingTill, redemption_message,
};
pub use credit::{AccountView, CouponRequest, CreditRequest};
pub use error::{ErrorKind, TillError};
pub use giftcard::{ActivateRequest, GiftCardView, RightsHeld, TopUpRequest};
pub use late::LateCapture;
pub use office::{CashierView, SaleSummary};
use open::old_cashiers;
pub use pay::spawn_poller;
pub use reports::{ClosedShift, DayReport, DrawerView};
pub use tillmesh_uplink::CloudLink;
pub use vision::{EnrolView, ProposalView, RecognitionView, Vision};

use crate::clock::{Clock, local_day_range, rfc3339};
use crate::config::TerminalConfig;
use crate::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tillmesh_crdt::ReplicaId;
use tillmesh_pos::audit::AuditRecord;
use tillmesh_pos::cart::{Cart, Line, PricingContext, Totals};
use tillmesh_pos::cashier::{self, Account, LockPolicy, Permission, Role};
use tillmesh_pos::catalog::{Catalog, Item};
use tillmesh_pos::customer::{Customer, CustomerPatch};
use tillmesh_pos::event::{Event, EventBody, Sale};
use tillmesh_pos::inventory::{self as pos_inventory, CountOutcome, Reason};
use tillmesh_pos::payment::{self, Method, Payment, PaymentStatus};
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
/// Meta key: the employee ids seeded from the config's clear-text PINs (JSON list).
const DEMO_ACCOUNTS_KEY: &str = "demo_accounts";

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
    /// The version of HQ's second stream (categories and customers) applied.
    #[serde(default)]
    pub ext_version: u64,
    /// HQ's product categories.
    #[serde(default)]
    pub categories: Vec<tillmesh_cloud_proto::Category>,
    /// HQ's loyalty customers, with each store's points.
    #[serde(default)]
    pub customers: Vec<tillmesh_cloud_proto::HqCustomer>,
}

/// What HQ's second master-data stream brought: categories and the chain's customers.
#[derive(Debug, Default)]
pub struct HqRecords {
    /// The stream's version.
    pub ext_version: u64,
    /// Categories, in id order.
    pub categories: Vec<tillmesh_cloud_proto::Category>,
    /// Customers by id.
    pub customers: HashMap<String, tillmesh_cloud_proto::HqCustomer>,
}

impl HqRecords {
    fn of(m: &MasterData) -> Self {
        HqRecords {
            ext_version: m.ext_version,
            categories: m.categories.clone(),
            customers: m
                .customers
                .iter()
                .map(|c| (c.customer.id.clone(), c.clone()))
                .collect(),
        }
    }
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
    /// On hold: parked by a cashier, listed for any cashier of the till to recall.
    #[serde(default)]
    held: Option<Hold>,
    /// Cash and QR money handed back to the customer when captured payments were undone.
    #[serde(default)]
    returned: i64,
}

/// Who put an open sale on hold, and when.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Hold {
    by: String,
    at_ms: u64,
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
    /// The weighed lines: grams and price per kilogram, by line.
    pub weights: Vec<tillmesh_pos::cart::LineWeight>,
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
    /// Captured so far (what the customer has paid).
    pub paid: i64,
    /// Handed back to the customer when captured payments were undone (a cash payment
    /// reversed, or a part-paid sale voided), or for units returned from a paid sale.
    pub returned: i64,
    /// Units returned from a paid sale so far, per line, and the money handed back for them.
    pub returned_lines: Vec<tillmesh_pos::returns::ReturnedLine>,
    /// On hold: the cashier who parked it.
    pub held_by: Option<String>,
    /// On hold since (RFC 3339).
    pub held_at: Option<String>,
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

/// The store's link to the cloud as one till sees it.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema, Deserialize)]
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
    /// The cloud refused the store's credential: uploads stop until it is replaced.
    #[serde(default)]
    pub credential_refused: bool,
    /// Why operations that need HQ or the payment provider (QR payments) are refused now;
    /// none while the store is online (`Till::online_refusal`, the one rule the API and the
    /// screen share).
    #[serde(default)]
    pub online_only_refused: Option<String>,
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
    /// HQ's categories and customers (shared: readers clone the `Arc`).
    hq: Arc<HqRecords>,
    drafts: HashMap<String, Draft>,
    sessions: HashMap<String, Session>,
    /// What the QR payment provider last said about each payment.
    pay: pay::PayBook,
    next_txn: u64,
    /// The compaction this till's sync log is pruned to (its base's point).
    compaction: Compaction,
    /// A peer's events held in quarantine: in the sync log and relayed, never applied nor
    /// uploaded.
    quarantined: std::collections::BTreeSet<(ReplicaId, u64)>,
    /// Peers whose own latest events were stamped past the drift limit ahead of this till's
    /// clock: terminal -> how far ahead (ms).
    clock_ahead: std::collections::BTreeMap<u64, u64>,
    /// Each peer's newest own event as last received: (how far behind this till's clock it
    /// was stamped, when it came), both ms; bounded by [`PEERS_TRACKED_MAX`].
    peer_behind: std::collections::BTreeMap<u64, (u64, u64)>,
    /// The drawer's open shift (persisted as JSON in meta).
    shift: Option<tillmesh_pos::cash::Shift>,
    /// QR payments the till let expire, watched for a late capture.
    expired_qr: BTreeMap<String, late::ExpiredQr>,
    /// Peers' asks for gift card rights, to answer.
    asks: Vec<giftcard::Ask>,
    /// When this till last asked for rights to each card (ms).
    asked: HashMap<String, u64>,
    /// When this till last took a tender from each stored-value account (ms).
    used: HashMap<String, u64>,
    /// Each peer terminal's current incarnation (from its newest event received).
    live: BTreeMap<u64, ReplicaId>,
}

/// Most peers whose clocks a till tracks (a store has at most a few dozen tills).
const PEERS_TRACKED_MAX: usize = 256;

/// How recent a peer's events must be to count as evidence about this till's own clock.
const CLOCK_EVIDENCE_MS: u64 = 5 * 60_000;

/// How far past the drift limit this till's own clock runs ahead, if it does: from the peers
/// heard within [`CLOCK_EVIDENCE_MS`] (a majority of them stamp their newest events that far
/// behind; the least of their gaps) and from its own last stamp against its wall clock.
fn own_clock_ahead(
    peer_behind: &std::collections::BTreeMap<u64, (u64, u64)>,
    last_stamp_ms: u64,
    now: u64,
    drift: u64,
) -> Option<u64> {
    let recent: Vec<u64> = peer_behind
        .values()
        .filter(|(_, at)| now.saturating_sub(*at) <= CLOCK_EVIDENCE_MS)
        .map(|(behind, _)| *behind)
        .collect();
    let behind: Vec<u64> = recent.iter().copied().filter(|b| *b > drift).collect();
    let by_peers = (behind.len() * 2 > recent.len())
        .then(|| behind.iter().copied().min())
        .flatten();
    let by_stamps = Some(last_stamp_ms.saturating_sub(now)).filter(|a| *a > drift);
    by_peers.max(by_stamps)
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
    /// Set once a commit of applied events failed (see [`Till::fatal`]).
    fatal: tokio::sync::watch::Sender<Option<String>>,
    /// The database's check was left until after start (see [`Till::spawn_deferred_check`]).
    deferred_check: bool,
    /// The mesh, Raft group and cloud link around this till, as status reads them.
    links: Arc<dyn crate::links::Links>,
    /// First start (ms): the offline limit counts from here until the cloud is first reached.
    seeded_ms: u64,
    /// A manager's override of the offline limit holds until then (ms; persisted).
    override_until: std::sync::atomic::AtomicU64,
    /// The store's (Raft-applied) master-data version this till last switched to; 0 while
    /// it still runs the catalog file it was seeded from.
    hq_version: std::sync::atomic::AtomicU64,
    /// Product recognition, when `[vision]` names a model.
    vision: Option<Arc<Vision>>,
    /// Sign-in throttling.
    throttle: throttle::Throttle,
    /// A hash no PIN matches, at this till's PIN cost, checked for unknown employee ids.
    dummy_hash: String,
    /// Accounts seeded from the config's clear-text PINs (demo accounts).
    demo_accounts: std::collections::BTreeSet<String>,
    /// Seals, once the till has its certificate (`Till::enable_seals`).
    seals: std::sync::OnceLock<seals::Seals>,
    /// The QR payment provider, when `[payments.qr]` configures one.
    provider: Option<tillmesh_pay::Provider>,
    /// This till's HTTP address (`http://ip:port`), once it listens.
    http_url: std::sync::OnceLock<String>,
    /// When the provider last answered (ms).
    provider_ok_ms: std::sync::atomic::AtomicU64,
    /// The provider's last call failed.
    provider_failing: std::sync::atomic::AtomicBool,
    /// Trace contexts of recent events ([`traces`]).
    traces: Mutex<traces::TraceBook>,
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
    fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock is a bug that already crashed a request; the state
        // itself is only mutated by complete operations, so continuing is sound.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place in the write queue, then the core lock: for an operation that changes the
    /// core's memory and then queues its batch. Reserving first means the batch can always
    /// be queued (memory never goes ahead of a batch that could not be), and a full queue (a
    /// stalled disk) answers `Overloaded` before anything changed instead of blocking under
    /// the lock.
    fn core_for_write(&self) -> Result<(MutexGuard<'_, Core>, tillmesh_store::Slot), TillError> {
        let slot = self.store.reserve()?;
        Ok((self.core(), slot))
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

    /// Waits for a queued batch. A failed commit after events were applied in memory leaves
    /// memory ahead of disk: the till raises [`Till::fatal`] (the daemon stops, and a restart
    /// rebuilds from disk) and answers [`TillError::Fatal`].
    async fn durable(
        &self,
        rx: tokio::sync::oneshot::Receiver<Result<CommitInfo, StoreError>>,
    ) -> Result<CommitInfo, TillError> {
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
        self.fatal.send_replace(Some(cause.clone()));
        Err(TillError::Fatal(cause))
    }

    /// Raised (with the cause) when the till's memory went ahead of its disk: whoever runs the
    /// till must stop it (`tillmesh terminal` exits with code 70).
    pub fn fatal(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.fatal.subscribe()
    }

    /// Waits for a queued batch that holds no events (drafts, audit records): a failure is an
    /// error for this request only.
    async fn committed(
        &self,
        rx: tokio::sync::oneshot::Receiver<Result<CommitInfo, StoreError>>,
    ) -> Result<CommitInfo, TillError> {
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
    async fn audit(&self, rec: AuditRecord) -> Result<(), TillError> {
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
        op: impl Future<Output = Result<T, TillError>>,
    ) -> Result<T, TillError> {
        let out = op.await;
        if let Err(e) = &out {
            self.metrics.refusals.inc();
            let rec = audit_rec(
                self.now(),
                actor,
                action,
                target,
                &format!("refused: {}", e.code()),
                e.message(),
            );
            if let Err(ae) = self.audit(rec).await {
                warn!(cause = %ae, "could not record a refusal in the audit log");
            }
        }
        out
    }
}

/// A customer with their points.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CustomerView {
    /// Document fields.
    #[serde(flatten)]
    pub customer: Customer,
    /// Points balance: this store's and, from HQ, every other store's.
    pub points: i64,
    /// Of which earned (or spent) at other stores, as HQ last knew them.
    #[serde(default)]
    pub points_elsewhere: i64,
}

/// A payment request.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// `cash`, `qr`, `gift_card`, `store_credit` (the sale's customer's) or `coupon`.
    pub method: Method,
    /// QR and gift card: amount to charge (default: all that is due, or the card's balance
    /// if less). Cash: same as `tendered`.
    pub amount: Option<i64>,
    /// Cash handed over.
    pub tendered: Option<i64>,
    /// Gift card or coupon: its code.
    #[serde(default)]
    pub card: Option<String>,
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

fn missing_draft(id: &str) -> TillError {
    TillError::not_found(
        "unknown_transaction",
        format!("no open transaction {id} on this till"),
    )
}

fn require_draft(d: &Draft) -> Result<(), TillError> {
    if d.status == Status::Draft {
        Ok(())
    } else {
        Err(TillError::conflict(
            "invalid_transition",
            format!(
                "a {} transaction cannot be edited; reopen it first",
                d.status
            ),
        ))
    }
}

/// First start: master data, opening stock, staff accounts.
/// Meta key of the store master-data version this till last switched to.
const HQ_VERSION_KEY: &str = "master_hq_version";

/// Meta key of the cashier ids HQ's master data last held (those HQ deletes are locked out).
const HQ_CASHIERS_KEY: &str = "hq_cashiers";

#[cfg(test)]
mod tests {
    use super::own_clock_ahead;
    use std::collections::BTreeMap;

    const DRIFT: u64 = 300_000;
    const NOW: u64 = 10_000_000;

    #[test]
    fn own_clock_is_ahead_when_most_recent_peers_are_behind_it() {
        let mut peers = BTreeMap::new();
        peers.insert(2, (600_000, NOW - 1_000));
        peers.insert(3, (610_000, NOW - 2_000));
        peers.insert(4, (5, NOW - 1_000));
        assert_eq!(own_clock_ahead(&peers, NOW, NOW, DRIFT), Some(600_000));
        // One of three is not a majority.
        peers.insert(3, (10, NOW));
        assert_eq!(own_clock_ahead(&peers, NOW, NOW, DRIFT), None);
        // Evidence older than five minutes does not count.
        let mut old = BTreeMap::new();
        old.insert(2, (600_000, NOW - 400_000));
        assert_eq!(own_clock_ahead(&old, NOW, NOW, DRIFT), None);
        assert_eq!(own_clock_ahead(&BTreeMap::new(), NOW, NOW, DRIFT), None);
    }

    #[test]
    fn own_stamps_ahead_of_the_wall_clock_show_a_clock_that_was_set_back() {
        let peers = BTreeMap::new();
        assert_eq!(
            own_clock_ahead(&peers, NOW + 600_000, NOW, DRIFT),
            Some(600_000)
        );
        assert_eq!(own_clock_ahead(&peers, NOW + DRIFT, NOW, DRIFT), None);
    }
}
