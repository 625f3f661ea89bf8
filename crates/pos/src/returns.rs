//! Returns of part of a paid sale, by line and quantity: what each returned unit is worth
//! (its share of the line's total, after discount and tax, rounded so that returning every
//! unit of a line, in any number of returns, hands back exactly the line's total), checked
//! against what was returned before.

use crate::cart::{CART_LINES_MAX, Line};
use crate::event::Sale;
use crate::money::Minor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Units of one line handed back, and the money for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReturnedLine {
    /// The sale's line.
    pub line_no: u32,
    /// Units returned.
    pub quantity: u32,
    /// Money handed back for them (minor units).
    pub amount: Minor,
}

/// Why a return was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReturnError {
    /// Nothing asked.
    #[error("a return names at least one line and a quantity above zero")]
    Empty,
    /// The sale has no such line.
    #[error("the sale has no line {0}")]
    UnknownLine(u32),
    /// More units than are left to return.
    #[error("line {line_no}: {asked} asked, {left} of {sold} left to return")]
    TooMany {
        /// The line.
        line_no: u32,
        /// Units asked.
        asked: u64,
        /// Units still returnable.
        left: u32,
        /// Units sold.
        sold: u32,
    },
    /// A line named twice, or too many lines.
    #[error("each line at most once, at most {CART_LINES_MAX} lines")]
    Malformed,
}

/// The value of the first `n` units of `line`: `total * n / quantity`, rounded half away from
/// zero (so `n = quantity` is exactly the total).
fn value_of(line: &Line, n: u32) -> Minor {
    if line.quantity == 0 {
        return 0;
    }
    let num = i128::from(line.total).saturating_mul(i128::from(n));
    let den = i128::from(line.quantity);
    let half = den.checked_div(2).unwrap_or(0);
    let q = if num >= 0 {
        num.saturating_add(half).checked_div(den)
    } else {
        num.saturating_sub(half).checked_div(den)
    }
    .unwrap_or(0);
    Minor::try_from(q).unwrap_or(if q > 0 { Minor::MAX } else { Minor::MIN })
}

/// The lines of a return of `asked` (`(line_no, units)`) from `sale`, given the units of each
/// line returned before (`already`): each line's amount is the value of the units returned
/// after this return minus the value of those returned before, so rounding never hands back
/// more or less than the line's total over all its returns.
pub fn return_lines(
    sale: &Sale,
    already: &BTreeMap<u32, u32>,
    asked: &[(u32, u32)],
) -> Result<Vec<ReturnedLine>, ReturnError> {
    if asked.len() > CART_LINES_MAX {
        return Err(ReturnError::Malformed);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for &(line_no, quantity) in asked {
        if !seen.insert(line_no) {
            return Err(ReturnError::Malformed);
        }
        if quantity == 0 {
            continue;
        }
        let line = sale
            .lines
            .iter()
            .find(|l| l.line_no == line_no)
            .ok_or(ReturnError::UnknownLine(line_no))?;
        let before = already
            .get(&line_no)
            .copied()
            .unwrap_or(0)
            .min(line.quantity);
        let left = line.quantity.saturating_sub(before);
        if quantity > left {
            return Err(ReturnError::TooMany {
                line_no,
                asked: u64::from(quantity),
                left,
                sold: line.quantity,
            });
        }
        let after = before.saturating_add(quantity);
        out.push(ReturnedLine {
            line_no,
            quantity,
            amount: value_of(line, after).saturating_sub(value_of(line, before)),
        });
    }
    if out.is_empty() {
        return Err(ReturnError::Empty);
    }
    Ok(out)
}

/// Whether, with `after` (units returned per line), every unit of the sale is returned.
pub fn all_returned(sale: &Sale, after: &BTreeMap<u32, u32>) -> bool {
    sale.lines
        .iter()
        .all(|l| after.get(&l.line_no).copied().unwrap_or(0) >= l.quantity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cart::Totals;
    use crate::event::Sale;
    use tillmesh_crdt::ReplicaId;

    fn line(line_no: u32, quantity: u32, total: Minor) -> Line {
        Line {
            line_no,
            sku: format!("S{line_no}"),
            barcode: String::new(),
            name: String::new(),
            category: String::new(),
            quantity,
            unit_price: total / i64::from(quantity.max(1)),
            tax_rate_bp: 0,
            gross: total,
            discount: 0,
            promotion: None,
            tax: 0,
            total,
        }
    }

    fn sale(lines: Vec<Line>) -> Sale {
        Sale {
            txn_id: "1-1".into(),
            terminal: ReplicaId(1),
            cashier: "E".into(),
            created_ms: 0,
            paid_ms: 0,
            totals: Totals::default(),
            lines,
            payments: vec![],
            customer_id: None,
            points_earned: 0,
            weights: Vec::new(),
        }
    }

    #[test]
    fn returning_every_unit_in_pieces_hands_back_exactly_the_line_total() {
        // 3 units for 10,000 after a discount: 3,333 / 3,334 / 3,333.
        let s = sale(vec![line(1, 3, 10_000), line(2, 1, 500)]);
        let mut already = BTreeMap::new();
        let mut paid = 0;
        for _ in 0..3 {
            let r = return_lines(&s, &already, &[(1, 1)]).unwrap();
            paid += r[0].amount;
            *already.entry(1).or_insert(0) += 1;
        }
        assert_eq!(paid, 10_000);
        assert!(!all_returned(&s, &already));
        let err = return_lines(&s, &already, &[(1, 1)]).unwrap_err();
        assert!(matches!(err, ReturnError::TooMany { left: 0, .. }), "{err}");
        let r = return_lines(&s, &already, &[(2, 1)]).unwrap();
        assert_eq!(
            r,
            vec![ReturnedLine {
                line_no: 2,
                quantity: 1,
                amount: 500
            }]
        );
        already.insert(2, 1);
        assert!(all_returned(&s, &already));
    }

    #[test]
    fn bad_returns_are_refused() {
        let s = sale(vec![line(1, 2, 2_000)]);
        let none = BTreeMap::new();
        assert_eq!(return_lines(&s, &none, &[]), Err(ReturnError::Empty));
        assert_eq!(return_lines(&s, &none, &[(1, 0)]), Err(ReturnError::Empty));
        assert_eq!(
            return_lines(&s, &none, &[(7, 1)]),
            Err(ReturnError::UnknownLine(7))
        );
        assert_eq!(
            return_lines(&s, &none, &[(1, 1), (1, 1)]),
            Err(ReturnError::Malformed)
        );
        assert!(matches!(
            return_lines(&s, &none, &[(1, 3)]),
            Err(ReturnError::TooMany {
                asked: 3,
                left: 2,
                ..
            })
        ));
    }
}
