//! The sync protocol's decisions, free of I/O (the driver in `sync/` reads and writes the
//! frames; the split follows quinn-proto's): checking a peer's `Hello`, which of this till's
//! events a peer lacks, whether only the base can bring it up to date, cutting a base into
//! parts and putting a received one back together. Each is a pure function or a small state
//! machine, unit-tested here.

use crate::identity::store_label;
use crate::wire::{self, Frame};
use tillmesh_crdt::{ReplicaId, VersionVector};

/// A peer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Its `Hello` names another store.
    #[error("peer says it is of store {0}")]
    WrongStore(String),
    /// Its `Hello` names another terminal than its certificate.
    #[error("peer says it is terminal {said} but its certificate names {cert}")]
    WrongTerminal {
        /// What the `Hello` said.
        said: u64,
        /// What the certificate says.
        cert: u64,
    },
    /// The two ends speak no protocol version in common.
    #[error("{0}")]
    Version(String),
    /// Another frame came where a `Hello` must.
    #[error("expected Hello, got {0}")]
    NotHello(&'static str),
    /// A base part out of order.
    #[error("base part {index} out of order (expected {expected})")]
    BaseOutOfOrder {
        /// The part received.
        index: u32,
        /// The part expected.
        expected: u32,
    },
    /// A base part whose count disagrees with the transfer's first part.
    #[error("base part {index} says {count} parts, the transfer said {first}")]
    BaseCountChanged {
        /// The part received.
        index: u32,
        /// Its count.
        count: u32,
        /// The first part's count.
        first: u32,
    },
}

/// Our `Hello`.
pub fn hello(store_id: &str, terminal: u64, vv: VersionVector) -> Frame {
    Frame::Hello {
        min_version: wire::PROTOCOL_MIN,
        max_version: wire::PROTOCOL_VERSION,
        store_id: store_id.to_string(),
        terminal,
        vv,
    }
}

/// The protocol version two tills talk at: the highest both speak. When their ranges do
/// not meet, the error says which end is too old, so each side's status names the fix.
pub fn negotiate(ours: (u16, u16), theirs: (u16, u16)) -> Result<u16, ProtocolError> {
    let (lo, hi) = (ours.0.max(theirs.0), ours.1.min(theirs.1));
    if lo <= hi {
        return Ok(hi);
    }
    let side = if theirs.1 < ours.0 {
        "the peer is too old for this till: upgrade the peer"
    } else {
        "the peer is too new for this till: upgrade this till"
    };
    Err(ProtocolError::Version(format!(
        "peer speaks protocol versions {} to {}, this till {} to {}: {side}",
        theirs.0, theirs.1, ours.0, ours.1
    )))
}

/// What a peer's `Hello` establishes: what it holds and the protocol version to talk at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// What the peer holds.
    pub vv: VersionVector,
    /// The protocol version both speak.
    pub version: u16,
}

/// Checks a peer's first frame: a `Hello` of our store (by its DNS label, as certificates
/// name it) from the terminal its certificate names, speaking a protocol version we speak.
pub fn check_hello(
    our_store: &str,
    frame: Frame,
    cert_terminal: u64,
) -> Result<Greeting, ProtocolError> {
    match frame {
        Frame::Hello {
            min_version,
            max_version,
            store_id,
            terminal,
            vv,
        } => {
            if store_label(&store_id) != store_label(our_store) {
                return Err(ProtocolError::WrongStore(store_id));
            }
            if terminal != cert_terminal {
                return Err(ProtocolError::WrongTerminal {
                    said: terminal,
                    cert: cert_terminal,
                });
            }
            let version = negotiate(
                (wire::PROTOCOL_MIN, wire::PROTOCOL_VERSION),
                (min_version, max_version),
            )?;
            Ok(Greeting { vv, version })
        }
        other => Err(ProtocolError::NotHello(frame_name(&other))),
    }
}

/// A frame's name, for logs and errors.
pub fn frame_name(f: &Frame) -> &'static str {
    match f {
        Frame::Hello { .. } => "Hello",
        Frame::Events(_) => "Events",
        Frame::Sealed(_) => "Sealed",
        Frame::Traced(_) => "Traced",
        Frame::Keys(_) => "Keys",
        Frame::Ack(_) => "Ack",
        Frame::Probe => "Probe",
        Frame::Rpc(_) => "Rpc",
        Frame::RpcReply(_) => "RpcReply",
        Frame::Base { .. } => "Base",
    }
}

/// Whether `theirs` lacks an event at or below `floor` (pruned here: only the base has it).
pub fn below(theirs: &VersionVector, floor: &VersionVector) -> bool {
    floor.iter().any(|(o, f)| theirs.get(o) < f)
}

/// Which origins a push round covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only events this till made.
    Own,
    /// Every origin (session start, anti-entropy).
    All,
}

/// What a peer lacks of what we hold: `(origin, the peer's last seq)` for each origin in
/// scope where we hold more, in origin order.
pub fn lacking(
    ours: &VersionVector,
    theirs: &VersionVector,
    own: Option<ReplicaId>,
    scope: Scope,
) -> Vec<(ReplicaId, u64)> {
    ours.iter()
        .filter(|(origin, _)| scope == Scope::All || Some(*origin) == own)
        .filter(|(origin, seq)| *seq > theirs.get(*origin))
        .map(|(origin, _)| (origin, theirs.get(origin)))
        .collect()
}

/// A base cut into parts of at most [`wire::BASE_CHUNK_BYTES`]; `None` when it needs more
/// than [`wire::BASE_CHUNKS_MAX`] parts (too large to send).
pub fn base_parts(base: &[u8]) -> Option<Vec<Frame>> {
    let parts: Vec<&[u8]> = base.chunks(wire::BASE_CHUNK_BYTES).collect();
    let count = u32::try_from(parts.len())
        .ok()
        .filter(|c| *c <= wire::BASE_CHUNKS_MAX)?;
    Some(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| Frame::Base {
                index: i as u32,
                count,
                bytes: p.to_vec(),
            })
            .collect(),
    )
}

/// A base arriving in parts: in order, each part bounded by the wire's limits (checked when
/// the frame decoded), so the whole is at most `BASE_CHUNKS_MAX` parts. A part 0 starts a
/// new transfer (a pusher that reconnected starts over).
#[derive(Debug, Default)]
pub struct BaseAssembly {
    bytes: Vec<u8>,
    parts: u32,
    count: u32,
}

impl BaseAssembly {
    /// Takes part `index` of `count`; answers the whole base after its last part.
    pub fn push(
        &mut self,
        index: u32,
        count: u32,
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, ProtocolError> {
        if index == 0 {
            self.bytes.clear();
            self.parts = 0;
            self.count = count;
        } else if index != self.parts {
            return Err(ProtocolError::BaseOutOfOrder {
                index,
                expected: self.parts,
            });
        } else if count != self.count {
            return Err(ProtocolError::BaseCountChanged {
                index,
                count,
                first: self.count,
            });
        }
        self.bytes.extend_from_slice(bytes);
        self.parts += 1;
        if self.parts == self.count {
            self.parts = 0;
            self.count = 0;
            return Ok(Some(std::mem::take(&mut self.bytes)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(entries: &[(u64, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for (o, s) in entries {
            v.advance(ReplicaId(*o), *s);
        }
        v
    }

    #[test]
    fn a_hello_must_name_our_store_and_the_certificate_terminal() {
        let theirs = vv(&[(1, 4)]);
        assert_eq!(
            check_hello("S001", hello("S001", 3, theirs.clone()), 3),
            Ok(Greeting {
                vv: theirs.clone(),
                version: wire::PROTOCOL_VERSION
            })
        );
        assert_eq!(
            check_hello("S001", hello("S002", 3, theirs.clone()), 3),
            Err(ProtocolError::WrongStore("S002".into()))
        );
        assert_eq!(
            check_hello("S001", hello("S001", 4, theirs), 3),
            Err(ProtocolError::WrongTerminal { said: 4, cert: 3 })
        );
        assert_eq!(
            check_hello("S001", Frame::Probe, 3),
            Err(ProtocolError::NotHello("Probe"))
        );
    }

    #[test]
    fn tills_talk_at_the_highest_version_both_speak_and_say_which_end_is_too_old() {
        assert_eq!(negotiate((1, 3), (2, 5)), Ok(3));
        assert_eq!(negotiate((2, 5), (1, 3)), Ok(3));
        assert_eq!(negotiate((1, 1), (1, 1)), Ok(1));
        let too_new = negotiate((1, 2), (3, 4)).unwrap_err().to_string();
        assert!(too_new.contains("upgrade this till"), "{too_new}");
        let too_old = negotiate((3, 4), (1, 2)).unwrap_err().to_string();
        assert!(too_old.contains("upgrade the peer"), "{too_old}");
        let frame = Frame::Hello {
            min_version: wire::PROTOCOL_VERSION + 1,
            max_version: wire::PROTOCOL_VERSION + 2,
            store_id: "S001".into(),
            terminal: 3,
            vv: VersionVector::new(),
        };
        assert!(matches!(
            check_hello("S001", frame, 3),
            Err(ProtocolError::Version(_))
        ));
    }

    #[test]
    fn a_peer_lacks_what_we_hold_beyond_its_vector_in_scope() {
        let ours = vv(&[(1, 5), (2, 3), (3, 7)]);
        let theirs = vv(&[(1, 5), (2, 1)]);
        assert_eq!(
            lacking(&ours, &theirs, Some(ReplicaId(3)), Scope::All),
            vec![(ReplicaId(2), 1), (ReplicaId(3), 0)]
        );
        assert_eq!(
            lacking(&ours, &theirs, Some(ReplicaId(3)), Scope::Own),
            vec![(ReplicaId(3), 0)]
        );
        assert!(lacking(&theirs, &ours, None, Scope::All).is_empty());
    }

    #[test]
    fn only_a_peer_behind_the_floor_needs_the_base() {
        let floor = vv(&[(1, 10)]);
        assert!(below(&vv(&[(1, 9)]), &floor));
        assert!(!below(&vv(&[(1, 10), (2, 1)]), &floor));
        assert!(!below(&vv(&[]), &VersionVector::new()));
    }

    #[test]
    fn a_base_is_cut_and_put_back_together_whole() {
        let base: Vec<u8> = (0..(wire::BASE_CHUNK_BYTES * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let parts = base_parts(&base).unwrap();
        assert_eq!(parts.len(), 3);
        let mut a = BaseAssembly::default();
        let mut whole = None;
        for p in parts {
            let Frame::Base {
                index,
                count,
                bytes,
            } = p
            else {
                unreachable!()
            };
            whole = a.push(index, count, &bytes).unwrap();
        }
        assert_eq!(whole, Some(base));
        let too_big = vec![0_u8; wire::BASE_CHUNK_BYTES * wire::BASE_CHUNKS_MAX as usize + 1];
        assert!(base_parts(&too_big).is_none());
    }

    #[test]
    fn base_parts_out_of_order_or_changing_count_are_refused_and_part_zero_restarts() {
        let mut a = BaseAssembly::default();
        assert_eq!(a.push(0, 3, b"ab"), Ok(None));
        assert_eq!(
            a.push(2, 3, b"cd"),
            Err(ProtocolError::BaseOutOfOrder {
                index: 2,
                expected: 1
            })
        );
        assert_eq!(
            a.push(1, 4, b"cd"),
            Err(ProtocolError::BaseCountChanged {
                index: 1,
                count: 4,
                first: 3
            })
        );
        // A reconnected pusher starts over at part 0: the earlier parts are dropped.
        assert_eq!(a.push(0, 2, b"xy"), Ok(None));
        assert_eq!(a.push(1, 2, b"z"), Ok(Some(b"xyz".to_vec())));
        // A single-part base completes at once.
        assert_eq!(a.push(0, 1, b"q"), Ok(Some(b"q".to_vec())));
    }
}
