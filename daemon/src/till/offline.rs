//! The offline limit: how long a till may sell without the cloud, and the manager's override.

use super::*;

impl Till {
    /// The cloud link now (none without an uplink); keeps the silence gauge current.
    fn cloud_link(&self) -> Option<CloudLink> {
        let link = self.links.cloud()?;
        let since = if link.last_ok_ms == 0 {
            self.seeded_ms
        } else {
            link.last_ok_ms
        };
        self.metrics
            .cloud_silence
            .set((self.now().saturating_sub(since) / 1000) as i64);
        Some(link)
    }

    /// The cloud link as status shows it.
    pub(super) fn cloud_view_at(&self, now: u64) -> Option<CloudView> {
        let link = self.cloud_link()?;
        let until = self
            .override_until
            .load(std::sync::atomic::Ordering::Relaxed);
        Some(CloudView {
            online: link.online,
            last_ok: (link.last_ok_ms > 0).then(|| rfc3339(link.last_ok_ms)),
            uploading: link.uploading,
            backlog: link.backlog,
            last_error: link.last_error,
            sales_refused: self.offline_refusal(now).is_some(),
            override_until: (until > now).then(|| rfc3339(until)),
            credential_refused: link.credential_refused,
            online_only_refused: self.online_refusal(now),
        })
    }

    /// Why an operation that needs HQ or the payment provider online (a QR payment, a gift
    /// card activation) is refused now: the provider's last call failed and none succeeded
    /// within `payments.online_within_ms`, or the store's last exchange with the cloud failed and
    /// the last one that succeeded is older than `payments.online_within_ms` (the leader's
    /// link, replicated to every till through Raft; a blip shorter than that refuses
    /// nothing). A till without `[cloud]` (a demo till on its own) is not refused.
    pub(super) fn online_refusal(&self, now: u64) -> Option<String> {
        if let Some(why) = self.provider_refusal(now) {
            return Some(why);
        }
        self.cfg.cloud.as_ref()?;
        let within = self.cfg.payments.online_within_ms;
        let Some(link) = self.cloud_link() else {
            return Some("the store's link to head office has not started yet".into());
        };
        if link.online || (link.last_ok_ms > 0 && now.saturating_sub(link.last_ok_ms) <= within) {
            return None;
        }
        Some(if link.last_ok_ms == 0 {
            "the store has not reached head office yet: QR payments and gift cards need it online; take cash".into()
        } else {
            format!(
                "the store is offline (head office last reached at {}, over {} s ago): QR payments and gift cards need it online; take cash",
                rfc3339(link.last_ok_ms),
                within / 1000
            )
        })
    }

    /// Refuses an operation that needs the store online (503 `store_offline`).
    pub(super) fn check_online(&self, now: u64) -> Result<(), TillError> {
        match self.online_refusal(now) {
            Some(why) => Err(TillError::unavailable("store_offline", why)),
            None => Ok(()),
        }
    }

    /// Why new sales are refused now, if they are: the store has not reached the cloud for
    /// longer than `cloud.offline_limit_ms` (counted from the first start until the cloud is
    /// first reached), and no manager override holds.
    pub(super) fn offline_refusal(&self, now: u64) -> Option<String> {
        let limit = self.cfg.cloud.as_ref()?.offline_limit_ms;
        let link = self.cloud_link()?;
        if limit == 0 || link.online {
            return None;
        }
        let since = link.last_ok_ms.max(self.seeded_ms);
        let until = self
            .override_until
            .load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(since) <= limit || now < until {
            return None;
        }
        Some(format!(
            "this store has not reached the cloud since {} (the limit is {} h); a manager can allow sales for {} h with POST /api/v1/offline-override and their PIN",
            rfc3339(since),
            limit / 3_600_000,
            self.cfg
                .cloud
                .as_ref()
                .map_or(0, |c| c.override_ms / 3_600_000),
        ))
    }

    pub(super) fn check_offline_limit(&self, now: u64) -> Result<(), TillError> {
        match self.offline_refusal(now) {
            Some(why) => Err(TillError::forbidden("offline_limit", why)),
            None => Ok(()),
        }
    }

    /// A manager allows new sales past the offline limit for `cloud.override_ms`.
    pub async fn offline_override(
        &self,
        s: &Session,
        approval: Option<&Approval>,
    ) -> Result<Option<CloudView>, TillError> {
        self.audited(&s.employee_id, "sales.offline_override", "-", async {
            let Some(cloud) = &self.cfg.cloud else {
                return Err(TillError::conflict(
                    "no_cloud",
                    "this till has no [cloud] link, so there is no offline limit to override",
                ));
            };
            let approver = self.approve(s, Permission::SellOffline, approval).await?;
            let now = self.now();
            let until = now.saturating_add(cloud.override_ms);
            let rx = self.store.submit(WriteBatch {
                audit: vec![audit_rec(
                    now,
                    &s.employee_id,
                    "sales.offline_override",
                    "-",
                    "ok",
                    format!(
                        "sales allowed offline until {} by {approver}",
                        rfc3339(until)
                    ),
                )],
                meta: vec![(OVERRIDE_KEY.into(), until.to_string())],
                ..Default::default()
            })?;
            self.committed(rx).await?;
            self.override_until
                .store(until, std::sync::atomic::Ordering::Relaxed);
            Ok(self.cloud_view_at(now))
        })
        .await
    }
}
