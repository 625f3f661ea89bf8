//! What the uplink needs from the till it runs on, given at construction: the store's events
//! (an [`EventSource`]), somewhere to report its link and uploads (an [`Observer`]), and its
//! [`Settings`].

use std::future::Future;
use std::path::PathBuf;
use tillmesh_crdt::{ReplicaId, VersionVector};
use tillmesh_pos::event::Event;

/// The store's events as this till holds them.
pub trait EventSource: Send + Sync + std::fmt::Debug + 'static {
    /// Events held per origin.
    fn version_vector(&self) -> VersionVector;
    /// Durable events of `origin` with `seq > after`, at most `limit`, in order; those the
    /// till quarantined only with `quarantined` (a cloud that reads batch format 2 keeps
    /// them; an older one refuses their batch).
    fn events_after(
        &self,
        origin: ReplicaId,
        after: u64,
        limit: usize,
        quarantined: bool,
    ) -> impl Future<Output = Result<Vec<Event>, String>> + Send;
    /// How many key records the till holds.
    fn keys_count(&self) -> usize {
        0
    }
    /// The key records the till holds (uploaded so the cloud can check seals).
    fn key_records(&self) -> Vec<tillmesh_pos::seal::KeyRecord> {
        Vec::new()
    }
    /// Signs an upload batch's message with the till's key (`None`: the till does not seal).
    fn seal_batch(&self, msg: &[u8]) -> Option<Vec<u8>> {
        let _ = msg;
        None
    }
    /// The store's tills as this till sees them (itself first), for HQ's fleet view.
    fn tills(&self) -> Vec<tillmesh_cloud_proto::TillState> {
        Vec::new()
    }
    /// Changes after every durable change.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Now, by the till's clock (ms since the epoch).
    fn now_ms(&self) -> u64;
    /// This till's support bundle for HQ (tar, zstd), when it can make one.
    fn support_bundle(&self) -> impl Future<Output = Option<Vec<u8>>> + Send {
        async { None }
    }
    /// Before an upload: a span per event that carries a trace context, in that trace, and
    /// the span's context put in the event in its place (so that HQ's ingest continues the
    /// upload); the spans stay open until the answer. None when traces are not exported.
    fn upload_spans(&self, events: &mut [tillmesh_cloud_proto::StoreEvent]) -> Vec<tracing::Span> {
        let _ = events;
        Vec::new()
    }
}

/// Where the uplink reports (the till's metrics).
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// The link state changed.
    fn link(&self, state: &crate::LinkState);
    /// One upload ended with `outcome` (`accepted`, `fenced`, `failed`).
    fn upload(&self, outcome: &'static str);
    /// The cloud accepted this many new events of an upload.
    fn uploaded(&self, events: u64);
}

/// The uplink's settings (the till's `[cloud]` section and its store id).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The store whose events are uploaded.
    pub store_id: String,
    /// The cloud's base URL.
    pub url: String,
    /// The store's bearer credential.
    pub token: String,
    /// A CA to trust for the cloud's certificate, besides the system's.
    pub ca_cert: Option<PathBuf>,
    /// Most events per batch.
    pub batch_events_max: usize,
    /// Most encoded bytes per batch.
    pub batch_bytes_max: usize,
    /// How long a small batch waits for company.
    pub linger_ms: u64,
    /// An empty batch (a heartbeat) at least this often.
    pub heartbeat_ms: u64,
    /// Limit of one request.
    pub timeout_ms: u64,
    /// Retry back-off, from...
    pub backoff_min_ms: u64,
    /// ...to.
    pub backoff_max_ms: u64,
    /// Master data pulled at least this often.
    pub master_pull_ms: u64,
    /// The credential is renewed once it expires within this (ms).
    pub renew_before_ms: u64,
    /// The store's tills are reported to HQ this often while leading (ms; 0: never).
    pub tills_report_ms: u64,
}
