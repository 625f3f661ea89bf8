-- The store's master-data records (catalog, prices, promotions, cashiers, categories,
-- customers) as the Raft state machine applied them: a row per record, written with the
-- machine's state in one commit. They were one encoded map in raft_meta ('master'), which
-- every till also held in memory (16 MB with 50,000 SKUs). The consensus crate moves an
-- existing map here when it opens the database (SQL cannot read its encoding).
CREATE TABLE raft_master (key TEXT PRIMARY KEY, json TEXT NOT NULL);
