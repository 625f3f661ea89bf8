//! The cloud's storage contract: one trait, implemented on SQLite ([`crate::sqlite`]) and on
//! PostgreSQL ([`crate::postgres`]), and the plain types that cross it.
//!
//! The ledger is the set of stored events, unique by (store, origin, seq). Ingestion writes
//! only the ledger, the per-origin watermarks and the store's row, in one transaction; the
//! report tables are *projected* from the ledger afterwards ([`Ledger::project`]), by any
//! instance, idempotently, so ingestion instances stay stateless and fast.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tillmesh_cloud_proto::{MasterKind, Watermark};
use utoipa::ToSchema;

/// A ledger failure.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The store is not registered, or is disabled.
    #[error("store {0} is not registered at HQ, or is disabled")]
    UnknownStore(String),
    /// The credential was issued before the store's tokens were last revoked.
    #[error("the credential of store {0} was revoked; ask HQ for a new one")]
    Revoked(String),
    /// Fencing: a deposed leader uploads.
    #[error(
        "term {term} is older than term {highest} already seen for store {store}: this till is no longer the leader"
    )]
    StaleTerm {
        /// Store.
        store: String,
        /// The batch's term.
        term: u64,
        /// The highest term seen.
        highest: u64,
    },
    /// A term further ahead of the highest seen than elections could ever move it (a forged
    /// or corrupt batch): accepting it would fence the store's real leader out for good.
    #[error(
        "term {term} is more than {TERM_JUMP_MAX} ahead of term {highest} of store {store}; refused (an admin can reset the store's term with `tillmesh hq reset-term`)"
    )]
    TermJump {
        /// Store.
        store: String,
        /// The batch's term.
        term: u64,
        /// The highest term seen.
        highest: u64,
    },
    /// Two leaders claim one term.
    #[error("term {term} of store {store} belongs to leader {holder}, not {leader}")]
    TermConflict {
        /// Store.
        store: String,
        /// Term.
        term: u64,
        /// The leader recorded for that term.
        holder: u64,
        /// The uploader.
        leader: u64,
    },
    /// Invalid input that only the database can see.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(String),
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError::Db(e.to_string())
    }
}

impl From<tokio_postgres::Error> for LedgerError {
    fn from(e: tokio_postgres::Error) -> Self {
        LedgerError::Db(e.to_string())
    }
}

/// One event, validated and encoded for storage.
#[derive(Clone, Debug)]
pub struct Row {
    /// Origin replica id.
    pub origin: u64,
    /// Per-origin sequence number.
    pub seq: u64,
    /// Event type name (kept as the till named it, a kind this cloud does not know too).
    pub kind: String,
    /// HLC wall time of the event.
    pub hlc_ms: u64,
    /// The event body in the tills' binary encoding.
    pub body: Vec<u8>,
}

/// A validated batch of one store.
#[derive(Clone, Debug)]
pub struct IngestRequest {
    /// Store (from the credential; every event was checked to belong to it).
    pub store: String,
    /// When the credential was issued (ms); refused if the store's tokens were revoked since.
    pub credential_issued_ms: u64,
    /// Uploader's Raft term.
    pub term: u64,
    /// Uploader's terminal id.
    pub leader: u64,
    /// Events the leader still holds beyond this batch.
    pub backlog: u64,
    /// Terminals the leader sees.
    pub tills: Vec<u64>,
    /// When the cloud received the batch (ms).
    pub received_ms: u64,
    /// The events.
    pub rows: Vec<Row>,
}

/// What an ingestion did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Events stored.
    pub accepted: u64,
    /// Events already held.
    pub duplicate: u64,
    /// Watermarks of every origin of the store.
    pub watermarks: Vec<Watermark>,
    /// Highest term seen for the store.
    pub term: u64,
    /// The master-data version, read in the same transaction.
    pub master_version: u64,
}

/// What a store's seals are checked with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealKeys {
    /// The store CA's certificate (DER), pinned by `hq add-store --ca-cert`.
    pub ca: Option<Vec<u8>>,
    /// The key records its tills announced.
    pub records: Vec<tillmesh_pos::seal::KeyRecord>,
    /// The newest revocation list the cloud checked for it.
    pub revocations: Option<tillmesh_pos::revocation::SignedRevocations>,
}

impl SealKeys {
    /// Rows `(kind, body)` as `seal_keys` holds them.
    pub fn from_rows(rows: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let mut keys = SealKeys::default();
        for (kind, body) in rows {
            match kind.as_str() {
                "ca" => keys.ca = Some(body),
                // Rows come oldest first: the last list is the newest.
                "revocations" => {
                    if let Ok(r) = serde_json::from_slice(&body) {
                        keys.revocations = Some(r);
                    }
                }
                _ => {
                    if let Ok(r) = serde_json::from_slice(&body) {
                        keys.records.push(r);
                    }
                }
            }
        }
        keys
    }

    /// The rows `(kind, origin, signs_from, body)` to insert.
    pub fn to_rows(
        ca: Option<Vec<u8>>,
        records: &[tillmesh_pos::seal::KeyRecord],
        revocations: Option<(u64, String)>,
    ) -> Vec<(&'static str, i64, i64, Vec<u8>)> {
        let mut rows: Vec<_> = ca.into_iter().map(|c| ("ca", 0, 0, c)).collect();
        if let Some((issued_ms, list)) = revocations {
            rows.push(("revocations", 0, issued_ms as i64, list.into_bytes()));
        }
        for r in records {
            if let Ok(body) = serde_json::to_vec(r) {
                rows.push(("key", r.origin as i64, r.signs_from as i64, body));
            }
        }
        rows
    }
}

/// A store's CA as HQ holds it, to sign the certificates of tills a manager approves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreCa {
    /// The CA's certificate (PEM).
    pub cert: String,
    /// The CA's private key (PEM).
    pub key: String,
    /// The next terminal id HQ issues for the store.
    pub next_terminal: u64,
}

/// A terminal id issued to an approved till's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolment {
    /// SHA-256 of the till's public key (hex).
    pub key_sha256: String,
    /// The code the manager confirmed.
    pub code: String,
    /// Who approved it (employee id, and the till it was approved on).
    pub approved_by: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// A store registered at HQ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreInfo {
    /// Store id (`S001`).
    pub store_id: String,
    /// Display name.
    pub name: String,
    /// Offset of the store's local time from UTC, minutes (reports bucket days by it).
    pub utc_offset_minutes: i32,
    /// Disabled stores cannot upload or pull.
    pub enabled: bool,
    /// Credentials issued before this instant (ms) are refused.
    pub tokens_valid_after_ms: u64,
}

/// Fleet status of one store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FleetRow {
    /// Store id.
    pub store_id: String,
    /// Display name.
    pub name: String,
    /// Highest Raft term seen.
    pub term: u64,
    /// Leader of that term (terminal id), 0 before the first upload.
    pub leader: u64,
    /// Last upload (ms), 0 if never.
    pub last_upload_ms: u64,
    /// Events the leader reported still holding.
    pub backlog: u64,
    /// Delay between the newest event of the last non-empty batch and its arrival (ms).
    pub lag_ms: u64,
    /// Terminals the leader reported seeing.
    pub tills_reported: Vec<u64>,
    /// Terminals that have events in the ledger.
    pub tills_seen: Vec<u64>,
    /// Events stored.
    pub events: u64,
    /// Events not yet folded into the reports.
    pub unprojected: u64,
    /// Events the store quarantined (a till could not apply them), held here unprojected.
    pub quarantined: u64,
    /// The store's credential refused (expired or revoked) since this cloud instance
    /// started: how many times, and when last (ms, 0 if never).
    pub credential_refused: u64,
    /// When the store's credential was last refused (ms), 0 if never.
    pub credential_refused_ms: u64,
    /// Every till of the store as its leader last reported them (link, lag, last seen,
    /// version), since this cloud instance started; empty before the first report.
    #[serde(default)]
    pub till_states: Vec<tillmesh_cloud_proto::TillState>,
    /// When that report arrived (ms), 0 if none.
    #[serde(default)]
    pub till_states_ms: u64,
}

/// A master-data edit made at HQ: a record put (`body` set, JSON) or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterEdit {
    /// Kind.
    pub kind: MasterKind,
    /// Key.
    pub key: String,
    /// One store, or `""` for every store.
    pub store: String,
    /// JSON of the record, `None` to delete.
    pub body: Option<String>,
}

/// A stored master-data record (current state, with the version of its last change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterRow {
    /// Kind.
    pub kind: MasterKind,
    /// Key.
    pub key: String,
    /// One store, or `""` for every store.
    pub store: String,
    /// Version of the last change.
    pub version: u64,
    /// JSON, `None` when deleted.
    pub body: Option<String>,
}

/// Sales of one store on one local day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DayRow {
    /// Store.
    pub store: String,
    /// Days since 1970-01-01 in the store's local time.
    pub day: i64,
    /// Transactions sold (every recorded sale, whatever happened to it later).
    pub transactions: u64,
    /// Items sold.
    pub items: u64,
    /// Subtotal before discounts.
    pub subtotal: i64,
    /// Discounts.
    pub discount: i64,
    /// Tax.
    pub tax: i64,
    /// Totals of the sales.
    pub total: i64,
    /// Sales voided after payment: count.
    pub voided: u64,
    /// ... and their totals.
    pub voided_amount: i64,
    /// Sales refunded: count.
    pub refunded: u64,
    /// ... and their totals.
    pub refunded_amount: i64,
    /// Handed back for units returned from sales neither voided nor refunded whole.
    pub returned_amount: i64,
}

/// Payments of one store, day, method and provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentRow {
    /// Store.
    pub store: String,
    /// Local day number.
    pub day: i64,
    /// `cash` or `qr`.
    pub method: String,
    /// Provider (`""` for cash).
    pub provider: String,
    /// Payments captured.
    pub count: u64,
    /// Amount captured.
    pub amount: i64,
    /// Of which on transactions later voided or refunded (to be returned to the customer).
    pub reversed_amount: i64,
}

/// Sales of one SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SkuRow {
    /// SKU.
    pub sku: String,
    /// Units sold (voided and refunded sales excluded).
    pub quantity: i64,
    /// Line totals.
    pub revenue: i64,
}

/// Stock of one SKU in one store: the sum of the PN-counter entries of every till.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockRow {
    /// SKU.
    pub sku: String,
    /// Units on hand.
    pub on_hand: i64,
}

/// One stored-value account of one store (gift card, store credit, coupon): what was loaded
/// on it and what was spent, summed over every till's counter entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceRow {
    /// The account: a gift card code, `credit:{customer}` or `coupon:{code}`.
    pub account: String,
    /// Loaded (activations, top-ups, credits, refunds put back), minor units.
    pub loaded: i64,
    /// Spent by tenders, minor units.
    pub spent: i64,
}

/// The storage of the cloud.
#[async_trait]
pub trait Ledger: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), LedgerError>;

    /// Stores a batch all-or-nothing (fencing, dedup, watermarks), durable when it returns.
    async fn ingest(&self, req: IngestRequest) -> Result<IngestOutcome, LedgerError>;
    /// Watermarks of a store's origins.
    async fn watermarks(&self, store: &str) -> Result<Vec<Watermark>, LedgerError>;
    /// Folds up to `limit` ledger events into the report tables; returns how many it folded.
    /// Idempotent and safe to run from several instances at once.
    async fn project(&self, limit: usize) -> Result<usize, LedgerError>;

    /// Registers or updates a store.
    async fn put_store(&self, store: StoreInfo) -> Result<(), LedgerError>;
    /// What a store's seals are checked with: its pinned CA and its tills' key records.
    async fn seal_keys(&self, store: &str) -> Result<SealKeys, LedgerError>;
    /// Pins a store's CA (`ca`; a CA already pinned stays), adds key records and keeps a
    /// revocation list (`(issued_ms, signed list as JSON)`, already checked).
    async fn put_seal_keys(
        &self,
        store: &str,
        ca: Option<Vec<u8>>,
        records: Vec<tillmesh_pos::seal::KeyRecord>,
        revocations: Option<(u64, String)>,
    ) -> Result<(), LedgerError>;
    /// Holds a store's CA (a CA already held keeps its certificate and key; the higher
    /// next terminal id wins).
    async fn put_store_ca(&self, store: &str, ca: StoreCa) -> Result<(), LedgerError>;
    /// A store's CA, if HQ holds it.
    async fn store_ca(&self, store: &str) -> Result<Option<StoreCa>, LedgerError>;
    /// Issues the next terminal id of a store to a till's key, in one transaction (the
    /// same id again for a key issued one before: a retried request); `None` when HQ
    /// holds no CA for the store. Answers the id and the CA that signs its certificate.
    async fn enrol(&self, store: &str, e: Enrolment)
    -> Result<Option<(u64, StoreCa)>, LedgerError>;
    /// A store's QR payments on sales of days `from_day..=to_day` (at most `limit`).
    async fn qr_payments(
        &self,
        store: &str,
        from_day: i64,
        to_day: i64,
        limit: i64,
    ) -> Result<Vec<crate::reconcile::LedgerPayment>, LedgerError>;
    /// Forgets the highest Raft term seen for a store and its holder, so that its next
    /// leader (any term from 1) is admitted again: for a store that lost every `raft.db`, or
    /// one fenced by a bad term. Answers whether the store exists.
    async fn reset_term(&self, store: &str) -> Result<bool, LedgerError>;
    /// One store.
    async fn store(&self, id: &str) -> Result<Option<StoreInfo>, LedgerError>;
    /// Every store.
    async fn stores(&self) -> Result<Vec<StoreInfo>, LedgerError>;
    /// Fleet status of every store.
    async fn fleet(&self) -> Result<Vec<FleetRow>, LedgerError>;

    /// Applies HQ edits atomically, each at its own new version of its stream (see
    /// [`MasterKind::is_ext`]); returns the last version of the first stream.
    async fn master_apply(&self, edits: Vec<MasterEdit>) -> Result<u64, LedgerError>;
    /// Records of one stream (`ext`: the second) changed after `since` that apply to
    /// `store` (all stores' records when `None`), in version order, at most `limit`.
    async fn master_since(
        &self,
        store: Option<&str>,
        since: u64,
        limit: usize,
        ext: bool,
    ) -> Result<Vec<MasterRow>, LedgerError>;
    /// The current master-data version of the first stream (`ext`: of the second).
    async fn master_version_of(&self, ext: bool) -> Result<u64, LedgerError>;
    /// Customers whose HQ record is to be rebuilt, with their marks, at most `limit`.
    async fn dirty_customers(&self, limit: usize) -> Result<Vec<(String, i64)>, LedgerError>;
    /// What HQ holds about one customer: every change to the record, points per store.
    async fn customer_sources(
        &self,
        customer: &str,
    ) -> Result<crate::loyalty::CustomerSources, LedgerError>;
    /// Keeps HQ's own edit of a customer (a JSON `CustomerPatch`) and marks the customer.
    async fn put_hq_customer(
        &self,
        customer: &str,
        at_ms: u64,
        patch: Vec<u8>,
    ) -> Result<(), LedgerError>;
    /// The customer's record was rebuilt as of `mark` (still marked if marked again since).
    async fn customer_rebuilt(&self, customer: &str, mark: i64) -> Result<(), LedgerError>;
    /// The current master-data version (of the first stream).
    async fn master_version(&self) -> Result<u64, LedgerError> {
        self.master_version_of(false).await
    }

    /// Sales per store and local day in `[from_day, to_day]`.
    async fn sales_by_day(
        &self,
        store: Option<&str>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<DayRow>, LedgerError>;
    /// Payments per store, day, method and provider in `[from_day, to_day]`.
    async fn payments_by_day(
        &self,
        store: Option<&str>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<PaymentRow>, LedgerError>;
    /// Best-selling SKUs in `[from_day, to_day]`.
    async fn top_skus(
        &self,
        store: Option<&str>,
        from_day: i64,
        to_day: i64,
        limit: usize,
    ) -> Result<Vec<SkuRow>, LedgerError>;
    /// Stock per SKU of one store.
    async fn inventory(&self, store: &str) -> Result<Vec<StockRow>, LedgerError>;
    /// A store's stored-value accounts.
    async fn balances(&self, store: &str) -> Result<Vec<BalanceRow>, LedgerError>;
}

/// How far past the highest term seen a batch's term may be: a store's Raft term moves by
/// one per election, so a million is decades of elections, and far from the `i64` the
/// databases store terms in.
pub const TERM_JUMP_MAX: u64 = 1_000_000;

/// The checks every backend makes, inside the ingest transaction, on the store's row: the
/// store is enabled, the credential is not revoked, and the uploader is not a deposed leader.
pub fn fence(
    req: &IngestRequest,
    enabled: bool,
    tokens_valid_after_ms: u64,
    max_term: u64,
    holder: u64,
) -> Result<(), LedgerError> {
    if !enabled {
        return Err(LedgerError::UnknownStore(req.store.clone()));
    }
    if req.credential_issued_ms < tokens_valid_after_ms {
        return Err(LedgerError::Revoked(req.store.clone()));
    }
    if req.term > max_term.saturating_add(TERM_JUMP_MAX) {
        return Err(LedgerError::TermJump {
            store: req.store.clone(),
            term: req.term,
            highest: max_term,
        });
    }
    if req.term < max_term {
        return Err(LedgerError::StaleTerm {
            store: req.store.clone(),
            term: req.term,
            highest: max_term,
        });
    }
    if req.term == max_term && holder != 0 && holder != req.leader {
        return Err(LedgerError::TermConflict {
            store: req.store.clone(),
            term: req.term,
            holder,
            leader: req.leader,
        });
    }
    Ok(())
}

/// The version each edit gets, in order, each from its own stream's counter (`main` and
/// `ext` are the counters' values before; both are returned after).
pub fn master_versions(edits: &[MasterEdit], mut main: i64, mut ext: i64) -> (Vec<i64>, i64, i64) {
    let versions = edits
        .iter()
        .map(|e| {
            let v = if e.kind.is_ext() { &mut ext } else { &mut main };
            *v += 1;
            *v
        })
        .collect();
    (versions, main, ext)
}

/// " for store S" or "" (chain-wide), for messages.
pub fn scope_text(store: &str) -> String {
    if store.is_empty() {
        String::new()
    } else {
        format!(" for store {store}")
    }
}

/// Walks a store origin's watermark forward: `contiguous` advances over consecutive seqs in
/// `seqs` (sorted ascending); returns the new `(contiguous, max_seq)` and whether a gap is left
/// that only the database can close.
pub fn advance(contiguous: u64, max_seq: u64, seqs: &[u64]) -> (u64, u64, bool) {
    let mut c = contiguous;
    for &s in seqs {
        if s == c + 1 {
            c = s;
        } else if s > c + 1 {
            break;
        }
    }
    let max = seqs.last().copied().unwrap_or(0).max(max_seq);
    (c, max, max > c)
}

#[cfg(test)]
mod tests {
    use super::{IngestRequest, LedgerError, TERM_JUMP_MAX, advance, fence};

    fn req(term: u64, leader: u64) -> IngestRequest {
        IngestRequest {
            store: "S001".into(),
            credential_issued_ms: 10,
            term,
            leader,
            backlog: 0,
            tills: vec![],
            received_ms: 0,
            rows: vec![],
        }
    }

    #[test]
    fn a_term_jump_past_the_bound_is_refused_and_cannot_fence_the_store_out() {
        assert!(matches!(
            fence(&req(u64::MAX, 1), true, 0, 0, 0),
            Err(LedgerError::TermJump { .. })
        ));
        assert!(matches!(
            fence(&req(7 + TERM_JUMP_MAX + 1, 1), true, 0, 7, 1),
            Err(LedgerError::TermJump { .. })
        ));
        assert!(fence(&req(7 + TERM_JUMP_MAX, 2), true, 0, 7, 1).is_ok());
        assert!(fence(&req(8, 2), true, 0, 7, 1).is_ok());
        assert!(matches!(
            fence(&req(6, 2), true, 0, 7, 1),
            Err(LedgerError::StaleTerm { .. })
        ));
        assert!(matches!(
            fence(&req(7, 2), true, 0, 7, 1),
            Err(LedgerError::TermConflict { .. })
        ));
    }

    #[test]
    fn watermarks_advance_over_runs_only() {
        assert_eq!(advance(0, 0, &[1, 2, 3]), (3, 3, false));
        assert_eq!(advance(3, 3, &[2, 3, 4]), (4, 4, false));
        assert_eq!(advance(0, 0, &[2, 3]), (0, 3, true));
        assert_eq!(advance(0, 5, &[1]), (1, 5, true));
    }
}
