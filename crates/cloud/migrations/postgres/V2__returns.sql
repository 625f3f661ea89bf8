-- Units of sales returned by line (ItemsReturned events) and the money handed back.
CREATE TABLE sale_returns (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, origin BIGINT NOT NULL, seq BIGINT NOT NULL,
    line_no BIGINT NOT NULL, quantity BIGINT NOT NULL, amount BIGINT NOT NULL,
    PRIMARY KEY (store, origin, seq, line_no)
);
CREATE INDEX sale_returns_txn ON sale_returns (store, txn_id);
