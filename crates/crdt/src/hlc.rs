//! Hybrid logical clock: wall-clock milliseconds plus a logical counter, with the replica id
//! as the final tie-breaker, so every stamp is unique and totally ordered.

use crate::ReplicaId;
use serde::{Deserialize, Serialize};

/// One HLC stamp. Ordered by `(wall_ms, logical, replica)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Physical component, milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Logical component: orders events within one millisecond.
    pub logical: u32,
    /// The replica that issued the stamp; breaks ties between replicas.
    pub replica: ReplicaId,
}

/// Errors from the clock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// A remote stamp is further ahead of our wall clock than the allowed drift.
    #[error("remote clock is {ahead_ms} ms ahead of local time (limit {limit_ms} ms)")]
    DriftTooLarge {
        /// How far ahead it is.
        ahead_ms: u64,
        /// The configured limit.
        limit_ms: u64,
    },
}

/// The clock state of one replica. The caller passes `now_ms` (its wall clock), which keeps
/// this type pure and lets the simulator drive time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HlcClock {
    replica: ReplicaId,
    last: Hlc,
    drift_ms_max: u64,
}

impl HlcClock {
    /// A clock for `replica` that refuses remote stamps more than `drift_ms_max` ahead.
    pub fn new(replica: ReplicaId, drift_ms_max: u64) -> Self {
        Self {
            replica,
            last: Hlc {
                wall_ms: 0,
                logical: 0,
                replica,
            },
            drift_ms_max,
        }
    }

    /// The last stamp issued or observed.
    pub fn last_stamp(&self) -> Hlc {
        self.last
    }

    /// Restores a clock after restart so it never issues a stamp at or below `last`.
    pub fn resume(replica: ReplicaId, drift_ms_max: u64, last: Hlc) -> Self {
        Self {
            replica,
            last: Hlc { replica, ..last },
            drift_ms_max,
        }
    }

    /// Issues a stamp for a local event, strictly greater than every stamp seen so far.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        self.last = if now_ms > self.last.wall_ms {
            Hlc {
                wall_ms: now_ms,
                logical: 0,
                replica: self.replica,
            }
        } else {
            next(self.last.wall_ms, self.last.logical, self.replica)
        };
        self.last
    }

    /// Folds a remote stamp into the clock (on receiving an event) and returns a new local
    /// stamp greater than both. Refuses stamps too far in the future.
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) -> Result<Hlc, ClockError> {
        if remote.wall_ms > now_ms.saturating_add(self.drift_ms_max) {
            return Err(ClockError::DriftTooLarge {
                ahead_ms: remote.wall_ms.saturating_sub(now_ms),
                limit_ms: self.drift_ms_max,
            });
        }
        let wall = now_ms.max(self.last.wall_ms).max(remote.wall_ms);
        self.last = if wall == self.last.wall_ms && wall == remote.wall_ms {
            next(wall, self.last.logical.max(remote.logical), self.replica)
        } else if wall == self.last.wall_ms {
            next(wall, self.last.logical, self.replica)
        } else if wall == remote.wall_ms {
            next(wall, remote.logical, self.replica)
        } else {
            Hlc {
                wall_ms: wall,
                logical: 0,
                replica: self.replica,
            }
        };
        Ok(self.last)
    }
}

/// Largest logical counter a peer's stamp may carry (`Event::check` refuses more). A till
/// counts up to it only for events stamped within one millisecond; past it (or past
/// `u32::MAX` from a stamp observed before this bound existed) the clock moves to the next
/// millisecond instead of overflowing.
pub const LOGICAL_MAX: u32 = 1 << 24;

/// The stamp after `(wall_ms, logical)`: the next logical count, or the next millisecond
/// once the count reaches its limit. Never overflows.
fn next(wall_ms: u64, logical: u32, replica: ReplicaId) -> Hlc {
    if logical < u32::MAX - 1 {
        Hlc {
            wall_ms,
            logical: logical.saturating_add(1),
            replica,
        }
    } else {
        Hlc {
            wall_ms: wall_ms.saturating_add(1),
            logical: 0,
            replica,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_strictly_increasing_even_when_wall_time_goes_back() {
        let mut c = HlcClock::new(ReplicaId(1), 60_000);
        let a = c.tick(1000);
        let b = c.tick(900);
        let d = c.tick(1000);
        assert!(a < b && b < d);
    }

    #[test]
    fn observe_moves_past_remote_and_refuses_far_future() {
        let mut c = HlcClock::new(ReplicaId(1), 1000);
        let remote = Hlc {
            wall_ms: 1500,
            logical: 7,
            replica: ReplicaId(2),
        };
        let s = c.observe(remote, 1000).unwrap();
        assert!(s > remote);
        let far = Hlc {
            wall_ms: 5000,
            logical: 0,
            replica: ReplicaId(2),
        };
        assert!(matches!(
            c.observe(far, 1000),
            Err(ClockError::DriftTooLarge { .. })
        ));
    }

    #[test]
    fn equal_wall_and_logical_tie_break_on_replica() {
        let a = Hlc {
            wall_ms: 1,
            logical: 0,
            replica: ReplicaId(1),
        };
        let b = Hlc {
            wall_ms: 1,
            logical: 0,
            replica: ReplicaId(2),
        };
        assert!(a < b);
    }
}
