//! The writer thread: groups queued batches into one SQLite transaction (group commit) and
//! materialises events into query tables in the same transaction.

use crate::read::sql_int;
use crate::{GROUP_LINGER_US, GROUP_REQUESTS_MAX, Job, StoreError};
use crossbeam_channel::Receiver;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tillmesh_crdt::Hlc;
use tillmesh_pos::audit::{self, AuditRecord, GENESIS};
use tillmesh_pos::cashier::Account;
use tillmesh_pos::event::{Event, EventBody};
use tillmesh_pos::transaction::Status;
use tracing::error;

/// Everything one request writes, committed atomically with the rest of its group.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// Events to append (duplicates by `(origin, seq)` are ignored, so re-delivery is safe).
    pub events: Vec<Event>,
    /// Audit records to chain.
    pub audit: Vec<AuditRecord>,
    /// Accounts to insert or replace (PIN changes, lock-out state).
    pub accounts: Vec<Account>,
    /// Master data rows `(kind, key, body)`; `None` deletes.
    pub master: Vec<(String, String, Option<String>)>,
    /// Meta key/values.
    pub meta: Vec<(String, String)>,
    /// Meta keys to delete.
    pub meta_delete: Vec<String>,
    /// Prunes the sync log (applied after everything else in the batch).
    pub prune: Option<Prune>,
    /// A peer's events that failed validation: appended to the sync log unmaterialised, and
    /// recorded in the quarantine with their reason.
    pub quarantine: Vec<Quarantined>,
}

/// A peer's event that failed validation, and why.
#[derive(Clone, Debug)]
pub struct Quarantined {
    /// The event as received.
    pub event: Event,
    /// The peer that sent it.
    pub from_terminal: u64,
    /// When it was quarantined (ms since the epoch).
    pub at_ms: u64,
    /// Why (the validator's error).
    pub reason: String,
}

/// Compaction of the sync log, in the same transaction as the new base: events at or below
/// `floor` leave the `events` table (a sale's record moves to the archive, so it stays
/// queryable), the base replaces the previous one, and sales records (with their statuses
/// and stock movements) paid before `retain_from_ms` whose events were pruned are deleted.
#[derive(Clone, Debug, Default)]
pub struct Prune {
    /// Highest seq per origin to prune.
    pub floor: Vec<(u64, u64)>,
    /// The encoded base (`pos::state::Base`) covering the pruned events.
    pub base: Vec<u8>,
    /// Sales records paid before this are deleted (0 keeps every record).
    pub retain_from_ms: u64,
}

impl WriteBatch {
    /// A batch holding one audit record.
    pub fn audit(record: AuditRecord) -> Self {
        WriteBatch {
            audit: vec![record],
            ..Default::default()
        }
    }
}

/// What a commit did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitInfo {
    /// Requests in the group this batch was committed with.
    pub group_size: usize,
    /// Time spent in `COMMIT` (the fsync), microseconds.
    pub commit_us: u64,
    /// Events of this batch that were new (not duplicates).
    pub events_new: usize,
}

/// Seals this till's own events as the writer stores them (`None` for an event it does
/// not seal: another till's, or with no key configured).
pub type SealFn = Arc<dyn Fn(&Event) -> Option<Vec<u8>> + Send + Sync>;

/// Where the writer finds the sealer once the till has one (it is installed after open).
#[derive(Clone, Default)]
pub(crate) struct SealSlot(pub(crate) Arc<std::sync::OnceLock<SealFn>>);

impl std::fmt::Debug for SealSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "SealSlot(set)"
        } else {
            "SealSlot(empty)"
        })
    }
}

#[derive(Debug)]
pub(crate) struct Writer {
    conn: Connection,
    audit_head: (u64, String),
    seal: SealSlot,
}

impl Writer {
    pub(crate) fn new(conn: Connection, seal: SealSlot) -> Result<Self, StoreError> {
        let head = conn
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)),
            )
            .optional()?
            .unwrap_or((0, GENESIS.to_string()));
        Ok(Writer {
            conn,
            audit_head: head,
            seal,
        })
    }

    pub(crate) fn run(mut self, rx: Receiver<Job>, queued: Arc<AtomicUsize>) {
        let mut group: Vec<Job> = Vec::with_capacity(GROUP_REQUESTS_MAX);
        let mut last = 1;
        while let Ok(first) = rx.recv() {
            group.push(first);
            while group.len() < GROUP_REQUESTS_MAX {
                match rx.try_recv() {
                    Ok(j) => group.push(j),
                    Err(_) => break,
                }
            }
            // Under load (the last group carried several requests), the clients answered by
            // the last commit are still making their next request: wait a little for them,
            // until as many as last time are in hand or GROUP_LINGER_US passed. At no load
            // (a group of one) nothing waits.
            if last > 1 && group.len() < last {
                let until = Instant::now() + std::time::Duration::from_micros(GROUP_LINGER_US);
                while group.len() < last.min(GROUP_REQUESTS_MAX) {
                    match rx.recv_deadline(until) {
                        Ok(j) => group.push(j),
                        Err(_) => break,
                    }
                }
            }
            last = group.len();
            let n = group.len();
            let head_before = self.audit_head.clone();
            match self.commit_group(&group) {
                Ok((commit_us, news)) => {
                    for ((_, reply), events_new) in group.drain(..).zip(news) {
                        let _ = reply.send(Ok(CommitInfo {
                            group_size: n,
                            commit_us,
                            events_new,
                        }));
                    }
                }
                Err(e) => {
                    error!(cause = %e, requests = n, "group commit failed; nothing of it was written");
                    self.audit_head = head_before;
                    for (_, reply) in group.drain(..) {
                        let _ = reply.send(Err(StoreError::Io(e.to_string())));
                    }
                }
            }
            queued.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Commits one batch on the caller's thread ([`crate::Mode::Inline`]).
    pub(crate) fn commit_one(&mut self, batch: WriteBatch) -> Result<CommitInfo, StoreError> {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let head_before = self.audit_head.clone();
        match self.commit_group(&[(batch, tx)]) {
            Ok((commit_us, news)) => Ok(CommitInfo {
                group_size: 1,
                commit_us,
                events_new: news[0],
            }),
            Err(e) => {
                self.audit_head = head_before;
                Err(e)
            }
        }
    }

    fn commit_group(&mut self, group: &[Job]) -> Result<(u64, Vec<usize>), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut news = Vec::with_capacity(group.len());
        for (batch, _) in group {
            let mut new = 0;
            let sealer = self.seal.0.get();
            for e in &batch.events {
                let own = match (&e.sig, sealer) {
                    (None, Some(seal)) => seal(e),
                    _ => None,
                };
                if insert_event(&tx, e, own.as_deref())? {
                    new += 1;
                }
            }
            for q in &batch.quarantine {
                let e = &q.event;
                if insert_raw(&tx, e, None)? {
                    new += 1;
                }
                exec(
                    &tx,
                    "INSERT OR IGNORE INTO quarantine (origin, seq, from_terminal, at_ms, kind, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        e.origin.0 as i64,
                        e.seq as i64,
                        q.from_terminal as i64,
                        q.at_ms as i64,
                        e.body.kind(),
                        q.reason
                    ],
                )?;
            }
            for r in &batch.audit {
                let entry = audit::chain(self.audit_head.0, &self.audit_head.1, r.clone());
                exec(&tx,
                    "INSERT INTO audit (seq, at_ms, actor, action, target, outcome, detail, prev_hash, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        entry.seq as i64,
                        entry.record.at_ms as i64,
                        entry.record.actor,
                        entry.record.action,
                        entry.record.target,
                        entry.record.outcome,
                        entry.record.detail,
                        entry.prev_hash,
                        entry.hash
                    ],
                )?;
                self.audit_head = (entry.seq, entry.hash);
            }
            for a in &batch.accounts {
                exec(&tx,
                    "INSERT OR REPLACE INTO cashiers (employee_id, name, role, pin_hash, failed_attempts, locked_until_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![a.employee_id, a.name, a.role.as_str(), a.pin_hash, a.failed_attempts, a.locked_until_ms as i64],
                )?;
            }
            for (kind, key, body) in &batch.master {
                match body {
                    Some(b) => exec(
                        &tx,
                        "INSERT OR REPLACE INTO master (kind, key, body) VALUES (?1, ?2, ?3)",
                        params![kind, key, b],
                    )?,
                    None => exec(
                        &tx,
                        "DELETE FROM master WHERE kind = ?1 AND key = ?2",
                        params![kind, key],
                    )?,
                };
            }
            for k in &batch.meta_delete {
                exec(&tx, "DELETE FROM meta WHERE key = ?1", params![k])?;
            }
            for (k, v) in &batch.meta {
                exec(
                    &tx,
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    params![k, v],
                )?;
            }
            if let Some(p) = &batch.prune {
                prune(&tx, p)?;
            }
            news.push(new);
        }
        let started = Instant::now();
        tx.commit()?;
        Ok((started.elapsed().as_micros() as u64, news))
    }
}

/// Appends one event to the sync log without materialising it, with its seal (or `own`, the
/// seal this till just made for it); returns false for a duplicate (nothing written).
fn insert_raw(tx: &Transaction<'_>, e: &Event, own: Option<&[u8]>) -> Result<bool, StoreError> {
    let body = crate::codec::encode(&e.body)?;
    let n = exec(
        tx,
        "INSERT OR IGNORE INTO events (origin, seq, hlc_wall, hlc_logical, kind, body, sig) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.origin.0 as i64,
            e.seq as i64,
            e.hlc.wall_ms as i64,
            e.hlc.logical,
            e.body.kind(),
            body,
            e.sig.as_deref().or(own)
        ],
    )?;
    Ok(n > 0)
}

/// Appends one event and materialises it; returns false for a duplicate (nothing written).
fn insert_event(tx: &Transaction<'_>, e: &Event, own: Option<&[u8]>) -> Result<bool, StoreError> {
    if !insert_raw(tx, e, own)? {
        return Ok(false);
    }
    materialise(tx, e)?;
    Ok(true)
}

/// Materialises the events this till stored while it did not know their kind, now that it
/// does (run once at open, after an upgrade); each leaves `unapplied` in the same
/// transaction. Answers how many were materialised.
pub(crate) fn materialise_unapplied(conn: &mut rusqlite::Connection) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let rows: Vec<_> = {
        let mut st = tx.prepare(
            "SELECT e.origin, e.seq, e.hlc_wall, e.hlc_logical, e.kind, e.body, e.sig
             FROM unapplied u JOIN events e ON e.origin = u.origin AND e.seq = u.seq",
        )?;
        st.query_map([], crate::read::event_from_row)?
            .collect::<Result<_, _>>()?
    };
    let mut done = 0;
    for row in rows {
        let e = crate::read::decode_event(row)?;
        if e.body.is_known() {
            materialise(&tx, &e)?;
            exec(
                &tx,
                "DELETE FROM unapplied WHERE origin = ?1 AND seq = ?2",
                params![e.origin.0 as i64, e.seq as i64],
            )?;
            done += 1;
        }
    }
    // Rows whose event left the sync log (it cannot: the floor stops below them) go too.
    exec(
        &tx,
        "DELETE FROM unapplied WHERE NOT EXISTS
           (SELECT 1 FROM events e WHERE e.origin = unapplied.origin AND e.seq = unapplied.seq)",
        [],
    )?;
    tx.commit()?;
    Ok(done)
}

/// Writes the rows an event's queries read (sales, statuses, stock movements).
fn materialise(tx: &Transaction<'_>, e: &Event) -> Result<(), StoreError> {
    match &e.body {
        EventBody::SaleRecorded { sale, status, .. }
        | EventBody::WeighedSaleRecorded { sale, status, .. } => {
            let weights = match &e.body {
                EventBody::WeighedSaleRecorded { weights, .. } => weights.as_slice(),
                _ => &[],
            };
            exec(tx,
                "INSERT OR IGNORE INTO transactions (txn_id, terminal, cashier, created_ms, paid_ms, total, origin, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    sale.txn_id,
                    sale.terminal.0 as i64,
                    sale.cashier,
                    sale.created_ms as i64,
                    sale.paid_ms as i64,
                    sale.totals.total,
                    e.origin.0 as i64,
                    e.seq as i64
                ],
            )?;
            upsert_status(tx, &sale.txn_id, status)?;
            for l in &sale.lines {
                exec(tx,
                    "INSERT OR IGNORE INTO stock_movements (origin, seq, line, sku, change, reason, supplier, reference, actor, at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'SALE', NULL, ?6, ?7, ?8)",
                    params![e.origin.0 as i64, e.seq as i64, l.line_no, l.sku, -tillmesh_pos::cart::stock_units(weights, l), sale.txn_id, sale.cashier, e.hlc.wall_ms as i64],
                )?;
            }
        }
        EventBody::TransactionVoided { txn_id, status, .. }
        | EventBody::RefundRecorded { txn_id, status, .. } => upsert_status(tx, txn_id, status)?,
        EventBody::ItemsReturned {
            txn_id,
            lines,
            by,
            status,
            ..
        } => {
            for l in lines {
                exec(tx,
                    "INSERT OR IGNORE INTO returns (origin, seq, line_no, txn_id, quantity, amount, actor, at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![e.origin.0 as i64, e.seq as i64, l.line_no, txn_id, l.quantity, l.amount, by, e.hlc.wall_ms as i64],
                )?;
            }
            upsert_status(tx, txn_id, status)?;
        }
        EventBody::InventoryAdjusted {
            sku,
            change,
            reason,
            supplier,
            reference,
            by,
            ..
        } => {
            exec(tx,
                "INSERT OR IGNORE INTO stock_movements (origin, seq, line, sku, change, reason, supplier, reference, actor, at_ms)
                 VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![e.origin.0 as i64, e.seq as i64, sku, change, reason.as_str(), supplier, reference, by, e.hlc.wall_ms as i64],
            )?;
        }
        EventBody::PriceOverridden { .. }
        | EventBody::SettingChanged { .. }
        | EventBody::CustomerUpdated { .. }
        | EventBody::PointsChanged { .. }
        | EventBody::VisionEnrolled { .. }
        | EventBody::GiftCardIssued { .. }
        | EventBody::GiftCardRightsAsked { .. }
        | EventBody::GiftCardRightsMoved { .. } => {}
        EventBody::Unknown { .. } => {
            exec(
                tx,
                "INSERT OR IGNORE INTO unapplied (origin, seq) VALUES (?1, ?2)",
                params![e.origin.0 as i64, e.seq as i64],
            )?;
        }
    }
    Ok(())
}

fn prune(tx: &Transaction<'_>, p: &Prune) -> Result<(), StoreError> {
    for &(origin, seq) in &p.floor {
        let (origin, seq) = (sql_int(origin), sql_int(seq));
        exec(
            tx,
            "INSERT OR IGNORE INTO sale_archive (origin, seq, body)
             SELECT origin, seq, body FROM events WHERE origin = ?1 AND seq <= ?2 AND kind IN ('SaleRecorded', 'WeighedSaleRecorded')",
            params![origin, seq],
        )?;
        exec(
            tx,
            "DELETE FROM events WHERE origin = ?1 AND seq <= ?2",
            params![origin, seq],
        )?;
    }
    exec(
        tx,
        "INSERT OR REPLACE INTO base (id, body) VALUES (0, ?1)",
        params![p.base],
    )?;
    if p.retain_from_ms > 0 {
        let before = sql_int(p.retain_from_ms);
        // Only records whose event has left the sync log: a sale the cloud has not
        // acknowledged is never deleted, however old.
        let expired = "SELECT t.txn_id, t.origin, t.seq FROM transactions t WHERE t.paid_ms < ?1
             AND NOT EXISTS (SELECT 1 FROM events e WHERE e.origin = t.origin AND e.seq = t.seq)";
        exec(
            tx,
            &format!(
                "DELETE FROM sale_archive WHERE (origin, seq) IN (SELECT origin, seq FROM ({expired}))"
            ),
            params![before],
        )?;
        exec(
            tx,
            &format!("DELETE FROM txn_status WHERE txn_id IN (SELECT txn_id FROM ({expired}))"),
            params![before],
        )?;
        exec(
            tx,
            &format!("DELETE FROM transactions WHERE txn_id IN (SELECT txn_id FROM ({expired}))"),
            params![before],
        )?;
        exec(
            tx,
            "DELETE FROM stock_movements WHERE at_ms < ?1
             AND NOT EXISTS (SELECT 1 FROM events e WHERE e.origin = stock_movements.origin AND e.seq = stock_movements.seq)",
            params![before],
        )?;
    }
    Ok(())
}

/// Writes a transaction status if its stamp is newer than the stored one (LWW in SQL).
fn upsert_status(
    tx: &Transaction<'_>,
    txn_id: &str,
    delta: &tillmesh_crdt::LwwMap<String, Status>,
) -> Result<(), StoreError> {
    let key = txn_id.to_string();
    let (
        Some(status),
        Some(Hlc {
            wall_ms,
            logical,
            replica,
        }),
    ) = (delta.get(&key), delta.stamp(&key))
    else {
        return Ok(());
    };
    exec(tx,
        "INSERT INTO txn_status (txn_id, status, hlc_wall, hlc_logical, hlc_replica) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (txn_id) DO UPDATE SET status = excluded.status, hlc_wall = excluded.hlc_wall,
             hlc_logical = excluded.hlc_logical, hlc_replica = excluded.hlc_replica
         WHERE (excluded.hlc_wall, excluded.hlc_logical, excluded.hlc_replica)
             > (txn_status.hlc_wall, txn_status.hlc_logical, txn_status.hlc_replica)",
        params![txn_id, status.as_str(), wall_ms as i64, logical, replica.0 as i64],
    )?;
    Ok(())
}

/// Executes a statement through the connection's prepared-statement cache (parsing SQL on
/// every commit would cost more than the inserts themselves).
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}
