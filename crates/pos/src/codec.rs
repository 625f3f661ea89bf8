//! The compact binary encoding of event bodies, shared by the tills' disks, the mesh, the
//! cloud's batches and its ledger (bincode 2, standard config, with a size limit so that a
//! corrupt length prefix cannot make the decoder allocate without bound).
//!
//! A body travels as its kind's name and its encoded bytes ([`envelope`]); the sync log and
//! the ledger store the same two columns. A kind this build does not know decodes to
//! [`EventBody::Unknown`], which keeps the bytes unchanged, so a newer till's events pass
//! through an older one (stored, relayed, uploaded) and apply once it is upgraded.

use crate::event::{EventBody, KINDS};

/// Largest encoded event body accepted.
pub const EVENT_BYTES_MAX: usize = 1 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<EVENT_BYTES_MAX>()
}

/// Encodes an event body (an unknown kind's bytes as received); refuses one over
/// [`EVENT_BYTES_MAX`], which no decoder would read back (bincode applies its limit when
/// decoding only).
pub fn encode(body: &EventBody) -> Result<Vec<u8>, String> {
    let bytes = match body {
        EventBody::Unknown { payload, .. } => payload.clone(),
        known => bincode::serde::encode_to_vec(known, config()).map_err(|e| e.to_string())?,
    };
    if bytes.len() > EVENT_BYTES_MAX {
        return Err(format!(
            "an event of {} bytes is over the {EVENT_BYTES_MAX}-byte limit",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Decodes an event body of kind `kind`, refusing trailing bytes and a body of another
/// kind than named. A kind this build does not know is kept as [`EventBody::Unknown`].
pub fn decode(kind: &str, bytes: &[u8]) -> Result<EventBody, String> {
    if !KINDS.contains(&kind) {
        if kind.is_empty() || kind.len() > 64 || bytes.len() > EVENT_BYTES_MAX {
            return Err(format!(
                "an event of kind {kind:?} with {} bytes is out of bounds",
                bytes.len()
            ));
        }
        return Ok(EventBody::Unknown {
            kind: kind.to_string(),
            payload: bytes.to_vec(),
        });
    }
    let (body, used): (EventBody, usize) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} trailing bytes after an event body",
            bytes.len().saturating_sub(used)
        ));
    }
    if body.kind() != kind {
        return Err(format!("an event named {kind} holds a {}", body.kind()));
    }
    Ok(body)
}

/// `#[serde(with)]` for `Event::body`: in binary formats the pair (kind, encoded body), so
/// a decoder that does not know a kind keeps it instead of failing the whole frame or
/// batch; in human-readable ones (JSON) the body as itself.
pub mod envelope {
    use super::{decode, encode};
    use crate::event::EventBody;
    use serde::de::{Error as _, SeqAccess, Visitor};
    use serde::ser::{Error as _, SerializeTuple};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    struct ByteBuf(Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an encoded event body")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    /// Serializes a body.
    pub fn serialize<S: Serializer>(body: &EventBody, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return body.serialize(s);
        }
        let bytes = encode(body).map_err(S::Error::custom)?;
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(body.kind())?;
        t.serialize_element(&Bytes(&bytes))?;
        t.end()
    }

    /// Deserializes a body.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EventBody, D::Error> {
        if d.is_human_readable() {
            return EventBody::deserialize(d);
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventBody;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event's kind and encoded body")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EventBody, A::Error> {
                let kind: String = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let bytes: ByteBuf = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                decode(&kind, &bytes.0).map_err(A::Error::custom)
            }
        }
        d.deserialize_tuple(2, V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::inventory::Reason;
    use crate::state::Replica;
    use tillmesh_crdt::ReplicaId;

    fn bin(e: &Event) -> Vec<u8> {
        bincode::serde::encode_to_vec(e, bincode::config::standard()).unwrap()
    }

    #[test]
    fn an_unknown_kind_survives_a_round_trip_unchanged() {
        let mut r = Replica::new(ReplicaId(1));
        let known = r.adjust("A", 5, Reason::Manual, None, None, "E", 10);
        let mut newer = known.clone();
        newer.body = EventBody::Unknown {
            kind: "GiftCardRedeemed".into(),
            payload: vec![7, 0, 1, 2, 3],
        };
        let bytes = bin(&newer);
        let (back, _): (Event, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, newer);
        assert_eq!(bin(&back), bytes, "relayed byte for byte");
        assert!(back.check().is_ok());
        // A known kind still decodes as itself, and a body under another kind's name is refused.
        let (k, _): (Event, usize) =
            bincode::serde::decode_from_slice(&bin(&known), bincode::config::standard()).unwrap();
        assert_eq!(k, known);
        let payload = encode(&known.body).unwrap();
        assert!(
            decode("SaleRecorded", &payload)
                .unwrap_err()
                .contains("holds a")
        );
        assert!(decode("", &payload).is_err());
    }
}
