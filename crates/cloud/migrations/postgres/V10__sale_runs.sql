-- Sales are stored in runs: one row per store, origin, projection step and local day, holding
-- that step's sales of that day as parallel arrays (their lines and payments flattened, each
-- with the 1-based index of its sale in the run). A projection step writes a row or two
-- instead of a row and two index entries per sale, with its arrays sent in binary (no text
-- literal parsed per sale) and compressed together. The reports read the views below, which
-- give the rows of the tables they replace.
CREATE TABLE sale_runs (
    store TEXT COLLATE "C" NOT NULL, origin BIGINT NOT NULL, first_seq BIGINT NOT NULL,
    day BIGINT NOT NULL,
    txn_ids TEXT[] NOT NULL, seqs BIGINT[] NOT NULL, paid_ms BIGINT[] NOT NULL,
    terminals BIGINT[] NOT NULL, cashiers TEXT[] NOT NULL, subtotals BIGINT[] NOT NULL,
    discounts BIGINT[] NOT NULL, taxes BIGINT[] NOT NULL, totals BIGINT[] NOT NULL,
    items BIGINT[] NOT NULL,
    line_sales INT[] NOT NULL, line_nos BIGINT[] NOT NULL, line_skus TEXT[] NOT NULL,
    line_quantities BIGINT[] NOT NULL, line_totals BIGINT[] NOT NULL,
    pay_sales INT[] NOT NULL, pay_ids TEXT[] NOT NULL, pay_methods TEXT[] NOT NULL,
    pay_providers TEXT[] NOT NULL, pay_amounts BIGINT[] NOT NULL,
    PRIMARY KEY (store, origin, first_seq, day)
);
CREATE INDEX sale_runs_by_day ON sale_runs (day, store);

-- lz4 compresses a run's arrays in about a third of pglz's time (the default); a server
-- built without lz4 stores them uncompressed instead.
DO $$
DECLARE c TEXT;
BEGIN
    FOREACH c IN ARRAY ARRAY['txn_ids', 'seqs', 'paid_ms', 'terminals', 'cashiers', 'subtotals',
        'discounts', 'taxes', 'totals', 'items', 'line_sales', 'line_nos', 'line_skus',
        'line_quantities', 'line_totals', 'pay_sales', 'pay_ids', 'pay_methods', 'pay_providers',
        'pay_amounts']
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE sale_runs ALTER COLUMN %I SET COMPRESSION lz4', c);
        EXCEPTION WHEN feature_not_supported THEN
            EXECUTE format('ALTER TABLE sale_runs ALTER COLUMN %I SET STORAGE EXTERNAL', c);
        END;
    END LOOP;
END $$;

-- Each sale already folded becomes a run of its own.
INSERT INTO sale_runs
SELECT store, origin, seq, day, ARRAY[txn_id], ARRAY[seq], ARRAY[paid_ms], ARRAY[terminal],
    ARRAY[cashier], ARRAY[subtotal], ARRAY[discount], ARRAY[tax], ARRAY[total], ARRAY[items],
    array_fill(1, ARRAY[cardinality(line_nos)]), line_nos, line_skus, line_quantities, line_totals,
    array_fill(1, ARRAY[cardinality(pay_ids)]), pay_ids, pay_methods, pay_providers, pay_amounts
FROM sales;
DROP TABLE sales;

-- A sale per row (the reports' `sales`).
CREATE VIEW sales AS
SELECT r.store, s.txn_id, r.origin, s.seq, r.day, s.paid_ms, s.terminal, s.cashier, s.subtotal,
    s.discount, s.tax, s.total, s.items
FROM sale_runs r CROSS JOIN LATERAL UNNEST(r.txn_ids, r.seqs, r.paid_ms, r.terminals,
    r.cashiers, r.subtotals, r.discounts, r.taxes, r.totals, r.items)
    AS s(txn_id, seq, paid_ms, terminal, cashier, subtotal, discount, tax, total, items);

-- A sold line per row, with its sale's id.
CREATE VIEW sale_lines AS
SELECT r.store, x.txn_id, l.line_no, r.day, l.sku, l.quantity, l.total
FROM sale_runs r CROSS JOIN LATERAL UNNEST(r.line_sales, r.line_nos, r.line_skus,
    r.line_quantities, r.line_totals) AS l(sale, line_no, sku, quantity, total)
JOIN LATERAL UNNEST(r.txn_ids) WITH ORDINALITY AS x(txn_id, i) ON x.i = l.sale;

-- A payment per row, with its sale's id.
CREATE VIEW sale_payments AS
SELECT r.store, x.txn_id, p.payment_id, r.day, p.method, p.provider, p.amount
FROM sale_runs r CROSS JOIN LATERAL UNNEST(r.pay_sales, r.pay_ids, r.pay_methods,
    r.pay_providers, r.pay_amounts) AS p(sale, payment_id, method, provider, amount)
JOIN LATERAL UNNEST(r.txn_ids) WITH ORDINALITY AS x(txn_id, i) ON x.i = p.sale;
