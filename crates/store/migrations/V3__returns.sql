-- Units of paid sales returned by line (ItemsReturned events), and the money handed back.
CREATE TABLE returns (
    origin   INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    line_no  INTEGER NOT NULL,
    txn_id   TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    amount   INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    PRIMARY KEY (origin, seq, line_no)
) WITHOUT ROWID;
CREATE INDEX returns_txn ON returns (txn_id);
CREATE INDEX returns_at ON returns (at_ms);
