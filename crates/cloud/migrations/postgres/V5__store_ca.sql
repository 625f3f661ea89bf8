-- Enrolment at HQ: a store's CA (certificate and key, PEM), which signs the certificate
-- of each till a manager approves, and the next terminal id it issues; one row per
-- terminal issued, keyed also by the till's key so a repeated request gets the same id.
CREATE TABLE IF NOT EXISTS store_ca (
    store_id      TEXT PRIMARY KEY,
    cert          TEXT NOT NULL,
    key           TEXT NOT NULL,
    next_terminal BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS enrolments (
    store_id    TEXT NOT NULL,
    terminal    BIGINT NOT NULL,
    key_sha256  TEXT NOT NULL,
    code        TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (store_id, terminal),
    UNIQUE (store_id, key_sha256)
);
