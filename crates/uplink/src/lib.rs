//! The store's link to the cloud. Every till runs it; only the Raft leader acts. The leader
//! uploads the store's events in batches bounded by count, bytes and time (gzip, binary),
//! each carrying its (term, leader id) for the cloud's fencing; it confirms its leadership
//! with a quorum before each batch and drops an upload in flight the moment it loses it;
//! after each acknowledgement it commits the cloud's watermarks through Raft, so a new
//! leader resumes where the old one stopped. Failures back off from `backoff_min_ms`
//! doubling to `backoff_max_ms`, with full jitter. It pulls master data on taking the lead,
//! on reconnect, every `master_pull_ms` and when the cloud says newer data exists, and
//! proposes it through Raft so every till applies the same version at the same log index.

mod batch;
mod hq;
mod master;
pub use hq::SyncNow;
mod http;
mod source;

pub use http::{CloudAnswer, CloudHttp, CloudRequest, ReqwestCloud, error_chain};
pub use source::{EventSource, Observer, Settings};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tillmesh_cloud_proto::{Batch, IngestAck, MasterChanges, StoreEvent};
use tillmesh_consensus::Command;
use tillmesh_consensus::node::StoreRaft;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Master-data changes asked for per page (one Raft entry each).
const MASTER_PAGE: usize = 500;
/// Most master-data pages pulled in one go (the rest on the next pull).
const MASTER_PAGES_MAX: usize = 100;
/// Least time between two tries at renewing the store's credential.
const RENEW_RETRY: Duration = Duration::from_secs(3600);

/// The expiry (ms since the epoch) a JWT's payload states (`exp`, seconds), read without
/// verifying it: the till only needs to know when to ask for a new one.
fn jwt_expiry_ms(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["exp"].as_u64()?.checked_mul(1000)
}

/// How often the leader refreshes the replicated "last reached the cloud" time while online.
const CLOUD_REFRESH: Duration = Duration::from_secs(60);

/// What the leader knows about the cloud link right now.
#[derive(Clone, Debug, Default)]
pub struct LinkState {
    /// This till is the uploader.
    pub uploading: bool,
    /// Last exchange succeeded.
    pub online: bool,
    /// Last success (ms since epoch).
    pub last_ok_ms: u64,
    /// Events not yet acknowledged.
    pub backlog: u64,
    /// Last failure.
    pub last_error: Option<String>,
    /// The cloud refused the store's credential (401/403) on the last exchange: retrying
    /// will not help until the credential is replaced.
    pub credential_refused: bool,
}

/// The uplink of one till.
#[derive(Debug)]
pub struct Uplink<S: EventSource> {
    till: Arc<S>,
    raft: StoreRaft,
    cfg: Settings,
    observer: Arc<dyn Observer>,
    http: Arc<dyn CloudHttp>,
    state: Arc<Mutex<LinkState>>,
    /// Jitter for the retry back-off (seeded, so the simulator replays it).
    rng: Mutex<rand::rngs::StdRng>,
    /// When the configured credential expires (read from it once).
    cfg_token_expires_ms: Option<u64>,
    /// The batch format the cloud and this till both speak: the highest, learnt from the
    /// cloud's master answers (format 1 until then, and with a 0.1.0 cloud, which names
    /// none).
    batch_version: std::sync::atomic::AtomicU16,
    /// How many key records the cloud has acknowledged from this uplink: a batch carries
    /// the till's records when it holds more (format 3).
    keys_sent: std::sync::atomic::AtomicUsize,
    /// A "sync now" asked of this uplink.
    sync: Arc<SyncNow>,
}

/// How an upload or pull ended, when it did not succeed.
#[derive(Debug)]
enum Failure {
    /// This till is not (or no longer) the leader.
    Deposed,
    /// The cloud refused the batch's term (a newer leader uploaded).
    Fenced(String),
    /// Unreachable, timed out, or answered with an error.
    Link(String),
    /// The cloud refused the store's credential (401 or 403).
    Credential(String),
}

/// A cloud answer's status as a failure: fenced (409), credential refused (401/403), or a
/// link failure worth retrying.
fn refused(status: u16, why: String) -> Failure {
    match status {
        409 => Failure::Fenced(why),
        401 | 403 => Failure::Credential(why),
        _ => Failure::Link(why),
    }
}

/// What the uplink and the Raft state say about the cloud link (fed to the till).
#[derive(Clone, Debug, Default)]
pub struct CloudLink {
    /// Online.
    pub online: bool,
    /// Last success, ms since epoch (0: never).
    pub last_ok_ms: u64,
    /// This till uploads.
    pub uploading: bool,
    /// Backlog (leader only).
    pub backlog: u64,
    /// Last failure (leader only).
    pub last_error: Option<String>,
    /// The cloud refused the store's credential (leader only).
    pub credential_refused: bool,
}

/// The till's view of the cloud link: the leader's own state on the leader, the state the
/// leader replicated through Raft elsewhere.
pub fn link_view(state: &Arc<Mutex<LinkState>>, raft: &StoreRaft) -> CloudLink {
    let s = state.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if s.uploading {
        return CloudLink {
            online: s.online,
            last_ok_ms: s.last_ok_ms,
            uploading: true,
            backlog: s.backlog,
            last_error: s.last_error,
            credential_refused: s.credential_refused,
        };
    }
    let m = raft.state();
    CloudLink {
        online: m.cloud_online && raft.leadership().now().leader.is_some(),
        last_ok_ms: m.cloud_last_ok_ms.max(s.last_ok_ms),
        uploading: false,
        backlog: 0,
        last_error: None,
        credential_refused: false,
    }
}

impl<S: EventSource> Uplink<S> {
    /// Builds the uplink over any [`CloudHttp`], with a seed for its jitter.
    pub fn with_http(
        till: Arc<S>,
        raft: StoreRaft,
        cfg: Settings,
        observer: Arc<dyn Observer>,
        http: Arc<dyn CloudHttp>,
        seed: u64,
    ) -> Self {
        use rand::SeedableRng;
        let cfg_token_expires_ms = jwt_expiry_ms(&cfg.token);
        Self {
            till,
            raft,
            cfg,
            observer,
            http,
            state: Arc::default(),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            cfg_token_expires_ms,
            batch_version: std::sync::atomic::AtomicU16::new(
                tillmesh_cloud_proto::BATCH_VERSION_MIN,
            ),
            keys_sent: Default::default(),
            sync: Arc::default(),
        }
    }

    /// The handle that asks this uplink to sync now.
    pub fn sync_handle(&self) -> Arc<SyncNow> {
        self.sync.clone()
    }

    /// The batch format to write.
    fn batch_version(&self) -> u16 {
        self.batch_version
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The shared link state (for status).
    pub fn state(&self) -> Arc<Mutex<LinkState>> {
        self.state.clone()
    }

    /// Uniform in `0..=max`.
    fn jitter(&self, max: u64) -> u64 {
        use rand::Rng;
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_range(0..=max)
    }

    fn set(&self, f: impl FnOnce(&mut LinkState)) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
        self.observer.link(&s);
    }

    /// Runs forever: waits to lead, then leads until deposed.
    pub async fn run(self) {
        let mut leadership = self.raft.leadership();
        loop {
            let term = {
                let l = leadership.now_and_seen();
                l.this_node.then_some(l.term)
            };
            match term {
                Some(term) => {
                    info!(
                        terminal = self.raft.id,
                        term, "leading the store: uploading to the cloud"
                    );
                    self.set(|s| s.uploading = true);
                    let why = tokio::select! {
                        why = self.lead(term) => why,
                        never = self.report_tills(term) => never,
                    };
                    self.set(|s| s.uploading = false);
                    info!(terminal = self.raft.id, term, why, "stopped uploading");
                    // A leader cut off from its quorum still believes it leads until its
                    // term ends, but cannot confirm it: wait a retry period instead of
                    // failing the confirmation again at once (its metrics change at every
                    // replication attempt, so they are no signal here).
                    if self.leads(term) {
                        let retry = Duration::from_millis(self.cfg.backoff_min_ms.max(100));
                        tokio::time::sleep(retry).await;
                    }
                }
                None => {
                    if leadership.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Whether this node still leads in `term`, as it knows locally.
    fn leads(&self, term: u64) -> bool {
        self.raft.leadership().leading_term() == Some(term)
    }

    /// Resolves when this node stops leading in `term`.
    async fn deposed(&self, term: u64) {
        let mut w = self.raft.leadership();
        loop {
            let l = w.now_and_seen();
            if !l.this_node || l.term != term {
                return;
            }
            if w.changed().await.is_err() {
                return;
            }
        }
    }

    /// Confirms the lead with a quorum (one heartbeat round), within the request limit.
    async fn confirm(&self, term: u64) -> Result<(), Failure> {
        let check = tokio::time::timeout(
            Duration::from_millis(self.cfg.timeout_ms),
            self.raft.confirm_leadership(),
        );
        match check.await {
            Ok(Ok(_)) if self.leads(term) => Ok(()),
            _ => Err(Failure::Deposed),
        }
    }

    /// The store's credential: of the one in the Raft group (renewed or shared by a leader)
    /// and the configured one, the one that expires last (an admin's new credential in the
    /// config wins over an older one the group holds).
    fn token(&self) -> String {
        match self.raft.state().credential {
            Some((t, e)) if self.cfg_token_expires_ms.is_none_or(|c| c <= e) => t,
            _ => self.cfg.token.clone(),
        }
    }

    /// Commits the configured credential through Raft when the group holds none or an
    /// older one, so that every till has the newest, including a till enrolled without a
    /// credential in its config.
    async fn share_credential(&self, term: u64) {
        let Some(expires_ms) = self.cfg_token_expires_ms else {
            return;
        };
        if self.cfg.token.is_empty()
            || self
                .raft
                .state()
                .credential
                .is_some_and(|(_, held)| held >= expires_ms)
        {
            return;
        }
        if !self.leads(term) {
            return;
        }
        let token = self.cfg.token.clone();
        match self
            .raft
            .propose(Command::Credential { token, expires_ms })
            .await
        {
            Ok(_) => info!("the store credential is shared with every till"),
            Err(e) => warn!(cause = %e, "could not share the store credential"),
        }
    }

    /// Renews the store's credential when it expires within `renew_before_ms` (at most one try
    /// an hour), and commits the new one through Raft so every till uses it.
    async fn renew_if_due(&self, term: u64, last_try: &mut Option<Instant>) {
        if last_try.is_some_and(|t| t.elapsed() < RENEW_RETRY) {
            return;
        }
        let expires_ms = match self.raft.state().credential {
            Some((_, e)) => Some(e),
            None => self.cfg_token_expires_ms,
        };
        let Some(expires_ms) = expires_ms else {
            return;
        };
        let now = self.till.now_ms();
        if expires_ms.saturating_sub(now) > self.cfg.renew_before_ms {
            return;
        }
        *last_try = Some(Instant::now());
        let renewed = async {
            let (status, body) = self
                .exchange_with("/api/v1/sync/credential".into(), None, true)
                .await?;
            if !(200..300).contains(&status) {
                return Err(refused(
                    status,
                    format!(
                        "credential renewal refused ({status}): {}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    ),
                ));
            }
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| Some((v["token"].as_str()?.to_string(), v["expires_ms"].as_u64()?)))
                .ok_or_else(|| Failure::Link("credential renewal: unreadable answer".into()))
        }
        .await;
        match renewed {
            Ok((token, expires_ms)) => {
                if !self.leads(term) {
                    return;
                }
                match self
                    .raft
                    .propose(Command::Credential { token, expires_ms })
                    .await
                {
                    Ok(_) => info!(expires_ms, "store credential renewed"),
                    Err(e) => warn!(cause = %e, "could not commit the renewed credential"),
                }
            }
            Err(Failure::Link(why) | Failure::Credential(why) | Failure::Fenced(why)) => {
                warn!(cause = %why, "store credential not renewed; will retry")
            }
            Err(Failure::Deposed) => {}
        }
    }

    /// Leads in `term` until deposed; answers why it stopped.
    async fn lead(&self, term: u64) -> &'static str {
        let mut sent: BTreeMap<u64, u64> = BTreeMap::new();
        let mut changes = self.till.changes();
        let mut backoff_ms = 0_u64;
        let mut master_due = Instant::now();
        let mut master_stale = true;
        let mut last_exchange = Instant::now() - Duration::from_secs(3600);
        let mut last_refresh = Instant::now() - CLOUD_REFRESH;
        let mut was_online: Option<bool> = None;
        let mut renew_tried: Option<Instant> = None;
        // The new term's first entry, seen committed, confirms the lead for the first batch
        // (no heartbeat round before the first upload after a failover).
        let mut begun = self
            .raft
            .term_begun(term, Duration::from_millis(self.cfg.timeout_ms))
            .await;
        // Until the term's first batch is acknowledged: no linger for company.
        let mut first = true;
        self.share_credential(term).await;
        loop {
            if !self.leads(term) {
                return "deposed";
            }
            self.renew_if_due(term, &mut renew_tried).await;
            if self.sync.take() {
                info!(
                    term,
                    "syncing now, as asked: master data and every held event"
                );
                master_stale = true;
                backoff_ms = 0;
                last_exchange = Instant::now() - Duration::from_secs(3600);
            }
            if backoff_ms > 0 {
                let jittered = backoff_ms / 2 + self.jitter(backoff_ms / 2);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(jittered)) => {}
                    _ = self.deposed(term) => return "deposed",
                    _ = self.sync.asked() => continue,
                }
            }
            let result = async {
                // Handing over: the successor pulls (committing changes would renew the
                // followers' lease).
                if (master_stale || Instant::now() >= master_due) && !self.raft.handing_over() {
                    self.pull_master(term).await?;
                    master_stale = false;
                    master_due = Instant::now() + Duration::from_millis(self.cfg.master_pull_ms);
                }
                let batch = self
                    .build(term, &mut sent, &mut changes, last_exchange, !first)
                    .await?;
                let Some(mut batch) = batch else {
                    return Ok(None);
                };
                let confirmed = begun
                    .take()
                    .is_some_and(|at| at.elapsed() < self.raft.begun_confirms_for());
                if !confirmed || !self.leads(term) {
                    self.confirm(term).await?;
                }
                let ack = tokio::select! {
                    r = self.send(&mut batch) => r?,
                    _ = self.deposed(term) => return Err(Failure::Deposed),
                };
                Ok(Some((batch, ack)))
            }
            .await;
            let online = match result {
                Ok(None) => continue,
                Ok(Some((batch, ack))) => {
                    last_exchange = Instant::now();
                    backoff_ms = 0;
                    first = false;
                    let n = batch.events.len();
                    for e in &batch.events {
                        let s = sent.entry(e.event.origin.0).or_default();
                        *s = (*s).max(e.event.seq);
                    }
                    let marks: Vec<(u64, u64)> = ack
                        .watermarks
                        .iter()
                        .map(|w| (w.origin, w.contiguous))
                        .collect();
                    self.count("accepted");
                    self.observer.uploaded(ack.accepted);
                    // While handing over the watermarks stay uncommitted: the successor sends
                    // from the last committed ones and the cloud deduplicates.
                    if !marks.is_empty()
                        && let Err(e) = self
                            .raft
                            .propose(Command::Acked { watermarks: marks })
                            .await
                        && !e.is_handing_over()
                    {
                        debug!(cause = %e, "could not commit the cloud's watermarks");
                        return "deposed";
                    }
                    master_stale |= ack.master_stale;
                    if n > 0 {
                        debug!(
                            events = n,
                            accepted = ack.accepted,
                            duplicate = ack.duplicate,
                            term,
                            "batch acknowledged"
                        );
                    }
                    let ok = self.till.now_ms();
                    self.set(|s| {
                        s.online = true;
                        s.last_ok_ms = ok;
                        s.last_error = None;
                        s.credential_refused = false;
                    });
                    true
                }
                Err(Failure::Deposed) => return "deposed",
                Err(Failure::Fenced(why)) => {
                    self.count("fenced");
                    warn!(term, cause = %why, "the cloud fenced this leader's term; waiting to be deposed");
                    self.set(|s| s.last_error = Some(why));
                    tokio::select! {
                        _ = self.deposed(term) => return "deposed",
                        _ = tokio::time::sleep(Duration::from_millis(self.cfg.backoff_max_ms)) => return "fenced",
                    }
                }
                Err(Failure::Credential(why)) => {
                    // Not a network failure: the same credential will be refused again. Wait
                    // the longest back-off between tries, and say so in status.
                    self.count("credential_refused");
                    backoff_ms = self.cfg.backoff_max_ms;
                    if was_online != Some(false) {
                        warn!(cause = %why, "the cloud refused the store's credential; replace it (tillmesh hq token --store)");
                    }
                    self.set(|s| {
                        s.online = false;
                        s.credential_refused = true;
                        s.last_error = Some(why);
                    });
                    false
                }
                Err(Failure::Link(why)) => {
                    self.count("failed");
                    backoff_ms =
                        (backoff_ms * 2).clamp(self.cfg.backoff_min_ms, self.cfg.backoff_max_ms);
                    if was_online != Some(false) {
                        warn!(cause = %why, retry_ms = backoff_ms, "cloud unreachable");
                    }
                    self.set(|s| {
                        s.online = false;
                        s.credential_refused = false;
                        s.last_error = Some(why);
                    });
                    false
                }
            };
            // Reconnecting pulls master data; the store hears of every flip at once and of
            // the last success every minute.
            if online && was_online == Some(false) {
                info!("cloud reachable again");
                master_stale = true;
            }
            if was_online != Some(online) || (online && last_refresh.elapsed() >= CLOUD_REFRESH) {
                let last_ok_ms = self
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_ok_ms;
                if let Err(e) = self
                    .raft
                    .propose(Command::Cloud { online, last_ok_ms })
                    .await
                    && !e.is_handing_over()
                {
                    return "deposed";
                }
                last_refresh = Instant::now();
            }
            was_online = Some(online);
        }
    }

    fn count(&self, outcome: &'static str) {
        self.observer.upload(outcome);
    }

    /// One request to the cloud, bounded by `timeout_ms`.
    async fn exchange(
        &self,
        path: String,
        batch_gzip: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), Failure> {
        self.exchange_with(path, batch_gzip, false).await
    }

    /// [`Uplink::exchange`], as a POST without a body when `post` and no batch is given.
    async fn exchange_with(
        &self,
        path: String,
        batch_gzip: Option<Vec<u8>>,
        post: bool,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let req = CloudRequest {
            path,
            token: self.token(),
            post: batch_gzip.is_some() || post,
            batch_gzip,
            json: None,
            bundle: None,
        };
        self.call(req).await
    }

    /// Sends one request within the request limit.
    async fn call(&self, req: CloudRequest) -> Result<(u16, Vec<u8>), Failure> {
        match tokio::time::timeout(
            Duration::from_millis(self.cfg.timeout_ms),
            self.http.call(req),
        )
        .await
        {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(Failure::Link(e)),
            Err(_) => Err(Failure::Link(format!(
                "no answer within {} ms",
                self.cfg.timeout_ms
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::jwt_expiry_ms;
    use base64::Engine;

    #[test]
    fn a_jwt_expiry_is_read_from_its_payload_and_garbage_is_none() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"HS256"}"#),
            enc(r#"{"sub":"S001","exp":1700000000}"#)
        );
        assert_eq!(jwt_expiry_ms(&token), Some(1_700_000_000_000));
        assert_eq!(jwt_expiry_ms("not a token"), None);
        assert_eq!(jwt_expiry_ms("a.%%%.c"), None);
        assert_eq!(
            jwt_expiry_ms(&format!("a.{}.c", enc(r#"{"exp":"soon"}"#))),
            None
        );
    }
}
