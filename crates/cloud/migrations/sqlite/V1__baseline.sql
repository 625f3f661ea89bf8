-- The cloud's ledger (SQLite) as v0.1.0 found it. A shipped migration is never edited; a change is a new file.
CREATE TABLE IF NOT EXISTS stores (
    store_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    utc_offset_min INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    tokens_valid_after_ms INTEGER NOT NULL DEFAULT 0,
    max_term INTEGER NOT NULL DEFAULT 0,
    leader INTEGER NOT NULL DEFAULT 0,
    last_upload_ms INTEGER NOT NULL DEFAULT 0,
    backlog INTEGER NOT NULL DEFAULT 0,
    lag_ms INTEGER NOT NULL DEFAULT 0,
    tills TEXT NOT NULL DEFAULT '[]',
    events INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- Event rows are large (a few hundred bytes): a rowid table with a narrow unique index
-- appends cheaply, where a WITHOUT ROWID table would split fat pages.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    store TEXT NOT NULL, origin INTEGER NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, hlc_ms INTEGER NOT NULL, body BLOB NOT NULL,
    UNIQUE (store, origin, seq)
);
CREATE TABLE IF NOT EXISTS origins (
    store TEXT NOT NULL, origin INTEGER NOT NULL, contiguous INTEGER NOT NULL, max_seq INTEGER NOT NULL,
    PRIMARY KEY (store, origin)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value) VALUES ('master_version', 0);
INSERT OR IGNORE INTO counters (name, value) VALUES ('schema_version', 1);
CREATE TABLE IF NOT EXISTS master (
    kind TEXT NOT NULL, key TEXT NOT NULL, store TEXT NOT NULL, version INTEGER NOT NULL, body TEXT,
    PRIMARY KEY (kind, key, store)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS master_by_version ON master (version);
