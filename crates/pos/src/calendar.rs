//! Calendar helpers on integer milliseconds: civil dates, RFC 3339 formatting and local-day
//! boundaries for a store's fixed UTC offset (no time-zone database: stores report in their
//! configured offset).
//!
//! Exempt from the crate's overflow lint: civil-date arithmetic (Hinnant's algorithms) on
//! days and milliseconds that fit `i64` many times over: parsed years are 1970..=9999 and
//! instants are clamped to [`MS_MAX`] before any of it runs.

#![allow(clippy::arithmetic_side_effects)]

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The last millisecond of year 9999: instants past it (a forged stamp) are shown as it.
pub const MS_MAX: u64 = 253_402_300_799_999;

/// `2026-11-22T05:38:00.123Z`
pub fn rfc3339(ms: u64) -> String {
    let ms = ms.min(MS_MAX);
    let secs = (ms / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// Parses `YYYY-MM-DD` into the UTC millisecond range of that local day.
pub fn local_day_range(date: &str, utc_offset_minutes: i32) -> Option<(u64, u64)> {
    let mut it = date.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None; // 2026-02-30 and the like
    }
    let start = days * 86_400_000 - i64::from(utc_offset_minutes) * 60_000;
    let start = u64::try_from(start).ok()?;
    Some((start, start + 86_400_000))
}

/// The local date and minute (`YYYY-MM-DD HH:MM`) of an instant.
pub fn local_datetime(ms: u64, utc_offset_minutes: i32) -> String {
    let local = ms.min(MS_MAX) as i64 + i64::from(utc_offset_minutes) * 60_000;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400_000));
    let minute = local.rem_euclid(86_400_000) / 60_000;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", minute / 60, minute % 60)
}

/// The local date (`YYYY-MM-DD`) of an instant.
pub fn local_date(ms: u64, utc_offset_minutes: i32) -> String {
    let local = ms.min(MS_MAX) as i64 + i64::from(utc_offset_minutes) * 60_000;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_is_the_stores() {
        // 2026-12-04 21:05 UTC is 04:05 the next day at UTC+7.
        let ms = (days_from_civil(2026, 12, 4) * 86_400 + 21 * 3600 + 5 * 60) as u64 * 1000;
        assert_eq!(local_datetime(ms, 420), "2026-12-05 04:05");
        assert_eq!(local_datetime(ms, -300), "2026-12-04 16:05");
    }

    #[test]
    fn instants_past_year_9999_do_not_overflow() {
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(local_date(u64::MAX, 14 * 60), "10000-01-01");
        assert_eq!(local_date(1 << 63, -14 * 60), "9999-12-31");
    }

    #[test]
    fn calendar_round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_325_880_123), "2026-11-22T05:38:00.123Z");
        let (a, b) = local_day_range("2026-11-22", 420).unwrap();
        assert_eq!(b - a, 86_400_000);
        assert_eq!(local_date(a, 420), "2026-11-22");
        assert_eq!(local_date(a - 1, 420), "2026-11-21");
        assert!(local_day_range("2026-02-30", 0).is_none());
        assert!(local_day_range("yesterday", 0).is_none());
    }
}
