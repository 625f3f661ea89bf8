//! Cash management: a till's drawer shift (opening float, pay-ins and pay-outs, no-sale
//! drawer opens) and the cash it should hold at close, against what was counted.

use crate::money::{Minor, PRICE_MAX};
use crate::payment::Method;
use crate::report::ReportedSale;
use crate::transaction::Status;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most pay-ins and pay-outs in one shift.
pub const MOVEMENTS_MAX: usize = 500;
/// Longest reason for a pay-in or pay-out (bytes).
pub const REASON_BYTES_MAX: usize = 200;

/// Money put into or taken out of the drawer outside a sale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Cash added (change from the bank, a float top-up).
    PayIn,
    /// Cash taken out (a supplier paid in cash, a bank drop).
    PayOut,
}

/// One pay-in or pay-out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Movement {
    /// In or out.
    pub kind: MovementKind,
    /// Amount (minor units, positive).
    pub amount: Minor,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// Who approved it (a manager).
    pub approved_by: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// How a shift ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Close {
    /// Who counted the drawer.
    pub by: String,
    /// When.
    pub at_ms: u64,
    /// Cash counted in the drawer.
    pub counted: Minor,
    /// What the drawer should hold.
    pub expected: Minor,
    /// Counted minus expected (negative: cash short).
    pub difference: Minor,
}

/// A drawer shift.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Shift {
    /// Shift id (unique on the till).
    pub shift_id: String,
    /// The till whose drawer it is.
    pub terminal: u64,
    /// Who opened it.
    pub opened_by: String,
    /// When.
    pub opened_ms: u64,
    /// Cash in the drawer at the start.
    pub float: Minor,
    /// Pay-ins and pay-outs, in order.
    pub movements: Vec<Movement>,
    /// Times the drawer was opened without a sale.
    pub no_sales: u32,
    /// Set once the drawer is counted and the shift closed.
    pub closed: Option<Close>,
}

/// Why a cash operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CashError {
    /// An amount not in `1..=PRICE_MAX` (a float or a count may be 0).
    #[error("amount {0} is not a valid amount of cash")]
    Amount(Minor),
    /// A reason missing or too long.
    #[error("give a reason of 1 to {REASON_BYTES_MAX} bytes")]
    Reason,
    /// Too many pay-ins and pay-outs.
    #[error(
        "a shift takes at most {MOVEMENTS_MAX} pay-ins and pay-outs; close it and open another"
    )]
    TooMany,
    /// The shift is closed.
    #[error("the shift is closed")]
    Closed,
    /// A pay-out larger than the cash the drawer should hold.
    #[error("the drawer should hold only {held}; a pay-out of {amount} cannot come from it")]
    NotInDrawer {
        /// Asked for.
        amount: Minor,
        /// What the drawer should hold.
        held: Minor,
    },
}

/// What the drawer should hold, and from what.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    /// Opening float.
    pub float: Minor,
    /// Cash taken on this till's sales paid during the shift (change already deducted).
    pub cash_sales: Minor,
    /// Cash of those sales handed back since (voided or refunded).
    pub cash_returned: Minor,
    /// Pay-ins.
    pub pay_ins: Minor,
    /// Pay-outs.
    pub pay_outs: Minor,
    /// Sales paid on this till during the shift.
    pub sales: u64,
    /// float + cash sales - cash returned + pay-ins - pay-outs.
    pub expected: Minor,
}

impl Shift {
    /// A shift opened with `float` in the drawer.
    pub fn open(
        shift_id: String,
        terminal: u64,
        by: &str,
        float: Minor,
        now_ms: u64,
    ) -> Result<Shift, CashError> {
        if !(0..=PRICE_MAX).contains(&float) {
            return Err(CashError::Amount(float));
        }
        Ok(Shift {
            shift_id,
            terminal,
            opened_by: by.to_string(),
            opened_ms: now_ms,
            float,
            movements: Vec::new(),
            no_sales: 0,
            closed: None,
        })
    }

    /// Records a pay-in or pay-out; a pay-out cannot exceed what the drawer should hold.
    pub fn record(&mut self, m: Movement, held: Minor) -> Result<(), CashError> {
        if self.closed.is_some() {
            return Err(CashError::Closed);
        }
        if !(1..=PRICE_MAX).contains(&m.amount) {
            return Err(CashError::Amount(m.amount));
        }
        let reason = m.reason.trim();
        if reason.is_empty() || reason.len() > REASON_BYTES_MAX {
            return Err(CashError::Reason);
        }
        if self.movements.len() >= MOVEMENTS_MAX {
            return Err(CashError::TooMany);
        }
        if m.kind == MovementKind::PayOut && m.amount > held {
            return Err(CashError::NotInDrawer {
                amount: m.amount,
                held,
            });
        }
        self.movements.push(m);
        Ok(())
    }

    /// Counts a drawer open without a sale.
    pub fn no_sale(&mut self) -> Result<(), CashError> {
        if self.closed.is_some() {
            return Err(CashError::Closed);
        }
        self.no_sales = self.no_sales.saturating_add(1);
        Ok(())
    }

    /// What the drawer should hold now, from this till's sales paid since the shift opened
    /// (`sales`: any sales; only this till's, paid at or after the opening, count).
    pub fn summary(&self, sales: &[ReportedSale<'_>], until_ms: u64) -> Summary {
        let mut s = Summary {
            float: self.float,
            ..Default::default()
        };
        for r in sales.iter().filter(|r| {
            r.sale.terminal.terminal() == self.terminal
                && (self.opened_ms..until_ms).contains(&r.sale.paid_ms)
        }) {
            let cash = r
                .sale
                .payments
                .iter()
                .filter(|p| p.method == Method::Cash)
                .map(|p| p.amount)
                .fold(0, Minor::saturating_add);
            s.sales = s.sales.saturating_add(1);
            s.cash_sales = s.cash_sales.saturating_add(cash);
            if matches!(r.status, Status::Void | Status::Refunded) {
                s.cash_returned = s.cash_returned.saturating_add(cash);
            }
        }
        for m in &self.movements {
            match m.kind {
                MovementKind::PayIn => s.pay_ins = s.pay_ins.saturating_add(m.amount),
                MovementKind::PayOut => s.pay_outs = s.pay_outs.saturating_add(m.amount),
            }
        }
        s.expected = s
            .float
            .saturating_add(s.cash_sales)
            .saturating_sub(s.cash_returned)
            .saturating_add(s.pay_ins)
            .saturating_sub(s.pay_outs);
        s
    }

    /// Closes the shift with the cash counted; answers the close.
    pub fn close(
        &mut self,
        by: &str,
        counted: Minor,
        expected: Minor,
        now_ms: u64,
    ) -> Result<Close, CashError> {
        if self.closed.is_some() {
            return Err(CashError::Closed);
        }
        if !(0..=PRICE_MAX).contains(&counted) {
            return Err(CashError::Amount(counted));
        }
        let c = Close {
            by: by.to_string(),
            at_ms: now_ms,
            counted,
            expected,
            difference: counted.saturating_sub(expected),
        };
        self.closed = Some(c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cart::Totals;
    use crate::event::Sale;
    use crate::payment::{Payment, PaymentStatus};

    fn sale(id: &str, paid_ms: u64, cash: Minor, qr: Minor) -> Sale {
        let till: u32 = id[1..2].parse().unwrap();
        let pay = |m: Method, amount: Minor| Payment {
            payment_id: format!("{id}-P"),
            method: m,
            amount,
            tendered: amount,
            change: 0,
            provider: None,
            provider_ref: None,
            qr_payload: None,
            expires_at_ms: None,
            status: PaymentStatus::Captured,
        };
        Sale {
            txn_id: id.into(),
            terminal: tillmesh_crdt::ReplicaId::for_terminal(till, 7),
            cashier: "E1".into(),
            created_ms: paid_ms,
            paid_ms,
            lines: vec![],
            totals: Totals::default(),
            payments: [(Method::Cash, cash), (Method::Qr, qr)]
                .into_iter()
                .filter(|(_, a)| *a > 0)
                .map(|(m, a)| pay(m, a))
                .collect(),
            customer_id: None,
            points_earned: 0,
            weights: Vec::new(),
        }
    }

    #[test]
    fn the_drawer_holds_float_plus_cash_sales_less_returns_plus_ins_less_outs() {
        let mut s = Shift::open("S1".into(), 1, "E1", 100_000, 1_000).unwrap();
        let sales = [
            sale("T1-AB-1", 2_000, 50_000, 0),
            sale("T1-AB-2", 3_000, 10_000, 20_000),
            sale("T1-AB-3", 4_000, 7_000, 0),
            sale("T2-CD-1", 2_500, 99_000, 0), // another till's drawer
            sale("T1-AB-0", 500, 88_000, 0),   // before the shift
        ];
        let statuses = [
            Status::Paid,
            Status::Paid,
            Status::Void,
            Status::Paid,
            Status::Paid,
        ];
        let rs: Vec<ReportedSale<'_>> = sales
            .iter()
            .zip(statuses)
            .map(|(sale, status)| ReportedSale { sale, status })
            .collect();
        let held = s.summary(&rs, 10_000).expected;
        assert_eq!(held, 100_000 + 50_000 + 10_000);
        let m = |kind, amount| Movement {
            kind,
            amount,
            reason: "bank".into(),
            by: "E1".into(),
            approved_by: "M1".into(),
            at_ms: 5_000,
        };
        s.record(m(MovementKind::PayIn, 5_000), held).unwrap();
        assert_eq!(
            s.record(m(MovementKind::PayOut, 1_000_000), held),
            Err(CashError::NotInDrawer {
                amount: 1_000_000,
                held
            })
        );
        s.record(m(MovementKind::PayOut, 30_000), held).unwrap();
        assert_eq!(
            s.record(m(MovementKind::PayIn, 0), held),
            Err(CashError::Amount(0))
        );
        let mut blank = m(MovementKind::PayIn, 1);
        blank.reason = " ".into();
        assert_eq!(s.record(blank, held), Err(CashError::Reason));
        s.no_sale().unwrap();
        let sum = s.summary(&rs, 10_000);
        assert_eq!(
            (sum.sales, sum.cash_sales, sum.cash_returned, sum.expected),
            (3, 67_000, 7_000, 100_000 + 67_000 - 7_000 + 5_000 - 30_000)
        );
        let c = s.close("M1", 134_000, sum.expected, 11_000).unwrap();
        assert_eq!(c.difference, -1_000);
        assert_eq!(s.no_sale(), Err(CashError::Closed));
        assert_eq!(s.close("M1", 1, 1, 12_000), Err(CashError::Closed));
    }
}
