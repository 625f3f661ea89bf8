//! Read queries on the read connection: events for replay and sync, sales for receipts and
//! reports, stock movements, audit entries, accounts, master data.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use tillmesh_crdt::{Hlc, ReplicaId};
use tillmesh_pos::audit::{AuditEntry, AuditRecord};
use tillmesh_pos::cashier::{Account, Role};
use tillmesh_pos::event::{Event, Sale};
use tillmesh_pos::transaction::Status;

/// The read side of the store.
#[derive(Debug)]
pub struct Reader {
    conn: Connection,
}

/// A quarantined event's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QuarantineRow {
    /// Origin replica.
    pub origin: u64,
    /// Sequence number.
    pub seq: u64,
    /// The peer that sent it.
    pub from_terminal: u64,
    /// When it was quarantined (ms since the epoch).
    pub at_ms: u64,
    /// Event kind.
    pub kind: String,
    /// Why.
    pub reason: String,
}

/// One stock movement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StockMovement {
    /// SKU.
    pub sku: String,
    /// Signed change.
    pub change: i64,
    /// Reason code.
    pub reason: String,
    /// Supplier, when receiving.
    pub supplier: Option<String>,
    /// Related transaction or note.
    pub reference: Option<String>,
    /// Who.
    pub actor: String,
    /// When (ms since epoch).
    pub at_ms: u64,
    /// Terminal that recorded it.
    pub origin: u64,
}

pub(crate) type EventRow = (i64, i64, i64, u32, String, Vec<u8>, Option<Vec<u8>>);

pub(crate) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

pub(crate) fn decode_event(
    (origin, seq, wall, logical, kind, body, sig): EventRow,
) -> Result<Event, StoreError> {
    let origin = ReplicaId(origin as u64);
    Ok(Event {
        origin,
        seq: seq as u64,
        hlc: Hlc {
            wall_ms: wall as u64,
            logical,
            replica: origin,
        },
        body: crate::codec::decode(&kind, &body)?,
        sig,
        trace: None,
    })
}

impl Reader {
    pub(crate) fn new(conn: Connection) -> Self {
        Reader { conn }
    }

    /// Every event, in `(origin, seq)` order (for rebuilding state at start-up).
    pub fn events_all(&self) -> Result<Vec<Event>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT origin, seq, hlc_wall, hlc_logical, kind, body, sig FROM events ORDER BY origin, seq",
        )?;
        let rows = st
            .query_map([], event_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(decode_event).collect()
    }

    /// Every quarantined event, oldest first.
    pub fn quarantined(&self) -> Result<Vec<QuarantineRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT origin, seq, from_terminal, at_ms, kind, reason FROM quarantine ORDER BY at_ms, origin, seq",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(QuarantineRow {
                    origin: r.get::<_, i64>(0)? as u64,
                    seq: r.get::<_, i64>(1)? as u64,
                    from_terminal: r.get::<_, i64>(2)? as u64,
                    at_ms: r.get::<_, i64>(3)? as u64,
                    kind: r.get(4)?,
                    reason: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The compacted base, if the sync log was ever pruned (bincode of `pos::state::Base`).
    pub fn base(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT body FROM base WHERE id = 0", [], |r| r.get(0))
            .optional()?)
    }

    /// Events in the sync log, and sales records in the archive.
    pub fn log_sizes(&self) -> Result<(u64, u64), StoreError> {
        let n = |sql: &str| -> Result<u64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok((
            n("SELECT COUNT(*) FROM events")?,
            n("SELECT COUNT(*) FROM sale_archive")?,
        ))
    }

    /// The last sale event of `origin` at or below `seq` (to find the transaction-log dots a
    /// compaction point covers).
    pub fn last_sale_upto(&self, origin: ReplicaId, seq: u64) -> Result<Option<Event>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT origin, seq, hlc_wall, hlc_logical, kind, body, sig FROM events
             WHERE origin = ?1 AND seq <= ?2 AND kind IN ('SaleRecorded', 'WeighedSaleRecorded')
             ORDER BY seq DESC LIMIT 1",
        )?;
        let row = st
            .query_row(params![sql_int(origin.0), sql_int(seq)], event_from_row)
            .optional()?;
        row.map(decode_event).transpose()
    }

    /// Events of `origin` with `seq > after`, at most `limit` (for delta sync).
    pub fn events_after(
        &self,
        origin: ReplicaId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT origin, seq, hlc_wall, hlc_logical, kind, body, sig FROM events WHERE origin = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = st
            .query_map(
                params![sql_int(origin.0), sql_int(after), sql_int(limit as u64)],
                event_from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(decode_event).collect()
    }

    /// Highest numeric suffix of the transaction ids `<prefix><n>` sold by `terminal`. Streamed:
    /// a till with months of sales (a million ids) held them all in memory at start to take
    /// their maximum.
    pub fn max_txn_number(&self, terminal: ReplicaId, prefix: &str) -> Result<u64, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT txn_id FROM transactions WHERE terminal = ?1")?;
        let mut rows = st.query(params![terminal.0 as i64])?;
        let mut max = 0;
        while let Some(row) = rows.next()? {
            let id = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            if let Some(n) = id.strip_prefix(prefix).and_then(|n| n.parse::<u64>().ok()) {
                max = max.max(n);
            }
        }
        Ok(max)
    }

    /// One sale and its current status.
    pub fn sale(&self, txn_id: &str) -> Result<Option<(Sale, Status)>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT COALESCE(e.body, a.body), s.status FROM transactions t
                 LEFT JOIN events e ON e.origin = t.origin AND e.seq = t.seq
                 LEFT JOIN sale_archive a ON a.origin = t.origin AND a.seq = t.seq
                 LEFT JOIN txn_status s ON s.txn_id = t.txn_id WHERE t.txn_id = ?1",
                params![txn_id],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()?;
        row.map(decode_sale).transpose()
    }

    /// The units of each line of a sale returned so far, and the money handed back for them:
    /// `line_no -> (units, amount)`.
    pub fn returned(
        &self,
        txn_id: &str,
    ) -> Result<std::collections::BTreeMap<u32, (u32, i64)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT line_no, SUM(quantity), SUM(amount) FROM returns WHERE txn_id = ?1 GROUP BY line_no",
        )?;
        let rows = st
            .query_map(params![txn_id], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    (r.get::<_, u32>(1)?, r.get::<_, i64>(2)?),
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Returns made in `[from_ms, to_ms)`: how many (one per event) and the money handed back.
    pub fn returns_between(&self, from_ms: u64, to_ms: u64) -> Result<(u64, i64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(DISTINCT origin || '/' || seq), COALESCE(SUM(amount), 0) FROM returns
             WHERE at_ms >= ?1 AND at_ms < ?2",
            params![sql_int(from_ms), sql_int(to_ms)],
            |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, i64>(1)?)),
        )?)
    }

    /// Sales paid in `[from_ms, to_ms)`, oldest first, at most `limit`.
    pub fn sales_between(
        &self,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<(Sale, Status)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT COALESCE(e.body, a.body), s.status FROM transactions t
                 LEFT JOIN events e ON e.origin = t.origin AND e.seq = t.seq
                 LEFT JOIN sale_archive a ON a.origin = t.origin AND a.seq = t.seq
             LEFT JOIN txn_status s ON s.txn_id = t.txn_id
             WHERE t.paid_ms >= ?1 AND t.paid_ms < ?2 ORDER BY t.paid_ms, t.txn_id LIMIT ?3",
        )?;
        let rows = st
            .query_map(
                params![sql_int(from_ms), sql_int(to_ms), sql_int(limit as u64)],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<String>>(1)?)),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(decode_sale).collect()
    }

    /// Recent stock movements of one SKU, newest first.
    pub fn movements(&self, sku: &str, limit: usize) -> Result<Vec<StockMovement>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT sku, change, reason, supplier, reference, actor, at_ms, origin FROM stock_movements
             WHERE sku = ?1 ORDER BY at_ms DESC, origin, seq DESC LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![sku, sql_int(limit as u64)], |r| {
                Ok(StockMovement {
                    sku: r.get(0)?,
                    change: r.get(1)?,
                    reason: r.get(2)?,
                    supplier: r.get(3)?,
                    reference: r.get(4)?,
                    actor: r.get(5)?,
                    at_ms: r.get::<_, i64>(6)? as u64,
                    origin: r.get::<_, i64>(7)? as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The newest `n` entries of the audit chain, newest first (the chain's head).
    pub fn audit_last(&self, n: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, at_ms, actor, action, target, outcome, detail, prev_hash, hash FROM audit ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = st
            .query_map([n as i64], audit_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The whole audit chain in order.
    pub fn audit_all(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, at_ms, actor, action, target, outcome, detail, prev_hash, hash FROM audit ORDER BY seq",
        )?;
        let rows = st
            .query_map([], audit_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One account.
    pub fn account(&self, employee_id: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT employee_id, name, role, pin_hash, failed_attempts, locked_until_ms FROM cashiers WHERE employee_id = ?1",
                params![employee_id],
                account_from_row,
            )
            .optional()?)
    }

    /// Every account, by employee id.
    pub fn accounts_all(&self) -> Result<Vec<Account>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT employee_id, name, role, pin_hash, failed_attempts, locked_until_ms FROM cashiers ORDER BY employee_id",
        )?;
        let rows = st
            .query_map([], account_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Number of accounts.
    pub fn account_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM cashiers", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Every master-data row, `(key, body)`, in no particular order (no sort): HQ's records
    /// as the store's Raft group committed them (`kind:key` keys, JSON bodies), as this till
    /// last applied them.
    pub fn master_all(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut st = self.conn.prepare_cached("SELECT key, body FROM master")?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<(String, String)>, _>>()?;
        Ok(rows)
    }

    /// Master data bodies of one kind, in key order.
    pub fn master(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT body FROM master WHERE kind = ?1 ORDER BY key")?;
        let rows = st
            .query_map(params![kind], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rows)
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Meta rows whose key starts with `prefix`, in key order.
    pub fn meta_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT key, value FROM meta WHERE key >= ?1 AND key < ?2 ORDER BY key",
        )?;
        let end = format!("{prefix}\u{10FFFF}");
        let rows = st
            .query_map(params![prefix, end], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// `PRAGMA quick_check`: "ok" when the file is sound (cheaper than `integrity_check`;
    /// skips index/table cross-checks).
    pub fn quick_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))?)
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}

/// SQLite integers are i64: clamp instead of wrapping (`u64::MAX as i64` would be -1).
pub(crate) fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    let role: String = r.get(2)?;
    Ok(Account {
        employee_id: r.get(0)?,
        name: r.get(1)?,
        role: Role::parse(&role).unwrap_or(Role::Cashier),
        pin_hash: r.get(3)?,
        failed_attempts: r.get(4)?,
        locked_until_ms: r.get::<_, i64>(5)? as u64,
    })
}

fn decode_sale((body, status): (Vec<u8>, Option<String>)) -> Result<(Sale, Status), StoreError> {
    // The archive keeps bodies without their kind: either sale kind decodes as itself.
    let body = crate::codec::decode("SaleRecorded", &body)
        .or_else(|_| crate::codec::decode("WeighedSaleRecorded", &body))?;
    let Some(sale) = body.sale() else {
        return Err(StoreError::Codec(
            "a transaction row points at an event that is not a sale".into(),
        ));
    };
    let status = status
        .as_deref()
        .and_then(Status::parse)
        .unwrap_or(Status::Paid);
    Ok((sale, status))
}

/// An audit entry from a row of `seq, at_ms, actor, action, target, outcome, detail,
/// prev_hash, hash`.
fn audit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get::<_, i64>(0)? as u64,
        record: AuditRecord {
            at_ms: r.get::<_, i64>(1)? as u64,
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            outcome: r.get(5)?,
            detail: r.get(6)?,
        },
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
    })
}
