//! Status for humans and `tillmesh status`, and the views of the mesh, Raft group and cloud link it
//! reports.

use super::*;

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

    /// Status for humans and `tillmesh status`.
    pub fn status(&self) -> StatusView {
        let now = self.now();
        // The mesh's peer list reads the version vector, which takes the core lock: read it
        // before taking that lock here.
        let peers = self.links.peers();
        let duplicate_terminal_at = self.links.duplicate_terminal();
        let revoked = self.links.revoked();
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
            .set(own_clock_ahead_ms.unwrap_or(0) as i64);
        self.metrics.write_queue.set(self.store.queue_len() as i64);
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
                .set(now.saturating_sub(p.last_contact_ms) as i64);
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
            unknown_kind_events: core.replica.state().unapplied.len(),
            revoked_tills: revoked.0,
            this_till_revoked: revoked.1,
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
