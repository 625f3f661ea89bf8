//! The leader's upload batches: built from the events the cloud has not acknowledged, within
//! the count and byte limits; sealed (format 3) with the till's key records, the store's
//! revocation list and the leader's signature; sent gzip'd and acknowledged.

use super::*;

impl<S: EventSource> Uplink<S> {
    /// The next batch: events after the acknowledged (or already sent) seq of each origin,
    /// within the count and byte limits. Waits for events (or the heartbeat) when there are
    /// none, and lingers briefly for company when there are few, unless `linger` is false (a
    /// new leader's first batch: what gathered during the election waits already). `None`:
    /// look again.
    pub(crate) async fn build(
        &self,
        term: u64,
        sent: &mut BTreeMap<u64, u64>,
        changes: &mut tokio::sync::watch::Receiver<u64>,
        last_exchange: Instant,
        linger: bool,
    ) -> Result<Option<Batch>, Failure> {
        let mut lingered = !linger;
        loop {
            let machine = self.raft.state();
            let vv = self.till.version_vector();
            let mut backlog = 0;
            let mut events = Vec::new();
            let mut bytes = 0;
            let mut full = false;
            for (origin, held) in vv.iter() {
                let acked = machine.acked.get(&origin.0).copied().unwrap_or(0);
                backlog += held.saturating_sub(acked);
                let cursor = sent.entry(origin.0).or_insert(acked);
                if *cursor < acked {
                    *cursor = acked;
                }
                if full || held <= *cursor {
                    continue;
                }
                let room = self.cfg.batch_events_max - events.len();
                let got = self
                    .till
                    .events_after(
                        origin,
                        *cursor,
                        room,
                        self.batch_version() >= tillmesh_cloud_proto::BATCH_VERSION_QUARANTINE,
                    )
                    .await
                    .map_err(Failure::Link)?;
                for event in got {
                    let e = StoreEvent {
                        store: self.cfg.store_id.clone(),
                        event,
                    };
                    let size = encode_batch_size(&e);
                    if !events.is_empty() && bytes + size > self.cfg.batch_bytes_max {
                        full = true;
                        break;
                    }
                    bytes += size;
                    events.push(e);
                }
                full |= events.len() >= self.cfg.batch_events_max;
            }
            self.set(|s| s.backlog = backlog);
            if events.is_empty() {
                // Resend what the cloud holds but has not counted as contiguous (it dedupes).
                for (o, s) in sent.iter_mut() {
                    *s = (*s).min(machine.acked.get(o).copied().unwrap_or(0));
                }
                let heartbeat = Duration::from_millis(self.cfg.heartbeat_ms);
                if last_exchange.elapsed() >= heartbeat {
                    return Ok(Some(self.batch(term, &machine, backlog, events)));
                }
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep(heartbeat.saturating_sub(last_exchange.elapsed())) => {}
                    _ = self.deposed(term) => return Err(Failure::Deposed),
                    // Back to the lead loop, which syncs.
                    _ = self.sync.asked() => {}
                }
                return Ok(None);
            }
            if full || lingered {
                return Ok(Some(self.batch(term, &machine, backlog, events)));
            }
            lingered = true;
            tokio::time::sleep(Duration::from_millis(self.cfg.linger_ms)).await;
        }
    }

    fn batch(
        &self,
        term: u64,
        machine: &tillmesh_consensus::machine::StoreMachine,
        backlog: u64,
        events: Vec<StoreEvent>,
    ) -> Batch {
        let sealed = self.batch_version() >= tillmesh_cloud_proto::BATCH_VERSION_SEALS;
        let keys = if sealed
            && self.till.keys_count() != self.keys_sent.load(std::sync::atomic::Ordering::Relaxed)
        {
            let mut keys = self.till.key_records();
            keys.truncate(tillmesh_cloud_proto::BATCH_KEYS_MAX);
            keys
        } else {
            Vec::new()
        };
        // The store's revocation list travels with every sealed batch (it is small, and the
        // cloud keeps the newest it has checked).
        let revocations = machine
            .settings
            .get(tillmesh_consensus::REVOCATIONS_SETTING)
            .filter(|_| sealed)
            .and_then(|v| serde_json::from_str(v).ok());
        let mut batch = Batch {
            term,
            leader: self.raft.id,
            master_version: machine.master_version,
            backlog,
            tills: self.raft.voters(),
            events,
            sealing: tillmesh_cloud_proto::Sealing {
                keys,
                revocations,
                seal: None,
            },
        };
        if sealed {
            batch.sealing.seal = self.till.seal_batch(&tillmesh_cloud_proto::batch_message(
                &self.cfg.store_id,
                &batch,
            ));
        }
        batch
    }

    /// Sends one batch (binary, gzip) and reads the acknowledgement.
    pub(crate) async fn send(&self, batch: &mut Batch) -> Result<IngestAck, Failure> {
        use std::io::Write;
        // Open until the answer: the leader's part of each traced event's trace, whose
        // context the event then carries to HQ.
        let _spans = self.till.upload_spans(&mut batch.events);
        let raw = tillmesh_cloud_proto::encode_batch_as(batch, self.batch_version())
            .map_err(|e| Failure::Link(e.to_string()))?;
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(raw.len() / 4),
            flate2::Compression::fast(),
        );
        gz.write_all(&raw)
            .and_then(|_| gz.flush())
            .map_err(|e| Failure::Link(e.to_string()))?;
        let body = gz.finish().map_err(|e| Failure::Link(e.to_string()))?;
        let (status, answer) = self
            .exchange("/api/v1/sync/upload".into(), Some(body))
            .await?;
        if (200..300).contains(&status) {
            let ack = serde_json::from_slice::<IngestAck>(&answer)
                .map_err(|e| Failure::Link(format!("upload answer: {e}")))?;
            if !batch.sealing.keys.is_empty() {
                self.keys_sent.store(
                    batch.sealing.keys.len(),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            return Ok(ack);
        }
        let why = format!(
            "upload refused ({status}): {}",
            String::from_utf8_lossy(&answer)
                .chars()
                .take(300)
                .collect::<String>()
        );
        Err(refused(status, why))
    }
}

/// Size of one event in the binary batch encoding.
fn encode_batch_size(e: &StoreEvent) -> usize {
    bincode::serde::encode_to_vec(e, bincode::config::standard())
        .map_or(usize::MAX / 4, |v| v.len())
}
