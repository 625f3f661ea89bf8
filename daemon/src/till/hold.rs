//! Hold and recall of open sales, and the list of the till's open sales.

use super::*;

impl Till {
    /// The till's open sales (held or not), oldest first: every cashier of the till sees
    /// them, to recall a held one or resume their own after a reload.
    pub fn open_txns(&self) -> Vec<TxnView> {
        let core = self.core();
        let mut open: Vec<&Draft> = core.drafts.values().collect();
        open.sort_by(|a, b| (a.created_ms, &a.txn_id).cmp(&(b.created_ms, &b.txn_id)));
        open.into_iter().map(|d| self.view(d)).collect()
    }

    /// Parks an open sale: it stays on the till (persisted), listed for any cashier to
    /// recall, and is never abandoned to make room for new sales.
    pub async fn hold(&self, s: &Session, id: &str) -> Result<TxnView, TillError> {
        self.edit_draft(s, "transaction.hold", id, |core, now| {
            let d = core.drafts.get_mut(id).expect("checked by edit_draft");
            if d.payments
                .iter()
                .any(|p| p.status == PaymentStatus::Pending)
            {
                return Err(TillError::conflict(
                    "payment_pending",
                    "a QR payment is pending: wait for it or cancel it before holding the sale",
                ));
            }
            if d.held.is_some() {
                return Err(TillError::conflict(
                    "already_held",
                    "this sale is on hold already",
                ));
            }
            d.held = Some(Hold {
                by: s.employee_id.clone(),
                at_ms: now,
            });
            Ok(format!("{} lines", d.cart.lines().len()))
        })
        .await
    }

    /// Takes a held sale back: the recalling cashier carries on with it.
    pub async fn recall(&self, s: &Session, id: &str) -> Result<TxnView, TillError> {
        self.edit_draft(s, "transaction.recall", id, |core, _| {
            let d = core.drafts.get_mut(id).expect("checked by edit_draft");
            let Some(h) = d.held.take() else {
                return Err(TillError::conflict("not_held", "this sale is not on hold"));
            };
            let from = std::mem::replace(&mut d.cashier, s.employee_id.clone());
            Ok(format!(
                "held by {} since {}, opened by {from}",
                h.by, h.at_ms
            ))
        })
        .await
    }
}
