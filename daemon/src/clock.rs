//! Wall-clock access behind a trait (the simulator plugs in simulated time). The calendar
//! helpers live in `tillmesh_pos::calendar` and are re-exported here.

pub use tillmesh_pos::calendar::{local_date, local_day_range, rfc3339};

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}
