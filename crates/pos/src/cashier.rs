//! Cashier accounts: employee id + PIN (argon2id-hashed), roles and permissions, and the
//! lock-out after repeated wrong PINs.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Role of an employee.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sells.
    Cashier,
    /// Also voids, refunds, overrides prices, adjusts stock.
    Manager,
    /// Everything.
    Admin,
}

impl Role {
    /// Name used in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cashier => "cashier",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        [Role::Cashier, Role::Manager, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// Whether this role may do `p` on its own.
    pub fn allows(self, p: Permission) -> bool {
        match p {
            Permission::Sell | Permission::ViewReports => true,
            Permission::Void
            | Permission::Refund
            | Permission::PriceOverride
            | Permission::AdjustStock
            | Permission::ManageCash
            | Permission::SellOffline
            | Permission::AdmitTill
            | Permission::SupportBundle
            | Permission::SyncNow => self >= Role::Manager,
            Permission::ManageSettings => self == Role::Admin,
        }
    }
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Ring up and take payment.
    Sell,
    /// Read reports.
    ViewReports,
    /// Void a paid transaction.
    Void,
    /// Refund a transaction.
    Refund,
    /// Override a price.
    PriceOverride,
    /// Allow sales past the offline limit (the store out of touch with the cloud too long).
    SellOffline,
    /// Adjust, receive, count stock.
    AdjustStock,
    /// Change store settings.
    ManageSettings,
    /// Pay cash into or out of a drawer, count it at close.
    ManageCash,
    /// Admit a new till waiting to join the store.
    AdmitTill,
    /// Collect a support bundle (logs, status, metrics, masked config).
    SupportBundle,
    /// Have the store sync with the cloud now.
    SyncNow,
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Employee id.
    pub employee_id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// argon2id PHC string.
    pub pin_hash: String,
    /// Consecutive wrong PINs.
    pub failed_attempts: u32,
    /// Locked until (ms since epoch); 0 = not locked.
    pub locked_until_ms: u64,
}

/// Lock-out policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockPolicy {
    /// Wrong PINs in a row before the account locks.
    pub attempts_max: u32,
    /// How long it stays locked.
    pub lock_ms: u64,
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            attempts_max: 3,
            lock_ms: 15 * 60 * 1000,
        }
    }
}

/// Authentication errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown employee or wrong PIN (not distinguished, on purpose).
    #[error("employee id or PIN is wrong")]
    BadCredentials {
        /// Whether this attempt locked the account.
        locked_now: bool,
    },
    /// The account is locked.
    #[error(
        "account is locked after too many wrong PINs; try again after {until_ms} or ask a manager"
    )]
    Locked {
        /// Until when.
        until_ms: u64,
    },
    /// The PIN does not have the required form.
    #[error("a PIN is 4 to 8 digits")]
    PinFormat,
    /// The stored hash is unreadable.
    #[error("stored PIN hash is unreadable")]
    BadHash,
}

/// Checks the form of a PIN: 4 to 8 digits.
pub fn check_pin_format(pin: &str) -> Result<(), AuthError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(AuthError::PinFormat)
    }
}

/// How much work hashing a PIN takes. The parameters travel inside the hash, so
/// verification costs what hashing did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PinCost {
    /// argon2id's recommended parameters (19 MiB, 2 passes): every real till and HQ.
    #[default]
    Standard,
    /// The smallest argon2id parameters (8 KiB, 1 pass): only simulated tills, whose
    /// hundreds of logins a run would otherwise spend most of their time hashing.
    Simulation,
}

/// Hashes a PIN with argon2id and the given 16 random salt bytes.
pub fn hash_pin(pin: &str, salt: &[u8; 16]) -> Result<String, AuthError> {
    hash_pin_with(pin, salt, PinCost::Standard)
}

/// [`hash_pin`] at a given cost.
pub fn hash_pin_with(pin: &str, salt: &[u8; 16], cost: PinCost) -> Result<String, AuthError> {
    check_pin_format(pin)?;
    let salt = SaltString::encode_b64(salt).map_err(|_| AuthError::BadHash)?;
    let argon = match cost {
        PinCost::Standard => Argon2::default(),
        PinCost::Simulation => Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None)
                .map_err(|_| AuthError::BadHash)?,
        ),
    };
    argon
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::BadHash)
}

/// Whether `pin` matches `hash` (no lock-out state: for checks whose outcome is known, such
/// as the dummy check for an unknown employee id, done so that timing does not tell).
pub fn verify_hash(hash: &str, pin: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(pin.as_bytes(), &h)
            .is_ok()
    })
}

/// Verifies a PIN and updates the lock-out state. The caller persists `account` afterwards
/// whatever the outcome.
pub fn authenticate(
    account: &mut Account,
    pin: &str,
    now_ms: u64,
    policy: LockPolicy,
) -> Result<(), AuthError> {
    if account.locked_until_ms > now_ms {
        return Err(AuthError::Locked {
            until_ms: account.locked_until_ms,
        });
    }
    let hash = PasswordHash::new(&account.pin_hash).map_err(|_| AuthError::BadHash)?;
    if Argon2::default()
        .verify_password(pin.as_bytes(), &hash)
        .is_ok()
    {
        account.failed_attempts = 0;
        account.locked_until_ms = 0;
        return Ok(());
    }
    account.failed_attempts = account.failed_attempts.saturating_add(1);
    let locked_now = account.failed_attempts >= policy.attempts_max;
    if locked_now {
        account.failed_attempts = 0;
        account.locked_until_ms = now_ms.saturating_add(policy.lock_ms);
    }
    Err(AuthError::BadCredentials { locked_now })
}

/// The accounts to write when HQ's cashier list arrives: HQ's name, role and PIN for each of
/// `hq` (an account whose PIN is unchanged keeps the till's lock-out counters; one unchanged
/// altogether is left out), and every account HQ sent before (`was_hq`) but no longer does,
/// locked out for good. `held` is what the till holds now, by employee id.
pub fn merge_hq_accounts(
    hq: &[Account],
    held: &std::collections::HashMap<String, Account>,
    was_hq: &std::collections::HashSet<String>,
) -> Vec<Account> {
    let mut out = Vec::new();
    for a in hq {
        let mut a = a.clone();
        if let Some(h) = held.get(&a.employee_id) {
            if h.pin_hash == a.pin_hash && h.name == a.name && h.role == a.role {
                continue;
            }
            if h.pin_hash == a.pin_hash {
                a.failed_attempts = h.failed_attempts;
                a.locked_until_ms = h.locked_until_ms;
            }
        }
        out.push(a);
    }
    let mut gone: Vec<&String> = was_hq
        .iter()
        .filter(|id| !hq.iter().any(|a| &a.employee_id == *id))
        .collect();
    gone.sort();
    for id in gone {
        if let Some(h) = held.get(id) {
            let mut a = h.clone();
            a.locked_until_ms = i64::MAX as u64;
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(id: &str, pin: &str, role: Role, failed: u32, locked: u64) -> Account {
        Account {
            employee_id: id.into(),
            name: format!("name {id}"),
            role,
            pin_hash: pin.into(),
            failed_attempts: failed,
            locked_until_ms: locked,
        }
    }

    #[test]
    fn hq_accounts_win_but_keep_lockouts_for_an_unchanged_pin_and_dropped_ones_lock() {
        use std::collections::{HashMap, HashSet};
        let held: HashMap<String, Account> = [
            acct("A", "h1", Role::Cashier, 2, 50),
            acct("B", "h2", Role::Cashier, 3, 70),
            acct("C", "h3", Role::Cashier, 0, 0),
            acct("D", "h4", Role::Manager, 1, 0),
            acct("L", "h5", Role::Cashier, 0, 0),
        ]
        .into_iter()
        .map(|a| (a.employee_id.clone(), a))
        .collect();
        let hq = vec![
            // Same PIN, new role: counters kept.
            acct("A", "h1", Role::Manager, 0, 0),
            // New PIN: counters reset to HQ's.
            acct("B", "new", Role::Cashier, 0, 0),
            // Unchanged: nothing to write.
            acct("C", "h3", Role::Cashier, 0, 0),
            // New account.
            acct("N", "hn", Role::Cashier, 0, 0),
        ];
        let was_hq: HashSet<String> = ["A", "B", "C", "D"].iter().map(|s| s.to_string()).collect();
        let out = merge_hq_accounts(&hq, &held, &was_hq);
        let by: HashMap<&str, &Account> = out.iter().map(|a| (a.employee_id.as_str(), a)).collect();
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(
            (
                by["A"].role,
                by["A"].failed_attempts,
                by["A"].locked_until_ms
            ),
            (Role::Manager, 2, 50)
        );
        assert_eq!(
            (by["B"].pin_hash.as_str(), by["B"].failed_attempts),
            ("new", 0)
        );
        assert!(!by.contains_key("C"));
        assert!(by.contains_key("N"));
        // HQ dropped D: locked out for good. L was never HQ's: untouched.
        assert_eq!(by["D"].locked_until_ms, i64::MAX as u64);
        assert!(!by.contains_key("L"));
    }

    #[test]
    fn both_pin_costs_verify_with_the_parameters_inside_the_hash() {
        for (cost, m) in [
            (PinCost::Standard, "m=19456"),
            (PinCost::Simulation, "m=8,"),
        ] {
            let hash = hash_pin_with("4321", &[9; 16], cost).unwrap();
            assert!(hash.contains(m), "{hash}");
            let mut a = Account {
                employee_id: "E1".into(),
                name: "A".into(),
                role: Role::Cashier,
                pin_hash: hash,
                failed_attempts: 0,
                locked_until_ms: 0,
            };
            let policy = LockPolicy {
                attempts_max: 3,
                lock_ms: 1_000,
            };
            assert!(authenticate(&mut a, "4321", 0, policy).is_ok());
            assert!(authenticate(&mut a, "4322", 0, policy).is_err());
        }
    }

    #[test]
    fn three_wrong_pins_lock_the_account_for_the_policy_time() {
        let mut a = Account {
            employee_id: "E1".into(),
            name: "Ann".into(),
            role: Role::Cashier,
            pin_hash: hash_pin("1234", &[7; 16]).unwrap(),
            failed_attempts: 0,
            locked_until_ms: 0,
        };
        let policy = LockPolicy {
            attempts_max: 3,
            lock_ms: 1000,
        };
        assert!(authenticate(&mut a, "1234", 0, policy).is_ok());
        assert_eq!(
            authenticate(&mut a, "0000", 0, policy),
            Err(AuthError::BadCredentials { locked_now: false })
        );
        assert_eq!(
            authenticate(&mut a, "0000", 0, policy),
            Err(AuthError::BadCredentials { locked_now: false })
        );
        assert_eq!(
            authenticate(&mut a, "0000", 0, policy),
            Err(AuthError::BadCredentials { locked_now: true })
        );
        assert_eq!(
            authenticate(&mut a, "1234", 999, policy),
            Err(AuthError::Locked { until_ms: 1000 })
        );
        assert!(authenticate(&mut a, "1234", 1000, policy).is_ok());
        assert!(!a.pin_hash.contains("1234"));
    }

    #[test]
    fn roles_gate_sensitive_operations() {
        assert!(!Role::Cashier.allows(Permission::Void));
        assert!(Role::Manager.allows(Permission::Refund));
        assert!(!Role::Manager.allows(Permission::ManageSettings));
        assert!(Role::Admin.allows(Permission::ManageSettings));
        assert!(check_pin_format("12a4").is_err() && check_pin_format("123").is_err());
    }
}
