//! Inventory rules: reason codes, receiving, low-stock alerts, and physical counts with
//! shrinkage and a review flag past 5 % discrepancy. Stock levels themselves are PN-counters
//! in [`crate::state::StoreState`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Discrepancy (in basis points of the system count) above which a count is flagged.
pub const COUNT_FLAG_BP: i64 = 500;
/// Largest single adjustment, in units.
pub const ADJUSTMENT_UNITS_MAX: i64 = 1_000_000;
/// Highest physical count of one SKU (a count is a level, not a change: bounded the same way
/// as the units a store could ever hold).
pub const COUNTED_MAX: i64 = 1_000_000_000;

/// Why stock changed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// Sold (negative) or a sale reversed by void/refund (positive).
    Sale,
    /// Goods received from a supplier.
    Receiving,
    /// Loss, damage, theft.
    Shrinkage,
    /// Correction from a physical count.
    Count,
    /// Any other manual correction.
    Manual,
}

impl Reason {
    /// Name used in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Sale => "SALE",
            Reason::Receiving => "RECEIVING",
            Reason::Shrinkage => "SHRINKAGE",
            Reason::Count => "COUNT",
            Reason::Manual => "MANUAL",
        }
    }
}

/// Inventory errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// The change is zero or too large, or has the wrong sign for its reason.
    #[error("change {change} is not allowed for {reason:?}: {why}")]
    BadChange {
        /// The change.
        change: i64,
        /// The reason.
        reason: Reason,
        /// Why.
        why: &'static str,
    },
    /// A counted quantity is negative.
    #[error("counted quantity for {0} is negative or above 1,000,000,000")]
    NegativeCount(String),
}

/// Checks a manual adjustment. SALE is reserved for sales; RECEIVING must add; SHRINKAGE
/// must remove; COUNT comes from [`count`].
pub fn check_adjustment(change: i64, reason: Reason) -> Result<(), InventoryError> {
    let bad = |why| {
        Err(InventoryError::BadChange {
            change,
            reason,
            why,
        })
    };
    if change == 0 || change.unsigned_abs() > ADJUSTMENT_UNITS_MAX.unsigned_abs() {
        return bad("must be non-zero and at most 1,000,000 units");
    }
    match reason {
        Reason::Sale => bad("SALE adjustments are made by sales only"),
        Reason::Receiving if change < 0 => bad("receiving adds stock"),
        Reason::Shrinkage if change > 0 => bad("shrinkage removes stock"),
        _ => Ok(()),
    }
}

/// The outcome of counting one SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CountOutcome {
    /// SKU counted.
    pub sku: String,
    /// What the system believed.
    pub system: i64,
    /// What was counted.
    pub counted: i64,
    /// `system - counted` (positive = stock missing).
    pub shrinkage: i64,
    /// `|shrinkage| / system` in basis points (10_000 when system is 0 and counted is not).
    pub discrepancy_bp: i64,
    /// True past 5 %: needs review.
    pub flagged: bool,
}

/// Compares a physical count with the system level.
pub fn count(sku: &str, system: i64, counted: i64) -> Result<CountOutcome, InventoryError> {
    if !(0..=COUNTED_MAX).contains(&counted) {
        return Err(InventoryError::NegativeCount(sku.to_string()));
    }
    let shrinkage = system.saturating_sub(counted);
    let discrepancy_bp = if shrinkage == 0 {
        0
    } else if system <= 0 {
        10_000
    } else {
        let bp = (i128::from(shrinkage).abs().saturating_mul(10_000))
            .checked_div(i128::from(system))
            .unwrap_or(0);
        i64::try_from(bp).unwrap_or(i64::MAX)
    };
    Ok(CountOutcome {
        sku: sku.to_string(),
        system,
        counted,
        shrinkage,
        discrepancy_bp,
        flagged: discrepancy_bp > COUNT_FLAG_BP,
    })
}

/// Whether a level is at or below its threshold (a threshold of 0 disables the alert).
pub fn is_low(level: i64, threshold: i64) -> bool {
    threshold > 0 && level <= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_flag_past_five_percent() {
        let c = count("A", 100, 95).unwrap();
        assert_eq!((c.shrinkage, c.discrepancy_bp, c.flagged), (5, 500, false));
        let c = count("A", 100, 94).unwrap();
        assert!(c.flagged);
        let c = count("A", 100, 106).unwrap();
        assert_eq!((c.shrinkage, c.flagged), (-6, true));
        assert!(count("A", 0, 3).unwrap().flagged);
        assert!(count("A", 3, -1).is_err());
    }

    #[test]
    fn adjustments_respect_reason_signs() {
        assert!(check_adjustment(5, Reason::Receiving).is_ok());
        assert!(check_adjustment(-5, Reason::Receiving).is_err());
        assert!(check_adjustment(5, Reason::Shrinkage).is_err());
        assert!(check_adjustment(-1, Reason::Sale).is_err());
        assert!(check_adjustment(0, Reason::Manual).is_err());
        assert!(is_low(3, 5) && !is_low(6, 5) && !is_low(0, 0));
    }
}
