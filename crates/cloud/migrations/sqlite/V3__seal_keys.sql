-- What the cloud checks a store's seals with: the store CA pinned by `hq add-store
-- --ca-cert` (kind 'ca', origin 0) and the key records its tills announced (kind 'key',
-- JSON of tillmesh_pos::seal::KeyRecord), per origin and first sealed sequence number.
CREATE TABLE IF NOT EXISTS seal_keys (
    store_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    origin     INTEGER NOT NULL,
    signs_from INTEGER NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (store_id, kind, origin, signs_from)
) WITHOUT ROWID;
