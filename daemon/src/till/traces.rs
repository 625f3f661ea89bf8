//! The trace contexts of this till's recent events (its own and its peers'), kept in memory
//! only and bounded: the mesh and the uplink send them beside the events, so that a peer
//! applying a sale and the cloud ingesting it continue the trace of the request that made it.

use super::*;
use std::collections::{HashMap, VecDeque};
use tillmesh_pos::trace::TraceContext;

/// Most contexts kept (the oldest go first); an event read later than that travels without.
pub const TRACES_MAX: usize = 4_096;

/// Contexts by event id, oldest first.
#[derive(Debug, Default)]
pub(crate) struct TraceBook {
    by_event: HashMap<(ReplicaId, u64), TraceContext>,
    order: VecDeque<(ReplicaId, u64)>,
}

impl TraceBook {
    fn note(&mut self, id: (ReplicaId, u64), cx: TraceContext) {
        if self.by_event.insert(id, cx).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > TRACES_MAX {
            if let Some(old) = self.order.pop_front() {
                self.by_event.remove(&old);
            }
        }
    }
}

impl Till {
    fn traces(&self) -> MutexGuard<'_, TraceBook> {
        self.traces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `batch` in its reserved place; its events (this till's own) are noted with the
    /// trace of the request that made them, when that request is traced.
    pub(super) fn submit(
        &self,
        slot: tillmesh_store::Slot,
        batch: WriteBatch,
    ) -> Result<
        tokio::sync::oneshot::Receiver<Result<CommitInfo, tillmesh_store::StoreError>>,
        tillmesh_store::StoreError,
    > {
        if !batch.events.is_empty()
            && let Some(cx) = tillmesh_cloud::telemetry::current()
        {
            let mut book = self.traces();
            for e in &batch.events {
                book.note((e.origin, e.seq), cx);
            }
        }
        self.store.submit_reserved(slot, batch)
    }

    /// Puts the contexts this till knows beside `events` (read from disk, which keeps none).
    pub(super) fn with_traces(&self, mut events: Vec<Event>) -> Vec<Event> {
        let book = self.traces();
        if !book.by_event.is_empty() {
            for e in &mut events {
                if e.trace.is_none() {
                    e.trace = book.by_event.get(&(e.origin, e.seq)).copied();
                }
            }
        }
        events
    }

    /// Notes the contexts a peer sent with the `events` this till lacks; a span per traced
    /// one, in its trace, for as long as the caller keeps it (the apply).
    pub(super) fn continue_traces(&self, from: u64, events: &[Event]) -> Vec<tracing::Span> {
        let mut spans = Vec::new();
        if events.iter().all(|e| e.trace.is_none()) {
            return spans;
        }
        // Only what this till lacks: a peer re-sending what it holds continues nothing.
        let fresh: Vec<(&Event, TraceContext)> = {
            let core = self.core();
            events
                .iter()
                .filter(|e| !core.replica.state().holds(e.origin, e.seq))
                .filter_map(|e| Some((e, e.trace?)))
                .collect()
        };
        let mut book = self.traces();
        for (e, cx) in fresh {
            book.note((e.origin, e.seq), cx);
            let span = tracing::info_span!(
                target: "tillmesh_trace",
                "mesh.apply",
                otel.name = "mesh apply",
                otel.kind = "consumer",
                tillmesh.node = %self.prefix_node(),
                tillmesh.from = from,
                tillmesh.event = %format_args!("{}/{}", e.origin, e.seq),
                tillmesh.kind = e.body.kind(),
            );
            if span.is_disabled() {
                continue;
            }
            tillmesh_cloud::telemetry::continue_from(&span, &cx);
            spans.push(span);
        }
        spans
    }

    /// See [`tillmesh_uplink::EventSource::upload_spans`].
    pub(super) fn upload_spans(
        &self,
        events: &mut [tillmesh_cloud_proto::StoreEvent],
    ) -> Vec<tracing::Span> {
        let mut spans = Vec::new();
        for se in events.iter_mut() {
            let Some(cx) = se.event.trace else { continue };
            let span = tracing::info_span!(
                target: "tillmesh_trace",
                "uplink.upload",
                otel.name = "uplink upload",
                otel.kind = "producer",
                tillmesh.node = %self.prefix_node(),
                tillmesh.event = %format_args!("{}/{}", se.event.origin, se.event.seq),
                tillmesh.kind = se.event.body.kind(),
            );
            if span.is_disabled() {
                return Vec::new();
            }
            tillmesh_cloud::telemetry::continue_from(&span, &cx);
            se.event.trace = tillmesh_cloud::telemetry::context_of(&span).or(Some(cx));
            spans.push(span);
        }
        spans
    }

    fn prefix_node(&self) -> String {
        format!("{}/T{}", self.cfg.store.store_id, self.cfg.terminal.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_keeps_the_newest_contexts_up_to_its_bound() {
        let mut b = TraceBook::default();
        let o = ReplicaId::for_terminal(1, 1);
        let cx = TraceContext::new([7; 16], [1; 8], 1).unwrap();
        for seq in 1..=(TRACES_MAX as u64 + 10) {
            b.note((o, seq), cx);
        }
        b.note((o, 20), cx);
        assert_eq!(b.by_event.len(), TRACES_MAX);
        assert_eq!(b.order.len(), TRACES_MAX);
        assert!(!b.by_event.contains_key(&(o, 10)));
        assert!(b.by_event.contains_key(&(o, TRACES_MAX as u64 + 10)));
    }
}
