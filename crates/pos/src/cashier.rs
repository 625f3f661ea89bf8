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
            | Permission::SellOffline => self >= Role::Manager,
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
    account.failed_attempts += 1;
    let locked_now = account.failed_attempts >= policy.attempts_max;
    if locked_now {
        account.failed_attempts = 0;
        account.locked_until_ms = now_ms + policy.lock_ms;
    }
    Err(AuthError::BadCredentials { locked_now })
}

#[cfg(test)]
mod tests {
    use super::*;

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
