-- The second master-data stream (categories, customers) counts its own versions.
INSERT INTO counters (name, value) VALUES ('master_ext_version', 0) ON CONFLICT DO NOTHING;
