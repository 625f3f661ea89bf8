-- Stored-value accounts (gift cards, store credit, coupons): the entries of each account's
-- bounded counter, merged by maximum. part: c created, m moved (a gives to b), s spent.
CREATE TABLE balances (
    store TEXT NOT NULL, account TEXT NOT NULL, part TEXT NOT NULL,
    a BIGINT NOT NULL, b BIGINT NOT NULL, value BIGINT NOT NULL,
    PRIMARY KEY (store, account, part, a, b)
);
