//! SQL shared by both backends. Statements use `$n` placeholders, which SQLite also accepts
//! (numbered in order of first appearance), and only syntax both dialects share: `ON CONFLICT`
//! upserts, row-value comparison, and `CAST(SUM(..) AS BIGINT)` (PostgreSQL sums BIGINT as
//! NUMERIC otherwise).

/// Insert one ledger event unless held.
pub const INSERT_EVENT: &str = "INSERT INTO events (store, origin, seq, kind, hlc_ms, body) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";

/// Store row as ingestion needs it.
/// Forgets a store's highest term and its holder (`tillmesh hq reset-term`).
pub const RESET_TERM: &str = "UPDATE stores SET max_term = 0, leader = 0 WHERE store_id = $1";
pub const STORE_FOR_INGEST: &str = "SELECT enabled, tokens_valid_after_ms, max_term, leader, lag_ms FROM stores WHERE store_id = $1";

/// Store row update after a batch.
pub const STORE_AFTER_INGEST: &str = "UPDATE stores SET max_term = $1, leader = $2, last_upload_ms = $3, backlog = $4, \
     tills = $5, lag_ms = $6, events = events + $7 WHERE store_id = $8";

/// One origin's watermark.
pub const ORIGIN: &str = "SELECT contiguous, max_seq FROM origins WHERE store = $1 AND origin = $2";

/// Seqs above a watermark, to close gaps.
pub const SEQS_ABOVE: &str =
    "SELECT seq FROM events WHERE store = $1 AND origin = $2 AND seq > $3 ORDER BY seq LIMIT $4";

/// Upsert of a watermark.
pub const UPSERT_ORIGIN: &str = "INSERT INTO origins (store, origin, contiguous, max_seq) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (store, origin) DO UPDATE SET contiguous = excluded.contiguous, max_seq = excluded.max_seq";

/// All watermarks of a store.
pub const WATERMARKS: &str =
    "SELECT origin, contiguous, max_seq FROM origins WHERE store = $1 ORDER BY origin";

/// Every origin's contiguous watermark, with its store's UTC offset.
pub const ORIGINS_TO_PROJECT: &str = "SELECT o.store, o.origin, o.contiguous, s.utc_offset_min \
     FROM origins o JOIN stores s ON s.store_id = o.store ORDER BY o.store, o.origin";

/// How far each origin is folded into the reports.
pub const PROJECTED: &str = "SELECT store, origin, seq FROM projected";

/// Events of one origin in a seq range.
pub const EVENTS_RANGE: &str = "SELECT seq, kind, body FROM events \
     WHERE store = $1 AND origin = $2 AND seq > $3 AND seq <= $4 ORDER BY seq";

/// Advance an origin's projection cursor (never backwards).
pub const SET_PROJECTED: &str = "INSERT INTO projected (store, origin, seq) VALUES ($1, $2, $3) \
     ON CONFLICT (store, origin) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > projected.seq";

/// Events folded into the reports, per store.
pub const PROJECTED_PER_STORE: &str =
    "SELECT store, CAST(SUM(seq) AS BIGINT) FROM projected GROUP BY store";

/// Sale fact.
pub const INSERT_SALE: &str = "INSERT INTO sales (store, txn_id, origin, seq, day, paid_ms, terminal, cashier, \
     subtotal, discount, tax, total, items) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
     ON CONFLICT DO NOTHING";

/// Line fact.
pub const INSERT_LINE: &str = "INSERT INTO sale_lines (store, txn_id, line_no, day, sku, quantity, total) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

/// Return fact.
pub const INSERT_RETURN: &str = "INSERT INTO sale_returns (store, txn_id, origin, seq, line_no, quantity, amount) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

/// Payment fact.
pub const INSERT_PAYMENT: &str = "INSERT INTO sale_payments (store, txn_id, payment_id, day, method, provider, amount) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

/// Status register merge (last writer wins by HLC).
pub const MERGE_STATUS: &str = "INSERT INTO txn_status (store, txn_id, status, wall_ms, logical, replica) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (store, txn_id) DO UPDATE SET status = excluded.status, \
     wall_ms = excluded.wall_ms, logical = excluded.logical, replica = excluded.replica \
     WHERE (excluded.wall_ms, excluded.logical, excluded.replica) > (txn_status.wall_ms, txn_status.logical, txn_status.replica)";

/// PN-counter entry merge (maximum of each side).
pub const MERGE_STOCK: &str = "INSERT INTO stock (store, sku, replica, p, n) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (store, sku, replica) DO UPDATE SET \
     p = CASE WHEN excluded.p > stock.p THEN excluded.p ELSE stock.p END, \
     n = CASE WHEN excluded.n > stock.n THEN excluded.n ELSE stock.n END";

/// Register or update a store (keeps its upload state).
pub const PUT_STORE: &str = "INSERT INTO stores (store_id, name, utc_offset_min, enabled, tokens_valid_after_ms) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (store_id) DO UPDATE SET name = excluded.name, \
     utc_offset_min = excluded.utc_offset_min, enabled = excluded.enabled, \
     tokens_valid_after_ms = excluded.tokens_valid_after_ms";

/// Store registry columns.
pub const STORES: &str = "SELECT store_id, name, utc_offset_min, enabled, tokens_valid_after_ms FROM stores \
     WHERE (CAST($1 AS TEXT) IS NULL OR store_id = $1) ORDER BY store_id";

/// Fleet columns.
pub const FLEET: &str = "SELECT store_id, name, max_term, leader, last_upload_ms, backlog, lag_ms, tills, events, \
     (SELECT COUNT(*) FROM events e WHERE e.store = stores.store_id AND e.kind = 'Quarantined') \
     FROM stores ORDER BY store_id";

/// Terminals with events in the ledger, per store.
pub const ORIGINS_ALL: &str = "SELECT store, origin FROM origins ORDER BY store, origin";

/// Current master version.
pub const MASTER_VERSION: &str = "SELECT value FROM counters WHERE name = 'master_version'";

/// Set the master version.
pub const SET_MASTER_VERSION: &str = "UPDATE counters SET value = $1 WHERE name = 'master_version'";

/// Current version of the second master-data stream (categories, customers).
pub const MASTER_EXT_VERSION: &str = "SELECT value FROM counters WHERE name = 'master_ext_version'";

/// Set the second stream's version.
pub const SET_MASTER_EXT_VERSION: &str =
    "UPDATE counters SET value = $1 WHERE name = 'master_ext_version'";

/// Whether a live master record exists.
pub const MASTER_LIVE: &str =
    "SELECT COUNT(*) FROM master WHERE kind = $1 AND key = $2 AND store = $3 AND body IS NOT NULL";

/// Put (or tombstone, with a NULL body) a master record.
pub const PUT_MASTER: &str = "INSERT INTO master (kind, key, store, version, body) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (kind, key, store) DO UPDATE SET version = excluded.version, body = excluded.body";

/// Master records of one stream ($3: 0 the first, 1 the second) changed since a version for
/// a store (or all). (SQLite numbers parameters in the order they first appear.)
pub const MASTER_SINCE: &str = "SELECT kind, key, store, version, body FROM master WHERE version > $1 \
     AND (CAST($2 AS TEXT) IS NULL OR store = '' OR store = $2) \
     AND (CASE WHEN kind IN ('category', 'customer') THEN 1 ELSE 0 END) = CAST($3 AS BIGINT) \
     ORDER BY version LIMIT $4";

/// Sales per store and day.
pub const SALES_BY_DAY: &str = "SELECT s.store, s.day, COUNT(*), CAST(SUM(s.items) AS BIGINT), \
     CAST(SUM(s.subtotal) AS BIGINT), CAST(SUM(s.discount) AS BIGINT), CAST(SUM(s.tax) AS BIGINT), \
     CAST(SUM(s.total) AS BIGINT), \
     CAST(SUM(CASE WHEN t.status = 'VOID' THEN 1 ELSE 0 END) AS BIGINT), \
     CAST(SUM(CASE WHEN t.status = 'VOID' THEN s.total ELSE 0 END) AS BIGINT), \
     CAST(SUM(CASE WHEN t.status = 'REFUNDED' THEN 1 ELSE 0 END) AS BIGINT), \
     CAST(SUM(CASE WHEN t.status = 'REFUNDED' THEN s.total ELSE 0 END) AS BIGINT), \
     CAST(SUM(CASE WHEN COALESCE(t.status, 'PAID') NOT IN ('VOID', 'REFUNDED') THEN COALESCE( \
       (SELECT SUM(r.amount) FROM sale_returns r WHERE r.store = s.store AND r.txn_id = s.txn_id), 0) \
       ELSE 0 END) AS BIGINT) \
     FROM sales s LEFT JOIN txn_status t ON t.store = s.store AND t.txn_id = s.txn_id \
     WHERE s.day >= $1 AND s.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR s.store = $3) \
     GROUP BY s.store, s.day ORDER BY s.store, s.day";

/// Payments per store, day, method and provider.
/// (Lines and payments are reached through their sale, found by the sales' day index; a
/// sale and its lines and payments are folded in one transaction.)
pub const PAYMENTS_BY_DAY: &str = "SELECT s.store, s.day, p.method, p.provider, COUNT(*), CAST(SUM(p.amount) AS BIGINT), \
     CAST(SUM(CASE WHEN t.status IN ('VOID', 'REFUNDED') THEN p.amount ELSE 0 END) AS BIGINT) \
     FROM sales s JOIN sale_payments p ON p.store = s.store AND p.txn_id = s.txn_id \
     LEFT JOIN txn_status t ON t.store = s.store AND t.txn_id = s.txn_id \
     WHERE s.day >= $1 AND s.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR s.store = $3) \
     GROUP BY s.store, s.day, p.method, p.provider ORDER BY s.store, s.day, p.method, p.provider";

/// Best sellers.
pub const TOP_SKUS: &str = "SELECT l.sku, CAST(SUM(l.quantity) AS BIGINT), CAST(SUM(l.total) AS BIGINT) \
     FROM sales s JOIN sale_lines l ON l.store = s.store AND l.txn_id = s.txn_id \
     LEFT JOIN txn_status t ON t.store = s.store AND t.txn_id = s.txn_id \
     WHERE s.day >= $1 AND s.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR s.store = $3) \
     AND COALESCE(t.status, 'PAID') NOT IN ('VOID', 'REFUNDED') \
     GROUP BY l.sku ORDER BY 2 DESC, 1 LIMIT $4";

/// Stored-value counter entry merge (maximum).
pub const MERGE_BALANCE: &str = "INSERT INTO balances (store, account, part, a, b, value) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (store, account, part, a, b) DO UPDATE SET \
     value = CASE WHEN excluded.value > balances.value THEN excluded.value ELSE balances.value END";

/// A store's stored-value accounts: loaded (created) and spent.
pub const BALANCES: &str = "SELECT account, \
     CAST(SUM(CASE WHEN part = 'c' THEN value ELSE 0 END) AS BIGINT), \
     CAST(SUM(CASE WHEN part = 's' THEN value ELSE 0 END) AS BIGINT) \
     FROM balances WHERE store = $1 GROUP BY account ORDER BY account";

/// Stock of a store.
pub const INVENTORY: &str =
    "SELECT sku, CAST(SUM(p - n) AS BIGINT) FROM stock WHERE store = $1 GROUP BY sku ORDER BY sku";

/// A store's pinned CA and key records (see `seal_keys`).
pub const SEAL_KEYS: &str =
    "SELECT kind, body FROM seal_keys WHERE store_id = $1 ORDER BY kind, origin, signs_from";

/// Adds a key record or pins a CA; a row already there stays (the first CA pinned wins).
pub const PUT_SEAL_KEY: &str = "INSERT INTO seal_keys (store_id, kind, origin, signs_from, body) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (store_id, kind, origin, signs_from) DO NOTHING";

/// Holds a store's CA; a CA already held keeps its certificate and key (a store's CA is
/// set once) and takes the higher next terminal id.
pub const PUT_STORE_CA: &str = "INSERT INTO store_ca (store_id, cert, key, next_terminal) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (store_id) DO UPDATE SET \
     next_terminal = CASE WHEN excluded.next_terminal > store_ca.next_terminal \
     THEN excluded.next_terminal ELSE store_ca.next_terminal END";

/// A store's CA and next terminal id.
pub const STORE_CA: &str = "SELECT cert, key, next_terminal FROM store_ca WHERE store_id = $1";

/// The terminal already issued for a key.
pub const ENROLMENT_BY_KEY: &str =
    "SELECT terminal FROM enrolments WHERE store_id = $1 AND key_sha256 = $2";

/// Takes the next terminal id.
pub const TAKE_TERMINAL: &str =
    "UPDATE store_ca SET next_terminal = next_terminal + 1 WHERE store_id = $1";

/// Records a terminal issued.
pub const PUT_ENROLMENT: &str = "INSERT INTO enrolments \
     (store_id, terminal, key_sha256, code, approved_by, at_ms) VALUES ($1, $2, $3, $4, $5, $6)";

/// A store's QR payments over a range of days, with their sale's status (reconciliation).
pub const QR_PAYMENTS: &str = "SELECT p.payment_id, p.txn_id, p.amount, p.provider, COALESCE(t.status, 'PAID') \
     FROM sales s JOIN sale_payments p ON p.store = s.store AND p.txn_id = s.txn_id \
     LEFT JOIN txn_status t ON t.store = s.store AND t.txn_id = s.txn_id \
     WHERE s.store = $1 AND s.day >= $2 AND s.day <= $3 AND p.method = 'qr' \
     ORDER BY p.payment_id LIMIT $4";

/// Merge one customer's points entry of a store (PN-counter: each part by maximum).
pub const MERGE_POINTS: &str = "INSERT INTO customer_points (customer, store, replica, p, n) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (customer, store, replica) DO UPDATE SET \
     p = CASE WHEN excluded.p > customer_points.p THEN excluded.p ELSE customer_points.p END, \
     n = CASE WHEN excluded.n > customer_points.n THEN excluded.n ELSE customer_points.n END";

/// Keep one change to a customer's record (once).
pub const INSERT_CUSTOMER_CHANGE: &str = "INSERT INTO customer_changes \
     (customer, store, origin, seq, at_ms, change) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (customer, store, origin, seq) DO NOTHING";

/// Mark a customer's HQ record to be rebuilt.
pub const MARK_CUSTOMER: &str = "INSERT INTO customers_dirty (customer, mark) VALUES ($1, $2) \
     ON CONFLICT (customer) DO UPDATE SET mark = excluded.mark";

/// Customers whose HQ record is to be rebuilt.
pub const DIRTY_CUSTOMERS: &str =
    "SELECT customer, mark FROM customers_dirty ORDER BY customer LIMIT $1";

/// A rebuilt customer, unless marked again meanwhile.
pub const CLEAN_CUSTOMER: &str = "DELETE FROM customers_dirty WHERE customer = $1 AND mark = $2";

/// Every change to one customer's record, per store in order.
pub const CUSTOMER_CHANGES: &str = "SELECT store, at_ms, change FROM customer_changes \
     WHERE customer = $1 ORDER BY store, origin, seq";

/// One customer's points per store.
pub const CUSTOMER_POINTS: &str = "SELECT store, CAST(SUM(p - n) AS BIGINT) FROM customer_points \
     WHERE customer = $1 GROUP BY store ORDER BY store";
