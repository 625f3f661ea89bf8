-- The schema of the till's store as v0.1.0 found it (three earlier migrations, joined).

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
