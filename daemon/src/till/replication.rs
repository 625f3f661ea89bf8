//! What the mesh asks of the till: its version vector and state, events after a point, bases, and
//! applying a peer's events.

use super::*;
use tillmesh_mesh::ReplicaError;

/// The till's own storage failed while serving the mesh.
fn storage(e: impl std::fmt::Display) -> ReplicaError {
    ReplicaError::Storage(e.to_string())
}

impl Till {
    /// This till's replica id (the origin of its own events).
    pub fn replica_id(&self) -> ReplicaId {
        self.core().replica.id()
    }

    /// The version vector: events held per origin.
    pub fn version_vector(&self) -> tillmesh_crdt::VersionVector {
        self.core().replica.state().vv.clone()
    }

    /// A copy of the replicated state (for convergence checks).
    pub fn state(&self) -> tillmesh_pos::state::StoreState {
        self.core().replica.state().clone()
    }

    /// Ticks after every durable change of the event log.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Durable events of `origin` after `after`.
    pub async fn events_after(
        &self,
        origin: ReplicaId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, ReplicaError> {
        let store = self.store.clone();
        let events = self
            .off_executor(move || store.read(|r| r.events_after(origin, after, limit)))
            .await
            .map_err(storage)?
            .map_err(storage)?;
        Ok(self.with_traces(events))
    }

    /// This till's encoded base, for a peer that lacks compacted events.
    pub async fn base_bytes(&self) -> Result<Option<Vec<u8>>, ReplicaError> {
        let store = self.store.clone();
        self.off_executor(move || store.read(|r| r.base()))
            .await
            .map_err(storage)?
            .map_err(storage)
    }

    /// Merges a peer's base (it pruned events this till lacks): the state joins it, the
    /// floor moves up to the peer's, and the merged base is written before the answer.
    pub async fn apply_base(
        &self,
        from: u64,
        bytes: Vec<u8>,
    ) -> Result<tillmesh_crdt::VersionVector, ReplicaError> {
        let now = self.now();
        let base = Base::decode(&bytes)
            .map_err(|e| ReplicaError::Refused(format!("base from T{from}: {e}")))?;
        let rx = {
            let mut core = self.core();
            let me = core.replica.id();
            if base.state.vv.get(me) >= core.replica.next_seq() {
                return Err(ReplicaError::Refused(format!(
                    "base from T{from} holds events of this till that it never made"
                )));
            }
            let before = core.replica.state().store_prices.clone();
            core.replica
                .merge_base(&base, now)
                .map_err(|e| ReplicaError::Refused(format!("base from T{from}: {e}")))?;
            core.compaction.merge(&base.compaction);
            let changed: Vec<(String, (i64, u64))> = core
                .replica
                .state()
                .store_prices
                .iter()
                .filter(|(sku, v)| before.get(sku) != Some(v))
                .map(|(sku, v)| (sku.clone(), *v))
                .collect();
            for (sku, (price, eff)) in changed {
                core.prices.insert(ScheduledPrice {
                    sku,
                    price,
                    effective_from_ms: eff,
                    scope: PriceScope::Store,
                });
            }
            self.prune_batch(&core, 0).map_err(storage)?
        };
        let info = rx.await.map_err(storage)?.map_err(storage)?;
        self.observe(&info);
        let _ = self.log_sizes().await;
        self.changes.send_modify(|v| *v += 1);
        Ok(self.version_vector())
    }

    /// Applies a peer's batch. Each event goes through the validator
    /// ([`tillmesh_pos::state::StoreState::admit`]); one that fails is quarantined (kept in
    /// the sync log with its reason, held so that the vector moves past it, relayed as
    /// received, never applied) and the rest of the batch is applied. An event stamped further
    /// ahead than the drift limit is applied without moving this till's clock. Only an event
    /// claiming to be this till's own that it never made refuses the batch.
    pub async fn apply_remote(
        &self,
        from: u64,
        events: Vec<Event>,
    ) -> Result<tillmesh_crdt::VersionVector, ReplicaError> {
        let now = self.now();
        // Open until the events are durable: the peer's part of each traced sale.
        let _spans = self.continue_traces(from, &events);
        // Seals first: an event its origin did not sign is never stored, so it cannot hold
        // the (origin, seq) of the genuine one.
        let (events, refused) = self.check_seals(from, events);
        self.record_refusals(refused).await?;
        let (fresh, quarantine) = {
            let core = self.core();
            let me = core.replica.id();
            let mut fresh = Vec::new();
            let mut quarantine = Vec::new();
            let mut unseen = Vec::new();
            for e in events {
                if e.origin == me && e.seq >= core.replica.next_seq() {
                    return Err(ReplicaError::Refused(format!(
                        "peer T{from} sent event {}/{} of this till that it never made",
                        e.origin, e.seq
                    )));
                }
                if !core.replica.state().holds(e.origin, e.seq) {
                    unseen.push(e);
                }
            }
            let verdicts = core.replica.state().admit_all(&unseen);
            for (e, verdict) in unseen.into_iter().zip(verdicts) {
                match verdict {
                    Ok(()) => fresh.push(e),
                    Err(why) => quarantine.push(tillmesh_store::Quarantined {
                        event: e,
                        from_terminal: from,
                        at_ms: now,
                        reason: why.to_string(),
                    }),
                }
            }
            (fresh, quarantine)
        };
        if fresh.is_empty() && quarantine.is_empty() {
            return Ok(self.version_vector());
        }
        for q in &quarantine {
            warn!(
                peer = from,
                origin = %q.event.origin,
                seq = q.event.seq,
                reason = %q.reason,
                "quarantined a peer's event that failed validation"
            );
        }
        let audit = quarantine
            .iter()
            .map(|q| {
                audit_rec(
                    now,
                    &format!("T{from}"),
                    "mesh.quarantine",
                    &format!("{}/{}", q.event.origin, q.event.seq),
                    "quarantined",
                    q.reason.clone(),
                )
            })
            .collect();
        let info = self
            .store
            .commit(WriteBatch {
                events: fresh.clone(),
                quarantine: quarantine.clone(),
                audit,
                ..Default::default()
            })
            .await
            .map_err(storage)?;
        self.observe(&info);
        self.metrics.events.inc_by(info.events_new as i64);
        self.metrics.events_received.inc_by(fresh.len() as u64);
        self.metrics.quarantined.inc_by(quarantine.len() as u64);
        let mut core = self.core();
        // The sender's own events say how its clock compares with this till's.
        let drift = tillmesh_pos::state::CLOCK_DRIFT_MS_MAX;
        if let Some(e) = fresh
            .iter()
            .filter(|e| e.origin.terminal() == from)
            .max_by_key(|e| e.hlc)
            && (core.live.len() < PEERS_TRACKED_MAX || core.live.contains_key(&from))
        {
            // The incarnation that writes for that terminal now (a till whose disk was
            // replaced writes as a new one): where rights may be handed.
            core.live.insert(from, e.origin);
        }
        if let Some(newest) = fresh
            .iter()
            .filter(|e| e.origin.terminal() == from)
            .map(|e| e.hlc.wall_ms)
            .max()
        {
            let ahead = newest.saturating_sub(now);
            if core.peer_behind.len() < PEERS_TRACKED_MAX || core.peer_behind.contains_key(&from) {
                core.peer_behind
                    .insert(from, (now.saturating_sub(newest), now));
            }
            let label = vec![("peer".to_string(), format!("T{from}"))];
            if ahead > drift {
                if core.clock_ahead.insert(from, ahead).is_none() {
                    warn!(
                        peer = from,
                        ahead_ms = ahead,
                        "a peer's clock runs ahead of this till's past the drift limit"
                    );
                }
                self.metrics
                    .peer_clock_ahead
                    .get_or_create(&label)
                    .set(ahead as f64 / 1000.0);
            } else if core.clock_ahead.remove(&from).is_some() {
                self.metrics.peer_clock_ahead.get_or_create(&label).set(0.0);
            }
        }
        for e in &fresh {
            Self::note_ask(&mut core, e, now);
            if core.replica.apply_remote(e, now).is_err() {
                // Stamped past the drift limit: its deltas apply, this till's clock stays.
                core.replica.apply_skewed(e);
            }
            if let EventBody::PriceOverridden { prices, .. } = &e.body {
                for (sku, (price, eff)) in prices.iter() {
                    core.prices.insert(ScheduledPrice {
                        sku: sku.clone(),
                        price: *price,
                        effective_from_ms: *eff,
                        scope: PriceScope::Store,
                    });
                }
            }
        }
        for q in &quarantine {
            core.replica.hold(q.event.origin, q.event.seq);
            core.quarantined.insert((q.event.origin, q.event.seq));
        }
        drop(core);
        self.changes.send_modify(|v| *v += 1);
        Ok(self.version_vector())
    }
}

/// What the uplink reads of the till: the store's events.
impl tillmesh_uplink::EventSource for Till {
    fn upload_spans(&self, events: &mut [tillmesh_cloud_proto::StoreEvent]) -> Vec<tracing::Span> {
        Till::upload_spans(self, events)
    }

    async fn support_bundle(&self) -> Option<Vec<u8>> {
        Till::support_bundle_for_hq(self)
            .await
            .inspect_err(|e| warn!(cause = %e, "support bundle for HQ"))
            .ok()
    }

    fn tills(&self) -> Vec<tillmesh_cloud_proto::TillState> {
        Till::tills(self)
    }

    fn keys_count(&self) -> usize {
        Till::keys_count(self)
    }

    fn key_records(&self) -> Vec<tillmesh_pos::seal::KeyRecord> {
        Till::key_records(self)
    }

    fn seal_batch(&self, msg: &[u8]) -> Option<Vec<u8>> {
        Till::seal_batch(self, msg)
    }

    fn version_vector(&self) -> tillmesh_crdt::VersionVector {
        Till::version_vector(self)
    }

    async fn events_after(
        &self,
        origin: ReplicaId,
        after: u64,
        limit: usize,
        quarantined: bool,
    ) -> Result<Vec<Event>, String> {
        // Quarantined events are relayed to peers (each validates them itself); a cloud
        // that reads batch format 2 keeps them as quarantined (so the origin's watermark
        // passes them), an older one refuses what the validator refuses.
        let mut events = Till::events_after(self, origin, after, limit)
            .await
            .map_err(|e| e.to_string())?;
        let core = self.core();
        if !quarantined && !core.quarantined.is_empty() {
            events.retain(|e| !core.quarantined.contains(&(e.origin, e.seq)));
        }
        Ok(events)
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        Till::changes(self)
    }

    fn now_ms(&self) -> u64 {
        Till::now_ms(self)
    }
}
