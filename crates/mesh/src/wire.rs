//! The versioned wire format between tills: length-prefixed bincode frames with explicit size
//! limits, decoded defensively (a frame is fully decoded and checked before anything in it
//! is applied).

use serde::{Deserialize, Serialize};
use tillmesh_crdt::VersionVector;
use tillmesh_pos::event::Event;
use tillmesh_pos::trace::TraceContext;

/// ALPN protocol id; a peer speaking another protocol fails the TLS handshake.
pub const ALPN: &[u8] = b"tillmesh/1";
/// The oldest protocol version this till speaks. Both ends send their range in `Hello` and
/// talk at the highest version both speak; ranges that do not meet end the connection with
/// the reason on both sides (see ARCHITECTURE.md "Compatibility").
pub const PROTOCOL_MIN: u16 = 1;
/// The newest protocol version this till speaks. Version 2 (0.2.0) carries seals: events
/// travel as [`Frame::Sealed`] and a pusher first sends the key records it holds
/// ([`Frame::Keys`]). Version 3 (0.2.0 too) carries each event's trace context too
/// ([`Frame::Traced`]).
pub const PROTOCOL_VERSION: u16 = 3;
/// The first protocol version with seals and key records.
pub const PROTOCOL_SEALS: u16 = 2;
/// The first protocol version with trace contexts.
pub const PROTOCOL_TRACES: u16 = 3;
/// Most key records in one `Keys` frame.
pub const KEYS_MAX: usize = 1_024;
/// Largest frame accepted, in bytes (the length prefix is checked before allocating).
pub const FRAME_BYTES_MAX: usize = 4 << 20;
/// Most events in one `Events` frame.
pub const BATCH_EVENTS_MAX: usize = 512;
/// Bytes of a compacted base carried by one `Base` frame.
pub const BASE_CHUNK_BYTES: usize = 1 << 20;
/// Most `Base` frames in one transfer (so a base is at most 64 MiB).
pub const BASE_CHUNKS_MAX: u32 = 64;

/// One frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame each way: who I am, which protocol versions I speak and what I hold.
    /// Frozen: every version decodes it, so a till can tell a peer it is too old or too new.
    Hello {
        /// Oldest protocol version the sender speaks.
        min_version: u16,
        /// Newest protocol version the sender speaks.
        max_version: u16,
        /// Store id (must match ours and the certificate's).
        store_id: String,
        /// Terminal id (must match the certificate's).
        terminal: u64,
        /// What the sender holds.
        vv: VersionVector,
    },
    /// Events the receiver lacks, in per-origin sequence order.
    Events(Vec<Event>),
    /// The receiver's version vector after durably applying everything received so far.
    Ack(VersionVector),
    /// Anti-entropy: "tell me what you hold" (answered with `Ack`).
    Probe,
    /// A request to the receiving till (Raft RPCs), alone on its own stream.
    Rpc(Vec<u8>),
    /// The answer to an `Rpc`, on the same stream.
    RpcReply(Vec<u8>),
    /// One part of the pusher's compacted base, sent instead of events the receiver lacks
    /// but the pusher has pruned (a till on a new disk, one away through a compaction).
    /// Parts go in order, each answered with `Ack`; the last one's `Ack` comes after the
    /// receiver merged the whole base durably.
    Base {
        /// Part number, from 0.
        index: u32,
        /// Parts in this transfer.
        count: u32,
        /// Bytes of the encoded base.
        bytes: Vec<u8>,
    },
    /// Events the receiver lacks, each with its seal (protocol 2).
    Sealed(Vec<(Event, Option<Vec<u8>>)>),
    /// Key records the sender holds (protocol 2), answered with `Ack`.
    Keys(Vec<tillmesh_pos::seal::KeyRecord>),
    /// Events the receiver lacks, each with its seal and its trace context (protocol 3).
    Traced(Vec<TracedEvent>),
}

/// An event as [`Frame::Traced`] carries it: the event, its seal, its trace context.
pub type TracedEvent = (Event, Option<Vec<u8>>, Option<TraceContext>);

impl Frame {
    /// The frame that carries `events` at protocol `version`: with their seals from 2 on,
    /// and their trace contexts from 3 on.
    pub fn events(version: u16, events: Vec<Event>) -> Frame {
        if version >= PROTOCOL_TRACES {
            Frame::Traced(
                events
                    .into_iter()
                    .map(|mut e| {
                        let sig = e.sig.take();
                        let trace = e.trace.take();
                        (e, sig, trace)
                    })
                    .collect(),
            )
        } else if version >= PROTOCOL_SEALS {
            Frame::Sealed(
                events
                    .into_iter()
                    .map(|mut e| {
                        let sig = e.sig.take();
                        (e, sig)
                    })
                    .collect(),
            )
        } else {
            Frame::Events(events)
        }
    }

    /// The events of an `Events` or `Sealed` frame, each with its seal back in place.
    pub fn into_events(self) -> Option<Vec<Event>> {
        match self {
            Frame::Events(evs) => Some(evs),
            Frame::Sealed(evs) => Some(
                evs.into_iter()
                    .map(|(mut e, sig)| {
                        e.sig = sig;
                        e
                    })
                    .collect(),
            ),
            // A context whose ids are zero is no context: it is dropped, not refused.
            Frame::Traced(evs) => Some(
                evs.into_iter()
                    .map(|(mut e, sig, trace)| {
                        e.sig = sig;
                        e.trace = trace.filter(TraceContext::is_valid);
                        e
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// Decoding errors: each one ends the connection with a logged reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The length prefix exceeds the limit.
    #[error("frame of {0} bytes exceeds the {FRAME_BYTES_MAX}-byte limit")]
    Oversized(usize),
    /// The bytes are not a frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A batch with too many events.
    #[error("batch of {0} events exceeds the {BATCH_EVENTS_MAX}-event limit")]
    BatchTooLarge(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<FRAME_BYTES_MAX>()
}

/// Encodes a frame with its 4-byte big-endian length prefix.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let body =
        bincode::serde::encode_to_vec(frame, config()).expect("frames we build are encodable");
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Checks a length prefix before the body is read.
pub fn check_len(prefix: [u8; 4]) -> Result<usize, WireError> {
    let n = u32::from_be_bytes(prefix) as usize;
    if n > FRAME_BYTES_MAX {
        return Err(WireError::Oversized(n));
    }
    Ok(n)
}

fn bad_seal(s: &Option<Vec<u8>>) -> bool {
    s.as_ref()
        .is_some_and(|s| s.len() != tillmesh_pos::seal::SEAL_LEN)
}

/// Decodes a frame body (without its prefix) and checks its limits.
pub fn decode(body: &[u8]) -> Result<Frame, WireError> {
    let (frame, used): (Frame, usize) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    match &frame {
        Frame::Events(evs) if evs.len() > BATCH_EVENTS_MAX => {
            Err(WireError::BatchTooLarge(evs.len()))
        }
        Frame::Sealed(evs) if evs.len() > BATCH_EVENTS_MAX => {
            Err(WireError::BatchTooLarge(evs.len()))
        }
        Frame::Traced(evs) if evs.len() > BATCH_EVENTS_MAX => {
            Err(WireError::BatchTooLarge(evs.len()))
        }
        Frame::Sealed(evs) if evs.iter().any(|(_, s)| bad_seal(s)) => {
            Err(WireError::Malformed("a seal of the wrong length".into()))
        }
        Frame::Traced(evs) if evs.iter().any(|(_, s, _)| bad_seal(s)) => {
            Err(WireError::Malformed("a seal of the wrong length".into()))
        }
        Frame::Keys(keys) if keys.len() > KEYS_MAX => Err(WireError::Malformed(format!(
            "{} key records, more than {KEYS_MAX}",
            keys.len()
        ))),
        Frame::Hello {
            min_version,
            max_version,
            ..
        } if min_version > max_version || *min_version == 0 => Err(WireError::Malformed(format!(
            "Hello with protocol versions {min_version} to {max_version}"
        ))),
        Frame::Base {
            index,
            count,
            bytes,
        } if *count == 0
            || *count > BASE_CHUNKS_MAX
            || index >= count
            || bytes.len() > BASE_CHUNK_BYTES =>
        {
            Err(WireError::Malformed(format!(
                "base part {index} of {count} with {} bytes",
                bytes.len()
            )))
        }
        _ => Ok(frame),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Protocol 3 carries each event's trace context beside it; 2 and 1 do not; a context
    /// with a zero id arrives as none.
    #[test]
    fn events_travel_with_their_trace_contexts_from_protocol_3() {
        use tillmesh_pos::trace::TraceContext;
        let mut r = tillmesh_pos::state::Replica::new(tillmesh_crdt::ReplicaId::for_terminal(2, 1));
        let mut e = r.adjust(
            "SKU1",
            2,
            tillmesh_pos::inventory::Reason::Receiving,
            None,
            None,
            "E1",
            1_000,
        );
        let cx = TraceContext::new([5; 16], [6; 8], 1).unwrap();
        e.trace = Some(cx);
        let back = |v: u16, e: &Event| {
            let bytes = encode(&Frame::events(v, vec![e.clone()]));
            decode(&bytes[4..]).unwrap().into_events().unwrap()[0].trace
        };
        assert_eq!(back(PROTOCOL_TRACES, &e), Some(cx));
        assert_eq!(back(PROTOCOL_SEALS, &e), None);
        assert_eq!(back(1, &e), None);
        e.trace = Some(TraceContext {
            trace_id: [5; 16],
            span_id: [0; 8],
            flags: 1,
        });
        assert_eq!(back(PROTOCOL_TRACES, &e), None);
    }

    /// A frame the long fuzz run found (`fuzz/corpus/mesh_frame/regression-*`): a customer
    /// change that parses but makes automerge 0.12 panic while applying it. The validator
    /// and the apply path now refuse it like any malformed change; the till goes on.
    #[test]
    fn a_customer_change_that_panics_automerge_is_refused_not_fatal() {
        use tillmesh_pos::event::EventBody;
        let bytes =
            include_bytes!("../../../fuzz/corpus/mesh_frame/regression-automerge-change-panic");
        let Ok(Frame::Events(events)) = decode(bytes) else {
            panic!("the regression input is an Events frame");
        };
        assert!(
            events
                .iter()
                .any(|e| matches!(e.body, EventBody::CustomerUpdated { .. }))
        );
        let mut replica =
            tillmesh_pos::state::Replica::new(tillmesh_crdt::ReplicaId::for_terminal(1, 7));
        let verdicts = replica.state().admit_all(&events);
        let mut refused = 0;
        for (e, v) in events.iter().zip(verdicts) {
            match v {
                Ok(()) => {
                    if replica.apply_remote(e, 1_796_000_000_000).is_err() {
                        replica.apply_skewed(e);
                    }
                }
                Err(_) => refused += 1,
            }
        }
        assert!(refused >= 1, "the crafted change is refused");
    }

    proptest! {
        /// The decoder never panics on arbitrary bytes and never accepts trailing garbage.
        #[test]
        fn decoder_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = decode(&bytes);
            if bytes.len() >= 4 {
                let _ = check_len([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }

        /// Frames survive the round trip.
        #[test]
        fn round_trip(entries in proptest::collection::vec((0_u64..5, 0_u64..1000), 0..8)) {
            let mut vv = VersionVector::new();
            for (o, s) in entries { vv.advance(tillmesh_crdt::ReplicaId(o), s); }
            for f in [Frame::Ack(vv.clone()), Frame::Probe, Frame::Hello { min_version: PROTOCOL_MIN, max_version: PROTOCOL_VERSION, store_id: "S1".into(), terminal: 3, vv }] {
                let bytes = encode(&f);
                let n = check_len([bytes[0], bytes[1], bytes[2], bytes[3]]).unwrap();
                prop_assert_eq!(n, bytes.len() - 4);
                prop_assert_eq!(decode(&bytes[4..]).unwrap(), f);
            }
        }
    }

    #[test]
    fn limits_and_versions_are_enforced() {
        assert_eq!(
            check_len((FRAME_BYTES_MAX as u32 + 1).to_be_bytes()),
            Err(WireError::Oversized(FRAME_BYTES_MAX + 1))
        );
        for (min_version, max_version) in [(3, 2), (0, 1)] {
            let hello = encode(&Frame::Hello {
                min_version,
                max_version,
                store_id: "S".into(),
                terminal: 1,
                vv: VersionVector::new(),
            });
            assert!(matches!(decode(&hello[4..]), Err(WireError::Malformed(_))));
        }
        for (index, count) in [(0, 0), (3, 3), (0, BASE_CHUNKS_MAX + 1)] {
            let f = encode(&Frame::Base {
                index,
                count,
                bytes: vec![1],
            });
            assert!(matches!(decode(&f[4..]), Err(WireError::Malformed(_))));
        }
        let mut probe = encode(&Frame::Probe);
        probe.push(0);
        assert!(matches!(decode(&probe[4..]), Err(WireError::Malformed(_))));
    }
}
