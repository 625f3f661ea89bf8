//! Prices in force at a given time: the item's base price, scheduled chain-wide changes, and
//! store overrides (which win over chain prices from their effective time on).

use crate::money::Minor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Where a price comes from. A store price beats a chain price effective at the same time.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PriceScope {
    /// A chain-wide price from HQ.
    Chain,
    /// A store-specific override.
    Store,
}

/// One scheduled price.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct ScheduledPrice {
    /// The SKU it applies to.
    pub sku: String,
    /// Price in minor units.
    pub price: Minor,
    /// From when it applies (ms since epoch).
    pub effective_from_ms: u64,
    /// Chain or store.
    pub scope: PriceScope,
}

/// All scheduled prices, per SKU sorted by effective time.
#[derive(Clone, Debug, Default)]
pub struct PriceBook {
    by_sku: BTreeMap<String, Vec<ScheduledPrice>>,
}

impl PriceBook {
    /// Builds a price book from scheduled entries.
    pub fn new(entries: impl IntoIterator<Item = ScheduledPrice>) -> Self {
        let mut book = PriceBook::default();
        for e in entries {
            book.insert(e);
        }
        book
    }

    /// Adds one scheduled price.
    pub fn insert(&mut self, e: ScheduledPrice) {
        let v = self.by_sku.entry(e.sku.clone()).or_default();
        v.push(e);
        v.sort_by_key(|p| (p.effective_from_ms, p.scope));
    }

    /// The price in force for `sku` at `at_ms`: the latest store override effective by then,
    /// else the latest chain price effective by then, else `base`.
    pub fn price_at(&self, sku: &str, base: Minor, at_ms: u64) -> Minor {
        self.latest(sku, PriceScope::Store, at_ms)
            .or_else(|| self.latest(sku, PriceScope::Chain, at_ms))
            .map_or(base, |p| p.price)
    }

    /// HQ's price for `sku` at `at_ms`, store overrides left out: the latest chain price
    /// effective by then, else `base`.
    pub fn chain_price_at(&self, sku: &str, base: Minor, at_ms: u64) -> Minor {
        self.latest(sku, PriceScope::Chain, at_ms)
            .map_or(base, |p| p.price)
    }

    /// The latest price of `scope` for `sku` effective by `at_ms`.
    fn latest(&self, sku: &str, scope: PriceScope, at_ms: u64) -> Option<&ScheduledPrice> {
        self.by_sku
            .get(sku)?
            .iter()
            .rev()
            .find(|p| p.scope == scope && p.effective_from_ms <= at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(price: Minor, at: u64, scope: PriceScope) -> ScheduledPrice {
        ScheduledPrice {
            sku: "A".into(),
            price,
            effective_from_ms: at,
            scope,
        }
    }

    /// Two chain prices and a store override of "A".
    fn book() -> PriceBook {
        PriceBook::new([
            p(120, 100, PriceScope::Chain),
            p(90, 300, PriceScope::Store),
            p(130, 200, PriceScope::Chain),
        ])
    }

    #[test]
    fn price_in_force_follows_the_sale_timestamp() {
        let book = book();
        let check = |at, expected| assert_eq!(book.price_at("A", 100, at), expected, "at {at}");
        check(50, 100);
        check(100, 120);
        check(250, 130);
        check(300, 90);
        check(10_000, 90);
        assert_eq!(book.price_at("B", 77, 10_000), 77);
    }

    #[test]
    fn the_chain_price_ignores_store_overrides() {
        let book = book();
        let check =
            |at, expected| assert_eq!(book.chain_price_at("A", 100, at), expected, "at {at}");
        check(50, 100);
        check(100, 120);
        check(300, 130);
        assert_eq!(book.chain_price_at("B", 77, 10_000), 77);
    }
}
