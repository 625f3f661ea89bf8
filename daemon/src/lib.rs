//! The tillmesh daemon: configuration, the till service, its HTTP API, and `run`, which the
//! thin `main` calls after parsing arguments and installing logging.

pub mod api;
pub mod clock;
pub mod config;
pub mod error;
pub mod metrics;
pub mod till;

use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::info;

/// Runs a till until `shutdown` resolves. Binds before returning the address through
/// `bound`, so callers (tests) can use port 0.
pub async fn run(
    cfg: config::TerminalConfig,
    bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    cfg.validate()?;
    let listen = cfg.terminal.listen;
    let metrics = Arc::new(metrics::Metrics::default());
    let cfg2 = cfg.clone();
    let m2 = metrics.clone();
    // Opening replays the event log and may hash seed PINs: keep it off the async workers.
    let till = tokio::task::spawn_blocking(move || {
        till::Till::open(cfg2, Arc::new(clock::SystemClock), m2)
    })
    .await??;
    let till = Arc::new(till);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    info!(%addr, terminal = cfg.terminal.id, store = %cfg.store.store_id, "till listening");
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    axum::serve(listener, api::router(till))
        .with_graceful_shutdown(shutdown)
        .await?;
    info!("till stopped");
    Ok(())
}
