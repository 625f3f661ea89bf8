//! The cart of a draft transaction: lines added by barcode (or weighed, for items sold by
//! weight), quantity changes, removals, the duplicate-scan guard, and running totals under
//! the rounding rule of [`crate::money`].

use crate::catalog::{Catalog, CatalogError};
use crate::money::{BasisPoints, Minor, apply_bp};
use crate::pricing::PriceBook;
use crate::promotion::{Promotion, best_for_line};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest quantity on one line.
pub const LINE_QUANTITY_MAX: u32 = 9_999;
/// Largest number of lines in one cart.
pub const CART_LINES_MAX: usize = 500;

/// Heaviest weighed line, in grams (a till's scale weighs up to 30 kg; a typed weight past
/// this is a slip of the keyboard).
pub const WEIGHT_G_MAX: u32 = 50_000;

/// A weighed line: what was weighed and at what price per kilogram. The line itself sells one
/// unit at the weighed price (`unit_price = round(grams * price_per_kg / 1000)`), and the
/// item's stock is counted in grams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineWeight {
    /// The weighed line.
    pub line_no: u32,
    /// Net weight in grams.
    pub grams: u32,
    /// Price per kilogram in force when it was weighed (minor units).
    pub price_per_kg: Minor,
}

/// The price of `grams` at `price_per_kg`, rounded half away from zero to a minor unit.
pub fn weighed_price(grams: u32, price_per_kg: Minor) -> Minor {
    let rounded = crate::money::div_round(
        i128::from(grams).saturating_mul(i128::from(price_per_kg)),
        1000,
    );
    Minor::try_from(rounded).unwrap_or(Minor::MAX)
}

/// One line of the cart, priced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Line {
    /// Line number, stable for the life of the cart (1-based).
    pub line_no: u32,
    /// SKU sold.
    pub sku: String,
    /// Barcode scanned (normalised).
    pub barcode: String,
    /// Product name at the time of sale.
    pub name: String,
    /// Category at the time of sale.
    pub category: String,
    /// Units.
    pub quantity: u32,
    /// Unit price in force when the line was added.
    pub unit_price: Minor,
    /// Tax rate at the time of sale.
    pub tax_rate_bp: BasisPoints,
    /// `unit_price * quantity`.
    pub gross: Minor,
    /// Discount from the applied promotion.
    pub discount: Minor,
    /// The applied promotion's id and name.
    pub promotion: Option<AppliedPromotion>,
    /// Tax on `gross - discount`, rounded per line.
    pub tax: Minor,
    /// `gross - discount + tax`.
    pub total: Minor,
}

/// A promotion as applied to a line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppliedPromotion {
    /// Promotion id.
    pub id: String,
    /// Promotion name.
    pub name: String,
}

/// Totals of a cart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Totals {
    /// Sum of gross line amounts.
    pub subtotal: Minor,
    /// Sum of line discounts.
    pub discount: Minor,
    /// Sum of rounded line taxes.
    pub tax: Minor,
    /// `subtotal - discount + tax`.
    pub total: Minor,
    /// Number of units.
    pub items: u32,
}

/// Cart errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    /// The catalog refused the barcode.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The same barcode was scanned again within the guard window.
    #[error(
        "barcode {barcode} was scanned again within {window_ms} ms; change the quantity instead, or scan again after the window"
    )]
    DuplicateScan {
        /// The barcode.
        barcode: String,
        /// The guard window.
        window_ms: u64,
    },
    /// No such line.
    #[error("line {0} is not in this transaction")]
    UnknownLine(u32),
    /// Quantity out of range.
    #[error("quantity must be between 1 and {LINE_QUANTITY_MAX}, got {0}")]
    BadQuantity(i64),
    /// Too many lines.
    #[error("a transaction holds at most {CART_LINES_MAX} lines")]
    TooManyLines,
    /// The item is sold by weight: it needs a weight, not a quantity.
    #[error("{0} is sold by weight: weigh it")]
    NeedsWeight(String),
    /// A weight was given for an item sold by the unit.
    #[error("{0} is sold by the unit, not by weight")]
    NotByWeight(String),
    /// Weight out of range.
    #[error("a weight must be between 1 and {WEIGHT_G_MAX} grams, got {0}")]
    BadWeight(i64),
    /// A weighed line's quantity cannot change (weigh the item again instead).
    #[error("line {0} was weighed: remove it and weigh again")]
    WeighedLine(u32),
}

/// A cart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    lines: Vec<Line>,
    next_line: u32,
    last_scan: Option<(String, u64)>,
    /// The weighed lines' weights, by line.
    #[serde(default)]
    weights: Vec<LineWeight>,
}

/// Everything a cart needs to price itself.
#[derive(Clone, Copy, Debug)]
pub struct PricingContext<'a> {
    /// The catalog.
    pub catalog: &'a Catalog,
    /// Scheduled prices.
    pub prices: &'a PriceBook,
    /// Active promotions.
    pub promotions: &'a [Promotion],
    /// Duplicate-scan guard window.
    pub scan_guard_ms: u64,
}

impl Cart {
    /// An empty cart.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lines.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The weighed lines' weights.
    pub fn weights(&self) -> &[LineWeight] {
        &self.weights
    }

    /// Whether the cart has no line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Adds `quantity` of the item with `barcode` at the price in force at `now_ms`. The same
    /// SKU at the same price merges into its existing line. Nothing changes on error.
    pub fn add_barcode(
        &mut self,
        ctx: &PricingContext<'_>,
        barcode: &str,
        quantity: u32,
        now_ms: u64,
    ) -> Result<u32, CartError> {
        check_quantity(i64::from(quantity))?;
        let item = ctx.catalog.lookup(barcode)?;
        if item.sold_by_weight {
            return Err(CartError::NeedsWeight(item.name.clone()));
        }
        let code = item
            .barcodes
            .iter()
            .find(|b| crate::catalog::normalise_barcode(barcode).is_ok_and(|n| n == *b))
            .map_or_else(|| barcode.to_string(), str::to_string);
        if let Some((last, at)) = &self.last_scan
            && *last == code
            && now_ms.saturating_sub(*at) < ctx.scan_guard_ms
        {
            return Err(CartError::DuplicateScan {
                barcode: code,
                window_ms: ctx.scan_guard_ms,
            });
        }
        let unit_price = ctx.prices.price_at(&item.sku, item.base_price, now_ms);
        let line_no =
            if let Some(line) = self.lines.iter_mut().find(|l| {
                l.sku == item.sku && l.unit_price == unit_price && !weighed(&self.weights, l)
            }) {
                let q = line.quantity.saturating_add(quantity);
                check_quantity(i64::from(q))?;
                line.quantity = q;
                line.line_no
            } else {
                self.push_line(item, &code, quantity, unit_price)?
            };
        self.last_scan = Some((code, now_ms));
        self.reprice(ctx.promotions, now_ms);
        Ok(line_no)
    }

    /// Adds a weighed line for the item with `barcode` (sold by weight): `grams` at the price
    /// per kilogram in force at `now_ms`. Every weighing is a line of its own; the scan guard
    /// does not apply (the cashier weighed it on purpose). Nothing changes on error.
    pub fn add_weighed(
        &mut self,
        ctx: &PricingContext<'_>,
        barcode: &str,
        grams: i64,
        now_ms: u64,
    ) -> Result<u32, CartError> {
        let item = ctx.catalog.lookup(barcode)?;
        if !item.sold_by_weight {
            return Err(CartError::NotByWeight(item.name.clone()));
        }
        let grams = u32::try_from(grams)
            .ok()
            .filter(|g| (1..=WEIGHT_G_MAX).contains(g))
            .ok_or(CartError::BadWeight(grams))?;
        let code = crate::catalog::normalise_barcode(barcode).unwrap_or_else(|_| barcode.into());
        let price_per_kg = ctx.prices.price_at(&item.sku, item.base_price, now_ms);
        let unit_price = weighed_price(grams, price_per_kg);
        if !crate::money::valid_price(unit_price) {
            return Err(CartError::BadWeight(i64::from(grams)));
        }
        let line_no = self.push_line(item, &code, 1, unit_price)?;
        self.weights.push(LineWeight {
            line_no,
            grams,
            price_per_kg,
        });
        self.last_scan = Some((code, now_ms));
        self.reprice(ctx.promotions, now_ms);
        Ok(line_no)
    }

    /// Appends a new line (priced by the next `reprice`); answers its number.
    fn push_line(
        &mut self,
        item: &crate::catalog::Item,
        code: &str,
        quantity: u32,
        unit_price: Minor,
    ) -> Result<u32, CartError> {
        if self.lines.len() >= CART_LINES_MAX {
            return Err(CartError::TooManyLines);
        }
        self.next_line = self.next_line.saturating_add(1);
        self.lines.push(Line {
            line_no: self.next_line,
            sku: item.sku.clone(),
            barcode: code.to_owned(),
            name: item.name.clone(),
            category: item.category.clone(),
            quantity,
            unit_price,
            tax_rate_bp: item.tax_rate_bp,
            gross: 0,
            discount: 0,
            promotion: None,
            tax: 0,
            total: 0,
        });
        Ok(self.next_line)
    }

    /// Sets a line's quantity.
    pub fn set_quantity(
        &mut self,
        promotions: &[Promotion],
        line_no: u32,
        quantity: i64,
        now_ms: u64,
    ) -> Result<(), CartError> {
        check_quantity(quantity)?;
        if self.weights.iter().any(|w| w.line_no == line_no) {
            return Err(CartError::WeighedLine(line_no));
        }
        let line = self
            .lines
            .iter_mut()
            .find(|l| l.line_no == line_no)
            .ok_or(CartError::UnknownLine(line_no))?;
        line.quantity = quantity as u32;
        self.reprice(promotions, now_ms);
        Ok(())
    }

    /// Removes a line.
    pub fn remove_line(
        &mut self,
        promotions: &[Promotion],
        line_no: u32,
        now_ms: u64,
    ) -> Result<(), CartError> {
        let idx = self
            .lines
            .iter()
            .position(|l| l.line_no == line_no)
            .ok_or(CartError::UnknownLine(line_no))?;
        self.lines.remove(idx);
        self.weights.retain(|w| w.line_no != line_no);
        self.reprice(promotions, now_ms);
        Ok(())
    }

    /// Recomputes every line's gross, discount, tax and total. Promotions are evaluated at
    /// `now_ms` against the basket subtotal.
    pub fn reprice(&mut self, promotions: &[Promotion], now_ms: u64) {
        let subtotal: Minor = self
            .lines
            .iter()
            .map(|l| l.unit_price.saturating_mul(Minor::from(l.quantity)))
            .fold(0, Minor::saturating_add);
        for l in &mut self.lines {
            l.gross = l.unit_price.saturating_mul(Minor::from(l.quantity));
            let best = best_for_line(
                promotions,
                &l.sku,
                &l.category,
                l.unit_price,
                l.quantity,
                subtotal,
                now_ms,
            );
            (l.discount, l.promotion) = match best {
                Some((p, d)) => (
                    d,
                    Some(AppliedPromotion {
                        id: p.id.clone(),
                        name: p.name.clone(),
                    }),
                ),
                None => (0, None),
            };
            let net = l.gross.saturating_sub(l.discount);
            l.tax = apply_bp(net, l.tax_rate_bp);
            l.total = net.saturating_add(l.tax);
        }
    }

    /// The running totals.
    pub fn totals(&self) -> Totals {
        totals_of(&self.lines)
    }
}

/// Totals of a list of priced lines.
pub fn totals_of(lines: &[Line]) -> Totals {
    let mut t = Totals::default();
    for l in lines {
        t.subtotal = t.subtotal.saturating_add(l.gross);
        t.discount = t.discount.saturating_add(l.discount);
        t.tax = t.tax.saturating_add(l.tax);
        t.total = t.total.saturating_add(l.total);
        t.items = t.items.saturating_add(l.quantity);
    }
    t
}

fn weighed(weights: &[LineWeight], l: &Line) -> bool {
    weights.iter().any(|w| w.line_no == l.line_no)
}

/// The stock a line takes: its units, or its grams when it was weighed.
pub fn stock_units(weights: &[LineWeight], l: &Line) -> i64 {
    weights
        .iter()
        .find(|w| w.line_no == l.line_no)
        .map_or(i64::from(l.quantity), |w| i64::from(w.grams))
}

fn check_quantity(q: i64) -> Result<(), CartError> {
    if (1..=i64::from(LINE_QUANTITY_MAX)).contains(&q) {
        Ok(())
    } else {
        Err(CartError::BadQuantity(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Item;
    use crate::promotion::PromotionKind;

    fn catalog() -> Catalog {
        let item = |sku: &str, code: &str, price, cat: &str| Item {
            sku: sku.into(),
            name: format!("{sku} name"),
            category: cat.into(),
            tax_rate_bp: 1000,
            base_price: price,
            barcodes: [code].into_iter().collect(),
            active: true,
            low_stock_threshold: 0,
            sold_by_weight: false,
        };
        let bananas = Item {
            sold_by_weight: true,
            ..item("BANANA", "2000000000015", 2990, "produce")
        };
        Catalog::new(vec![
            item("COLA", "4006381333931", 1000, "drinks"),
            item("CHIPS", "96385074", 1550, "snacks"),
            bananas,
        ])
        .unwrap()
    }

    /// The tests' pricing: a 3-second scan guard.
    fn ctx<'a>(
        catalog: &'a Catalog,
        prices: &'a PriceBook,
        promotions: &'a [Promotion],
    ) -> PricingContext<'a> {
        PricingContext {
            catalog,
            prices,
            promotions,
            scan_guard_ms: 3000,
        }
    }

    #[test]
    fn totals_follow_the_rounding_rule_and_promotions() {
        let cat = catalog();
        let prices = PriceBook::default();
        let promos = vec![Promotion {
            id: "SNACK15".into(),
            name: "15% off snacks".into(),
            kind: PromotionKind::Percentage { bp: 1500 },
            starts_ms: 0,
            ends_ms: u64::MAX,
            min_basket: 0,
            skus: vec![],
            categories: vec!["snacks".into()],
        }];
        let ctx = ctx(&cat, &prices, &promos);
        let mut cart = Cart::new();
        cart.add_barcode(&ctx, "4006381333931", 2, 0).unwrap();
        let chips = cart.add_barcode(&ctx, "96385074", 1, 10).unwrap();
        // chips: gross 1550, discount 232.5 -> 233, tax on 1317 -> 131.7 -> 132
        let l = &cart.lines()[1];
        assert_eq!(
            (l.gross, l.discount, l.tax, l.total),
            (1550, 233, 132, 1449)
        );
        assert_eq!(l.promotion.as_ref().unwrap().id, "SNACK15");
        let t = cart.totals();
        assert_eq!(
            (t.subtotal, t.discount, t.tax, t.total, t.items),
            (3550, 233, 332, 3649, 3)
        );
        cart.set_quantity(&promos, chips, 2, 20).unwrap();
        assert_eq!(cart.totals().subtotal, 5100);
        cart.remove_line(&promos, chips, 30).unwrap();
        assert_eq!(cart.totals().total, 2200);
    }

    #[test]
    fn duplicate_scan_within_window_is_refused_and_changes_nothing() {
        let cat = catalog();
        let prices = PriceBook::default();
        let ctx = ctx(&cat, &prices, &[]);
        let mut cart = Cart::new();
        cart.add_barcode(&ctx, "96385074", 1, 1000).unwrap();
        let before = cart.clone();
        assert!(matches!(
            cart.add_barcode(&ctx, "96385074", 1, 3999),
            Err(CartError::DuplicateScan { .. })
        ));
        assert_eq!(cart, before);
        cart.add_barcode(&ctx, "96385074", 1, 4000).unwrap();
        assert_eq!(cart.lines()[0].quantity, 2);
        assert!(matches!(
            cart.set_quantity(&[], 1, 0, 0),
            Err(CartError::BadQuantity(0))
        ));
        assert!(matches!(
            cart.remove_line(&[], 9, 0),
            Err(CartError::UnknownLine(9))
        ));
    }

    #[test]
    fn a_weighed_item_is_priced_by_its_weight_and_never_merged_or_requantified() {
        let cat = catalog();
        let prices = PriceBook::default();
        let ctx = ctx(&cat, &prices, &[]);
        let mut cart = Cart::new();
        // 1.234 kg at 29.90/kg = 36.8966 -> 36.90; tax 10 % of 3690 = 369.
        let a = cart.add_weighed(&ctx, "2000000000015", 1234, 0).unwrap();
        let l = &cart.lines()[0];
        assert_eq!(
            (l.quantity, l.unit_price, l.tax, l.total),
            (1, 3690, 369, 4059)
        );
        assert_eq!(stock_units(cart.weights(), l), 1234);
        // A second weighing is a line of its own, even straight after (no scan guard).
        let b = cart.add_weighed(&ctx, "2000000000015", 500, 1).unwrap();
        assert_ne!(a, b);
        assert_eq!(cart.lines()[1].unit_price, 1495);
        let before = cart.clone();
        assert!(matches!(
            cart.set_quantity(&[], b, 2, 2),
            Err(CartError::WeighedLine(_))
        ));
        assert!(matches!(
            cart.add_barcode(&ctx, "2000000000015", 1, 3000),
            Err(CartError::NeedsWeight(_))
        ));
        assert!(matches!(
            cart.add_weighed(&ctx, "96385074", 100, 3000),
            Err(CartError::NotByWeight(_))
        ));
        for g in [0, -5, i64::from(WEIGHT_G_MAX) + 1] {
            assert!(matches!(
                cart.add_weighed(&ctx, "2000000000015", g, 3000),
                Err(CartError::BadWeight(_))
            ));
        }
        assert_eq!(cart, before, "refusals change nothing");
        cart.remove_line(&[], a, 4).unwrap();
        assert_eq!(cart.weights().len(), 1);
        assert_eq!(cart.weights()[0].line_no, b);
        assert_eq!(weighed_price(1, 2990), 3, "2.99 rounds up");
        // 50 kg at the highest price per kg is past the highest line price: refused.
        let dear = Catalog::new(vec![Item {
            base_price: crate::money::PRICE_MAX,
            ..cat.lookup("2000000000015").unwrap().clone()
        }])
        .unwrap();
        let ctx = PricingContext {
            catalog: &dear,
            ..ctx
        };
        assert!(matches!(
            cart.add_weighed(&ctx, "2000000000015", i64::from(WEIGHT_G_MAX), 5),
            Err(CartError::BadWeight(_))
        ));
    }
}
