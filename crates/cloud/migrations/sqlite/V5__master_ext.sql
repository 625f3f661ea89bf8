-- The second master-data stream (categories, customers) counts its own versions.
INSERT OR IGNORE INTO counters (name, value) VALUES ('master_ext_version', 0);
