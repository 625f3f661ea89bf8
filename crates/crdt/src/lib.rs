//! Delta-state CRDTs for the store mesh: pure data structures, no I/O, no clock. Among
//! them a bounded counter (escrow) whose value never goes below zero across replicas.
//!
//! Every mutation returns a *delta*, itself a value of the same type, and `merge` accepts a
//! delta or a full state alike. Merges are commutative, associative and idempotent; the
//! property tests in `tests/laws.rs` check this for every type, and check that N replicas
//! converge under arbitrary reordering, duplication and re-delivery of deltas.
//!
//! Peers feed these types: no arithmetic here may overflow (checked or saturating only).

#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub mod bulk_map;
mod context;
mod counter;
mod escrow;
mod hlc;
mod lww;
mod orset;
mod serde_pairs;
mod vv;

pub use context::{Dot, DotContext};
pub use counter::{ENTRY_MAX as COUNTER_ENTRY_MAX, PnCounter};
pub use escrow::{BoundedCounter, ShortOfRights};
pub use hlc::{ClockError, Hlc, HlcClock, LOGICAL_MAX};
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

impl ReplicaId {
    /// A till's replica id: its terminal id in the high 32 bits and the incarnation of its
    /// database (random, drawn when the database is created) in the low 32 bits. A till
    /// whose disk is replaced gets a new incarnation, so its new events can never collide
    /// with its old ones that peers still hold.
    pub fn for_terminal(terminal: u32, incarnation: u32) -> Self {
        ReplicaId((u64::from(terminal) << 32) | u64::from(incarnation))
    }

    /// The terminal id (the id itself for ids made without an incarnation).
    pub fn terminal(self) -> u64 {
        if self.0 >> 32 == 0 {
            self.0
        } else {
            self.0 >> 32
        }
    }

    /// The incarnation (0 for ids made without one).
    pub fn incarnation(self) -> u32 {
        if self.0 >> 32 == 0 { 0 } else { self.0 as u32 }
    }
}

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.incarnation() {
            0 => write!(f, "T{}", self.terminal()),
            i => write!(f, "T{}.{i:08x}", self.terminal()),
        }
    }
}

/// A state-based CRDT: a join-semilattice. `merge` is the join.
pub trait Crdt: Clone + PartialEq {
    /// Joins `other` (a delta or a full state) into `self`.
    fn merge(&mut self, other: &Self);
}
