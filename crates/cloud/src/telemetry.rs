//! Traces: spans exported over OTLP/HTTP (protobuf) when an endpoint is configured, off by
//! default; W3C trace contexts taken from requests (`traceparent`) and carried beside events
//! (`Event::trace`), so that one sale is one trace from the till's request through the peers
//! that apply it to the cloud's ingest. Shared by the till and the cloud.

use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracerProvider};
use std::time::Duration;
use tillmesh_pos::trace::TraceContext;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Most spans waiting for export; past it new spans are dropped (and counted by the SDK).
pub const QUEUE_MAX: usize = 4_096;
/// Most spans in one export request.
pub const EXPORT_BATCH_MAX: usize = 512;
/// Longest an export request may take.
pub const EXPORT_TIMEOUT_MS: u64 = 10_000;
/// The environment variables that turn export on (OpenTelemetry's own names).
pub const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Where and how spans are exported.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// The collector's base URL (`http://host:4318`; `/v1/traces` is appended when it names no
    /// path). `None`: OpenTelemetry's environment variables name it.
    pub endpoint: Option<String>,
    /// `service.name` of the process's resource (`OTEL_SERVICE_NAME` wins when set).
    pub service: String,
    /// How often finished spans are sent.
    pub flush_ms: u64,
}

impl ExportConfig {
    /// Export to `endpoint` as `service`, flushing every second.
    pub fn new(endpoint: Option<String>, service: &str) -> ExportConfig {
        ExportConfig {
            endpoint,
            service: service.to_owned(),
            flush_ms: 1_000,
        }
    }

    /// Whether export is on: an endpoint given, or named by the environment.
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some()
            || ENDPOINT_VARS
                .iter()
                .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
    }
}

/// A running exporter: its batch processor runs on a one-thread runtime of its own, so
/// export works the same from the daemon, the cloud and a test, and never competes with
/// sales for the executor. Dropping it flushes what is queued.
pub struct Exporter {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

/// The URL spans are posted to, from a base URL (`/v1/traces` added when it has no path).
fn traces_url(base: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(base)
        .map_err(|e| anyhow::anyhow!("OTLP endpoint {base:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("OTLP endpoint {base:?} is not http or https");
    }
    Ok(if url.path() == "/" || url.path().is_empty() {
        format!("{}/v1/traces", base.trim_end_matches('/'))
    } else {
        base.to_owned()
    })
}

impl Exporter {
    /// Starts exporting. Errors name a bad endpoint or a runtime that could not start.
    pub fn start(cfg: &ExportConfig) -> anyhow::Result<Exporter> {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()?;
        let _in = runtime.enter();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(EXPORT_TIMEOUT_MS))
            .build()?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(Duration::from_millis(EXPORT_TIMEOUT_MS));
        if let Some(base) = &cfg.endpoint {
            exporter = exporter.with_endpoint(traces_url(base)?);
        }
        let exporter = exporter.build()?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE_MAX)
            .with_max_export_batch_size(EXPORT_BATCH_MAX)
            .with_scheduled_delay(Duration::from_millis(cfg.flush_ms.max(10)))
            .build();
        let processor =
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .with_batch_config(batch)
            .build();
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            resource = resource.with_service_name(cfg.service.clone());
        }
        resource = resource.with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource.build())
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        Ok(Exporter {
            provider,
            runtime: Some(runtime),
        })
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans for this exporter.
    pub fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("tillmesh"))
            .with_tracked_inactivity(false)
    }

    /// Sends what is queued now (tests; a stopping process).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_millis(EXPORT_TIMEOUT_MS));
        }
    }
}

/// The target of every span meant for export (requests, a peer applying events, the cloud
/// ingesting them). Logs leave them out: they are for traces, and cost nothing when export is
/// off (no layer wants them).
pub const TARGET: &str = "tillmesh_trace";

/// Installs the process's subscriber: formatted logs to `writer` (JSON when `json`), filtered
/// by `RUST_LOG` or `default_filter`; and, with an exporter, the spans of [`TARGET`] exported.
pub fn install<W>(
    default_filter: &str,
    json: bool,
    writer: W,
    exporter: Option<&Exporter>,
) -> Result<(), tracing_subscriber::util::TryInitError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::filter::{EnvFilter, filter_fn};
    use tracing_subscriber::prelude::*;
    // Export spans are left out by a directive, not a filter function: a function gives no
    // level hint, so every callsite's arguments (openraft formats its metrics at debug on
    // every change) would be evaluated before the filter threw the event away.
    let filter = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| EnvFilter::try_new(format!("{s},{TARGET}=off")).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{default_filter},{TARGET}=off")));
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(writer).boxed()
    };
    let logs = tracing_subscriber::registry().with(fmt.with_filter(filter));
    // No exporter, no second layer: an absent layer (`None`) would declare every callsite
    // always interesting, and every event would be built whatever the filter says.
    match exporter {
        Some(e) => logs
            .with(e.layer().with_filter(filter_fn(|m| m.target() == TARGET)))
            .try_init(),
        None => logs.try_init(),
    }
}

/// The context of `span` as an event carries it: `None` when it is not sampled (no export,
/// or a caller that asked not to be traced).
pub fn context_of(span: &tracing::Span) -> Option<TraceContext> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() || !sc.is_sampled() {
        return None;
    }
    TraceContext::new(
        sc.trace_id().to_bytes(),
        sc.span_id().to_bytes(),
        sc.trace_flags().to_u8(),
    )
}

/// The context of the current span ([`context_of`]).
pub fn current() -> Option<TraceContext> {
    context_of(&tracing::Span::current())
}

/// Makes `span` a child of `parent` (a context another process made: a peer till, the
/// uploading leader). Nothing happens when export is off.
pub fn continue_from(span: &tracing::Span, parent: &TraceContext) {
    let sc = SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(parent.trace_id),
        opentelemetry::trace::SpanId::from_bytes(parent.span_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
}

/// The W3C `traceparent` of a request, when it has a valid one.
pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<TraceContext> {
    use opentelemetry::propagation::TextMapPropagator;
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&opentelemetry_http::HeaderExtractor(headers));
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    TraceContext::new(
        sc.trace_id().to_bytes(),
        sc.span_id().to_bytes(),
        sc.trace_flags().to_u8(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_without_a_path_posts_to_v1_traces_and_a_bad_one_is_named() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://c/otlp/v1/traces").unwrap(),
            "https://c/otlp/v1/traces"
        );
        assert!(traces_url("collector:4318").is_err());
        assert!(traces_url("ftp://c").is_err());
    }

    #[test]
    fn a_traceparent_header_is_read_and_a_malformed_one_is_none() {
        let mut h = axum::http::HeaderMap::new();
        let tp = format!("00-{}-{}-01", "4b".repeat(16), "00f0".repeat(4));
        h.insert("traceparent", tp.parse().unwrap());
        let t = from_headers(&h).unwrap();
        assert_eq!(t.traceparent(), tp);
        for bad in [
            "00-zz-00f000f000f000f0-01".to_string(),
            format!("00-{}-{}-01", "0".repeat(32), "00f0".repeat(4)),
            "garbage".into(),
        ] {
            h.insert("traceparent", bad.parse().unwrap());
            assert!(from_headers(&h).is_none(), "{bad}");
        }
    }
}
