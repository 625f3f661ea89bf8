//! Delta-state CRDTs for the store mesh: pure data structures, no I/O, no clock.
//!
//! Every mutation returns a *delta*, itself a value of the same type, and `merge` accepts a
//! delta or a full state alike. Merges are commutative, associative and idempotent; the
//! property tests in `tests/laws.rs` check this for every type, and check that N replicas
//! converge under arbitrary reordering, duplication and re-delivery of deltas.

mod context;
mod counter;
mod hlc;
mod lww;
mod orset;
mod serde_pairs;
mod vv;

pub use context::{Dot, DotContext};
pub use counter::PnCounter;
pub use hlc::{ClockError, Hlc, HlcClock};
pub use lww::{LwwMap, LwwRegister};
pub use orset::OrSet;
pub use vv::VersionVector;

use serde::{Deserialize, Serialize};

/// Identifies one replica (a till). Also the tie-breaker for equal HLC wall/logical parts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ReplicaId(pub u64);

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "T{}", self.0)
    }
}

/// A state-based CRDT: a join-semilattice. `merge` is the join.
pub trait Crdt: Clone + PartialEq {
    /// Joins `other` (a delta or a full state) into `self`.
    fn merge(&mut self, other: &Self);
}
