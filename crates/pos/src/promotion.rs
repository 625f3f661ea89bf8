//! Promotions: percentage, fixed amount per unit, and buy-X-get-Y, limited by date range,
//! minimum basket and eligible SKUs/categories.
//!
//! Choice rule (deterministic): promotions do not stack. For each line, among the promotions
//! eligible for it, the one giving the largest discount wins; equal discounts are broken by
//! the smaller promotion id. The minimum basket is checked against the basket subtotal
//! before any discount.

use crate::money::{BasisPoints, Minor, apply_bp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a promotion gives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PromotionKind {
    /// A percentage off the line, in basis points.
    Percentage {
        /// 1000 = 10 % off.
        bp: BasisPoints,
    },
    /// A fixed amount off each unit (never below zero).
    FixedAmount {
        /// Minor units off each unit.
        amount: Minor,
    },
    /// For every `buy + get` units, `get` are free.
    BuyXGetY {
        /// Units paid.
        buy: u32,
        /// Units free.
        get: u32,
    },
}

/// One promotion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Promotion {
    /// Unique id; the tie-breaker.
    pub id: String,
    /// Shown on the receipt.
    pub name: String,
    /// The benefit.
    #[serde(flatten)]
    pub kind: PromotionKind,
    /// Valid from (inclusive, ms since epoch).
    #[serde(default)]
    pub starts_ms: u64,
    /// Valid until (exclusive, ms since epoch).
    #[serde(default = "far_future")]
    pub ends_ms: u64,
    /// Minimum basket subtotal before discounts.
    #[serde(default)]
    pub min_basket: Minor,
    /// Eligible SKUs (empty with empty categories = everything).
    #[serde(default)]
    pub skus: Vec<String>,
    /// Eligible categories.
    #[serde(default)]
    pub categories: Vec<String>,
}

fn far_future() -> u64 {
    u64::MAX
}

impl Promotion {
    /// Whether this promotion is valid for an item at `at_ms` in a basket of `subtotal`.
    pub fn eligible(&self, sku: &str, category: &str, subtotal: Minor, at_ms: u64) -> bool {
        let targets_all = self.skus.is_empty() && self.categories.is_empty();
        (self.starts_ms..self.ends_ms).contains(&at_ms)
            && subtotal >= self.min_basket
            && (targets_all
                || self.skus.iter().any(|s| s == sku)
                || self.categories.iter().any(|c| c == category))
    }

    /// The discount this promotion gives on `quantity` units at `unit_price`.
    pub fn discount(&self, unit_price: Minor, quantity: u32) -> Minor {
        let gross = unit_price.saturating_mul(Minor::from(quantity));
        let d = match self.kind {
            PromotionKind::Percentage { bp } => apply_bp(gross, bp.min(10_000)),
            PromotionKind::FixedAmount { amount } => amount
                .clamp(0, unit_price)
                .saturating_mul(Minor::from(quantity)),
            PromotionKind::BuyXGetY { buy, get } => {
                let group = buy.saturating_add(get);
                if group == 0 || get == 0 {
                    0
                } else {
                    Minor::from(quantity.checked_div(group).unwrap_or(0).saturating_mul(get))
                        .saturating_mul(unit_price)
                }
            }
        };
        d.clamp(0, gross)
    }
}

/// Picks the best promotion for one line by the documented rule; returns it with its
/// discount, or `None` when nothing applies or the best discount is zero.
pub fn best_for_line<'a>(
    promos: &'a [Promotion],
    sku: &str,
    category: &str,
    unit_price: Minor,
    quantity: u32,
    subtotal: Minor,
    at_ms: u64,
) -> Option<(&'a Promotion, Minor)> {
    promos
        .iter()
        .filter(|p| p.eligible(sku, category, subtotal, at_ms))
        .map(|p| (p, p.discount(unit_price, quantity)))
        .filter(|(_, d)| *d > 0)
        // max by discount, then min by id: compare (discount, Reverse(id)).
        .max_by(|(a, da), (b, db)| da.cmp(db).then_with(|| b.id.cmp(&a.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promo(id: &str, kind: PromotionKind) -> Promotion {
        Promotion {
            id: id.into(),
            name: id.into(),
            kind,
            starts_ms: 100,
            ends_ms: 200,
            min_basket: 0,
            skus: vec!["A".into()],
            categories: vec![],
        }
    }

    #[test]
    fn each_kind_computes_its_discount() {
        assert_eq!(
            promo("p", PromotionKind::Percentage { bp: 1500 }).discount(333, 3),
            150
        );
        assert_eq!(
            promo("f", PromotionKind::FixedAmount { amount: 50 }).discount(40, 2),
            80
        );
        let b2g1 = promo("b", PromotionKind::BuyXGetY { buy: 2, get: 1 });
        assert_eq!(b2g1.discount(100, 2), 0);
        assert_eq!(b2g1.discount(100, 3), 100);
        assert_eq!(b2g1.discount(100, 7), 200);
    }

    #[test]
    fn eligibility_checks_dates_basket_and_targets() {
        let mut p = promo("p", PromotionKind::Percentage { bp: 1000 });
        p.min_basket = 500;
        assert!(p.eligible("A", "x", 500, 100));
        assert!(!p.eligible("A", "x", 499, 100));
        assert!(!p.eligible("A", "x", 500, 200));
        assert!(!p.eligible("B", "x", 500, 150));
        p.categories = vec!["x".into()];
        assert!(p.eligible("B", "x", 500, 150));
    }

    #[test]
    fn choice_is_largest_discount_then_smallest_id() {
        let promos = vec![
            promo("z", PromotionKind::FixedAmount { amount: 10 }),
            promo("b", PromotionKind::Percentage { bp: 1000 }),
            promo("a", PromotionKind::Percentage { bp: 1000 }),
        ];
        let (p, d) = best_for_line(&promos, "A", "x", 100, 1, 100, 150).unwrap();
        assert_eq!((p.id.as_str(), d), ("a", 10));
        assert!(best_for_line(&promos, "A", "x", 100, 1, 100, 250).is_none());
    }
}
