-- Events stored while this till did not know their kind (a newer till's): materialised
-- and removed at the first open by a version that knows it.
CREATE TABLE unapplied (
    origin INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (origin, seq)
) WITHOUT ROWID;
