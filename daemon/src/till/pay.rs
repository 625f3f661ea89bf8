//! QR payments through the configured provider (`[payments.qr]`, MoMo's merchant API): the
//! provider is called outside the till's lock. Creating a payment asks the provider first and
//! records the payment on the sale after; a poller asks the provider about every pending
//! (and every expired or cancelled, still watched) payment each second, and the provider's
//! signed notifications (`POST /api/v1/payments/notify/momo`) land in the same book. The
//! sale's payments read the book under the lock ([`late::refresh_payments`]); only the
//! provider decides a capture.

use super::*;
use tillmesh_pay::{Observed, PayError};

/// Most payments the book remembers answers for.
const BOOK_MAX: usize = 4_096;
/// Most payments asked about in one poll round.
const POLL_MAX: usize = 256;
/// Most provider calls in flight at once.
const POLL_CONCURRENCY: usize = 8;

/// What the provider last said about each payment (by our payment id).
#[derive(Debug, Default)]
pub(super) struct PayBook {
    seen: HashMap<String, Observed>,
}

impl PayBook {
    /// Records `o`; whether it changed what the book held.
    /// A payment's end is never taken back: a capture stays a capture, and an ended
    /// payment does not become pending again (a query answered before a notification).
    pub fn observe(&mut self, payment_id: &str, o: Observed) -> bool {
        match self.seen.get(payment_id) {
            Some(old) if *old == o => return false,
            Some(old) if old.status == PaymentStatus::Captured => return false,
            Some(old)
                if old.status != PaymentStatus::Pending && o.status == PaymentStatus::Pending =>
            {
                return false;
            }
            _ => {}
        }
        if self.seen.len() >= BOOK_MAX && !self.seen.contains_key(payment_id) {
            return false;
        }
        self.seen.insert(payment_id.to_string(), o);
        true
    }

    /// What the provider last said about `payment_id`.
    pub fn get(&self, payment_id: &str) -> Option<&Observed> {
        self.seen.get(payment_id)
    }

    /// Forgets every payment not in `keep`.
    fn retain(&mut self, keep: &std::collections::HashSet<String>) {
        self.seen.retain(|k, _| keep.contains(k));
    }
}

/// The transaction can take a payment now.
fn takes_payment(d: &Draft) -> Result<(), TillError> {
    if d.status != Status::PendingPayment {
        return Err(TillError::conflict(
            "invalid_transition",
            format!(
                "a {} transaction cannot take payment; check out first",
                d.status
            ),
        ));
    }
    if d.payments.len() >= payment::PAYMENTS_MAX {
        return Err(payment::PaymentError::TooMany.into());
    }
    Ok(())
}

/// Sale `id`, ready to take a payment (its payments brought up to date with the provider),
/// and what is still due on it.
pub(super) fn taking_payment<'a>(
    core: &'a mut Core,
    id: &str,
    now: u64,
) -> Result<(&'a mut Draft, i64), TillError> {
    let Core {
        drafts,
        pay,
        expired_qr,
        ..
    } = core;
    let d = drafts.get_mut(id).ok_or_else(|| missing_draft(id))?;
    takes_payment(d)?;
    late::refresh_payments(pay, expired_qr, d, now);
    let due = payment::remaining_due(d.cart.totals().total, &d.payments);
    Ok((d, due))
}

/// A pending QR payment the cashier or a void gives up on: cancelled at the till, unless
/// the provider already captured it; watched for a capture that comes after.
pub(super) fn give_up(
    book: &PayBook,
    watched: &mut BTreeMap<String, late::ExpiredQr>,
    txn_id: &str,
    p: &mut Payment,
    now: u64,
) {
    match book.get(&p.payment_id) {
        Some(o) if o.status == PaymentStatus::Captured && o.amount == p.amount => {
            p.status = PaymentStatus::Captured;
            p.provider_ref = o.provider_ref.clone();
        }
        _ => {
            p.status = PaymentStatus::Cancelled;
            late::watch(watched, &p.payment_id, txn_id, p.amount, now);
        }
    }
}

fn provider_error(e: PayError) -> TillError {
    match e {
        PayError::Unreachable(why) => TillError::unavailable(
            "provider_unreachable",
            format!("the QR payment provider did not answer ({why}); take cash or try again"),
        ),
        PayError::Refused { code, message } => TillError::unprocessable(
            "provider_refused",
            format!("the QR payment provider refused the payment ({code}: {message})"),
        ),
        PayError::BadAnswer(why) => TillError::unavailable(
            "provider_error",
            format!("the QR payment provider's answer is not understood ({why}); take cash"),
        ),
        PayError::BadSignature => TillError::unauthorized(
            "the notification's signature does not match this store's provider credentials",
        ),
        PayError::Config(why) => TillError::conflict("qr_not_configured", why),
    }
}

impl Till {
    /// Records the address this till's HTTP API listens on (the provider's default
    /// notification URL; a wildcard address is named by loopback).
    pub fn set_http_addr(&self, addr: std::net::SocketAddr) {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        let _ = self.http_url.set(format!(
            "http://{}",
            std::net::SocketAddr::new(ip, addr.port())
        ));
    }

    /// Our order id at the provider for `payment_id`: unique across the chain's stores.
    pub(super) fn order_id(&self, payment_id: &str) -> String {
        format!("{}-{payment_id}", self.cfg.store.store_id)
    }

    fn payment_of_order<'a>(&self, order_id: &'a str) -> Option<&'a str> {
        order_id
            .strip_prefix(self.cfg.store.store_id.as_str())
            .and_then(|r| r.strip_prefix('-'))
    }

    fn provider(&self) -> Result<&tillmesh_pay::Provider, TillError> {
        self.provider.as_ref().ok_or_else(|| {
            TillError::conflict(
                "qr_not_configured",
                "this store has no QR payment provider configured ([payments.qr]); take cash",
            )
        })
    }

    /// Where the provider sends notifications: the configured URL, else this till's own.
    fn ipn_url(&self) -> String {
        self.provider
            .as_ref()
            .and_then(|p| p.ipn_url().map(str::to_string))
            .or_else(|| self.http_url.get().cloned())
            .map(|u| {
                let name = self.provider.as_ref().map_or("momo", |p| p.name());
                format!("{}/api/v1/payments/notify/{name}", u.trim_end_matches('/'))
            })
            .unwrap_or_default()
    }

    /// Records the outcome of a provider call for the online rule.
    fn provider_answered(&self, ok: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if ok {
            self.provider_ok_ms.store(self.now(), Relaxed);
        }
        self.provider_failing.store(!ok, Relaxed);
    }

    /// Why the provider counts as unreachable now: its last call failed and none succeeded
    /// within `payments.online_within_ms`.
    pub(super) fn provider_refusal(&self, now: u64) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        self.provider.as_ref()?;
        if !self.provider_failing.load(Relaxed) {
            return None;
        }
        let ok = self.provider_ok_ms.load(Relaxed);
        if ok > 0 && now.saturating_sub(ok) <= self.cfg.payments.online_within_ms {
            return None;
        }
        Some(
            "the QR payment provider has not answered lately: QR payments need it; take cash"
                .into(),
        )
    }

    /// Takes a QR payment: the provider creates it (outside the lock), then it is recorded
    /// on the sale as pending, expiring at the till after `payments.qr_timeout_ms`.
    pub(super) async fn add_qr_payment(
        &self,
        s: &Session,
        id: &str,
        req: &PaymentRequest,
    ) -> Result<TxnView, TillError> {
        let provider = self.provider()?;
        self.check_online(self.now())?;
        let (pid, amount) = {
            let now = self.now();
            let mut core = self.core();
            if core.drafts.get(id).is_some_and(|d| d.held.is_some()) {
                return Err(TillError::conflict(
                    "on_hold",
                    "this sale is on hold: recall it first",
                ));
            }
            let (d, due) = taking_payment(&mut core, id, now)?;
            let amount = req.amount.unwrap_or(due);
            payment::check_qr_amount(amount, due)?;
            (format!("{}-P{}", d.txn_id, d.payments.len() + 1), amount)
        };
        let order_id = self.order_id(&pid);
        let created = provider
            .create(&order_id, amount, &format!("Sale {id}"), &self.ipn_url())
            .await;
        self.provider_answered(!matches!(created, Err(PayError::Unreachable(_))));
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                if matches!(e, PayError::Unreachable(_)) {
                    // The provider may have created it: watch for a capture.
                    self.abandon(&pid, id, amount);
                }
                warn!(payment = %pid, cause = %e, "QR payment not created");
                return Err(provider_error(e));
            }
        };
        let timeout = self.cfg.payments.qr_timeout_ms;
        let provider_name = provider.name().to_string();
        let out = self
            .edit_draft(s, "transaction.payment", id, |core, now| {
                let (d, due) = taking_payment(core, id, now)?;
                if format!("{}-P{}", d.txn_id, d.payments.len() + 1) != pid || amount > due {
                    return Err(TillError::conflict(
                        "payment_changed",
                        "the sale's payments changed while the provider created the QR payment; try again",
                    ));
                }
                d.payments.push(Payment {
                    payment_id: pid.clone(),
                    method: Method::Qr,
                    amount,
                    tendered: amount,
                    change: 0,
                    provider: Some(provider_name),
                    provider_ref: None,
                    qr_payload: Some(created.payload),
                    expires_at_ms: Some(now.saturating_add(timeout)),
                    status: PaymentStatus::Pending,
                });
                Ok(format!("{pid} qr {amount}"))
            })
            .await;
        if out.is_err() {
            self.abandon(&pid, id, amount);
        }
        out
    }

    /// A payment created at the provider but not on the sale: watched for a capture.
    fn abandon(&self, pid: &str, txn_id: &str, amount: i64) {
        let now = self.now();
        late::watch(&mut self.core().expired_qr, pid, txn_id, amount, now);
    }

    /// One poll round: asks the provider about every pending and watched payment.
    pub async fn poll_provider(&self) -> usize {
        let Some(provider) = self.provider.clone() else {
            return 0;
        };
        let ids: Vec<String> = {
            let core = self.core();
            let mut ids: Vec<String> = core
                .drafts
                .values()
                .flat_map(|d| d.payments.iter())
                .filter(|p| p.method == Method::Qr && p.status == PaymentStatus::Pending)
                .map(|p| p.payment_id.clone())
                .collect();
            ids.extend(core.expired_qr.keys().cloned());
            ids.truncate(POLL_MAX);
            ids
        };
        if ids.is_empty() {
            return 0;
        }
        let mut answers = Vec::new();
        let mut failures = 0_usize;
        for chunk in ids.chunks(POLL_CONCURRENCY) {
            let mut set = tokio::task::JoinSet::new();
            for pid in chunk {
                let provider = provider.clone();
                let (pid, order) = (pid.clone(), self.order_id(pid));
                set.spawn(async move { (pid, provider.query(&order).await) });
            }
            while let Some(r) = set.join_next().await {
                match r {
                    Ok((pid, Ok(o))) => answers.push((pid, o)),
                    Ok((pid, Err(e))) => {
                        if matches!(e, PayError::Unreachable(_)) {
                            failures += 1;
                        }
                        tracing::debug!(payment = %pid, cause = %e, "provider query failed");
                    }
                    Err(e) => warn!(cause = %e, "provider query task failed"),
                }
            }
        }
        self.provider_answered(failures == 0 || !answers.is_empty());
        let n = answers.len();
        let mut core = self.core();
        let keep: std::collections::HashSet<String> = ids.into_iter().collect();
        for (pid, o) in answers {
            core.pay.observe(&pid, o);
        }
        core.pay.retain(&keep);
        n
    }

    /// A payment notification from MoMo: checked against the store's credentials, then
    /// recorded once (a duplicate changes nothing).
    pub async fn momo_notification(
        &self,
        n: &tillmesh_pay::momo::Notification,
    ) -> Result<(), TillError> {
        let o = match self.provider()? {
            tillmesh_pay::Provider::Momo(m) => m.verify(n).map_err(provider_error)?,
            _ => return Err(provider_error(PayError::BadSignature)),
        };
        self.notified(o).await
    }

    /// A payment notification from VNPay (its IPN, or the customer's return: the same
    /// signed parameters): checked, then recorded once.
    pub async fn vnpay_notification(
        &self,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), TillError> {
        let o = match self.provider()? {
            tillmesh_pay::Provider::Vnpay(v) => v.verify(params).map_err(provider_error)?,
            _ => return Err(provider_error(PayError::BadSignature)),
        };
        self.notified(o).await
    }

    /// Records what a checked notification says, once.
    async fn notified(&self, o: tillmesh_pay::Observed) -> Result<(), TillError> {
        let order = o.order_id.clone();
        let pid = self
            .payment_of_order(&order)
            .ok_or_else(|| {
                TillError::not_found(
                    "unknown_payment",
                    format!("order {order} is not one of this store's"),
                )
            })?
            .to_string();
        let now = self.now();
        let changed = {
            let mut core = self.core();
            let known = core.expired_qr.contains_key(&pid)
                || core
                    .drafts
                    .values()
                    .any(|d| d.payments.iter().any(|p| p.payment_id == pid));
            known && core.pay.observe(&pid, o.clone())
        };
        if changed {
            info!(payment = %pid, status = ?o.status, "payment notification");
            self.audit(audit_rec(
                now,
                "provider",
                "payment.notified",
                &pid,
                "ok",
                format!(
                    "{:?} {} {}",
                    o.status,
                    o.amount,
                    o.provider_ref.as_deref().unwrap_or("-")
                ),
            ))
            .await?;
        }
        Ok(())
    }

    /// Refunds a late capture through the provider (a manager): once; a retry answers with
    /// the refund already made.
    pub async fn refund_late_capture(
        &self,
        s: &Session,
        payment_id: &str,
    ) -> Result<late::LateCapture, TillError> {
        if !s.role.allows(Permission::Refund) {
            return Err(TillError::forbidden(
                "manager_only",
                "only a manager refunds a late QR capture",
            ));
        }
        let provider = self.provider()?;
        let all = self.late_captures();
        let l = all
            .iter()
            .find(|l| l.payment_id == payment_id)
            .cloned()
            .ok_or_else(|| payment::PaymentError::Unknown(payment_id.to_string()))?;
        if l.refund_ref.is_some() {
            return Ok(l);
        }
        let trans = l.provider_ref.clone().ok_or_else(|| {
                TillError::conflict(
                    "no_provider_ref",
                    "the provider gave no transaction id for this capture: refund it in the provider's portal",
                )
            })?;
        let refund_id = format!("{}-RF", self.order_id(payment_id));
        let r = provider
            .refund(
                &self.order_id(payment_id),
                &refund_id,
                l.amount,
                &trans,
                "late QR capture refunded",
            )
            .await;
        self.provider_answered(!matches!(r, Err(PayError::Unreachable(_))));
        let refund_ref = r.map_err(provider_error)?;
        self.audited(&s.employee_id, "payment.late_refund", payment_id, async {
            self.mark_late_refunded(payment_id, &refund_ref).await
        })
        .await
    }
}

/// Asks the provider every second, then records late captures, until aborted.
pub fn spawn_poller(till: Arc<Till>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            till.poll_provider().await;
            if let Err(e) = till.answer_rights_asks().await {
                warn!(cause = %e, "could not hand over gift card rights; will retry");
            }
            if let Err(e) = till.spread_idle_rights().await {
                warn!(cause = %e, "could not spread idle stored-value rights; will retry");
            }
            if let Err(e) = till.sweep_late_captures().await {
                warn!(cause = %e, "could not record a late QR capture; will retry");
            }
        }
    })
}
