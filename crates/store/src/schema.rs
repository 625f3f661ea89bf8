//! Connection set-up (WAL, synchronous=FULL) and schema migrations keyed by `user_version`.

use crate::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// Migrations, in order. Never edit one that has shipped; add a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (
    origin      INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    hlc_wall    INTEGER NOT NULL,
    hlc_logical INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    body        BLOB NOT NULL, -- bincode of the EventBody (see codec.rs)
    PRIMARY KEY (origin, seq)
) WITHOUT ROWID;

-- A paid sale: the columns queried, and the SaleRecorded event that holds the full record
-- (lines, payments, totals), so the record is stored once.
CREATE TABLE transactions (
    txn_id     TEXT PRIMARY KEY,
    terminal   INTEGER NOT NULL,
    cashier    TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    paid_ms    INTEGER NOT NULL,
    total      INTEGER NOT NULL,
    origin     INTEGER NOT NULL,
    seq        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX transactions_paid ON transactions (paid_ms);

-- Last-writer-wins status per transaction, ordered by HLC (wall, logical, replica).
CREATE TABLE txn_status (
    txn_id      TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    hlc_wall    INTEGER NOT NULL,
    hlc_logical INTEGER NOT NULL,
    hlc_replica INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per stock change: an InventoryAdjusted event (line 0), or one line of a sale.
CREATE TABLE stock_movements (
    origin    INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    line      INTEGER NOT NULL,
    sku       TEXT NOT NULL,
    change    INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    supplier  TEXT,
    reference TEXT,
    actor     TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    PRIMARY KEY (origin, seq, line)
) WITHOUT ROWID;
CREATE INDEX stock_movements_sku ON stock_movements (sku, at_ms);

CREATE TABLE master (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;

CREATE TABLE cashiers (
    employee_id     TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL,
    pin_hash        TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL,
    locked_until_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Compaction: sales whose events left the sync log keep their record here (queryable until
-- the retention period ends); the state of the compacted events is the base.
CREATE TABLE sale_archive (
    origin INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    body   BLOB NOT NULL,
    PRIMARY KEY (origin, seq)
) WITHOUT ROWID;
CREATE TABLE base (
    id   INTEGER PRIMARY KEY CHECK (id = 0),
    body BLOB NOT NULL -- bincode of pos::state::Base
);
CREATE INDEX stock_movements_at ON stock_movements (at_ms);
"#,
    r#"
-- Events a peer sent that failed validation: kept (in `events`, unmaterialised, so they are
-- held and relayed as received) with why, and never applied.
CREATE TABLE quarantine (
    origin        INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    from_terminal INTEGER NOT NULL,
    at_ms         INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    PRIMARY KEY (origin, seq)
) WITHOUT ROWID;
"#,
];

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Io(format!(
            "could not switch to WAL (got {mode})"
        )));
    }
    // FULL: the WAL is fsync'd at every commit, so a commit that returned survives power loss.
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    Ok(())
}

/// Opens the write connection and runs pending migrations.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
    }
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    // The store's checkpoint thread does this work; see `Store::open`.
    conn.execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864;")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::TooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(conn)
}

/// Opens a read connection (after [`open`] has migrated).
pub(crate) fn open_read(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    Ok(conn)
}
