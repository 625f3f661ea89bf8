//! Prometheus metrics of the cloud: events received and duplicate, batches by outcome, batch
//! latency, and per-store lag and backlog (refreshed at scrape time from the fleet table).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of per-store series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabel {
    /// Store id.
    pub store: String,
}

/// Label of batch outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `accepted`, or the error code.
    pub outcome: String,
}

/// The cloud's metrics.
/// Labels of a store's uploader.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UploaderLabel {
    /// Store id.
    pub store: String,
    /// The terminal that sent the batch (the store's Raft leader, by its own account).
    pub leader: u64,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Events stored, per store.
    pub events_received: Family<StoreLabel, Counter>,
    /// Events received again and not stored, per store.
    pub events_duplicate: Family<StoreLabel, Counter>,
    /// Uploaded events refused for their seal, per store.
    pub seal_refused: Family<StoreLabel, Counter>,
    /// Batches by outcome.
    pub batches: Family<OutcomeLabel, Counter>,
    /// Accepted batches per store and sending terminal.
    pub batches_by_leader: Family<UploaderLabel, Counter>,
    /// Upload latency (request read to durable), seconds.
    pub batch_latency: Histogram,
    /// Delay from the newest event of a store's last batch to its arrival, seconds.
    pub store_lag: Family<StoreLabel, Gauge>,
    /// Seconds since a store's last upload.
    pub store_silence: Family<StoreLabel, Gauge>,
    /// Events a store's leader reported still holding.
    pub store_backlog: Family<StoreLabel, Gauge>,
    /// Events not yet folded into the reports.
    pub unprojected: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("tillmesh_cloud"),
            events_received: Family::default(),
            events_duplicate: Family::default(),
            seal_refused: Family::default(),
            batches: Family::default(),
            batches_by_leader: Family::default(),
            batch_latency: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            store_lag: Family::default(),
            store_silence: Family::default(),
            store_backlog: Family::default(),
            unprojected: Gauge::default(),
        };
        m.registry.register(
            "events_received",
            "Events stored",
            m.events_received.clone(),
        );
        m.registry.register(
            "events_duplicate",
            "Events received again and not stored",
            m.events_duplicate.clone(),
        );
        m.registry.register(
            "seal_refused_events",
            "Uploaded events refused because their seal does not check (never stored)",
            m.seal_refused.clone(),
        );
        m.registry
            .register("batches", "Upload batches by outcome", m.batches.clone());
        m.registry.register(
            "batches_by_leader",
            "Accepted upload batches per store and sending terminal",
            m.batches_by_leader.clone(),
        );
        m.registry.register(
            "batch_latency_seconds",
            "Upload latency, body read to durable",
            m.batch_latency.clone(),
        );
        m.registry.register(
            "store_lag_seconds",
            "Delay from a store's newest uploaded event to its arrival",
            m.store_lag.clone(),
        );
        m.registry.register(
            "store_silence_seconds",
            "Seconds since the store's last upload",
            m.store_silence.clone(),
        );
        m.registry.register(
            "store_backlog_events",
            "Events the store's leader still holds",
            m.store_backlog.clone(),
        );
        m.registry.register(
            "unprojected_events",
            "Events not yet folded into the reports",
            m.unprojected.clone(),
        );
        m
    }
}

impl Metrics {
    /// Counts one batch outcome.
    pub fn batch(&self, outcome: &str) {
        self.batches
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Refreshes the per-store gauges from the fleet table.
    pub fn fleet(&self, rows: &[crate::ledger::FleetRow], now_ms: u64) {
        let mut unprojected = 0;
        for r in rows {
            let l = StoreLabel {
                store: r.store_id.clone(),
            };
            self.store_lag
                .get_or_create(&l)
                .set((r.lag_ms / 1000) as i64);
            let silence = if r.last_upload_ms == 0 {
                -1
            } else {
                (now_ms.saturating_sub(r.last_upload_ms) / 1000) as i64
            };
            self.store_silence.get_or_create(&l).set(silence);
            self.store_backlog.get_or_create(&l).set(r.backlog as i64);
            unprojected += r.unprojected as i64;
        }
        self.unprojected.set(unprojected);
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
