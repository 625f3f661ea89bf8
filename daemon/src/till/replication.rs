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
        self.off_executor(move || store.read(|r| r.events_after(origin, after, limit)))
            .await
            .map_err(storage)?
            .map_err(storage)
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
        let _ = self.log_sizes();
        self.changes.send_modify(|v| *v += 1);
        Ok(self.version_vector())
    }

    pub async fn apply_remote(
        &self,
        from: u64,
        events: Vec<Event>,
    ) -> Result<tillmesh_crdt::VersionVector, ReplicaError> {
        let now = self.now();
        let fresh: Vec<Event> = {
            let core = self.core();
            let me = core.replica.id();
            let mut fresh = Vec::new();
            for e in events {
                e.check()
                    .map_err(|e| ReplicaError::Refused(e.to_string()))?;
                if e.origin == me && e.seq >= core.replica.next_seq() {
                    return Err(ReplicaError::Refused(format!(
                        "peer T{from} sent event {}/{} of this till that it never made",
                        e.origin, e.seq
                    )));
                }
                if e.hlc.wall_ms > now + tillmesh_pos::state::CLOCK_DRIFT_MS_MAX {
                    return Err(ReplicaError::Refused(format!(
                        "event {}/{} is stamped {} ms in the future",
                        e.origin,
                        e.seq,
                        e.hlc.wall_ms - now
                    )));
                }
                if !core.replica.state().holds(e.origin, e.seq) {
                    fresh.push(e);
                }
            }
            fresh
        };
        if !fresh.is_empty() {
            let info = self
                .store
                .commit(WriteBatch {
                    events: fresh.clone(),
                    ..Default::default()
                })
                .await
                .map_err(storage)?;
            self.observe(&info);
            self.metrics.events.inc_by(info.events_new as i64);
            self.metrics.events_received.inc_by(fresh.len() as u64);
            let mut core = self.core();
            for e in &fresh {
                // Drift was checked above; observing cannot fail for these stamps.
                let _ = core.replica.apply_remote(e, now);
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
            drop(core);
            self.changes.send_modify(|v| *v += 1);
        }
        Ok(self.version_vector())
    }
}

/// What the uplink reads of the till: the store's events.
impl tillmesh_uplink::EventSource for Till {
    fn version_vector(&self) -> tillmesh_crdt::VersionVector {
        Till::version_vector(self)
    }

    async fn events_after(
        &self,
        origin: ReplicaId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, String> {
        Till::events_after(self, origin, after, limit)
            .await
            .map_err(|e| e.to_string())
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        Till::changes(self)
    }

    fn now_ms(&self) -> u64 {
        Till::now_ms(self)
    }
}
