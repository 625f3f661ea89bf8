//! Sign-in throttling: PIN checks one at a time per employee, a bound on PIN hashes at
//! once (each holds argon2id's 19 MiB), and an exponential delay per asker (a client
//! address, or the session asking for a manager's approval) after wrong PINs.

use std::collections::HashMap;
use std::sync::Mutex;

/// PIN hashes computed at once; further checks wait up to [`HASH_WAIT_MS`], then get 429.
pub const HASHES_AT_ONCE: usize = 2;
/// How long a PIN check waits for a hashing slot.
pub const HASH_WAIT_MS: u64 = 3_000;
/// Askers remembered (the oldest are forgotten first).
pub const ASKERS_MAX: usize = 4_096;
/// Wrong PINs an asker may give before each further one waits (an account locks after its
/// own few; this slows one asker trying many accounts).
pub const FREE_FAILURES: u32 = 5;
/// Longest wait imposed on an asker.
pub const DELAY_MAX_MS: u64 = 60_000;
/// Locks that serialise PIN checks, chosen by employee id.
const STRIPES: usize = 64;

#[derive(Clone, Copy, Debug)]
struct Asker {
    failures: u32,
    until_ms: u64,
    last_ms: u64,
}

/// The till's sign-in throttle.
#[derive(Debug)]
pub struct Throttle {
    askers: Mutex<HashMap<String, Asker>>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    hashing: tokio::sync::Semaphore,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            askers: Mutex::new(HashMap::new()),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            hashing: tokio::sync::Semaphore::new(HASHES_AT_ONCE),
        }
    }
}

/// How long an asker with `failures` wrong PINs in a row waits before the next check:
/// nothing for the first [`FREE_FAILURES`], then 1 s, 2 s, 4 s, ... up to [`DELAY_MAX_MS`].
pub fn delay_ms(failures: u32) -> u64 {
    match failures.checked_sub(FREE_FAILURES) {
        None => 0,
        Some(n) => 1_000_u64
            .checked_shl(n.min(16))
            .unwrap_or(DELAY_MAX_MS)
            .min(DELAY_MAX_MS),
    }
}

impl Throttle {
    /// How long `who` must still wait before a PIN of theirs is checked, if at all.
    pub fn wait_ms(&self, who: &str, now_ms: u64) -> Option<u64> {
        let askers = self.askers.lock().unwrap_or_else(|p| p.into_inner());
        askers
            .get(who)
            .map(|a| a.until_ms.saturating_sub(now_ms))
            .filter(|w| *w > 0)
    }

    /// Records a wrong PIN from `who`.
    pub fn failed(&self, who: &str, now_ms: u64) {
        let mut askers = self.askers.lock().unwrap_or_else(|p| p.into_inner());
        if askers.len() >= ASKERS_MAX
            && !askers.contains_key(who)
            && let Some(oldest) = askers
                .iter()
                .min_by_key(|(_, a)| a.last_ms)
                .map(|(k, _)| k.clone())
        {
            askers.remove(&oldest);
        }
        let a = askers.entry(who.to_string()).or_insert(Asker {
            failures: 0,
            until_ms: 0,
            last_ms: now_ms,
        });
        a.failures = a.failures.saturating_add(1);
        a.last_ms = now_ms;
        a.until_ms = now_ms.saturating_add(delay_ms(a.failures));
    }

    /// Forgets `who`'s wrong PINs (a right one was given).
    pub fn succeeded(&self, who: &str) {
        self.askers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(who);
    }

    /// The lock under which `employee_id`'s PIN is read, checked and its outcome written.
    pub fn stripe(&self, employee_id: &str) -> &tokio::sync::Mutex<()> {
        // FNV-1a: stable, and spreads short ids well.
        let h = employee_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.stripes[(h % STRIPES as u64) as usize]
    }

    /// The bound on PIN hashes at once.
    pub fn hashing(&self) -> &tokio::sync::Semaphore {
        &self.hashing
    }

    /// Askers remembered now.
    #[cfg(test)]
    pub fn askers(&self) -> usize {
        self.askers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_after_the_free_failures_and_stop_at_a_minute() {
        assert_eq!(
            (0..8).map(delay_ms).collect::<Vec<_>>(),
            vec![0, 0, 0, 0, 0, 1_000, 2_000, 4_000]
        );
        assert_eq!(delay_ms(11), 60_000);
        assert_eq!(delay_ms(u32::MAX), 60_000);
    }

    #[test]
    fn an_asker_waits_after_wrong_pins_and_is_forgotten_after_a_right_one() {
        let t = Throttle::default();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.wait_ms("10.0.0.9", 1_000), None);
            t.failed("10.0.0.9", 1_000);
        }
        assert_eq!(t.wait_ms("10.0.0.9", 1_500), Some(500));
        assert_eq!(
            t.wait_ms("10.0.0.8", 1_500),
            None,
            "another asker is not slowed"
        );
        assert_eq!(t.wait_ms("10.0.0.9", 2_000), None);
        t.succeeded("10.0.0.9");
        t.failed("10.0.0.9", 3_000);
        assert_eq!(t.wait_ms("10.0.0.9", 3_000), None);
    }

    #[test]
    fn askers_are_bounded() {
        let t = Throttle::default();
        for i in 0..(ASKERS_MAX + 100) {
            for _ in 0..=FREE_FAILURES {
                t.failed(&format!("a{i}"), i as u64);
            }
        }
        assert_eq!(t.askers(), ASKERS_MAX);
        assert!(t.wait_ms("a0", 0).is_none(), "the oldest were forgotten");
        assert!(t.wait_ms(&format!("a{}", ASKERS_MAX + 99), 0).is_some());
    }
}
