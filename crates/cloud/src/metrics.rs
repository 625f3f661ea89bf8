//! Prometheus metrics of the cloud (events, batches, per-store lag and arrival delay, kept
//! current at ingest and by a periodic fleet refresh, never by a scrape), and what the till
//! shares with it: request latency per route template, and the exposition in the format the
//! scraper asks for.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Label of per-store series (the store of the verified credential, never a client's word).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabel {
    /// Store id.
    pub store: String,
}

/// Label of batch outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `accepted`, or the error code (a fixed set of the server's own).
    pub outcome: String,
}

/// Terminals remembered per store as having sent accepted batches (the record of which
/// tills ever led an upload, `Metrics::uploaders`); further ones are not recorded.
pub const UPLOADERS_PER_STORE_MAX: usize = 32;

/// Stores whose uploaders are remembered.
pub const UPLOADER_STORES_MAX: usize = 10_000;

/// How often the fleet-derived gauges are refreshed from the ledger (never on a scrape).
pub const FLEET_REFRESH_MS: u64 = 15_000;

/// The cloud's metrics.
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
    /// The terminals that sent each store's accepted batches since this cloud started
    /// (bounded; not a metric: the terminal id is the uploader's own word).
    uploaders: Mutex<BTreeMap<String, BTreeSet<u64>>>,
    /// Upload latency (request read to durable), seconds.
    pub batch_latency: Histogram,
    /// Delay from the newest event of a store's last batch to its arrival, seconds.
    pub store_lag: Family<StoreLabel, Gauge>,
    /// When a store last uploaded (Unix seconds; absent before its first upload).
    pub store_last_upload: Family<StoreLabel, Gauge>,
    /// Delay from an event's stamp at the till to its arrival at HQ, per store, seconds.
    pub arrival_delay: Family<StoreLabel, Histogram, fn() -> Histogram>,
    /// Request latency per route.
    pub http: HttpMetrics,
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
            uploaders: Mutex::default(),
            batch_latency: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            store_lag: Family::default(),
            store_last_upload: Family::default(),
            arrival_delay: Family::new_with_constructor(arrival_buckets),
            http: HttpMetrics::default(),
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
            "store_last_upload_timestamp_seconds",
            "When the store last uploaded (Unix time)",
            m.store_last_upload.clone(),
        );
        m.registry.register(
            "event_arrival_delay_seconds",
            "Delay from an event's stamp at the till to its arrival at HQ (NFR-1.3: 5 s p95)",
            m.arrival_delay.clone(),
        );
        m.http.register(&mut m.registry);
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
    pub fn fleet(&self, rows: &[crate::ledger::FleetRow]) {
        let mut unprojected = 0;
        for r in rows {
            let l = StoreLabel {
                store: r.store_id.clone(),
            };
            self.store_lag
                .get_or_create(&l)
                .set((r.lag_ms / 1000) as i64);
            if r.last_upload_ms > 0 {
                self.store_last_upload
                    .get_or_create(&l)
                    .set((r.last_upload_ms / 1000) as i64);
            }
            self.store_backlog.get_or_create(&l).set(r.backlog as i64);
            unprojected += r.unprojected as i64;
        }
        self.unprojected.set(unprojected);
    }

    /// Records an accepted batch: the store's gauges, the arrival delay of each event (when
    /// the batch stored new ones), and the terminal that sent it.
    pub fn accepted(
        &self,
        store: &str,
        batch: &tillmesh_cloud_proto::Batch,
        fresh: bool,
        now_ms: u64,
    ) {
        let l = StoreLabel {
            store: store.to_owned(),
        };
        self.store_last_upload
            .get_or_create(&l)
            .set((now_ms / 1000) as i64);
        self.store_backlog
            .get_or_create(&l)
            .set(batch.backlog as i64);
        let stamps = || batch.events.iter().map(|e| e.event.hlc.wall_ms);
        if let Some(newest) = stamps().max() {
            self.store_lag
                .get_or_create(&l)
                .set((now_ms.saturating_sub(newest) / 1000) as i64);
        }
        if fresh {
            let h = self.arrival_delay.get_or_create(&l);
            for stamp in stamps() {
                h.observe(now_ms.saturating_sub(stamp) as f64 / 1000.0);
            }
        }
        let mut up = self.uploaders.lock().unwrap_or_else(|p| p.into_inner());
        if up.len() < UPLOADER_STORES_MAX || up.contains_key(store) {
            let set = up.entry(store.to_owned()).or_default();
            if set.len() < UPLOADERS_PER_STORE_MAX {
                set.insert(batch.leader);
            }
        }
    }

    /// The terminals that sent a store's accepted batches since this cloud started.
    pub fn uploaders(&self, store: &str) -> BTreeSet<u64> {
        let up = self.uploaders.lock().unwrap_or_else(|p| p.into_inner());
        up.get(store).cloned().unwrap_or_default()
    }

    /// OpenMetrics text.
    pub fn render(&self) -> String {
        render(&self.registry)
    }

    /// The `/metrics` answer, in the format the scraper asks for.
    pub fn expose(&self, headers: &HeaderMap) -> Response {
        expose(&self.registry, headers)
    }
}

/// Buckets of the arrival delay: 50 ms to ~13 min, with 5 s (NFR-1.3) on a boundary.
fn arrival_buckets() -> Histogram {
    Histogram::new([
        0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    ])
}

/// Label of request latency: the route template (never the raw path), the method among the
/// ones routes take, and the status class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// HTTP method (`other` for any method no route takes).
    pub method: &'static str,
    /// The route's template, e.g. `/api/v1/transactions/{id}/items`.
    pub route: String,
    /// `2xx`, `3xx`, `4xx` or `5xx`.
    pub status: &'static str,
}

/// Request latency per route, as a histogram whose buckets put the store's targets (NFR-1.1:
/// 100 ms, 200 ms, 500 ms, 3 s) on boundaries.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    /// Request to response head, seconds.
    pub duration: Family<RouteLabel, Histogram, fn() -> Histogram>,
    /// Who serves (`S001/T2`, `cloud`): the `tillmesh.node` of request spans.
    pub node: std::sync::Arc<str>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            duration: Family::new_with_constructor(request_buckets),
            node: "cloud".into(),
        }
    }
}

fn request_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 3.0, 10.0,
    ])
}

impl HttpMetrics {
    /// Registers the histogram as `http_request_duration_seconds`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_request_duration_seconds",
            "Request latency per route template, request to response head",
            self.duration.clone(),
        );
    }

    /// Middleware (install with `Router::route_layer`, after every route, so that the
    /// matched template is known): observes each request's latency, and runs it in a span
    /// (`crate::telemetry`) that continues the caller's `traceparent` when it sends one.
    pub async fn track(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
        use tracing::Instrument;
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
        let method = match req.method().as_str() {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "HEAD" => "HEAD",
            _ => "other",
        };
        let span = tracing::info_span!(
            target: "tillmesh_trace",
            "http",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            tillmesh.node = %m.node,
        );
        if !span.is_disabled()
            && let Some(parent) = crate::telemetry::from_headers(req.headers())
        {
            crate::telemetry::continue_from(&span, &parent);
        }
        let t0 = std::time::Instant::now();
        let r = next.run(req).instrument(span.clone()).await;
        span.record("http.response.status_code", r.status().as_u16());
        let status = match r.status().as_u16() {
            0..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        m.duration
            .get_or_create(&RouteLabel {
                method,
                route,
                status,
            })
            .observe(t0.elapsed().as_secs_f64());
        r
    }
}

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Content type of Prometheus' text format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A registry in OpenMetrics text.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    encode(&mut out, registry).expect("writing to a String cannot fail");
    out
}

/// A registry as a `/metrics` answer: OpenMetrics when the scraper's `Accept` names it (as
/// Prometheus' does), else the text format with each family's names consistent.
pub fn expose(registry: &Registry, headers: &HeaderMap) -> Response {
    let open = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let text = render(registry);
    if open {
        ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, TEXT_FORMAT)], text_format(&text)).into_response()
    }
}

/// OpenMetrics text as Prometheus' text format 0.0.4: a counter's HELP and TYPE name its
/// samples (`x_total`), an info family is a gauge named `x_info`, `unknown` is `untyped`,
/// and `# EOF` and `# UNIT` go.
pub fn text_format(open: &str) -> String {
    let mut out = String::with_capacity(open.len() + 256);
    let mut help: Option<&str> = None;
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                k => (name.to_owned(), k),
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(&format!("# HELP {h}\n"));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_counters_by_their_samples() {
        let mut r = Registry::with_prefix("t");
        let c = Counter::<u64>::default();
        c.inc_by(3);
        r.register("sales", "Sales made durable", c);
        let g = Gauge::<i64>::default();
        g.set(2);
        r.register("queue", "Requests queued", g);
        let h = HttpMetrics::default();
        h.register(&mut r);
        let text = text_format(&render(&r));
        assert!(text.contains("# HELP t_sales_total Sales made durable.\n# TYPE t_sales_total counter\nt_sales_total 3\n"), "{text}");
        assert!(text.contains("# TYPE t_queue gauge\nt_queue 2\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }
}
