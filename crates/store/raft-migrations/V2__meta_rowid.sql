-- raft_meta becomes a rowid table, for the reason given in migrations/V5__meta_rowid.sql:
-- the snapshot (the store's master data, megabytes with a big catalog) was read in full by
-- every write of the vote or the committed index that passed it. Same columns.
CREATE TABLE raft_meta_rowid (key TEXT PRIMARY KEY, value BLOB NOT NULL);
INSERT INTO raft_meta_rowid (key, value) SELECT key, value FROM raft_meta;
DROP TABLE raft_meta;
ALTER TABLE raft_meta_rowid RENAME TO raft_meta;
