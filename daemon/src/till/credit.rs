//! Store credit and single-use coupons: stored-value accounts kept, like gift cards, as
//! bounded counters (escrow), so that neither is spent twice across tills that cannot talk.
//! A customer's store credit (`credit:{customer}`) grows by a return refunded to credit or a
//! manager's goodwill credit, both safe offline (they only create rights, at this till). A
//! coupon (`coupon:{code}`) is issued by a manager with a value and is spent whole by one
//! tender: its balance is its single use.

use super::giftcard::{Issue, check_code};
use super::*;
use tillmesh_pos::payment::{coupon_account, credit_account};

/// Largest coupon value (minor units).
pub const COUPON_VALUE_MAX: i64 = 5_000_000;

/// `POST /api/v1/customers/{id}/credit`: a manager's credit to a customer.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditRequest {
    /// Minor units credited.
    pub amount: i64,
    /// Why (kept in the audit log).
    pub reason: String,
    /// The approving manager, when the caller is not one.
    pub approval: Option<Approval>,
}

/// `POST /api/v1/coupons`: a manager issues a single-use coupon.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CouponRequest {
    /// The coupon's code (6 to 32 upper-case letters, digits or `-`); made up when omitted.
    pub code: Option<String>,
    /// What it pays, in one go (minor units).
    pub value: i64,
    /// The approving manager, when the caller is not one.
    pub approval: Option<Approval>,
}

/// A stored-value account that is not a gift card: store credit or a coupon.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// `store_credit` or `coupon`.
    pub kind: String,
    /// The customer id or the coupon code.
    pub id: String,
    /// Balance (minor units); a used coupon's is 0.
    pub balance: i64,
    /// What this till may spend of it now.
    pub spendable_here: i64,
    /// Rights per till.
    pub holders: Vec<RightsHeld>,
}

impl AccountView {
    fn of(kind: &str, id: &str, v: GiftCardView) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
            balance: v.balance,
            spendable_here: v.spendable_here,
            holders: v.holders,
        }
    }
}

impl Till {
    /// A customer's store credit (404 for an unknown customer; 0 when never credited).
    pub fn store_credit(&self, customer: &str) -> Result<AccountView, TillError> {
        self.customer(customer)?;
        let v = Self::card_view(&self.core(), &credit_account(customer)).unwrap_or(GiftCardView {
            card: credit_account(customer),
            balance: 0,
            spendable_here: 0,
            holders: Vec::new(),
        });
        Ok(AccountView::of("store_credit", customer, v))
    }

    /// A manager credits a customer (goodwill; allowed offline: it only creates rights).
    pub async fn credit_customer(
        &self,
        s: &Session,
        customer: &str,
        req: &CreditRequest,
    ) -> Result<AccountView, TillError> {
        self.customer(customer)?;
        if req.reason.trim().is_empty() || req.reason.len() > 200 {
            return Err(TillError::bad_request(
                "bad_reason",
                "say why the credit is given (1 to 200 characters)",
            ));
        }
        let approver = self
            .approve(s, Permission::Refund, req.approval.as_ref())
            .await?;
        let account = credit_account(customer);
        let issue = Issue {
            action: "credit.issue",
            account: &account,
            what: format!("customer {customer}'s store credit"),
            reason: "goodwill",
            online_only: false,
            new: None,
        };
        info!(
            customer,
            amount = req.amount,
            approver,
            "store credit given"
        );
        let v = self.issue_account(s, &issue, req.amount).await?;
        Ok(AccountView::of("store_credit", customer, v))
    }

    /// A manager issues a single-use coupon (allowed offline).
    pub async fn issue_coupon(
        &self,
        s: &Session,
        req: &CouponRequest,
    ) -> Result<AccountView, TillError> {
        let code = match &req.code {
            Some(c) => c.trim().to_ascii_uppercase(),
            None => {
                let n = u64::from_le_bytes(random_bytes::<8>()) % 10_000_000_000;
                format!("CP{n:010}")
            }
        };
        check_code(&code)?;
        if !(1..=COUPON_VALUE_MAX).contains(&req.value) {
            return Err(TillError::unprocessable(
                "wrong_amount",
                format!("a coupon is worth 1 to {COUPON_VALUE_MAX}"),
            ));
        }
        self.approve(s, Permission::Refund, req.approval.as_ref())
            .await?;
        let account = coupon_account(&code);
        let issue = Issue {
            action: "coupon.issue",
            account: &account,
            what: format!("coupon {code}"),
            reason: "coupon",
            online_only: false,
            new: Some(true),
        };
        let v = self.issue_account(s, &issue, req.value).await?;
        Ok(AccountView::of("coupon", &code, v))
    }

    /// A coupon: its value left (0 once used) and where its rights are.
    pub fn coupon(&self, code: &str) -> Result<AccountView, TillError> {
        let code = code.trim().to_ascii_uppercase();
        let v = Self::card_view(&self.core(), &coupon_account(&code)).ok_or_else(|| {
            TillError::not_found("unknown_coupon", format!("no coupon {code} in this store"))
        })?;
        Ok(AccountView::of("coupon", &code, v))
    }
}

/// Events crediting a customer's store credit with what a return hands back (a return
/// refunded to credit instead of cash): rights created at this till, online or not.
pub(super) fn credit_return(
    replica: &mut Replica,
    customer: &str,
    amount: i64,
    by: &str,
    now: u64,
) -> Option<Event> {
    (amount > 0)
        .then(|| replica.issue_gift_card(&credit_account(customer), amount, by, "return", now))
}

/// What a return of `amount` puts back on the sale's stored-value tenders (gift cards, store
/// credit, coupons), `before` having been returned already: stored value comes back first,
/// tender by tender in payment order, never out in cash. `(account, amount)` each.
pub(super) fn stored_back(sale: &Sale, before: i64, amount: i64) -> Vec<(String, i64)> {
    let stored: i64 = sale
        .payments
        .iter()
        .filter(|p| p.method.spends_balance() && p.status == PaymentStatus::Captured)
        .map(|p| p.amount.max(0))
        .fold(0, i64::saturating_add);
    let from = before.clamp(0, stored);
    let to = before.saturating_add(amount.max(0)).clamp(0, stored);
    let mut out: Vec<(String, i64)> = Vec::new();
    let mut at = 0_i64;
    for p in sale
        .payments
        .iter()
        .filter(|p| p.method.spends_balance() && p.status == PaymentStatus::Captured)
    {
        let (lo, hi) = (at, at.saturating_add(p.amount.max(0)));
        at = hi;
        let back = hi.min(to).saturating_sub(lo.max(from));
        if back > 0 {
            let account = p.provider_ref.clone().unwrap_or_default();
            match out.iter_mut().find(|(a, _)| *a == account) {
                Some((_, n)) => *n = n.saturating_add(back),
                None => out.push((account, back)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillmesh_pos::cart::Totals;

    fn pay(method: Method, amount: i64, account: Option<&str>) -> Payment {
        Payment {
            payment_id: format!("P{amount}"),
            method,
            amount,
            tendered: amount,
            change: 0,
            provider: None,
            provider_ref: account.map(str::to_string),
            qr_payload: None,
            expires_at_ms: None,
            status: PaymentStatus::Captured,
        }
    }

    #[test]
    fn returns_go_back_on_stored_value_first_in_payment_order() {
        let sale = Sale {
            txn_id: "T1-1".into(),
            terminal: ReplicaId(1),
            cashier: "E001".into(),
            created_ms: 0,
            paid_ms: 0,
            lines: Vec::new(),
            totals: Totals::default(),
            payments: vec![
                pay(Method::GiftCard, 300, Some("GC-1")),
                pay(Method::Cash, 500, None),
                pay(Method::StoreCredit, 200, Some("credit:C-1")),
            ],
            customer_id: Some("C-1".into()),
            points_earned: 0,
            weights: Vec::new(),
        };
        let v = |x: &[(&str, i64)]| -> Vec<(String, i64)> {
            x.iter().map(|(a, n)| (a.to_string(), *n)).collect()
        };
        assert_eq!(stored_back(&sale, 0, 250), v(&[("GC-1", 250)]));
        assert_eq!(
            stored_back(&sale, 250, 200),
            v(&[("GC-1", 50), ("credit:C-1", 150)])
        );
        assert_eq!(stored_back(&sale, 450, 100), v(&[("credit:C-1", 50)]));
        // Past the stored value: the rest is cash (nothing here).
        assert_eq!(stored_back(&sale, 500, 300), v(&[]));
        let mut cash_only = sale.clone();
        cash_only.payments.retain(|p| p.method == Method::Cash);
        assert!(stored_back(&cash_only, 0, 500).is_empty());
    }
}
