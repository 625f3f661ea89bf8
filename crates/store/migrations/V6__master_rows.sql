-- A till keeps HQ's master data as rows of `master` (kind, then the record's key as the
-- store's Raft group committed it, `kind:key`), written as they change, instead of one JSON
-- value in `meta` rewritten whole at every change. The table was never written before; this
-- version starts it empty, and marks the change, so that an older binary refuses this
-- database instead of missing its master data. The first master data a till applies after
-- this writes every row and removes the old value.
DELETE FROM master;
