-- meta becomes a rowid table. WITHOUT ROWID, it was one b-tree of whole records, and SQLite
-- compares a key against a record that overflows its page by reading all of that record: the
-- master data (megabytes with a big catalog) was read in full by every write that passed it
-- on its way down the tree, each sale's draft included. Here the keys have their own small
-- index, and a value is read only when it is asked for. Same columns, same statements.
CREATE TABLE meta_rowid (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta_rowid (key, value) SELECT key, value FROM meta;
DROP TABLE meta;
ALTER TABLE meta_rowid RENAME TO meta;
