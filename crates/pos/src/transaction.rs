//! The transaction state machine:
//!
//! ```text
//! DRAFT -> PENDING_PAYMENT -> PAID -> VOID
//!   |   <-  (cancel payment)   |
//!   +-> VOID (abandon)         +-> REFUND_REQUESTED -> REFUNDED
//! ```
//!
//! Every other transition is refused with [`TransitionError`]. DRAFT and PENDING_PAYMENT may
//! be abandoned (VOID) while no payment is captured.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Transaction status.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Items being scanned.
    Draft,
    /// Totals frozen, waiting for tender.
    PendingPayment,
    /// Fully paid and durable.
    Paid,
    /// Cancelled (before payment) or voided (after payment, manager only).
    Void,
    /// A refund was asked for and awaits a manager.
    RefundRequested,
    /// Refunded.
    Refunded,
}

impl Status {
    /// The SCREAMING_SNAKE_CASE name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::PendingPayment => "PENDING_PAYMENT",
            Status::Paid => "PAID",
            Status::Void => "VOID",
            Status::RefundRequested => "REFUND_REQUESTED",
            Status::Refunded => "REFUNDED",
        }
    }

    /// Parses the name written by [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Draft,
            Status::PendingPayment,
            Status::Paid,
            Status::Void,
            Status::RefundRequested,
            Status::Refunded,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// Whether `self -> to` is allowed.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Draft, PendingPayment)
                | (Draft, Void)
                | (PendingPayment, Draft)
                | (PendingPayment, Paid)
                | (PendingPayment, Void)
                | (Paid, Void)
                | (Paid, RefundRequested)
                | (RefundRequested, Refunded)
                | (RefundRequested, Paid)
        )
    }

    /// Checks `self -> to`.
    pub fn transition(self, to: Status) -> Result<Status, TransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused state transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} transaction cannot become {to}")]
pub struct TransitionError {
    /// Current status.
    pub from: Status,
    /// Requested status.
    pub to: Status,
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        let all = [Draft, PendingPayment, Paid, Void, RefundRequested, Refunded];
        let allowed = [
            (Draft, PendingPayment),
            (Draft, Void),
            (PendingPayment, Draft),
            (PendingPayment, Paid),
            (PendingPayment, Void),
            (Paid, Void),
            (Paid, RefundRequested),
            (RefundRequested, Refunded),
            (RefundRequested, Paid),
        ];
        for from in all {
            for to in all {
                let ok = allowed.contains(&(from, to));
                assert_eq!(from.transition(to).is_ok(), ok, "{from} -> {to}");
            }
            assert_eq!(Status::parse(from.as_str()), Some(from));
        }
    }
}
