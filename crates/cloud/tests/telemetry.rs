//! The process's log subscriber: an event its filter drops is never built, so a dependency's
//! costly log arguments (openraft formats its metrics at debug level on every change) are
//! never evaluated. Its own test binary: the subscriber is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use tillmesh_cloud::telemetry;

static BUILT: AtomicUsize = AtomicUsize::new(0);

/// A log argument that counts how often it is evaluated.
fn costly() -> &'static str {
    BUILT.fetch_add(1, Ordering::SeqCst);
    "formatted"
}

#[test]
fn a_filtered_out_event_is_never_built_and_a_kept_one_is() {
    telemetry::install("warn,noisy=off", false, std::io::sink, None).expect("installs once");
    tracing::debug!("{}", costly());
    tracing::info!(target: "tillmesh_cloud", "{}", costly());
    tracing::error!(target: "noisy", "{}", costly());
    tracing::trace!(target: telemetry::TARGET, "{}", costly());
    assert_eq!(
        BUILT.load(Ordering::SeqCst),
        0,
        "events the filter drops were built"
    );
    tracing::warn!("{}", costly());
    assert_eq!(
        BUILT.load(Ordering::SeqCst),
        1,
        "a kept event is built once"
    );
}
