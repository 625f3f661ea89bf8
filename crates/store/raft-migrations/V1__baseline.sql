-- raft.db as v0.1.0 found it: the log (entries are the consensus crate's encoding) and the
-- vote, committed index and snapshot.
CREATE TABLE raft_log (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE raft_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
