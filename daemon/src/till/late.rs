//! QR payments the till gave up on: a pending QR payment expires at the till after
//! `payments.qr_timeout_ms`, whatever the provider says, so a sale never waits on a silent
//! provider. The till keeps asking the provider about each expired payment for
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
}

/// Marks `d`'s pending QR payments past their expiry as expired (the till's own timeout),
/// asks the provider about the others, and starts watching every payment that expired.
pub(super) fn refresh_payments(
    provider: &mut SimulatedProvider,
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
        } else {
            let (status, reference) = provider.status(&p.payment_id, now);
            p.status = status;
            p.provider_ref = reference;
        }
        if p.status == PaymentStatus::Expired {
            if watched.len() >= WATCHED_MAX
                && let Some(oldest) = watched
                    .iter()
                    .min_by_key(|(_, e)| e.expired_ms)
                    .map(|(k, _)| k.clone())
            {
                watched.remove(&oldest);
            }
            watched.insert(
                p.payment_id.clone(),
                ExpiredQr {
                    txn_id: d.txn_id.clone(),
                    amount: p.amount,
                    expired_ms: now,
                },
            );
        }
    }
}

impl Till {
    /// Asks the provider about every watched expired payment (and expires the pending
    /// payments of open sales past their time); records the captures that arrived late.
    pub async fn sweep_late_captures(&self) -> Result<usize, TillError> {
        let now = self.now();
        let found: Vec<LateCapture> = {
            let mut core = self.core();
            let Core {
                drafts,
                provider,
                expired_qr,
                ..
            } = &mut *core;
            for d in drafts.values_mut() {
                refresh_payments(provider, expired_qr, d, now);
            }
            let mut found = Vec::new();
            expired_qr.retain(|id, e| {
                if now.saturating_sub(e.expired_ms) > LATE_WATCH_MS {
                    return false;
                }
                let (status, reference) = provider.status(id, now);
                if status != PaymentStatus::Captured {
                    return true;
                }
                found.push(LateCapture {
                    payment_id: id.clone(),
                    txn_id: e.txn_id.clone(),
                    amount: e.amount,
                    provider: provider.name().to_string(),
                    provider_ref: reference,
                    expired_at: rfc3339(e.expired_ms),
                    seen_at: rfc3339(now),
                });
                false
            });
            found
        };
        if found.is_empty() {
            return Ok(0);
        }
        let mut all = self.late_captures();
        all.extend(found.iter().cloned());
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

/// Sweeps for late captures every second until aborted.
pub fn spawn_sweeper(till: Arc<Till>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = till.sweep_late_captures().await {
                warn!(cause = %e, "could not record a late QR capture; will retry");
            }
        }
    })
}
