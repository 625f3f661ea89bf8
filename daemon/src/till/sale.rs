//! The sale: catalog lookups, the open basket (lines, quantities, customer), checkout and reopen,
//! payments, and finalisation, durable before it is answered.

use super::*;

impl Till {
    /// Looks up an item by barcode.
    pub fn lookup(&self, barcode: &str) -> Result<ItemView, TillError> {
        let now = self.now();
        let core = self.core();
        let item = core.catalog.lookup(barcode)?.clone();
        Ok(item_view(&core, item, now))
    }

    /// Looks up an item by SKU.
    pub fn item(&self, sku: &str) -> Result<ItemView, TillError> {
        let now = self.now();
        let core = self.core();
        let item = core.catalog.get(sku)?.clone();
        Ok(item_view(&core, item, now))
    }

    pub(super) fn view(&self, d: &Draft) -> TxnView {
        let totals = d.cart.totals();
        let due = payment::remaining_due(totals.total, &d.payments);
        TxnView {
            txn_id: d.txn_id.clone(),
            status: d.status,
            cashier: d.cashier.clone(),
            created_at: rfc3339(d.created_ms),
            lines: d.cart.lines().to_vec(),
            weights: d.cart.weights().to_vec(),
            totals,
            payments: d.payments.clone(),
            remaining_due: due.max(0),
            change_due: d.payments.iter().map(|p| p.change).sum(),
            customer_id: d.customer_id.clone(),
            paid: d
                .payments
                .iter()
                .filter(|p| p.status == PaymentStatus::Captured)
                .map(|p| p.amount)
                .fold(0, i64::saturating_add),
            returned: d.returned,
            returned_lines: Vec::new(),
            held_by: d.held.as_ref().map(|h| h.by.clone()),
            held_at: d.held.as_ref().map(|h| rfc3339(h.at_ms)),
        }
    }

    /// Opens a new transaction.
    pub async fn create_txn(&self, s: &Session) -> Result<TxnView, TillError> {
        self.audited(&s.employee_id, "transaction.create", "-", async {
            let now = self.now();
            self.check_offline_limit(now)?;
            let (view, rx) = {
                let (mut core, slot) = self.core_for_write()?;
                // At capacity, the oldest open transaction with no money taken is abandoned
                // (audited) rather than refusing to sell; only transactions holding captured
                // or pending payments are never dropped.
                let mut evicted = None;
                if core.drafts.len() >= self.cfg.checkout.drafts_max {
                    let victim = core
                        .drafts
                        .values()
                        .filter(|d| {
                            d.held.is_none()
                                && !d.payments.iter().any(|p| {
                                    matches!(
                                        p.status,
                                        PaymentStatus::Captured | PaymentStatus::Pending
                                    )
                                })
                        })
                        .min_by_key(|d| (d.created_ms, d.txn_id.clone()))
                        .map(|d| d.txn_id.clone());
                    match victim {
                        Some(v) => {
                            core.drafts.remove(&v);
                            evicted = Some(v);
                        }
                        None => {
                            return Err(TillError::conflict(
                                "too_many_open_transactions",
                                "every open transaction holds a payment: finish or void one first",
                            ));
                        }
                    }
                }
                let txn_id = format!("{}{}", self.prefix, core.next_txn);
                core.next_txn += 1;
                let d = Draft {
                    txn_id: txn_id.clone(),
                    cashier: s.employee_id.clone(),
                    created_ms: now,
                    status: Status::Draft,
                    cart: Cart::new(),
                    payments: vec![],
                    customer_id: None,
                    held: None,
                    returned: 0,
                };
                let v = self.view(&d);
                let mut audit = Vec::new();
                let mut meta_delete = Vec::new();
                if let Some(v) = &evicted {
                    warn!(txn = %v, "open transaction abandoned to make room for a new one");
                    audit.push(audit_rec(
                        now,
                        &s.employee_id,
                        "transaction.void",
                        v,
                        "ok",
                        "abandoned: too many open transactions".into(),
                    ));
                    meta_delete.push(draft_key(v));
                }
                audit.push(audit_rec(
                    now,
                    &s.employee_id,
                    "transaction.create",
                    &txn_id,
                    "ok",
                    String::new(),
                ));
                let rx = self.submit(
                    slot,
                    WriteBatch {
                        audit,
                        // The number's high-water mark with it: a number is never given
                        // twice, even when its draft is cancelled and the till restarts.
                        meta: vec![
                            (draft_key(&txn_id), draft_json(&d)),
                            (TXN_HIGH_KEY.into(), (core.next_txn - 1).to_string()),
                        ],
                        meta_delete,
                        ..Default::default()
                    },
                )?;
                core.drafts.insert(txn_id, d);
                self.metrics.drafts.set(core.drafts.len() as i64);
                (v, rx)
            };
            self.committed(rx).await?;
            Ok(view)
        })
        .await
    }

    /// A transaction: open ones from memory, finished ones from the store.
    pub async fn get_txn(&self, id: &str) -> Result<TxnView, TillError> {
        if let Some(d) = self.core().drafts.get(id) {
            return Ok(self.view(d));
        }
        let (sale, status) = self.load_sale(id).await?;
        let back = self.returned_of(id).await?;
        Ok(sale_view(sale, status, &back))
    }

    /// Units of each line of a paid sale returned so far: `line_no -> (units, amount)`.
    pub(super) async fn returned_of(
        &self,
        id: &str,
    ) -> Result<BTreeMap<u32, (u32, i64)>, TillError> {
        let store = self.store.clone();
        let key = id.to_string();
        Ok(self
            .off_executor(move || store.read(|r| r.returned(&key)))
            .await??)
    }

    pub(super) async fn load_sale(&self, id: &str) -> Result<(Sale, Status), TillError> {
        let store = self.store.clone();
        let key = id.to_string();
        let found = self
            .off_executor(move || store.read(|r| r.sale(&key)))
            .await??;
        if let Some(found) = found {
            return Ok(found);
        }
        // An open sale exists, but has no receipt, refund or return until it is paid.
        if let Some(d) = self.core().drafts.get(id) {
            return Err(TillError::conflict(
                "not_paid",
                format!(
                    "transaction {id} is still open ({}): only a paid sale has a receipt, refunds and returns",
                    d.status
                ),
            ));
        }
        Err(TillError::not_found(
            "unknown_transaction",
            format!("no transaction {id} on this till"),
        ))
    }

    /// Applies `f` to an open transaction, then records the change in the audit log.
    pub(super) async fn edit_draft(
        &self,
        s: &Session,
        action: &str,
        id: &str,
        f: impl FnOnce(&mut Core, u64) -> Result<String, TillError>,
    ) -> Result<TxnView, TillError> {
        self.audited(&s.employee_id, action, id, async {
            let now = self.now();
            // The change and its audit record are queued under the lock, so concurrent edits
            // of one transaction reach the disk in the order they were made.
            let (view, rx) = {
                let (mut core, slot) = self.core_for_write()?;
                match core.drafts.get(id) {
                    None => return Err(missing_draft(id)),
                    Some(d) if d.held.is_some() && action != "transaction.recall" => {
                        return Err(TillError::conflict(
                            "on_hold",
                            "this sale is on hold: recall it first",
                        ));
                    }
                    Some(_) => {}
                }
                let detail = f(&mut core, now)?;
                let d = &core.drafts[id];
                let rec = audit_rec(now, &s.employee_id, action, id, "ok", detail);
                let rx = self.submit(
                    slot,
                    WriteBatch {
                        audit: vec![rec],
                        meta: vec![(draft_key(id), draft_json(d))],
                        ..Default::default()
                    },
                )?;
                (self.view(d), rx)
            };
            self.committed(rx).await?;
            Ok(view)
        })
        .await
    }

    /// Adds an item by barcode: `quantity` units, or, for an item sold by weight,
    /// `weight_g` grams (each weighing a line of its own).
    pub async fn add_item(
        &self,
        s: &Session,
        id: &str,
        barcode: &str,
        quantity: u32,
        rescan: bool,
    ) -> Result<TxnView, TillError> {
        self.add_to_sale(s, id, barcode, quantity, None, rescan)
            .await
    }

    /// Adds `quantity` units of an item, or `weight_g` grams of one sold by weight.
    pub async fn add_to_sale(
        &self,
        s: &Session,
        id: &str,
        barcode: &str,
        quantity: u32,
        weight_g: Option<i64>,
        rescan: bool,
    ) -> Result<TxnView, TillError> {
        // A deliberate rescan (the cashier saw the first) is never a double read.
        let guard = if rescan {
            0
        } else {
            self.cfg.checkout.scan_guard_ms
        };
        self.edit_draft(s, "transaction.add_item", id, |core, now| {
            let Core {
                drafts,
                catalog,
                prices,
                promotions,
                ..
            } = core;
            let d = drafts.get_mut(id).expect("checked by edit_draft");
            require_draft(d)?;
            let ctx = PricingContext {
                catalog,
                prices,
                promotions,
                scan_guard_ms: guard,
            };
            Ok(match weight_g {
                Some(g) => {
                    let line = d.cart.add_weighed(&ctx, barcode, g, now)?;
                    format!("barcode {barcode} {g} g -> line {line}")
                }
                None => {
                    let line = d.cart.add_barcode(&ctx, barcode, quantity, now)?;
                    format!("barcode {barcode} x{quantity} -> line {line}")
                }
            })
        })
        .await
    }

    /// Changes a line's quantity.
    pub async fn set_quantity(
        &self,
        s: &Session,
        id: &str,
        line: u32,
        quantity: i64,
    ) -> Result<TxnView, TillError> {
        self.edit_draft(s, "transaction.set_quantity", id, |core, now| {
            let Core {
                drafts, promotions, ..
            } = core;
            let d = drafts.get_mut(id).expect("checked by edit_draft");
            require_draft(d)?;
            d.cart.set_quantity(promotions, line, quantity, now)?;
            Ok(format!("line {line} -> {quantity}"))
        })
        .await
    }

    /// Removes a line.
    pub async fn remove_line(
        &self,
        s: &Session,
        id: &str,
        line: u32,
    ) -> Result<TxnView, TillError> {
        self.edit_draft(s, "transaction.remove_line", id, |core, now| {
            let Core {
                drafts, promotions, ..
            } = core;
            let d = drafts.get_mut(id).expect("checked by edit_draft");
            require_draft(d)?;
            d.cart.remove_line(promotions, line, now)?;
            Ok(format!("line {line} removed"))
        })
        .await
    }

    /// Attaches a loyalty customer.
    pub async fn attach_customer(
        &self,
        s: &Session,
        id: &str,
        customer_id: &str,
    ) -> Result<TxnView, TillError> {
        self.edit_draft(s, "transaction.attach_customer", id, |core, _| {
            if !customers::customer_known(core, customer_id) {
                // The sale exists; the customer it names does not: 422, not 404.
                return Err(TillError::unprocessable(
                    "unknown_customer",
                    format!("no customer {customer_id}; register them first"),
                ));
            }
            let d = core.drafts.get_mut(id).expect("checked by edit_draft");
            require_draft(d)?;
            d.customer_id = Some(customer_id.to_string());
            Ok(customer_id.to_string())
        })
        .await
    }

    /// Freezes the cart for payment: DRAFT -> PENDING_PAYMENT.
    pub async fn checkout(&self, s: &Session, id: &str) -> Result<TxnView, TillError> {
        self.edit_draft(s, "transaction.checkout", id, |core, _| {
            let d = core.drafts.get_mut(id).expect("checked by edit_draft");
            if d.cart.is_empty() && d.status == Status::Draft {
                return Err(TillError::conflict(
                    "empty_transaction",
                    "add at least one item before taking payment",
                ));
            }
            d.status = d.status.transition(Status::PendingPayment)?;
            Ok(format!("total {}", d.cart.totals().total))
        })
        .await
    }

    /// Back to editing: PENDING_PAYMENT -> DRAFT, only while no payment is captured.
    pub async fn reopen(&self, s: &Session, id: &str) -> Result<TxnView, TillError> {
        self.edit_draft(s, "transaction.reopen", id, |core, _| {
            let d = core.drafts.get_mut(id).expect("checked by edit_draft");
            if d.payments
                .iter()
                .any(|p| matches!(p.status, PaymentStatus::Captured | PaymentStatus::Pending))
            {
                return Err(TillError::conflict(
                    "payment_taken",
                    "a payment is captured or pending; cancel it or finish the sale",
                ));
            }
            d.status = d.status.transition(Status::Draft)?;
            Ok(String::new())
        })
        .await
    }

    /// Takes a payment: cash (captured at once, change computed) or QR (pending).
    pub async fn add_payment(
        &self,
        s: &Session,
        id: &str,
        req: &PaymentRequest,
    ) -> Result<TxnView, TillError> {
        match req.method {
            Method::Qr => return self.add_qr_payment(s, id, req).await,
            Method::GiftCard | Method::StoreCredit | Method::Coupon => {
                return self.add_balance_payment(s, id, req).await;
            }
            Method::Cash => {}
        }
        self.edit_draft(s, "transaction.payment", id, |core, now| {
            let (d, due) = pay::taking_payment(core, id, now)?;
            // Payments are never removed from a transaction (a cancelled one stays), so the
            // position names a payment uniquely, across restarts too.
            let pid = format!("{}-P{}", d.txn_id, d.payments.len() + 1);
            let p = match req.method {
                Method::Cash => {
                    let tendered = req.tendered.or(req.amount).ok_or_else(|| {
                        TillError::bad_request(
                            "missing_field",
                            "cash needs 'tendered' (the cash handed over)",
                        )
                    })?;
                    let change_max = self.cfg.checkout.cash_change_max;
                    if tendered.saturating_sub(due) > change_max {
                        return Err(TillError::unprocessable(
                            "tendered_too_high",
                            format!(
                                "cash received {tendered} is more than the {due} due plus the \
                                 most change a till gives ({change_max}); check the amount"
                            ),
                        ));
                    }
                    payment::cash(pid, tendered, due)?
                }
                Method::Qr | Method::GiftCard | Method::StoreCredit | Method::Coupon => {
                    unreachable!("QR and stored-value payments are taken above")
                }
            };
            let detail = format!("{} {} {}", p.payment_id, p.method.as_str(), p.amount);
            d.payments.push(p);
            Ok(detail)
        })
        .await
    }

    /// A payment's status, as the provider last told it.
    pub fn payment_status(&self, payment_id: &str) -> Result<Payment, TillError> {
        let now = self.now();
        let mut core = self.core();
        let Core {
            drafts,
            pay,
            expired_qr,
            ..
        } = &mut *core;
        for d in drafts.values_mut() {
            if d.payments.iter().any(|p| p.payment_id == payment_id) {
                late::refresh_payments(pay, expired_qr, d, now);
                return Ok(d
                    .payments
                    .iter()
                    .find(|p| p.payment_id == payment_id)
                    .cloned()
                    .expect("just found"));
            }
        }
        Err(payment::PaymentError::Unknown(payment_id.to_string()).into())
    }

    /// Cancels a pending QR payment, or undoes a captured cash payment on a sale still open
    /// (the cash is handed back).
    pub async fn cancel_payment(
        &self,
        s: &Session,
        payment_id: &str,
    ) -> Result<Payment, TillError> {
        self.audited(&s.employee_id, "payment.cancel", payment_id, async {
            let now = self.now();
            let p = {
                let (mut core, slot) = self.core_for_write()?;
                let Core {
                    drafts,
                    pay,
                    expired_qr,
                    ..
                } = &mut *core;
                let d = drafts
                    .values_mut()
                    .find(|d| d.payments.iter().any(|p| p.payment_id == payment_id))
                    .ok_or_else(|| {
                        TillError::from(payment::PaymentError::Unknown(payment_id.to_string()))
                    })?;
                late::refresh_payments(pay, expired_qr, d, now);
                let p = d
                    .payments
                    .iter_mut()
                    .find(|p| p.payment_id == payment_id)
                    .expect("just found");
                let mut handed_back = 0;
                let detail = match (p.status, p.method) {
                    (PaymentStatus::Pending, _) => {
                        pay::give_up(pay, expired_qr, &d.txn_id, p, now);
                        String::new()
                    }
                    // Undoing a cash payment on a sale still open: the cash goes back to the
                    // customer (the change was never given on what was applied).
                    (PaymentStatus::Captured, Method::Cash) => {
                        p.status = PaymentStatus::Cancelled;
                        handed_back = p.amount;
                        format!("cash handed back {handed_back}")
                    }
                    // A gift card, store credit or coupon tender on a sale still open: the
                    // account keeps its balance (nothing was spent until the sale is final).
                    (PaymentStatus::Captured, m) if m.spends_balance() => {
                        p.status = PaymentStatus::Cancelled;
                        format!("{} released", m.as_str())
                    }
                    (PaymentStatus::Captured, Method::Qr) => {
                        return Err(TillError::conflict(
                            "payment_taken",
                            "a captured QR payment cannot be undone here: void the sale (a manager) to hand it back",
                        ));
                    }
                    _ => {
                        return Err(
                            payment::PaymentError::NotPending(payment_id.to_string()).into()
                        );
                    }
                };
                let p = p.clone();
                d.returned = d.returned.saturating_add(handed_back);
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "payment.cancel",
                    payment_id,
                    "ok",
                    detail,
                );
                let rx = self.submit(
                    slot,
                    WriteBatch {
                        audit: vec![rec],
                        meta: vec![(draft_key(&d.txn_id), draft_json(d))],
                        ..Default::default()
                    },
                )?;
                (p, rx)
            };
            self.committed(p.1).await?;
            Ok(p.0)
        })
        .await
    }

    /// PENDING_PAYMENT -> PAID: records the sale, its inventory and points changes in one
    /// SQLite transaction and answers after the commit.
    pub async fn finalize(&self, s: &Session, id: &str) -> Result<TxnView, TillError> {
        let started = std::time::Instant::now();
        let out = self
            .audited(&s.employee_id, "transaction.finalize", id, async {
                let now = self.now();
                let (rx, sale) = {
                    let (mut core, slot) = self.core_for_write()?;
                    let Core {
                        drafts,
                        pay,
                        replica,
                        expired_qr,
                        ..
                    } = &mut *core;
                    let d = drafts.get_mut(id).ok_or_else(|| missing_draft(id))?;
                    d.status.transition(Status::Paid)?;
                    late::refresh_payments(pay, expired_qr, d, now);
                    let totals = d.cart.totals();
                    let captured = payment::settle(totals.total, &d.payments)?;
                    let points = tillmesh_pos::customer::points_earned(
                        totals.total,
                        d.customer_id.is_some(),
                        self.cfg.checkout.points_per_minor,
                    );
                    let sale = Sale {
                        txn_id: d.txn_id.clone(),
                        terminal: replica.id(),
                        cashier: d.cashier.clone(),
                        created_ms: d.created_ms,
                        paid_ms: now,
                        lines: d.cart.lines().to_vec(),
                        totals,
                        payments: captured,
                        customer_id: d.customer_id.clone(),
                        points_earned: points,
                        weights: d.cart.weights().to_vec(),
                    };
                    let events = replica.try_record_sale(sale.clone(), now).map_err(|short| {
                        TillError::conflict(
                            "rights_elsewhere",
                            format!(
                                "this till holds the rights to spend only {} of a gift card tendered ({} asked): cancel that payment and take it again",
                                short.held, short.asked
                            ),
                        )
                    })?;
                    let rec = audit_rec(
                        now,
                        &s.employee_id,
                        "transaction.finalize",
                        id,
                        "ok",
                        format!("total {}", totals.total),
                    );
                    let rx = self.submit(
                        slot,
                        WriteBatch {
                            events,
                            audit: vec![rec],
                            meta_delete: vec![draft_key(id)],
                            ..Default::default()
                        },
                    )?;
                    drafts.remove(id);
                    self.metrics.drafts.set(drafts.len() as i64);
                    (rx, sale)
                };
                let info = self.durable(rx).await?;
                self.metrics.events.inc_by(info.events_new as i64);
                self.metrics.sales.inc();
                self.metrics
                    .sales_value
                    .inc_by(sale.totals.total.max(0) as u64);
                Ok(sale_view(sale, Status::Paid, &BTreeMap::new()))
            })
            .await;
        if out.is_ok() {
            self.metrics
                .sale_latency
                .observe(started.elapsed().as_secs_f64());
        }
        out
    }
}

/// A recorded sale as the API shows it (every payment on it was captured).
fn sale_view(sale: Sale, status: Status, back: &BTreeMap<u32, (u32, i64)>) -> TxnView {
    let returned_lines: Vec<_> = back
        .iter()
        .map(
            |(&line_no, &(quantity, amount))| tillmesh_pos::returns::ReturnedLine {
                line_no,
                quantity,
                amount,
            },
        )
        .collect();
    TxnView {
        returned: returned_lines
            .iter()
            .map(|l| l.amount)
            .fold(0, i64::saturating_add),
        returned_lines,
        txn_id: sale.txn_id.clone(),
        status,
        cashier: sale.cashier.clone(),
        created_at: rfc3339(sale.created_ms),
        remaining_due: 0,
        change_due: sale.payments.iter().map(|p| p.change).sum(),
        paid: sale
            .payments
            .iter()
            .map(|p| p.amount)
            .fold(0, i64::saturating_add),
        held_by: None,
        held_at: None,
        lines: sale.lines,
        weights: sale.weights,
        totals: sale.totals,
        payments: sale.payments,
        customer_id: sale.customer_id,
    }
}
