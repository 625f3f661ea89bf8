//! The binary encoding of event bodies on disk: `tillmesh_pos::codec`, with the store's error.

use crate::StoreError;
use tillmesh_pos::event::EventBody;

pub use tillmesh_pos::codec::EVENT_BYTES_MAX;

/// Encodes an event body.
pub fn encode(body: &EventBody) -> Result<Vec<u8>, StoreError> {
    tillmesh_pos::codec::encode(body).map_err(StoreError::Codec)
}

/// Decodes an event body of kind `kind`, refusing trailing bytes (an unknown kind is kept
/// as `EventBody::Unknown`).
pub fn decode(kind: &str, bytes: &[u8]) -> Result<EventBody, StoreError> {
    tillmesh_pos::codec::decode(kind, bytes).map_err(StoreError::Codec)
}
