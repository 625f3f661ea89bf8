//! Prometheus metrics of the till: sales, sale latency, fsync time, commit group sizes, and
//! queue lengths read at scrape time, the cloud link, the store's Raft group and request
//! latency per route. Names carry base units (seconds); labels take only values the till
//! itself chose (peer terminal ids come from verified certificates).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A gauge of seconds (fractional).
pub type Seconds = Gauge<f64, AtomicU64>;

/// Labels of a per-peer series: `peer="T<terminal>"`.
pub type PeerLabel = Vec<(String, String)>;

/// The till's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Sales made durable.
    pub sales: Counter,
    /// Value of those sales in the currency's minor unit (`till_info` names the currency).
    pub sales_value: Counter,
    /// This till's version, store, terminal and currency (always 1).
    pub info: Family<Vec<(String, String)>, Gauge>,
    /// Request latency per route template.
    pub http: tillmesh_cloud::metrics::HttpMetrics,
    /// Refused requests.
    pub refusals: Counter,
    /// PIN checks turned away by the sign-in throttle (429).
    pub pin_throttled: Counter,
    /// Sign-ins refused for a wrong PIN or an unknown employee id.
    pub login_failures: Counter,
    /// Recognition requests the model failed on (not the photo's fault).
    pub vision_errors: Counter,
    /// Free bytes on the filesystem of the till's database (read at scrape time).
    pub disk_free: Gauge,
    /// Size of that filesystem, bytes.
    pub disk_size: Gauge,
    /// Memory SQLite holds in this process (page caches, schemas, statements), bytes.
    pub sqlite_heap: Gauge,
    /// Camera frames recognised.
    pub vision_frames: Counter,
    /// Camera frames a barcode answered (no model run).
    pub vision_barcodes: Counter,
    /// Finalise latency (request to durable), seconds.
    pub sale_latency: Histogram,
    /// Time in SQLite COMMIT (the fsync), seconds.
    pub fsync: Histogram,
    /// Requests per group commit.
    pub group_size: Histogram,
    /// Requests queued for the writer.
    pub write_queue: Gauge,
    /// Open (unpaid) transactions.
    pub drafts: Gauge,
    /// Active sessions.
    pub sessions: Gauge,
    /// Events in the sync log (compacted ones are in the base).
    pub events: Gauge,
    /// Sales records whose events were compacted (in the archive).
    pub sales_archived: Gauge,
    /// Transactions tracked in memory (transaction-log entries plus statuses).
    pub memory_txns: Gauge,
    /// Events received from peers (new ones only).
    pub events_received: Counter,
    /// A peer's events that failed validation and were quarantined.
    pub quarantined: Counter,
    /// A peer's events refused for their seal (forged, or unsealed where their origin seals).
    pub seal_refused: Counter,
    /// QR payments captured after the till let them expire (to refund).
    pub qr_late_captures: Counter,
    /// Connected mesh peers (outbound).
    pub peers_connected: Gauge,
    /// Events peers lack, summed over peers.
    pub mesh_lag: Gauge,
    /// Events each peer lacks.
    pub peer_lag: Family<Vec<(String, String)>, Gauge>,
    /// Seconds since the last frame with each peer.
    pub peer_silence: Family<PeerLabel, Seconds>,
    /// How far ahead of this till's clock a peer stamped its latest events past the drift
    /// limit (seconds; 0 once it is back within it).
    pub peer_clock_ahead: Family<PeerLabel, Seconds>,
    /// How far this till's own clock runs ahead past the drift limit, by its peers' events
    /// or its own stamps (seconds; 0 within it).
    pub clock_ahead: Seconds,
    /// 1 when the last exchange with the cloud succeeded.
    pub cloud_online: Gauge,
    /// Seconds since the last successful exchange with the cloud (since this till's first
    /// start, while it has never had one).
    pub cloud_silence: Gauge,
    /// Events the cloud has not acknowledged (on the leader).
    pub cloud_backlog: Gauge,
    /// 1 while the cloud refuses the store's credential (on the leader).
    pub cloud_credential_refused: Gauge,
    /// Upload batches sent by this till, by outcome.
    pub uploads: Family<Vec<(String, String)>, Counter>,
    /// Events the cloud accepted from this till's uploads.
    pub uploaded_events: Counter,
    /// Raft term as this till knows it.
    pub raft_term: Gauge,
    /// 1 while this till leads the store's Raft group.
    pub raft_leader: Gauge,
    /// Raft voters.
    pub raft_voters: Gauge,
    /// Terminals whose certificates the store CA revoked (their connections are refused).
    pub revoked_tills: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tillmesh");
        let m = Metrics {
            sales: Counter::default(),
            sales_value: Counter::default(),
            info: Family::default(),
            http: Default::default(),
            refusals: Counter::default(),
            pin_throttled: Counter::default(),
            login_failures: Counter::default(),
            vision_errors: Counter::default(),
            disk_free: Gauge::default(),
            disk_size: Gauge::default(),
            sqlite_heap: Gauge::default(),
            quarantined: Counter::default(),
            seal_refused: Counter::default(),
            qr_late_captures: Counter::default(),
            vision_frames: Counter::default(),
            vision_barcodes: Counter::default(),
            sale_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            fsync: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            group_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            write_queue: Gauge::default(),
            drafts: Gauge::default(),
            sessions: Gauge::default(),
            events: Gauge::default(),
            sales_archived: Gauge::default(),
            memory_txns: Gauge::default(),
            events_received: Counter::default(),
            peers_connected: Gauge::default(),
            mesh_lag: Gauge::default(),
            peer_lag: Family::default(),
            peer_silence: Family::default(),
            peer_clock_ahead: Family::default(),
            clock_ahead: Gauge::default(),
            cloud_online: Gauge::default(),
            cloud_silence: Gauge::default(),
            cloud_backlog: Gauge::default(),
            cloud_credential_refused: Gauge::default(),
            uploads: Family::default(),
            uploaded_events: Counter::default(),
            raft_term: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_voters: Gauge::default(),
            revoked_tills: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("sales", "Sales made durable", m.sales.clone());
        registry.register(
            "sales_value",
            "Value of durable sales in the currency's minor unit (till_info names the currency and its digits)",
            m.sales_value.clone(),
        );
        registry.register(
            "till_info",
            "This till's version, store, terminal and currency (always 1)",
            m.info.clone(),
        );
        m.http.register(&mut registry);
        registry.register(
            "quarantined_events",
            "A peer's events that failed validation: kept, relayed, never applied",
            m.quarantined.clone(),
        );
        registry.register(
            "seal_refused_events",
            "A peer's events refused for their seal (not signed by their origin's key): never stored, so the genuine event still arrives",
            m.seal_refused.clone(),
        );
        registry.register(
            "qr_late_captures",
            "QR payments the provider captured after the till let them expire: money to refund (GET /api/v1/payments/late)",
            m.qr_late_captures.clone(),
        );
        registry.register(
            "pin_throttled",
            "PIN checks turned away by the sign-in throttle (too many wrong PINs, or too many at once)",
            m.pin_throttled.clone(),
        );
        registry.register(
            "login_failures",
            "Sign-ins refused for a wrong PIN or an unknown employee id",
            m.login_failures.clone(),
        );
        registry.register(
            "vision_errors",
            "Recognition requests the model failed on (not the photo's fault)",
            m.vision_errors.clone(),
        );
        registry.register(
            "data_disk_free_bytes",
            "Free bytes on the filesystem of the till's database",
            m.disk_free.clone(),
        );
        registry.register(
            "data_disk_size_bytes",
            "Size of the filesystem of the till's database",
            m.disk_size.clone(),
        );
        registry.register(
            "sqlite_heap_bytes",
            "Memory SQLite holds in this process (page caches, schemas, statements)",
            m.sqlite_heap.clone(),
        );
        registry.register(
            "refusals",
            "Requests refused with a 4xx error",
            m.refusals.clone(),
        );
        registry.register(
            "vision_frames",
            "Camera frames run through product recognition",
            m.vision_frames.clone(),
        );
        registry.register(
            "vision_barcodes",
            "Camera frames answered by a barcode the catalog knows, without the model",
            m.vision_barcodes.clone(),
        );
        registry.register(
            "sale_latency_seconds",
            "Finalise latency, request to durable",
            m.sale_latency.clone(),
        );
        registry.register(
            "store_fsync_seconds",
            "Time spent in SQLite COMMIT",
            m.fsync.clone(),
        );
        registry.register(
            "store_group_size",
            "Requests per group commit",
            m.group_size.clone(),
        );
        registry.register(
            "store_write_queue",
            "Requests queued for the writer",
            m.write_queue.clone(),
        );
        registry.register("drafts_open", "Open unpaid transactions", m.drafts.clone());
        registry.register(
            "sessions_active",
            "Active cashier sessions",
            m.sessions.clone(),
        );
        registry.register("events", "Events in this till's sync log", m.events.clone());
        registry.register(
            "sales_archived",
            "Sales records whose events were compacted",
            m.sales_archived.clone(),
        );
        registry.register(
            "memory_txns",
            "Transaction-log entries and statuses held in memory",
            m.memory_txns.clone(),
        );
        registry.register(
            "mesh_events_received",
            "New events received from peers",
            m.events_received.clone(),
        );
        registry.register(
            "mesh_peers_connected",
            "Peers this till is pushing to",
            m.peers_connected.clone(),
        );
        registry.register(
            "mesh_peer_lag_events",
            "Events each peer lacks",
            m.peer_lag.clone(),
        );
        registry.register(
            "mesh_peer_silence_seconds",
            "Seconds since the last frame with each peer",
            m.peer_silence.clone(),
        );
        registry.register(
            "mesh_peer_clock_ahead_seconds",
            "How far past the drift limit ahead of this till a peer stamps its events (0: within it)",
            m.peer_clock_ahead.clone(),
        );
        registry.register(
            "till_clock_ahead_seconds",
            "How far past the drift limit this till's own clock runs ahead (0: within it)",
            m.clock_ahead.clone(),
        );
        registry.register(
            "mesh_lag_events",
            "Events peers lack, summed over peers",
            m.mesh_lag.clone(),
        );
        registry.register(
            "cloud_online",
            "1 when the last exchange with the cloud succeeded",
            m.cloud_online.clone(),
        );
        registry.register(
            "cloud_silence_seconds",
            "Seconds since the last successful exchange with the cloud (since the till's first start, before any)",
            m.cloud_silence.clone(),
        );
        registry.register(
            "cloud_backlog_events",
            "Events the cloud has not acknowledged (leader)",
            m.cloud_backlog.clone(),
        );
        registry.register(
            "cloud_credential_refused",
            "1 while the cloud refuses the store's credential (uploads stop until it is replaced)",
            m.cloud_credential_refused.clone(),
        );
        registry.register(
            "cloud_uploads",
            "Upload batches sent by this till, by outcome",
            m.uploads.clone(),
        );
        registry.register(
            "cloud_uploaded_events",
            "Events the cloud accepted from this till's uploads",
            m.uploaded_events.clone(),
        );
        registry.register("raft_term", "Raft term", m.raft_term.clone());
        registry.register(
            "raft_leader",
            "1 while this till leads the store's Raft group",
            m.raft_leader.clone(),
        );
        registry.register("raft_voters", "Raft voters", m.raft_voters.clone());
        registry.register(
            "revoked_tills",
            "Terminals whose certificates the store CA revoked",
            m.revoked_tills.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Renders OpenMetrics text.
    pub fn render(&self) -> String {
        tillmesh_cloud::metrics::render(&self.registry)
    }

    /// The `/metrics` answer, in the format the scraper asks for.
    pub fn expose(&self, headers: &axum::http::HeaderMap) -> axum::response::Response {
        tillmesh_cloud::metrics::expose(&self.registry, headers)
    }
}

/// The uplink reports its link and uploads here.
impl tillmesh_uplink::Observer for Metrics {
    fn link(&self, s: &tillmesh_uplink::LinkState) {
        self.cloud_online.set(i64::from(s.online));
        self.cloud_credential_refused
            .set(i64::from(s.credential_refused));
        self.cloud_backlog.set(s.backlog as i64);
    }

    fn upload(&self, outcome: &'static str) {
        self.uploads
            .get_or_create(&vec![("outcome".to_string(), outcome.to_string())])
            .inc();
    }

    fn uploaded(&self, events: u64) {
        self.uploaded_events.inc_by(events);
    }
}
