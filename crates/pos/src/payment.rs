//! Payments: cash (tendered, change due) and QR (taken by the till through its provider,
//! `tillmesh-pay`); split tender across several payments.

use crate::money::Minor;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// A gift card of this store (the card's code in `provider_ref`), spent within the
    /// rights this till holds to its balance (escrow). Sales that take it are recorded as
    /// `WeighedSaleRecorded`, a kind release 0.1.0 keeps unapplied.
    GiftCard,
    /// The sale's customer's store credit (account [`credit_account`] in `provider_ref`),
    /// spent like a gift card.
    StoreCredit,
    /// A single-use coupon (account [`coupon_account`] in `provider_ref`): its whole value
    /// is spent by one tender, so it is used once across every till.
    Coupon,
}

/// The stored-value account of customer `customer`'s store credit. Gift card codes are
/// upper-case letters, digits and `-`, so no card code is ever an account of another kind.
pub fn credit_account(customer: &str) -> String {
    format!("credit:{customer}")
}

/// The stored-value account of coupon `code`.
pub fn coupon_account(code: &str) -> String {
    format!("coupon:{code}")
}

impl Method {
    /// Name used in reports and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Cash => "cash",
            Method::Qr => "qr",
            Method::GiftCard => "gift_card",
            Method::StoreCredit => "store_credit",
            Method::Coupon => "coupon",
        }
    }

    /// Whether this method spends a stored-value account (a gift card, store credit or a
    /// coupon: a bounded counter named by the payment's `provider_ref`).
    pub fn spends_balance(self) -> bool {
        matches!(
            self,
            Method::GiftCard | Method::StoreCredit | Method::Coupon
        )
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
    fn a_qr_amount_never_exceeds_what_is_due() {
        assert!(check_qr_amount(11, 10).is_err() && check_qr_amount(10, 10).is_ok());
        assert!(check_qr_amount(0, 10).is_err());
    }
}
