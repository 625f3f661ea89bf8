//! The SQL of the PostgreSQL ledger's hot paths (ingest, projection) and of the reports
//! that read a sale row's arrays; what both dialects share is in `crate::sql`.

pub(super) const INSERT_EVENTS: &str = "INSERT INTO events (store, origin, seq, kind, hlc_ms, body) \
     SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[], $6::BYTEA[]) \
     ON CONFLICT DO NOTHING RETURNING origin";

/// A batch's watermarks, one row per origin.
pub(super) const UPSERT_ORIGINS: &str = "INSERT INTO origins (store, origin, contiguous, max_seq) \
     SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) \
     ON CONFLICT (store, origin) DO UPDATE SET contiguous = excluded.contiguous, max_seq = excluded.max_seq";

/// Sales with their lines and payments: one entry per sale, the lines and payments as array
/// literals (`write::text_array`, `write::int_array`) cast in the statement.
pub(super) const INSERT_SALES: &str = "INSERT INTO sales (store, txn_id, origin, seq, day, paid_ms, terminal, cashier, \
     subtotal, discount, tax, total, items, line_nos, line_skus, line_quantities, line_totals, \
     pay_ids, pay_methods, pay_providers, pay_amounts) \
     SELECT $1, txn_id, origin, seq, day, paid_ms, terminal, cashier, subtotal, discount, tax, total, items, \
     nos::BIGINT[], skus::TEXT[], qs::BIGINT[], tots::BIGINT[], ids::TEXT[], ms::TEXT[], prs::TEXT[], amts::BIGINT[] \
     FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], \
     $8::TEXT[], $9::BIGINT[], $10::BIGINT[], $11::BIGINT[], $12::BIGINT[], $13::BIGINT[], \
     $14::TEXT[], $15::TEXT[], $16::TEXT[], $17::TEXT[], $18::TEXT[], $19::TEXT[], $20::TEXT[], $21::TEXT[]) \
     AS s(txn_id, origin, seq, day, paid_ms, terminal, cashier, subtotal, discount, tax, total, items, \
     nos, skus, qs, tots, ids, ms, prs, amts) \
     ON CONFLICT DO NOTHING";

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

/// Payments per store, day, method and provider (`sql::PAYMENTS_BY_DAY`, over the sale rows'
/// payment arrays).
pub(super) const PAYMENTS_BY_DAY: &str = "SELECT s.store, s.day, p.method, p.provider, COUNT(*), CAST(SUM(p.amount) AS BIGINT), \
     CAST(SUM(CASE WHEN t.status IN ('VOID', 'REFUNDED') THEN p.amount ELSE 0 END) AS BIGINT) \
     FROM sales s CROSS JOIN LATERAL UNNEST(s.pay_methods, s.pay_providers, s.pay_amounts) AS p(method, provider, amount) \
     LEFT JOIN txn_status t ON t.store = s.store AND t.txn_id = s.txn_id \
     WHERE s.day >= $1 AND s.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR s.store = $3) \
     GROUP BY s.store, s.day, p.method, p.provider ORDER BY s.store, s.day, p.method, p.provider";

/// Best sellers (`sql::TOP_SKUS`, over the sale rows' line arrays).
pub(super) const TOP_SKUS: &str = "SELECT l.sku, CAST(SUM(l.quantity) AS BIGINT), CAST(SUM(l.total) AS BIGINT) \
     FROM sales s CROSS JOIN LATERAL UNNEST(s.line_skus, s.line_quantities, s.line_totals) AS l(sku, quantity, total) \
     LEFT JOIN txn_status t ON t.store = s.store AND t.txn_id = s.txn_id \
     WHERE s.day >= $1 AND s.day <= $2 AND (CAST($3 AS TEXT) IS NULL OR s.store = $3) \
     AND COALESCE(t.status, 'PAID') NOT IN ('VOID', 'REFUNDED') \
     GROUP BY l.sku ORDER BY 2 DESC, 1 LIMIT $4";

/// A store's QR payments (`sql::QR_PAYMENTS`, over the sale rows' payment arrays).
pub(super) const QR_PAYMENTS: &str = "SELECT p.payment_id, s.txn_id, p.amount, p.provider, COALESCE(t.status, 'PAID') \
     FROM sales s CROSS JOIN LATERAL UNNEST(s.pay_ids, s.pay_methods, s.pay_providers, s.pay_amounts) \
     AS p(payment_id, method, provider, amount) \
     LEFT JOIN txn_status t ON t.store = s.store AND t.txn_id = s.txn_id \
     WHERE s.store = $1 AND s.day >= $2 AND s.day <= $3 AND p.method = 'qr' \
     ORDER BY p.payment_id LIMIT $4";
