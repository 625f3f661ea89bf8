//! Status for humans and `tillmesh status`, and the views of the mesh, Raft group and cloud link it
//! reports.

use super::*;

/// Human status of the till.
#[derive(Clone, Debug, Serialize, ToSchema, Deserialize)]
pub struct StatusView {
    /// Store id.
    pub store_id: String,
    /// Terminal id.
    pub terminal_id: u64,
    /// Events held per origin terminal.
    pub version_vector: Vec<(u64, u64)>,
    /// Events held.
    pub events: u64,
    /// Events compacted out of the sync log (in the base only).
    pub events_compacted: u64,
    /// Open transactions.
    pub drafts_open: usize,
    /// Active sessions.
    pub sessions_active: usize,
    /// Requests queued for the disk.
    pub write_queue: usize,
    /// Catalog size.
    pub catalog_items: usize,
    /// Master data version.
    pub master_version: u64,
    /// Mesh peers.
    pub peers: Vec<tillmesh_mesh::PeerView>,
    /// The store's Raft group as this till sees it (with a mesh).
    pub raft: Option<RaftView>,
    /// The cloud link, when `[cloud]` is configured.
    pub cloud: Option<CloudView>,
    /// Now (RFC 3339).
    pub now: String,
    /// The store's currency (ISO 4217) and its minor-unit digits, for displays.
    pub currency: String,
    /// Minor-unit digits of the currency (0 for VND).
    pub currency_decimals: u32,
    /// Product recognition is configured on this till.
    pub vision: bool,
    /// A peer's events that failed validation and are held in quarantine
    /// (`GET /api/v1/quarantine` lists them).
    #[serde(default)]
    pub quarantined: usize,
    /// QR payments the provider captured after this till let them expire: to refund
    /// (`GET /api/v1/payments/late`).
    #[serde(default)]
    pub late_captures: usize,
    /// Why this till takes no QR payment now, if it does not: no provider configured, or
    /// the online rule (`Till::online_refusal`: the cloud or the provider out of reach).
    #[serde(default)]
    pub qr_refused: Option<String>,
    /// Events of kinds this version does not know (made by a newer till): held, relayed
    /// and uploaded unchanged, applied once this till is upgraded.
    #[serde(default)]
    pub unknown_kind_events: usize,
    /// Terminals whose certificates the store CA revoked: their connections are refused.
    #[serde(default)]
    pub revoked_tills: Vec<u64>,
    /// This till's own certificate is revoked: no peer talks to it (enrol it again).
    #[serde(default)]
    pub this_till_revoked: bool,
    /// Event seals: whether this till signs its events, whose keys it holds, and the peers'
    /// events it refused for their seal.
    #[serde(default)]
    pub seals: super::seals::SealStatus,
    /// The version of tillmesh this till runs.
    #[serde(default)]
    pub version: String,
    /// The mesh protocol versions this till speaks (oldest, newest).
    #[serde(default)]
    pub protocol: (u16, u16),
    /// Peers whose clocks run ahead of this till's past the drift limit (their events apply,
    /// this till's clock does not follow).
    #[serde(default)]
    pub clock_skew: Vec<PeerSkew>,
    /// This till's own clock runs ahead past the drift limit (ms): most peers heard in the
    /// last five minutes stamp their newest events that far behind it, or its own stamps
    /// run ahead of its wall clock (it ran ahead before and was corrected). Fix the clock.
    #[serde(default)]
    pub own_clock_ahead_ms: Option<u64>,
    /// Addresses of other tills presenting this till's terminal id (refused: fix their
    /// configuration or enrolment).
    #[serde(default)]
    pub duplicate_terminal_at: Vec<String>,
}

/// A peer stamping its events ahead of this till's clock past the drift limit.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PeerSkew {
    /// The peer's terminal id.
    pub terminal: u64,
    /// How far ahead of this till its latest events were stamped (ms).
    pub ahead_ms: u64,
}

/// The store's Raft group as one till sees it.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema, Deserialize)]
pub struct RaftView {
    /// Current leader (terminal id), if known.
    pub leader: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Voting members.
    pub voters: Vec<u64>,
    /// Master-data version the store applied through Raft.
    pub master_version: u64,
    /// The last master-data page this till refused since it started (not signed by HQ,
    /// or signed for another store or version): `v<version>: <why>`.
    #[serde(default)]
    pub master_refused: Option<String>,
}

/// The answer to "sync now".
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SyncView {
    /// The terminal that leads the store and is syncing.
    pub leader: u64,
}

impl Till {
    /// How many of the events this till holds are quarantined (held, never applied nor
    /// uploaded).
    pub fn quarantined_count(&self) -> usize {
        self.core().quarantined.len()
    }

    /// The quarantined events, oldest first.
    pub async fn quarantine(&self) -> Result<Vec<tillmesh_store::QuarantineRow>, TillError> {
        let store = self.store.clone();
        Ok(self
            .off_executor(move || store.read(|r| r.quarantined()))
            .await??)
    }

    /// The newest `n` entries of the audit chain, newest first.
    pub async fn audit_head(
        &self,
        n: usize,
    ) -> Result<Vec<tillmesh_pos::audit::AuditEntry>, TillError> {
        let store = self.store.clone();
        Ok(self
            .off_executor(move || store.read(|r| r.audit_last(n)))
            .await??)
    }

    /// Collects a support bundle, for a manager.
    pub async fn support_bundle(&self, s: &Session) -> Result<Vec<u8>, TillError> {
        if !s.role.allows(Permission::SupportBundle) {
            return Err(TillError::forbidden(
                "manager_only",
                "only a manager collects a support bundle",
            ));
        }
        let files = crate::support::files(self).await?;
        let mtime_s = self.now() / 1000;
        self.off_executor(move || crate::support::pack(&files, mtime_s))
            .await?
            .map_err(|e| TillError::Internal(format!("support bundle: {e}")))
    }

    /// The support bundle HQ asked the store's leader for (through its till report), as a
    /// manager's: audited as HQ's.
    pub async fn support_bundle_for_hq(&self) -> Result<Vec<u8>, TillError> {
        let files = crate::support::files(self).await?;
        let mtime_s = self.now() / 1000;
        let bytes = self
            .off_executor(move || crate::support::pack(&files, mtime_s))
            .await?
            .map_err(|e| TillError::Internal(format!("support bundle: {e}")))?;
        let rec = audit_rec(
            self.now(),
            "hq",
            "support.bundle",
            "hq",
            "ok",
            format!("{} bytes sent to HQ", bytes.len()),
        );
        self.audit(rec).await?;
        Ok(bytes)
    }

    /// A manager's "sync now": the store's leader (this till or another) pulls master data
    /// from the cloud and uploads what it holds at once, instead of at its next heartbeat
    /// or master-data pull.
    pub async fn sync_now(&self, s: &Session) -> Result<SyncView, TillError> {
        if !s.role.allows(Permission::SyncNow) {
            return Err(TillError::forbidden(
                "manager_only",
                "only a manager has the store sync now",
            ));
        }
        if self.cfg.mesh.is_none() || self.cfg.cloud.is_none() {
            return Err(TillError::conflict(
                "no_cloud",
                "this till has no [mesh] and [cloud]: there is no store link to sync",
            ));
        }
        let raft = self.links.store_raft().ok_or_else(|| {
            TillError::unavailable("no_raft", "the store's Raft group is not running yet")
        })?;
        let leader = raft
            .sync_now()
            .await
            .map_err(|why| TillError::unavailable("no_sync", why))?;
        let rec = audit_rec(
            self.now(),
            &s.employee_id,
            "store.sync_now",
            &format!("T{leader}"),
            "ok",
            String::new(),
        );
        self.audit(rec).await?;
        Ok(SyncView { leader })
    }

    /// The store's tills as this till sees them, itself first: HQ's per-till view, from the
    /// leader. A peer is `connected` while its push session is up and it was heard within
    /// `TILL_SILENT_MS` (the mesh probes every 2 s), `silent` once known but unheard or
    /// disconnected, `unreachable` if never reached.
    pub fn tills(&self) -> Vec<tillmesh_cloud_proto::TillState> {
        use tillmesh_cloud_proto::tills::{TILL_SILENT_MS, TillLink, TillState};
        let now = self.now();
        let mut out = vec![TillState {
            terminal: self.cfg.terminal.id,
            link: TillLink::Leader,
            lag_events: 0,
            last_seen_ms: now,
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            protocol: None,
        }];
        for p in self.links.peers() {
            let link = if p.last_contact_ms == 0 {
                TillLink::Unreachable
            } else if p.outbound == tillmesh_mesh::PeerState::Connected
                && now.saturating_sub(p.last_contact_ms) <= TILL_SILENT_MS
            {
                TillLink::Connected
            } else {
                TillLink::Silent
            };
            out.push(TillState {
                terminal: p.terminal,
                link,
                lag_events: p.lag_events,
                last_seen_ms: p.last_contact_ms,
                version: None,
                protocol: p.protocol,
            });
        }
        out
    }

    /// Status for humans and `tillmesh status`.
    pub fn status(&self) -> StatusView {
        let now = self.now();
        // The mesh's peer list reads the version vector, which takes the core lock: read it
        // before taking that lock here.
        let peers = self.links.peers();
        let duplicate_terminal_at = self.links.duplicate_terminal();
        let revoked = self.links.revoked();
        let seals = self.seal_status();
        let late_captures = self
            .late_captures()
            .iter()
            .filter(|l| l.refund_ref.is_none())
            .count();
        let core = self.core();
        let vv = &core.replica.state().vv;
        let own_clock_ahead_ms = own_clock_ahead(
            &core.peer_behind,
            core.replica.last_stamp().wall_ms,
            now,
            tillmesh_pos::state::CLOCK_DRIFT_MS_MAX,
        );
        self.metrics
            .clock_ahead
            .set(own_clock_ahead_ms.unwrap_or(0) as f64 / 1000.0);
        self.metrics.write_queue.set(self.store.queue_len() as i64);
        self.metrics.sqlite_heap.set(tillmesh_store::heap::used());
        if let Some((free, size)) = self.store.disk_space() {
            self.metrics.disk_free.set(free as i64);
            self.metrics.disk_size.set(size as i64);
        }
        self.metrics.peers_connected.set(
            peers
                .iter()
                .filter(|p| p.outbound == tillmesh_mesh::PeerState::Connected)
                .count() as i64,
        );
        self.metrics
            .mesh_lag
            .set(peers.iter().map(|p| p.lag_events as i64).sum());
        for p in &peers {
            let label = vec![("peer".to_string(), format!("T{}", p.terminal))];
            self.metrics
                .peer_lag
                .get_or_create(&label)
                .set(p.lag_events as i64);
            self.metrics
                .peer_silence
                .get_or_create(&label)
                .set(now.saturating_sub(p.last_contact_ms) as f64 / 1000.0);
            // 0 until the peer stamps past the drift limit (set by replication).
            let _ = self.metrics.peer_clock_ahead.get_or_create(&label);
        }
        StatusView {
            store_id: self.cfg.store.store_id.clone(),
            terminal_id: self.cfg.terminal.id,
            version_vector: vv.iter().map(|(o, s)| (o.0, s)).collect(),
            events: vv.total(),
            events_compacted: core.compaction.floor.total(),
            drafts_open: core.drafts.len(),
            sessions_active: core
                .sessions
                .values()
                .filter(|s| s.expires_ms > now)
                .count(),
            write_queue: self.store.queue_len(),
            catalog_items: core.catalog.len(),
            master_version: core.master_version,
            peers,
            raft: self.links.raft(),
            cloud: self.cloud_view_at(now),
            now: rfc3339(now),
            currency: self.cfg.store.currency.clone(),
            currency_decimals: self.cfg.store.currency_decimals,
            vision: self.vision.is_some(),
            quarantined: core.quarantined.len(),
            late_captures,
            qr_refused: if self.provider.is_none() {
                Some("no QR payment provider is configured on this till".into())
            } else {
                self.online_refusal(now)
            },
            unknown_kind_events: core.replica.state().unapplied.len(),
            revoked_tills: revoked.0,
            this_till_revoked: revoked.1,
            seals,
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: (
                tillmesh_mesh::wire::PROTOCOL_MIN,
                tillmesh_mesh::wire::PROTOCOL_VERSION,
            ),
            clock_skew: core
                .clock_ahead
                .iter()
                .map(|(&terminal, &ahead_ms)| PeerSkew { terminal, ahead_ms })
                .collect(),
            own_clock_ahead_ms,
            duplicate_terminal_at,
        }
    }
}
