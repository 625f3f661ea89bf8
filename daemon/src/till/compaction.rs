//! Compaction at the till: the committed compaction point applied to the sync log, the archive and
//! the in-memory state.

use super::*;

impl Till {
    /// Applies a peer's events: checks each one, makes the new ones durable, then merges
    /// them into the in-memory state. Refuses the whole batch on any bad event.
    /// The compaction this till's sync log is pruned to: events at or below its floor are
    /// only in the base.
    pub fn compaction(&self) -> Compaction {
        self.core().compaction.clone()
    }

    /// Applies the store's compaction point (from the Raft log): forgets compacted sales
    /// from the transaction-log set and settled statuses from memory, prunes the sync log
    /// to the point's floor as far as this till holds it, and writes the new base in the
    /// same transaction. Sales records paid before `retain_from_ms` whose events are pruned
    /// are deleted (0 keeps them). Answers whether anything moved.
    pub async fn compact(&self, point: &Compaction, retain_from_ms: u64) -> anyhow::Result<bool> {
        let rx = {
            let mut core = self.core();
            // Only what this till holds contiguously and applied is in its state, hence in
            // the base: events of kinds it does not know stay in the sync log until an
            // upgraded version applies them.
            let state = core.replica.state();
            let mut floor = tillmesh_crdt::VersionVector::new();
            for (o, f) in point.floor.iter() {
                floor.advance(o, f.min(state.compactable(o)));
            }
            let target = Compaction {
                floor,
                txlog_dots: point.txlog_dots.clone(),
                horizon_ms: point.horizon_ms,
            };
            if !core.compaction.advanced_by(&target) {
                return Ok(false);
            }
            core.compaction.merge(&target);
            let c = core.compaction.clone();
            core.replica.compact(&c);
            self.prune_batch(&core, retain_from_ms)?
        };
        let info = rx.await??;
        self.observe(&info);
        self.log_sizes().await?;
        Ok(true)
    }

    /// The batch that writes the current base and prunes to the current floor (built and
    /// submitted under the core lock, so it is ordered after every event the state holds).
    pub(super) fn prune_batch(
        &self,
        core: &Core,
        retain_from_ms: u64,
    ) -> anyhow::Result<
        tokio::sync::oneshot::Receiver<Result<CommitInfo, tillmesh_store::StoreError>>,
    > {
        let c = core.compaction.clone();
        let base = core
            .replica
            .encode_base(&c)
            .map_err(|e| anyhow::anyhow!("cannot encode the base: {e}"))?;
        Ok(self.store.submit(WriteBatch {
            meta: vec![(TXN_HIGH_KEY.into(), (core.next_txn - 1).to_string())],
            prune: Some(tillmesh_store::Prune {
                floor: c.floor.iter().map(|(o, s)| (o.0, s)).collect(),
                base,
                retain_from_ms,
            }),
            ..Default::default()
        })?)
    }

    /// Reads the sync log's size into the metrics: events still in the log, sales records
    /// in the archive, sales and statuses held in memory.
    pub(super) async fn log_sizes(&self) -> anyhow::Result<()> {
        let store = self.store.clone();
        let (log, archived) = self
            .off_executor(move || store.read(|r| r.log_sizes()))
            .await??;
        self.metrics.events.set(log as i64);
        self.metrics.sales_archived.set(archived as i64);
        self.metrics.memory_txns.set(self.memory_txns() as i64);
        Ok(())
    }

    /// Stock of one SKU as this till's state holds it.
    pub fn stock_of(&self, sku: &str) -> i64 {
        self.core().replica.state().stock(sku)
    }

    /// Transactions tracked in memory: transaction-log entries plus statuses (what
    /// compaction bounds).
    pub fn memory_txns(&self) -> usize {
        let (txlog, statuses) = self.core().replica.state().held();
        txlog + statuses
    }
}
