//! The store mesh: tills of one store find each other (mDNS or a static list), connect over
//! QUIC with mutual TLS (certificates from the store CA), and exchange CRDT deltas (events)
//! until they hold the same events.
//!
//! The protocol runs over the [`Transport`] trait: QUIC in production, [`MemNet`] (an
//! in-memory network with partitions) in protocol tests and the simulator.
//!
//! The mesh knows nothing of SQLite or HTTP: it drives a [`Replicator`], which the daemon
//! implements on top of the till (durable apply, version vector, event reads). The simulator
//! can implement the same trait.

pub mod discovery;
pub mod identity;
pub mod memnet;
pub mod protocol;
pub mod revocation;
pub mod seal;
pub mod sync;
pub mod transport;
pub mod wire;

pub use memnet::{LinkCond, MemNet, MemTransport};
pub use sync::{
    Faults, Mesh, MeshConfig, MeshError, PeerState, PeerView, ReplicaError, Replicator,
};
pub use transport::{Link, QuicTransport, Transport};
