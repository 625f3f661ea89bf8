//! The compact binary encoding of event bodies, shared by the tills' disks and the cloud's
//! ledger (bincode 2, standard config, with a size limit so that a corrupt length prefix
//! cannot make the decoder allocate without bound).

use crate::event::EventBody;

/// Largest encoded event body accepted.
pub const EVENT_BYTES_MAX: usize = 1 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<EVENT_BYTES_MAX>()
}

/// Encodes an event body; refuses one over [`EVENT_BYTES_MAX`], which no decoder would read
/// back (bincode applies its limit when decoding only).
pub fn encode(body: &EventBody) -> Result<Vec<u8>, String> {
    let bytes = bincode::serde::encode_to_vec(body, config()).map_err(|e| e.to_string())?;
    if bytes.len() > EVENT_BYTES_MAX {
        return Err(format!(
            "an event of {} bytes is over the {EVENT_BYTES_MAX}-byte limit",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Decodes an event body, refusing trailing bytes.
pub fn decode(bytes: &[u8]) -> Result<EventBody, String> {
    let (body, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} trailing bytes after an event body",
            bytes.len().saturating_sub(used)
        ));
    }
    Ok(body)
}
