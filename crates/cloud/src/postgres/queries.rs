//! The SQL of the PostgreSQL ledger's hot paths (ingest, projection) and of the reports
//! that read the sale runs; what both dialects share is in `crate::sql`.

pub(super) const INSERT_EVENTS: &str = "INSERT INTO events (store, origin, seq, kind, hlc_ms, body) \
     SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[], $6::BYTEA[]) \
     ON CONFLICT DO NOTHING";

/// A batch's watermarks, one row per origin.
pub(super) const UPSERT_ORIGINS: &str = "INSERT INTO origins (store, origin, contiguous, max_seq) \
     SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) \
     ON CONFLICT (store, origin) DO UPDATE SET contiguous = excluded.contiguous, max_seq = excluded.max_seq";

/// One run of sales (migration V10): a store's sales of one origin, projection step and day,
/// as parallel arrays sent in binary; lines and payments flattened, each with the 1-based index
/// of its sale in the run.
pub(super) const INSERT_SALE_RUN: &str = "INSERT INTO sale_runs (store, origin, first_seq, day, \
     txn_ids, seqs, paid_ms, terminals, cashiers, subtotals, discounts, taxes, totals, items, \
     line_sales, line_nos, line_skus, line_quantities, line_totals, \
     pay_sales, pay_ids, pay_methods, pay_providers, pay_amounts) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24) ON CONFLICT DO NOTHING";

pub(super) const INSERT_RETURNS: &str = "INSERT INTO sale_returns (store, txn_id, origin, seq, line_no, quantity, amount) \
     SELECT $1, * FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[]) \
     ON CONFLICT DO NOTHING";

pub(super) const MERGE_STATUSES: &str = "INSERT INTO txn_status (store, txn_id, status, wall_ms, logical, replica) \
     SELECT $1, * FROM UNNEST($2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[]) \
     ON CONFLICT (store, txn_id) DO UPDATE SET status = excluded.status, wall_ms = excluded.wall_ms, \
     logical = excluded.logical, replica = excluded.replica \
     WHERE (excluded.wall_ms, excluded.logical, excluded.replica) > (txn_status.wall_ms, txn_status.logical, txn_status.replica)";

/// (An entry no newer than the one held, as when a step is folded again, writes nothing.)
pub(super) const MERGE_STOCKS: &str = "INSERT INTO stock (store, sku, replica, p, n) \
     SELECT $1, * FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[]) \
     ON CONFLICT (store, sku, replica) DO UPDATE SET \
     p = GREATEST(stock.p, excluded.p), n = GREATEST(stock.n, excluded.n) \
     WHERE excluded.p > stock.p OR excluded.n > stock.n";

pub(super) const MERGE_BALANCES: &str = "INSERT INTO balances (store, account, part, a, b, value) \
     SELECT $1, * FROM UNNEST($2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[]) \
     ON CONFLICT (store, account, part, a, b) DO UPDATE SET \
     value = excluded.value WHERE excluded.value > balances.value";

/// Payments per store, day, method and provider (`sql::PAYMENTS_BY_DAY`, over the runs'
/// payments: the view `sale_payments`).
pub(super) const PAYMENTS_BY_DAY: &str = "SELECT p.store, p.day, p.method, p.provider, COUNT(*), CAST(SUM(p.amount) AS BIGINT), \
     CAST(SUM(CASE WHEN t.status IN ('VOID', 'REFUNDED') THEN p.amount ELSE 0 END) AS BIGINT) \
     FROM sale_payments p LEFT JOIN txn_status t ON t.store = p.store AND t.txn_id = p.txn_id \
     WHERE p.day >= $1 AND p.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR p.store = $3) \
     GROUP BY p.store, p.day, p.method, p.provider ORDER BY p.store, p.day, p.method, p.provider";

/// Best sellers (`sql::TOP_SKUS`, over the runs' lines: the view `sale_lines`).
pub(super) const TOP_SKUS: &str = "SELECT l.sku, CAST(SUM(l.quantity) AS BIGINT), CAST(SUM(l.total) AS BIGINT) \
     FROM sale_lines l LEFT JOIN txn_status t ON t.store = l.store AND t.txn_id = l.txn_id \
     WHERE l.day >= $1 AND l.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR l.store = $3) \
     AND COALESCE(t.status, 'PAID') NOT IN ('VOID', 'REFUNDED') \
     GROUP BY l.sku ORDER BY 2 DESC, 1 LIMIT $4";

/// A store's QR payments (`sql::QR_PAYMENTS`, over the view `sale_payments`).
pub(super) const QR_PAYMENTS: &str = "SELECT p.payment_id, p.txn_id, p.amount, p.provider, COALESCE(t.status, 'PAID') \
     FROM sale_payments p LEFT JOIN txn_status t ON t.store = p.store AND t.txn_id = p.txn_id \
     WHERE p.store = $1 AND p.day >= $2 AND p.day <= $3 AND p.method = 'qr' \
     ORDER BY p.payment_id LIMIT $4";
