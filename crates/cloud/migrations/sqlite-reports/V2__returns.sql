-- Units of sales returned by line (ItemsReturned events) and the money handed back.
CREATE TABLE sale_returns (
    store TEXT NOT NULL, txn_id TEXT NOT NULL, origin INTEGER NOT NULL, seq INTEGER NOT NULL,
    line_no INTEGER NOT NULL, quantity INTEGER NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY (store, origin, seq, line_no)
) WITHOUT ROWID;
CREATE INDEX sale_returns_txn ON sale_returns (store, txn_id);
