-- Loyalty across stores. Each store's points per customer (the PN-counter's entries, merged
-- by maximum); every change to a customer's record, from a store (automerge bytes) or from
-- HQ (store '', JSON fields); and the customers whose HQ record is to be rebuilt.
CREATE TABLE customer_points (
    customer TEXT NOT NULL, store TEXT NOT NULL, replica BIGINT NOT NULL,
    p BIGINT NOT NULL, n BIGINT NOT NULL,
    PRIMARY KEY (customer, store, replica)
);
CREATE TABLE customer_changes (
    customer TEXT NOT NULL, store TEXT NOT NULL, origin BIGINT NOT NULL, seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL, change BLOB NOT NULL,
    PRIMARY KEY (customer, store, origin, seq)
);
CREATE TABLE customers_dirty (customer TEXT PRIMARY KEY, mark BIGINT NOT NULL);
