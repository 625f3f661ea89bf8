-- The cloud's report facts (SQLite, derived from the ledger) as v0.1.0 found it. A shipped migration is never edited; a change is a new file.
CREATE TABLE IF NOT EXISTS projected (
    store TEXT NOT NULL, origin INTEGER NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (store, origin)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sales (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, origin INTEGER NOT NULL, seq INTEGER NOT NULL,
    day INTEGER NOT NULL, paid_ms INTEGER NOT NULL, terminal INTEGER NOT NULL, cashier TEXT NOT NULL,
    subtotal INTEGER NOT NULL, discount INTEGER NOT NULL, tax INTEGER NOT NULL, total INTEGER NOT NULL,
    items INTEGER NOT NULL,
    PRIMARY KEY (store, txn_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sales_by_day ON sales (day, store);
CREATE TABLE IF NOT EXISTS sale_lines (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, line_no INTEGER NOT NULL, day INTEGER NOT NULL,
    sku TEXT NOT NULL, quantity INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (store, txn_id, line_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sale_payments (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, payment_id TEXT NOT NULL, day INTEGER NOT NULL,
    method TEXT NOT NULL, provider TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY (store, txn_id, payment_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS txn_status (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, status TEXT NOT NULL,
    wall_ms INTEGER NOT NULL, logical INTEGER NOT NULL, replica INTEGER NOT NULL,
    PRIMARY KEY (store, txn_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stock (
    store TEXT NOT NULL, sku TEXT NOT NULL, replica INTEGER NOT NULL, p INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (store, sku, replica)
) WITHOUT ROWID;
