//! Payments: cash (tendered, change due) and QR through the [`PaymentProvider`] trait, with a
//! simulated provider; split tender across several payments.

use crate::money::Minor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// How long a QR payment may stay pending before it expires.
pub const QR_TIMEOUT_MS: u64 = 60_000;
/// Most payments on one transaction.
pub const PAYMENTS_MAX: usize = 8;

/// Payment method.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Cash in the drawer.
    Cash,
    /// QR code through a payment provider.
    Qr,
}

impl Method {
    /// Name used in reports and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Cash => "cash",
            Method::Qr => "qr",
        }
    }
}

/// State of one payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Waiting for the customer.
    Pending,
    /// Money received.
    Captured,
    /// Refused by the provider.
    Failed,
    /// Not completed within the timeout.
    Expired,
    /// Cancelled by the cashier.
    Cancelled,
}

/// One payment on a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    /// Payment id (unique on the till).
    pub payment_id: String,
    /// Method.
    pub method: Method,
    /// Amount applied to the transaction.
    pub amount: Minor,
    /// Cash handed over (cash only).
    pub tendered: Minor,
    /// Change given back (cash only).
    pub change: Minor,
    /// Provider name and reference (QR only).
    pub provider: Option<String>,
    /// Provider's transaction reference once captured.
    pub provider_ref: Option<String>,
    /// QR payload to show the customer.
    pub qr_payload: Option<String>,
    /// When a pending QR payment expires.
    pub expires_at_ms: Option<u64>,
    /// Status.
    pub status: PaymentStatus,
}

/// Payment errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// Amount not positive or above what is due.
    #[error("amount {amount} is wrong: {reason}")]
    WrongAmount {
        /// The amount offered.
        amount: Minor,
        /// Why it is wrong.
        reason: String,
    },
    /// Unknown payment id.
    #[error("no payment {0}")]
    Unknown(String),
    /// Payment no longer pending.
    #[error("payment {0} is no longer pending")]
    NotPending(String),
    /// Too many payments.
    #[error("a transaction takes at most {PAYMENTS_MAX} payments")]
    TooMany,
}

/// A QR payment as created by a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrRequest {
    /// Provider-side payment id.
    pub payment_id: String,
    /// The payload to render as a QR code.
    pub payload: String,
    /// Expiry.
    pub expires_at_ms: u64,
}

/// A QR payment provider. Real providers are HTTP clients in the daemon; the domain only
/// sees this trait.
pub trait PaymentProvider: Send {
    /// Provider name, recorded on the payment.
    fn name(&self) -> &str;
    /// Creates a QR payment for `amount` with our `reference`.
    fn create(&mut self, reference: &str, amount: Minor, now_ms: u64) -> QrRequest;
    /// Current status and, once captured, the provider reference.
    fn status(&mut self, payment_id: &str, now_ms: u64) -> (PaymentStatus, Option<String>);
    /// Cancels a pending payment.
    fn cancel(&mut self, payment_id: &str) -> PaymentStatus;
}

/// A provider that approves every QR payment `approve_after_ms` after it was created, unless
/// the amount's minor units end in `fail_suffix` (for exercising the failure path).
#[derive(Debug)]
pub struct SimulatedProvider {
    approve_after_ms: u64,
    fail_suffix: Option<i64>,
    next: u64,
    pending: BTreeMap<String, (u64, Minor, PaymentStatus)>,
}

/// Most payments the simulated provider remembers; the oldest are forgotten first.
const SIMULATED_REMEMBERED_MAX: usize = 10_000;

impl SimulatedProvider {
    /// A provider approving after `approve_after_ms`.
    pub fn new(approve_after_ms: u64, fail_suffix: Option<i64>) -> Self {
        Self {
            approve_after_ms,
            fail_suffix,
            next: 0,
            pending: BTreeMap::new(),
        }
    }
}

impl SimulatedProvider {
    /// Re-registers a payment this provider issued before a restart (a real provider keeps
    /// its own state; the simulated one keeps it in memory).
    pub fn restore(&mut self, p: &Payment) {
        let created = p.expires_at_ms.unwrap_or(0).saturating_sub(QR_TIMEOUT_MS);
        if let Some(n) = p
            .payment_id
            .strip_prefix("SIM-")
            .and_then(|n| n.parse::<u64>().ok())
        {
            self.next = self.next.max(n);
        }
        self.pending
            .insert(p.payment_id.clone(), (created, p.amount, p.status));
    }
}

impl PaymentProvider for SimulatedProvider {
    fn name(&self) -> &str {
        "simulated"
    }

    fn create(&mut self, reference: &str, amount: Minor, now_ms: u64) -> QrRequest {
        self.next = self.next.saturating_add(1);
        let id = format!("SIM-{:08}", self.next);
        if self.pending.len() >= SIMULATED_REMEMBERED_MAX
            && let Some(first) = self.pending.keys().next().cloned()
        {
            self.pending.remove(&first);
        }
        self.pending
            .insert(id.clone(), (now_ms, amount, PaymentStatus::Pending));
        QrRequest {
            payload: format!("tillmesh-pay://simulated?ref={reference}&amount={amount}&id={id}"),
            payment_id: id,
            expires_at_ms: now_ms.saturating_add(QR_TIMEOUT_MS),
        }
    }

    fn status(&mut self, payment_id: &str, now_ms: u64) -> (PaymentStatus, Option<String>) {
        let Some((created, amount, status)) = self.pending.get_mut(payment_id) else {
            return (PaymentStatus::Failed, None);
        };
        if *status == PaymentStatus::Pending {
            let fails = self
                .fail_suffix
                .is_some_and(|s| amount.rem_euclid(100) == s);
            if now_ms >= created.saturating_add(QR_TIMEOUT_MS) {
                *status = PaymentStatus::Expired;
            } else if now_ms >= created.saturating_add(self.approve_after_ms) {
                *status = if fails {
                    PaymentStatus::Failed
                } else {
                    PaymentStatus::Captured
                };
            }
        }
        let reference =
            (*status == PaymentStatus::Captured).then(|| format!("{payment_id}-CAPTURED"));
        (*status, reference)
    }

    fn cancel(&mut self, payment_id: &str) -> PaymentStatus {
        match self.pending.get_mut(payment_id) {
            Some((_, _, s)) if *s == PaymentStatus::Pending => {
                *s = PaymentStatus::Cancelled;
                *s
            }
            Some((_, _, s)) => *s,
            None => PaymentStatus::Failed,
        }
    }
}

/// Amount still due on `total` after the captured and pending payments.
pub fn remaining_due(total: Minor, payments: &[Payment]) -> Minor {
    let covered: Minor = payments
        .iter()
        .filter(|p| matches!(p.status, PaymentStatus::Captured | PaymentStatus::Pending))
        .map(|p| p.amount)
        .fold(0, Minor::saturating_add);
    total.saturating_sub(covered)
}

/// Why a sale cannot be finalised with the payments it holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    /// A QR payment still waits for the provider.
    #[error("a QR payment is still pending; wait for it or cancel it")]
    Pending,
    /// The captured payments do not cover the total exactly.
    #[error("payments cover {paid} of {total}; take the rest first")]
    NotCovered {
        /// Captured so far.
        paid: Minor,
        /// The sale's total.
        total: Minor,
    },
}

/// The payments a sale of `total` is finalised with: every captured one, when none is
/// pending and together they cover the total exactly (change is given per cash payment, so
/// captured amounts never exceed what was due).
pub fn settle(total: Minor, payments: &[Payment]) -> Result<Vec<Payment>, SettleError> {
    if payments.iter().any(|p| p.status == PaymentStatus::Pending) {
        return Err(SettleError::Pending);
    }
    let captured: Vec<Payment> = payments
        .iter()
        .filter(|p| p.status == PaymentStatus::Captured)
        .cloned()
        .collect();
    let paid: Minor = captured.iter().map(|p| p.amount).sum();
    if paid != total {
        return Err(SettleError::NotCovered { paid, total });
    }
    Ok(captured)
}

/// Builds a cash payment of `tendered` against what is still due: the amount applied is
/// `min(tendered, due)` and the rest is change.
pub fn cash(payment_id: String, tendered: Minor, due: Minor) -> Result<Payment, PaymentError> {
    if tendered <= 0 {
        return Err(PaymentError::WrongAmount {
            amount: tendered,
            reason: "cash tendered must be positive".into(),
        });
    }
    if due <= 0 {
        return Err(PaymentError::WrongAmount {
            amount: tendered,
            reason: "nothing is due".into(),
        });
    }
    let amount = tendered.min(due);
    Ok(Payment {
        payment_id,
        method: Method::Cash,
        amount,
        tendered,
        change: tendered.saturating_sub(amount),
        provider: None,
        provider_ref: None,
        qr_payload: None,
        expires_at_ms: None,
        status: PaymentStatus::Captured,
    })
}

/// Checks a QR amount against what is due (QR cannot overpay).
pub fn check_qr_amount(amount: Minor, due: Minor) -> Result<(), PaymentError> {
    if amount <= 0 || amount > due {
        return Err(PaymentError::WrongAmount {
            amount,
            reason: format!("a QR payment must be between 1 and the {due} still due"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sale_settles_only_when_captured_payments_cover_it_exactly_and_none_is_pending() {
        let a = cash("P1".into(), 3000, 3000).unwrap();
        let b = cash("P2".into(), 2000, 1649).unwrap();
        assert_eq!(settle(4649, &[a.clone(), b.clone()]).unwrap().len(), 2);
        assert_eq!(
            settle(5000, std::slice::from_ref(&a)),
            Err(SettleError::NotCovered {
                paid: 3000,
                total: 5000
            })
        );
        let mut pending = b.clone();
        pending.status = PaymentStatus::Pending;
        assert_eq!(
            settle(4649, &[a.clone(), pending]),
            Err(SettleError::Pending)
        );
        let mut cancelled = b;
        cancelled.status = PaymentStatus::Cancelled;
        assert_eq!(settle(3000, &[a, cancelled]).unwrap().len(), 1);
        assert_eq!(settle(0, &[]), Ok(vec![]));
    }

    #[test]
    fn cash_gives_change_and_refuses_nonsense() {
        let p = cash("P1".into(), 5000, 3649).unwrap();
        assert_eq!((p.amount, p.change), (3649, 1351));
        let p = cash("P2".into(), 1000, 3649).unwrap();
        assert_eq!((p.amount, p.change), (1000, 0));
        assert!(cash("P3".into(), 0, 10).is_err());
        assert!(cash("P3".into(), 10, 0).is_err());
    }

    #[test]
    fn simulated_qr_captures_expires_cancels_and_fails() {
        let mut sim = SimulatedProvider::new(2000, Some(13));
        let a = sim.create("T1-1", 1000, 0);
        assert_eq!(sim.status(&a.payment_id, 1999).0, PaymentStatus::Pending);
        let (s, r) = sim.status(&a.payment_id, 2000);
        assert_eq!(s, PaymentStatus::Captured);
        assert!(r.is_some());
        let b = sim.create("T1-2", 1000, 0);
        assert_eq!(
            sim.status(&b.payment_id, QR_TIMEOUT_MS).0,
            PaymentStatus::Expired
        );
        let c = sim.create("T1-3", 1000, 0);
        assert_eq!(sim.cancel(&c.payment_id), PaymentStatus::Cancelled);
        assert_eq!(sim.status(&c.payment_id, 5000).0, PaymentStatus::Cancelled);
        let d = sim.create("T1-4", 1013, 0);
        assert_eq!(sim.status(&d.payment_id, 5000).0, PaymentStatus::Failed);
        assert!(check_qr_amount(11, 10).is_err() && check_qr_amount(10, 10).is_ok());
    }
}
