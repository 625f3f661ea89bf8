//! What the leader exchanges with HQ beside its uploads: the store's till reports every few
//! seconds, whose answers may carry HQ's "push now" and a support-bundle request, and the
//! "sync now" a manager or HQ asks of the uplink.

use super::*;

/// A request to sync with the cloud at once (a manager's "sync now"): while leading, the
/// uplink pulls master data and uploads what it holds without waiting for its timers, and
/// retries at once when it was backing off.
#[derive(Debug, Default)]
pub struct SyncNow {
    asked: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl SyncNow {
    /// Asks for a sync.
    pub fn ask(&self) {
        self.asked.store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Whether a sync was asked since the last call.
    pub(crate) fn take(&self) -> bool {
        self.asked.swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves when a sync is asked.
    pub(crate) async fn asked(&self) {
        self.wake.notified().await;
    }
}

impl<S: EventSource> Uplink<S> {
    /// While leading in `term`, reports the store's tills to HQ every `tills_report_ms`
    /// (never returns; the lead loop decides when leading ends); an answer that carries
    /// HQ's "push now" asks this uplink to sync. Link failures are the lead
    /// loop's to report; a cloud that does not know the report (older) is not asked again.
    pub(super) async fn report_tills(&self, term: u64) -> &'static str {
        if self.cfg.tills_report_ms == 0 {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(self.cfg.tills_report_ms)).await;
            if !self.leads(term) {
                continue;
            }
            let mut tills = self.till.tills();
            tills.truncate(tillmesh_cloud_proto::tills::TILLS_REPORT_MAX);
            let report = tillmesh_cloud_proto::TillsReport {
                term,
                leader: self.raft.id,
                at_ms: self.till.now_ms(),
                tills,
            };
            let Ok(body) = serde_json::to_vec(&report) else {
                continue;
            };
            let req = CloudRequest {
                path: "/api/v1/sync/tills".into(),
                token: self.token(),
                post: true,
                batch_gzip: None,
                json: Some(body),
                bundle: None,
            };
            match self.call(req).await {
                Ok((404 | 405, _)) => {
                    debug!("the cloud takes no till reports (an older version); not sending them");
                    return std::future::pending().await;
                }
                Ok((status, answer)) if !(200..300).contains(&status) => debug!(
                    status,
                    answer = %String::from_utf8_lossy(&answer).chars().take(200).collect::<String>(),
                    "till report refused"
                ),
                // HQ's "push now" rides on the answer.
                Ok((200, answer)) => {
                    let asked =
                        serde_json::from_slice::<tillmesh_cloud_proto::TillsAnswer>(&answer)
                            .unwrap_or_default();
                    if asked.sync_now {
                        info!(term, "HQ asks the store to sync now");
                        self.sync.ask();
                    }
                    if asked.support_bundle {
                        self.send_bundle().await;
                    }
                }
                _ => {}
            }
        }
    }

    /// HQ asked for a support bundle: this till's, uploaded once (a failure is logged; HQ
    /// asks again).
    async fn send_bundle(&self) {
        info!("HQ asks for a support bundle: sending this till's");
        let Some(bytes) = self.till.support_bundle().await else {
            warn!("no support bundle to send: this till could not make one");
            return;
        };
        if bytes.len() > tillmesh_cloud_proto::tills::BUNDLE_BYTES_MAX {
            warn!(
                bytes = bytes.len(),
                "the support bundle is too large for HQ; not sent"
            );
            return;
        }
        let req = CloudRequest {
            path: format!("/api/v1/sync/bundle?terminal={}", self.raft.id),
            token: self.token(),
            post: true,
            batch_gzip: None,
            json: None,
            bundle: Some(bytes),
        };
        match self.call(req).await {
            Ok((status, _)) if (200..300).contains(&status) => info!("support bundle sent to HQ"),
            Ok((status, answer)) => warn!(
                status,
                answer = %String::from_utf8_lossy(&answer).chars().take(200).collect::<String>(),
                "HQ refused the support bundle"
            ),
            Err(e) => warn!(cause = ?e, "could not send the support bundle to HQ"),
        }
    }
}
