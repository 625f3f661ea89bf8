//! QR payments the till gave up on: a pending QR payment expires at the till after
//! `payments.qr_timeout_ms`, whatever the provider says, so a sale never waits on a silent
//! provider. The till keeps asking the provider about each expired (or cancelled) payment for
//! [`LATE_WATCH_MS`]; a capture that arrives after all (money taken for a sale the till did
//! not complete with it) is recorded durably (meta `late_captures`, the audit log, a metric)
//! and listed for a manager to refund (`GET /api/v1/payments/late`): never lost.

use super::*;

/// How long the till keeps asking the provider about a QR payment it let expire.
pub const LATE_WATCH_MS: u64 = 15 * 60_000;
/// Most expired payments watched at once (the oldest are dropped first).
pub const WATCHED_MAX: usize = 1_000;
/// Most late captures kept (a manager refunds and the list is read long before).
pub const LATE_KEPT_MAX: usize = 10_000;
/// Meta key of the late captures (JSON).
const LATE_KEY: &str = "late_captures";

/// An expired QR payment the till is still watching.
#[derive(Clone, Debug)]
pub(super) struct ExpiredQr {
    pub txn_id: String,
    pub amount: i64,
    pub expired_ms: u64,
}

/// Money a provider captured after the till let its QR payment expire: to refund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LateCapture {
    /// The payment.
    pub payment_id: String,
    /// The sale it was for.
    pub txn_id: String,
    /// Minor units captured.
    pub amount: i64,
    /// The provider.
    pub provider: String,
    /// The provider's transaction reference.
    pub provider_ref: Option<String>,
    /// When the till let it expire (RFC 3339).
    pub expired_at: String,
    /// When the till saw the capture (RFC 3339).
    pub seen_at: String,
    /// The provider's reference of the refund, once a manager refunded it through the till.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_ref: Option<String>,
    /// When it was refunded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<String>,
}

/// Watches `payment_id` (a QR payment the till no longer waits for) for a late capture.
pub(super) fn watch(
    watched: &mut BTreeMap<String, ExpiredQr>,
    payment_id: &str,
    txn_id: &str,
    amount: i64,
    now: u64,
) {
    if watched.len() >= WATCHED_MAX
        && !watched.contains_key(payment_id)
        && let Some(oldest) = watched
            .iter()
            .min_by_key(|(_, e)| e.expired_ms)
            .map(|(k, _)| k.clone())
    {
        watched.remove(&oldest);
    }
    watched.insert(
        payment_id.to_string(),
        ExpiredQr {
            txn_id: txn_id.to_string(),
            amount,
            expired_ms: now,
        },
    );
}

/// Marks `d`'s pending QR payments past their expiry as expired (the till's own timeout),
/// takes what the provider last said about the others (captured only for the amount asked),
/// and starts watching every payment that expired.
pub(super) fn refresh_payments(
    book: &pay::PayBook,
    watched: &mut BTreeMap<String, ExpiredQr>,
    d: &mut Draft,
    now: u64,
) {
    for p in d
        .payments
        .iter_mut()
        .filter(|p| p.status == PaymentStatus::Pending && p.method == Method::Qr)
    {
        if p.expires_at_ms.is_some_and(|at| now >= at) {
            p.status = PaymentStatus::Expired;
        } else if let Some(o) = book.get(&p.payment_id) {
            match o.status {
                PaymentStatus::Pending => {}
                PaymentStatus::Captured if o.amount != p.amount => {
                    warn!(payment = %p.payment_id, asked = p.amount, captured = o.amount, "the provider captured another amount: not taken");
                }
                status => {
                    p.status = status;
                    p.provider_ref = o.provider_ref.clone();
                }
            }
        }
        if p.status == PaymentStatus::Expired {
            watch(watched, &p.payment_id, &d.txn_id, p.amount, now);
        }
    }
}

impl Till {
    /// Takes what the provider said about every watched payment (and expires the pending
    /// payments of open sales past their time); records the captures that arrived late.
    pub async fn sweep_late_captures(&self) -> Result<usize, TillError> {
        let now = self.now();
        let provider = self.provider.as_ref().map_or("momo", |p| p.name());
        let found: Vec<LateCapture> = {
            let mut core = self.core();
            let Core {
                drafts,
                pay,
                expired_qr,
                ..
            } = &mut *core;
            for d in drafts.values_mut() {
                refresh_payments(pay, expired_qr, d, now);
            }
            let mut found = Vec::new();
            expired_qr.retain(|id, e| {
                if now.saturating_sub(e.expired_ms) > LATE_WATCH_MS {
                    return false;
                }
                let Some(o) = pay.get(id).filter(|o| o.status == PaymentStatus::Captured) else {
                    return true;
                };
                if o.amount != e.amount {
                    warn!(payment = %id, asked = e.amount, captured = o.amount, "a late capture of another amount than asked");
                }
                found.push(LateCapture {
                    payment_id: id.clone(),
                    txn_id: e.txn_id.clone(),
                    amount: o.amount,
                    provider: provider.to_string(),
                    provider_ref: o.provider_ref.clone(),
                    expired_at: rfc3339(e.expired_ms),
                    seen_at: rfc3339(now),
                    refund_ref: None,
                    refunded_at: None,
                });
                false
            });
            found
        };
        if found.is_empty() {
            return Ok(0);
        }
        let mut all = self.late_captures();
        all.extend(
            found
                .iter()
                .filter(|f| !all.iter().any(|l| l.payment_id == f.payment_id))
                .cloned()
                .collect::<Vec<_>>(),
        );
        self.save_late_captures(all).await?;
        for l in &found {
            self.metrics.qr_late_captures.inc();
            warn!(payment = %l.payment_id, txn = %l.txn_id, amount = l.amount, "a QR payment was captured after the till let it expire: refund it");
            self.audit(audit_rec(
                now,
                "system",
                "payment.late_capture",
                &l.payment_id,
                "to_refund",
                format!(
                    "{} {} {}",
                    l.txn_id,
                    l.amount,
                    l.provider_ref.as_deref().unwrap_or("-")
                ),
            ))
            .await?;
        }
        Ok(found.len())
    }

    async fn save_late_captures(&self, mut all: Vec<LateCapture>) -> Result<(), TillError> {
        let excess = all.len().saturating_sub(LATE_KEPT_MAX);
        all.drain(..excess);
        let json = serde_json::to_string(&all)
            .map_err(|e| TillError::unavailable("late_captures", e.to_string()))?;
        let info = self
            .store
            .commit(WriteBatch {
                meta: vec![(LATE_KEY.into(), json)],
                ..Default::default()
            })
            .await?;
        self.observe(&info);
        Ok(())
    }

    /// Marks a late capture refunded (the provider's refund reference).
    pub(super) async fn mark_late_refunded(
        &self,
        payment_id: &str,
        refund_ref: &str,
    ) -> Result<LateCapture, TillError> {
        let mut all = self.late_captures();
        let now = self.now();
        let l = all
            .iter_mut()
            .find(|l| l.payment_id == payment_id)
            .ok_or_else(|| payment::PaymentError::Unknown(payment_id.to_string()))?;
        l.refund_ref = Some(refund_ref.to_string());
        l.refunded_at = Some(rfc3339(now));
        let out = l.clone();
        self.save_late_captures(all).await?;
        Ok(out)
    }

    /// Every late capture recorded (oldest first).
    pub fn late_captures(&self) -> Vec<LateCapture> {
        self.store
            .read(|r| r.meta(LATE_KEY))
            .ok()
            .flatten()
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default()
    }

    /// The late captures, for a manager to refund.
    pub fn late_captures_for(&self, s: &Session) -> Result<Vec<LateCapture>, TillError> {
        if !s.role.allows(Permission::Refund) {
            return Err(TillError::forbidden(
                "manager_only",
                "only a manager sees the QR payments to refund",
            ));
        }
        Ok(self.late_captures())
    }
}
