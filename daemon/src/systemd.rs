//! systemd integration for `Type=notify` units: readiness once the till can sell (its store
//! open, its HTTP API listening), watchdog pings while it is healthy (its store answers and
//! no fatal error was raised), "stopping" on a planned stop. Outside systemd (no
//! `NOTIFY_SOCKET`) every call does nothing.

use crate::till::Till;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// The service is ready.
pub fn ready() {
    notify(NotifyState::Ready);
}

/// The service is stopping (a planned stop).
pub fn stopping() {
    notify(NotifyState::Stopping);
}

fn notify(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        warn!(cause = %e, "could not notify systemd");
    }
}

/// Pings systemd's watchdog at half its interval (`WATCHDOG_USEC`) while `till` is healthy;
/// `None` when no watchdog is configured. A till that stops answering is restarted by
/// systemd (`Restart=on-failure`).
pub fn spawn_watchdog(till: Arc<Till>) -> Option<tokio::task::JoinHandle<()>> {
    spawn_pings(move |every| {
        let till = till.clone();
        async move { healthy(&till, every).await }
    })
}

/// Pings the watchdog while the process runs (a till waiting for enrolment has no store
/// to check); `None` when no watchdog is configured.
pub fn spawn_watchdog_always() -> Option<tokio::task::JoinHandle<()>> {
    spawn_pings(|_| async { true })
}

/// Pings at half the watchdog interval whenever `healthy(interval)` says so.
fn spawn_pings<F, H>(healthy: F) -> Option<tokio::task::JoinHandle<()>>
where
    F: Fn(Duration) -> H + Send + 'static,
    H: std::future::Future<Output = bool> + Send,
{
    let usec = watchdog_usec()?;
    let every = Duration::from_micros(usec / 2).max(Duration::from_millis(50));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if healthy(every).await {
                notify(NotifyState::Watchdog);
            } else {
                warn!("unhealthy: the watchdog is not pinged");
            }
        }
    }))
}

/// The watchdog interval systemd set (`WATCHDOG_USEC`), for this process (`WATCHDOG_PID`
/// unset, or this process's id, as `sd_watchdog_enabled(3)` reads them).
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    match std::env::var("WATCHDOG_PID").ok().map(|p| p.parse::<u32>()) {
        Some(Ok(pid)) if pid != std::process::id() => None,
        Some(Err(_)) => None,
        _ => (usec > 0).then_some(usec),
    }
}

/// No fatal error, and the store answers a read within `within`.
async fn healthy(till: &Arc<Till>, within: Duration) -> bool {
    if till.fatal().borrow().is_some() {
        return false;
    }
    let store = till.store().clone();
    let read = tokio::task::spawn_blocking(move || store.read(|r| r.meta("master")).is_ok());
    matches!(tokio::time::timeout(within, read).await, Ok(Ok(true)))
}
