//! The W3C trace context an event carries beside it (not part of its encoding): which trace
//! the request that made it belonged to, so that the peers that apply it and the cloud that
//! ingests it continue that trace (ARCHITECTURE.md "Operations").

use serde::{Deserialize, Serialize};

/// A sampled W3C trace context (`traceparent`): trace id, the parent span's id, flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceContext {
    /// Trace id (never all zeros).
    pub trace_id: [u8; 16],
    /// The span that made the event (never all zeros).
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// A context, or `None` when either id is all zeros (invalid in W3C trace context).
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<TraceContext> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(TraceContext {
            trace_id,
            span_id,
            flags,
        })
    }

    /// Whether the context is valid (both ids non-zero): a peer's frame may carry anything.
    pub fn is_valid(&self) -> bool {
        self.trace_id != [0; 16] && self.span_id != [0; 8]
    }

    /// The `traceparent` header value (version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }

    /// The trace id in lower-case hex, as trace back ends show it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_formats_as_a_w3c_traceparent_and_zero_ids_are_refused() {
        let t = TraceContext::new([0xab; 16], [0x01; 8], 1).unwrap();
        assert_eq!(
            t.traceparent(),
            format!("00-{}-{}-01", "ab".repeat(16), "01".repeat(8))
        );
        assert!(TraceContext::new([0; 16], [1; 8], 1).is_none());
        assert!(TraceContext::new([1; 16], [0; 8], 1).is_none());
        let forged = TraceContext {
            trace_id: [0; 16],
            span_id: [1; 8],
            flags: 1,
        };
        assert!(!forged.is_valid());
    }
}
