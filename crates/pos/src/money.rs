//! Money as integer minor units, and the one rounding rule the whole system uses.
//!
//! Rounding rule: every fractional amount (a percentage discount, a line's tax) is computed
//! per line on integers and rounded half away from zero to a whole minor unit. Totals are
//! sums of rounded line amounts, so a receipt always adds up exactly.

/// An amount in minor units of the store currency (cents, dong, ...).
pub type Minor = i64;

/// Highest unit price, in minor units (10^12: ten billion dong, ten billion cents). With at
/// most 9,999 units a line and 500 lines a basket, every cart amount stays far inside `i64`,
/// so the arithmetic of a basket cannot overflow.
pub const PRICE_MAX: Minor = 1_000_000_000_000;

/// Largest amount any event may carry (a sale's total, a payment, a line's amount): the
/// largest basket of [`PRICE_MAX`] items, rounded up.
pub const AMOUNT_MAX: Minor = 5_000_000_000_000_000_000;

/// Whether `price` is a valid unit price (0 to [`PRICE_MAX`]).
pub fn valid_price(price: Minor) -> bool {
    (0..=PRICE_MAX).contains(&price)
}

/// Basis points: 10_000 = 100 %.
pub type BasisPoints = u32;

/// `num / den` (`den` positive), rounded half away from zero.
pub fn div_round(num: i128, den: i128) -> i128 {
    let q = num.checked_div(den).unwrap_or(0);
    let r = num.checked_rem(den).unwrap_or(0);
    if r.abs().saturating_mul(2) >= den {
        q.saturating_add(num.signum())
    } else {
        q
    }
}

/// `amount * bp / 10_000`, rounded half away from zero.
pub fn apply_bp(amount: Minor, bp: BasisPoints) -> Minor {
    // An i64 times a u32 fits in an i128: none of this can overflow.
    let rounded = div_round(i128::from(amount).saturating_mul(i128::from(bp)), 10_000);
    // |amount * bp / 10_000| <= |amount| for bp <= 10_000; larger rates saturate.
    Minor::try_from(rounded.clamp(i128::from(Minor::MIN), i128::from(Minor::MAX)))
        .unwrap_or_default()
}

/// [`format`] with thousands grouped by commas, as receipts and screens show money
/// (`1,234,500`; `-12,345.67`).
pub fn format_grouped(amount: Minor, decimals: u32) -> String {
    let plain = format(amount, decimals);
    let (sign, rest) = match plain.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", plain.as_str()),
    };
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::with_capacity(int.len().saturating_add(int.len() / 3));
    for (i, c) in int.chars().enumerate() {
        if i > 0 && int.len().saturating_sub(i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Formats minor units for humans with `decimals` digits after the point.
pub fn format(amount: Minor, decimals: u32) -> String {
    if decimals == 0 {
        return amount.to_string();
    }
    let scale = 10_i64.pow(decimals);
    let sign = if amount < 0 { "-" } else { "" };
    let a = amount.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        a.checked_div(scale as u64).unwrap_or(0),
        a.checked_rem(scale as u64).unwrap_or(0),
        width = decimals as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_money_reads_like_the_screens() {
        assert_eq!(format_grouped(83_050, 0), "83,050");
        assert_eq!(format_grouped(-1_234_567, 2), "-12,345.67");
        assert_eq!(format_grouped(999, 0), "999");
        assert_eq!(format_grouped(i64::MIN, 0), "-9,223,372,036,854,775,808");
    }

    fn check(amount: Minor, bp: BasisPoints, expected: Minor) {
        assert_eq!(apply_bp(amount, bp), expected, "{amount} * {bp}bp");
    }

    #[test]
    fn rounds_half_away_from_zero() {
        check(105, 1000, 11); // 10.5 -> 11
        check(104, 1000, 10); // 10.4 -> 10
        check(-105, 1000, -11);
        check(0, 1000, 0);
        check(12345, 10_000, 12345);
    }

    #[test]
    fn formats_with_decimals() {
        assert_eq!(format(12345, 2), "123.45");
        assert_eq!(format(-5, 2), "-0.05");
        assert_eq!(format(10000, 0), "10000");
    }
}
