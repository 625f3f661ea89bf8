-- The fleet view counts each store's quarantined events: a partial index keeps that a
-- lookup rather than a scan of the store's events.
CREATE INDEX IF NOT EXISTS events_quarantined ON events (store) WHERE kind = 'Quarantined';
