//! Voids, refunds and returns of part of a sale by line and quantity (manager-approved,
//! restocking what comes back), and receipts.

use super::*;

impl Till {
    /// Cancels an open transaction or voids a paid one (manager), restocking its items.
    pub async fn void(
        &self,
        s: &Session,
        id: &str,
        reason: &str,
        approval: Option<&Approval>,
    ) -> Result<TxnView, TillError> {
        self.audited(&s.employee_id, "transaction.void", id, async {
            let now = self.now();
            // An open transaction is abandoned: nothing was sold. One holding money needs a
            // manager: its captured payments are handed back and its pending ones cancelled.
            // A gift card tender is only released (nothing was spent of the card yet).
            let holds_money = self.core().drafts.get(id).map(|d| {
                d.payments.iter().any(|p| {
                    matches!(p.status, PaymentStatus::Captured | PaymentStatus::Pending)
                        && !p.method.spends_balance()
                })
            });
            let open_approver = match holds_money {
                Some(true) => Some(self.approve(s, Permission::Void, approval).await?),
                _ => None,
            };
            let abandoned = {
                let (mut core, slot) = self.core_for_write()?;
                let Core {
                    drafts,
                    pay,
                    expired_qr,
                    ..
                } = &mut *core;
                match drafts.get_mut(id) {
                    Some(d) => {
                        d.status.transition(Status::Void)?;
                        let mut handed_back = Vec::new();
                        for p in d.payments.iter_mut() {
                            match p.status {
                                PaymentStatus::Pending => {
                                    pay::give_up(pay, expired_qr, &d.txn_id, p, now)
                                }
                                // Nothing was spent of a gift card until the sale is final.
                                PaymentStatus::Captured if p.method.spends_balance() => {
                                    p.status = PaymentStatus::Cancelled;
                                }
                                PaymentStatus::Captured => {
                                    p.status = PaymentStatus::Cancelled;
                                    d.returned = d.returned.saturating_add(p.amount);
                                    handed_back.push(format!(
                                        "{} {} {}",
                                        p.payment_id,
                                        p.method.as_str(),
                                        p.amount
                                    ));
                                }
                                _ => {}
                            }
                        }
                        // A payment captured in the meantime (a QR the customer just paid)
                        // is handed back too, but only with the manager's approval.
                        if !handed_back.is_empty() && open_approver.is_none() {
                            return Err(TillError::forbidden(
                                "approval_required",
                                "a payment was captured on this sale: a manager must approve the void",
                            ));
                        }
                        let mut d = drafts.remove(id).expect("present");
                        d.status = Status::Void;
                        self.metrics.drafts.set(drafts.len() as i64);
                        let detail = match &open_approver {
                            Some(by) => format!(
                                "abandoned, approved by {by}: {reason}; handed back: {}",
                                if handed_back.is_empty() {
                                    "nothing".to_string()
                                } else {
                                    handed_back.join(", ")
                                }
                            ),
                            None => format!("abandoned: {reason}"),
                        };
                        let rec = audit_rec(
                            now,
                            &s.employee_id,
                            "transaction.void",
                            id,
                            "ok",
                            detail,
                        );
                        let rx = self.submit(
                            slot,
                            WriteBatch {
                                audit: vec![rec],
                                meta_delete: vec![draft_key(id)],
                                ..Default::default()
                            },
                        )?;
                        Some((self.view(&d), rx))
                    }
                    None => None,
                }
            };
            if let Some((v, rx)) = abandoned {
                self.committed(rx).await?;
                return Ok(v);
            }
            let (sale, _) = self.load_sale(id).await?;
            self.no_returns_yet(id, "voided").await?;
            let approver = self.approve(s, Permission::Void, approval).await?;
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                let current = status_of(&core, id);
                current.transition(Status::Void)?;
                let mut events = vec![core.replica.set_status(
                    id,
                    Status::Void,
                    |status| EventBody::TransactionVoided {
                        txn_id: id.into(),
                        by: s.employee_id.clone(),
                        approved_by: approver.clone(),
                        reason: reason.into(),
                        status,
                    },
                    now,
                )];
                events.extend(restock(&mut core.replica, &sale, &s.employee_id, now));
                events.extend(credit_cards(&mut core.replica, &sale, &s.employee_id, now));
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.void",
                    id,
                    "ok",
                    format!("approved by {approver}: {reason}"),
                );
                self.submit(
                    slot,
                    WriteBatch {
                        events,
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?
            };
            self.durable(rx).await?;
            self.get_txn(id).await
        })
        .await
    }

    /// PAID -> REFUND_REQUESTED (any cashier).
    pub async fn request_refund(
        &self,
        s: &Session,
        id: &str,
        reason: &str,
    ) -> Result<TxnView, TillError> {
        self.audited(&s.employee_id, "transaction.refund_request", id, async {
            let now = self.now();
            let (sale, _) = self.load_sale(id).await?;
            self.no_returns_yet(id, "refunded whole").await?;
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                let current = status_of(&core, id);
                current.transition(Status::RefundRequested)?;
                let ev = core.replica.set_status(
                    id,
                    Status::RefundRequested,
                    |status| EventBody::RefundRecorded {
                        txn_id: id.into(),
                        amount: 0,
                        by: s.employee_id.clone(),
                        approved_by: String::new(),
                        reason: reason.into(),
                        status,
                    },
                    now,
                );
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.refund_request",
                    id,
                    "ok",
                    format!("total {}: {reason}", sale.totals.total),
                );
                self.submit(
                    slot,
                    WriteBatch {
                        events: vec![ev],
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?
            };
            self.durable(rx).await?;
            self.get_txn(id).await
        })
        .await
    }

    /// REFUND_REQUESTED -> REFUNDED (manager), restocking and reversing points.
    pub async fn approve_refund(
        &self,
        s: &Session,
        id: &str,
        approval: Option<&Approval>,
    ) -> Result<TxnView, TillError> {
        self.audited(&s.employee_id, "transaction.refund_approve", id, async {
            let now = self.now();
            let (sale, _) = self.load_sale(id).await?;
            let approver = self.approve(s, Permission::Refund, approval).await?;
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                let current = status_of(&core, id);
                current.transition(Status::Refunded)?;
                let mut events = vec![core.replica.set_status(
                    id,
                    Status::Refunded,
                    |status| EventBody::RefundRecorded {
                        txn_id: id.into(),
                        amount: sale.totals.total,
                        by: s.employee_id.clone(),
                        approved_by: approver.clone(),
                        reason: String::new(),
                        status,
                    },
                    now,
                )];
                events.extend(restock(&mut core.replica, &sale, &s.employee_id, now));
                events.extend(credit_cards(&mut core.replica, &sale, &s.employee_id, now));
                if let Some(c) = &sale.customer_id
                    && sale.points_earned != 0
                {
                    events.push(core.replica.change_points(c, -sale.points_earned, now));
                }
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.refund_approve",
                    id,
                    "ok",
                    format!("approved by {approver}, amount {}", sale.totals.total),
                );
                self.submit(
                    slot,
                    WriteBatch {
                        events,
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?
            };
            self.durable(rx).await?;
            self.get_txn(id).await
        })
        .await
    }

    /// Returns units of a paid sale (`lines`: `(line_no, units)`), with a manager's approval:
    /// each unit hands back its share of its line's total (discount and tax included), the
    /// units go back into stock, loyalty points earned on them are taken back, and once
    /// every unit is returned the sale becomes REFUNDED. Checked against the returns this
    /// till knows of. With `to_credit`, what is handed back goes to the sale's customer's
    /// store credit instead of cash (the sale must name a customer).
    pub async fn return_items(
        &self,
        s: &Session,
        id: &str,
        lines: &[(u32, u32)],
        reason: &str,
        approval: Option<&Approval>,
        to_credit: bool,
    ) -> Result<TxnView, TillError> {
        self.audited(&s.employee_id, "transaction.return", id, async {
            let now = self.now();
            let (sale, _) = self.load_sale(id).await?;
            let credit_to = match (&sale.customer_id, to_credit) {
                (_, false) => None,
                (Some(c), true) => Some(c.clone()),
                (None, true) => {
                    return Err(TillError::unprocessable(
                        "no_customer",
                        format!(
                            "sale {id} names no customer, so it cannot be refunded to store credit"
                        ),
                    ));
                }
            };
            let approver = self.approve(s, Permission::Refund, approval).await?;
            let before = self.returned_of(id).await?;
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                let current = status_of(&core, id);
                if current != Status::Paid {
                    return Err(TillError::conflict(
                        "not_paid",
                        format!("transaction {id} is {current}; only a paid sale takes returns"),
                    ));
                }
                let already: BTreeMap<u32, u32> =
                    before.iter().map(|(&l, &(q, _))| (l, q)).collect();
                let back = tillmesh_pos::returns::return_lines(&sale, &already, lines)
                    .map_err(|e| TillError::unprocessable("bad_return", e.to_string()))?;
                let mut after = already.clone();
                for l in &back {
                    let q = after.entry(l.line_no).or_insert(0);
                    *q = q.saturating_add(l.quantity);
                }
                let amount = back.iter().map(|l| l.amount).fold(0, i64::saturating_add);
                let whole = tillmesh_pos::returns::all_returned(&sale, &after);
                let body = |status| EventBody::ItemsReturned {
                    txn_id: id.into(),
                    lines: back.clone(),
                    amount,
                    by: s.employee_id.clone(),
                    approved_by: approver.clone(),
                    reason: reason.into(),
                    status,
                };
                // PAID to REFUNDED directly: the manager approved this return itself.
                let mut events = vec![core.replica.record_return(id, whole, body, now)];
                for l in &back {
                    if let Some(line) = sale.lines.iter().find(|x| x.line_no == l.line_no) {
                        // A weighed line (one unit) puts its grams back.
                        let units = if l.quantity == line.quantity {
                            tillmesh_pos::cart::stock_units(&sale.weights, line)
                        } else {
                            i64::from(l.quantity)
                        };
                        events.push(core.replica.adjust(
                            &line.sku,
                            units,
                            Reason::Sale,
                            None,
                            Some(format!("return from {id}")),
                            &s.employee_id,
                            now,
                        ));
                    }
                }
                // Stored value the sale was paid with comes back first, onto the same
                // accounts; only the rest is cash, or store credit when asked.
                let returned_before: i64 = before.values().map(|(_, a)| *a).sum();
                let back_on = super::credit::stored_back(&sale, returned_before, amount);
                let on_accounts: i64 = back_on.iter().map(|(_, n)| *n).sum();
                for (account, n) in &back_on {
                    events.push(core.replica.issue_gift_card(
                        account,
                        *n,
                        &s.employee_id,
                        "return",
                        now,
                    ));
                }
                if let Some(c) = &credit_to {
                    events.extend(super::credit::credit_return(
                        &mut core.replica,
                        c,
                        amount.saturating_sub(on_accounts),
                        &s.employee_id,
                        now,
                    ));
                }
                if let Some(c) = &sale.customer_id
                    && sale.points_earned != 0
                    && sale.totals.total > 0
                {
                    // Points earned on the returned share, rounded down.
                    let share = i128::from(sale.points_earned) * i128::from(amount)
                        / i128::from(sale.totals.total);
                    let share = i64::try_from(share).unwrap_or(0);
                    if share != 0 {
                        events.push(core.replica.change_points(c, -share, now));
                    }
                }
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.return",
                    id,
                    "ok",
                    format!(
                        "approved by {approver}, {} line(s), amount {amount}{}{}{}: {reason}",
                        back.len(),
                        if whole { ", the whole sale" } else { "" },
                        if on_accounts > 0 {
                            format!(", {on_accounts} back on the stored value it was paid with")
                        } else {
                            String::new()
                        },
                        if credit_to.is_some() {
                            ", the rest to store credit"
                        } else {
                            ""
                        }
                    ),
                );
                self.submit(
                    slot,
                    WriteBatch {
                        events,
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?
            };
            self.durable(rx).await?;
            self.get_txn(id).await
        })
        .await
    }

    /// Refuses to void or refund whole a sale some of whose units were already returned
    /// (they would be restocked and paid back twice): the rest is returned instead.
    async fn no_returns_yet(&self, id: &str, what: &str) -> Result<(), TillError> {
        if self.returned_of(id).await?.is_empty() {
            return Ok(());
        }
        Err(TillError::conflict(
            "has_returns",
            format!(
                "units of sale {id} were returned already, so it cannot be {what}: return the rest of its units instead"
            ),
        ))
    }

    /// A receipt; a reprint is marked and audited.
    pub async fn receipt(
        &self,
        s: &Session,
        id: &str,
        reprint: bool,
    ) -> Result<Receipt, TillError> {
        let (sale, status) = self.load_sale(id).await?;
        if reprint {
            self.audit(audit_rec(
                self.now(),
                &s.employee_id,
                "receipt.reprint",
                id,
                "ok",
                String::new(),
            ))
            .await?;
        }
        Ok(Receipt {
            store: self.cfg.store.clone(),
            paid_at: tillmesh_pos::calendar::local_datetime(
                sale.paid_ms,
                self.cfg.checkout.utc_offset_minutes,
            ),
            sale,
            status,
            reprint,
        })
    }
}

/// What a voided or refunded sale paid by gift card goes back onto the card (never out in
/// cash): the rights are created at this till, like a top-up, online or not.
fn credit_cards(replica: &mut Replica, sale: &Sale, by: &str, now: u64) -> Vec<Event> {
    Replica::gift_card_tenders(sale)
        .into_iter()
        .filter(|(_, amount)| *amount > 0)
        .map(|(card, amount)| {
            replica.issue_gift_card(
                &card,
                i64::try_from(amount).unwrap_or(i64::MAX),
                by,
                "refund",
                now,
            )
        })
        .collect()
}

/// Stock events putting every unit of a voided or refunded sale back.
fn restock(replica: &mut Replica, sale: &Sale, by: &str, now: u64) -> Vec<Event> {
    sale.lines
        .iter()
        .map(|l| {
            replica.adjust(
                &l.sku,
                tillmesh_pos::cart::stock_units(&sale.weights, l),
                Reason::Sale,
                None,
                Some(format!("reversal of {}", sale.txn_id)),
                by,
                now,
            )
        })
        .collect()
}
