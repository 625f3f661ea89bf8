-- The cloud's ledger and report facts (PostgreSQL) as v0.1.0 found it. A shipped migration is never edited; a change is a new file.
CREATE TABLE IF NOT EXISTS stores (
    store_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    utc_offset_min INTEGER NOT NULL,
    enabled BOOLEAN NOT NULL,
    tokens_valid_after_ms BIGINT NOT NULL DEFAULT 0,
    max_term BIGINT NOT NULL DEFAULT 0,
    leader BIGINT NOT NULL DEFAULT 0,
    last_upload_ms BIGINT NOT NULL DEFAULT 0,
    backlog BIGINT NOT NULL DEFAULT 0,
    lag_ms BIGINT NOT NULL DEFAULT 0,
    tills TEXT NOT NULL DEFAULT '[]',
    events BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    store TEXT NOT NULL, origin BIGINT NOT NULL, seq BIGINT NOT NULL,
    kind TEXT NOT NULL, hlc_ms BIGINT NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (store, origin, seq)
);
CREATE TABLE IF NOT EXISTS projected (
    store TEXT NOT NULL, origin BIGINT NOT NULL, seq BIGINT NOT NULL,
    PRIMARY KEY (store, origin)
);
CREATE TABLE IF NOT EXISTS origins (
    store TEXT NOT NULL, origin BIGINT NOT NULL, contiguous BIGINT NOT NULL, max_seq BIGINT NOT NULL,
    PRIMARY KEY (store, origin)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters (name, value) VALUES ('master_version', 0) ON CONFLICT DO NOTHING;
INSERT INTO counters (name, value) VALUES ('schema_version', 1) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS master (
    kind TEXT NOT NULL, key TEXT NOT NULL, store TEXT NOT NULL, version BIGINT NOT NULL, body TEXT,
    PRIMARY KEY (kind, key, store)
);
CREATE INDEX IF NOT EXISTS master_by_version ON master (version);
CREATE TABLE IF NOT EXISTS sales (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, origin BIGINT NOT NULL, seq BIGINT NOT NULL,
    day BIGINT NOT NULL, paid_ms BIGINT NOT NULL, terminal BIGINT NOT NULL, cashier TEXT NOT NULL,
    subtotal BIGINT NOT NULL, discount BIGINT NOT NULL, tax BIGINT NOT NULL, total BIGINT NOT NULL,
    items BIGINT NOT NULL,
    PRIMARY KEY (store, txn_id)
);
CREATE INDEX IF NOT EXISTS sales_by_day ON sales (day, store);
CREATE TABLE IF NOT EXISTS sale_lines (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, line_no BIGINT NOT NULL, day BIGINT NOT NULL,
    sku TEXT NOT NULL, quantity BIGINT NOT NULL, total BIGINT NOT NULL,
    PRIMARY KEY (store, txn_id, line_no)
);
CREATE TABLE IF NOT EXISTS sale_payments (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, payment_id TEXT NOT NULL, day BIGINT NOT NULL,
    method TEXT NOT NULL, provider TEXT NOT NULL, amount BIGINT NOT NULL,
    PRIMARY KEY (store, txn_id, payment_id)
);
CREATE TABLE IF NOT EXISTS txn_status (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, status TEXT NOT NULL,
    wall_ms BIGINT NOT NULL, logical BIGINT NOT NULL, replica BIGINT NOT NULL,
    PRIMARY KEY (store, txn_id)
);
CREATE TABLE IF NOT EXISTS stock (
    store TEXT NOT NULL, sku TEXT NOT NULL, replica BIGINT NOT NULL, p BIGINT NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (store, sku, replica)
);
