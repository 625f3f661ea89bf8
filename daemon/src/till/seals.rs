//! Seals on the till: it signs its own events (the store's writer seals them as it stores
//! them), keeps the key records of the store's tills (persisted in meta, relayed to peers,
//! uploaded by the leader), and checks every peer's event against them before anything
//! else looks at it.
//!
//! A refused event is never stored: quarantining it would hold its `(origin, seq)` and let
//! a forgery shadow the genuine event. It is logged, audited and counted, and the rest of
//! its origin's events in that batch wait for the gap to be filled by an honest peer.

use super::*;
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;
use tillmesh_mesh::ReplicaError;
use tillmesh_mesh::identity::TillIdentity;
use tillmesh_mesh::seal::Sealer;
use tillmesh_pos::seal::{KeyRecord, Keyring};

/// Meta key of the key records this till holds (JSON).
const KEYS_META: &str = "seal.keys";
/// Refusals remembered for status.
const REFUSED_KEPT: usize = 32;
/// A batch with a refused event is answered this much later, so that a peer resending a
/// forgery (or an old till relaying an event without the seal it lost) does not spin.
const REFUSED_PAUSE: Duration = Duration::from_millis(250);

/// The till's seals.
#[derive(Debug)]
pub(crate) struct Seals {
    sealer: Arc<Sealer>,
    keyring: Mutex<Keyring>,
    refused: Mutex<VecDeque<SealRefusal>>,
}

/// An event refused for its seal, as status shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SealRefusal {
    /// The peer that sent it.
    pub from_terminal: u64,
    /// `origin/seq` it claimed.
    pub event: String,
    /// Why.
    pub reason: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// What status shows of seals.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SealStatus {
    /// Whether this till seals its events (it has a certificate).
    pub enabled: bool,
    /// Origins whose keys it holds.
    pub origins_with_keys: usize,
    /// The latest refusals, newest last.
    pub refused: Vec<SealRefusal>,
}

impl Till {
    /// Starts sealing with `identity`'s key: the store's writer seals this till's events
    /// from now on; this till's key record (reused across restarts, new when the
    /// certificate changed) joins the keyring, with the records held on disk.
    pub async fn enable_seals(&self, identity: &TillIdentity) -> anyhow::Result<()> {
        let origin = self.replica_id().0;
        let sealer = Arc::new(Sealer::new(identity, origin)?);
        let mut keyring = Keyring::new(&identity.store_id, identity.ca_der())
            .map_err(|e| anyhow::anyhow!("store CA: {e}"))?;
        let held: Vec<KeyRecord> = self
            .store
            .read(|r| r.meta(KEYS_META))?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        for r in &held {
            if let Err(e) = keyring.admit(r) {
                warn!(origin = r.origin, cause = %e, "a stored key record no longer checks; dropped");
            }
        }
        let s = sealer.clone();
        self.store
            .set_sealer(Arc::new(move |e: &Event| s.seal(e)))?;
        let cert = identity.cert_der().as_ref();
        let mine = held
            .iter()
            .find(|r| r.origin == origin && r.cert == cert)
            .cloned();
        let fresh = mine.is_none();
        let record = match mine {
            Some(r) => r,
            // Every event from here on is sealed (the writer seals what it stores from now).
            None => sealer.record(self.core().replica.next_seq())?,
        };
        keyring
            .admit(&record)
            .map_err(|e| anyhow::anyhow!("this till's own key record does not check: {e}"))?;
        if fresh {
            self.store
                .commit(WriteBatch {
                    meta: vec![(KEYS_META.into(), serde_json::to_string(&keyring.records())?)],
                    ..Default::default()
                })
                .await?;
        }
        self.seals
            .set(Seals {
                sealer,
                keyring: Mutex::new(keyring),
                refused: Mutex::new(VecDeque::new()),
            })
            .map_err(|_| anyhow::anyhow!("seals are already enabled"))?;
        info!(
            origin,
            signs_from = record.signs_from,
            "sealing this till's events"
        );
        Ok(())
    }

    /// Signs an upload batch's message with this till's key (`None` without seals).
    pub fn seal_batch(&self, msg: &[u8]) -> Option<Vec<u8>> {
        self.seals.get().and_then(|s| s.sealer.sign(msg))
    }

    /// How many key records the till holds.
    pub fn keys_count(&self) -> usize {
        self.seals.get().map_or(0, |s| lock(&s.keyring).len())
    }

    /// The key records the till holds.
    pub fn key_records(&self) -> Vec<KeyRecord> {
        self.seals
            .get()
            .map(|s| lock(&s.keyring).records())
            .unwrap_or_default()
    }

    /// Admits a peer's key records; new ones are stored before the answer.
    pub async fn admit_keys(&self, from: u64, records: Vec<KeyRecord>) -> Result<(), ReplicaError> {
        let Some(seals) = self.seals.get() else {
            return Ok(());
        };
        let all = {
            let mut ring = lock(&seals.keyring);
            let mut new = 0;
            for r in &records {
                match ring.admit(r) {
                    Ok(true) => new += 1,
                    Ok(false) => {}
                    Err(e) => {
                        warn!(peer = from, origin = r.origin, cause = %e, "refused a key record")
                    }
                }
            }
            if new == 0 {
                return Ok(());
            }
            ring.records()
        };
        let json = serde_json::to_string(&all).map_err(|e| ReplicaError::Storage(e.to_string()))?;
        self.store
            .commit(WriteBatch {
                meta: vec![(KEYS_META.into(), json)],
                ..Default::default()
            })
            .await
            .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        self.changes.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Splits a peer's events into those whose seals check and those refused. After a
    /// refused event, the rest of its origin's events in the batch wait (they would leave a
    /// gap); they are dropped here without a record and come again.
    pub(super) fn check_seals(
        &self,
        from: u64,
        events: Vec<Event>,
    ) -> (Vec<Event>, Vec<SealRefusal>) {
        let Some(seals) = self.seals.get() else {
            return (events, Vec::new());
        };
        let now = self.now();
        let ring = lock(&seals.keyring);
        let mut gap = BTreeSet::new();
        let mut refused = Vec::new();
        let mut ok = Vec::with_capacity(events.len());
        for e in events {
            if gap.contains(&e.origin) {
                continue;
            }
            match ring.check(&e) {
                Ok(_) => ok.push(e),
                Err(reason) => {
                    gap.insert(e.origin);
                    refused.push(SealRefusal {
                        from_terminal: from,
                        event: format!("{}/{}", e.origin, e.seq),
                        reason,
                        at_ms: now,
                    });
                }
            }
        }
        (ok, refused)
    }

    /// Records refusals (log, audit, metric, status) and pauses before the answer.
    pub(super) async fn record_refusals(
        &self,
        refused: Vec<SealRefusal>,
    ) -> Result<(), ReplicaError> {
        let Some(seals) = self.seals.get() else {
            return Ok(());
        };
        if refused.is_empty() {
            return Ok(());
        }
        let mut audit = Vec::with_capacity(refused.len());
        for r in &refused {
            warn!(peer = r.from_terminal, event = %r.event, reason = %r.reason, "refused a peer's event: its seal does not check");
            audit.push(audit_rec(
                r.at_ms,
                &format!("T{}", r.from_terminal),
                "mesh.seal_refused",
                &r.event,
                "refused",
                r.reason.clone(),
            ));
        }
        self.metrics.seal_refused.inc_by(refused.len() as u64);
        {
            let mut kept = lock(&seals.refused);
            for r in refused {
                if kept.len() >= REFUSED_KEPT {
                    kept.pop_front();
                }
                kept.push_back(r);
            }
        }
        self.store
            .commit(WriteBatch {
                audit,
                ..Default::default()
            })
            .await
            .map_err(|e| ReplicaError::Storage(e.to_string()))?;
        tokio::time::sleep(REFUSED_PAUSE).await;
        Ok(())
    }

    /// What status shows of seals.
    pub fn seal_status(&self) -> SealStatus {
        match self.seals.get() {
            None => SealStatus::default(),
            Some(s) => {
                let ring = lock(&s.keyring);
                let origins: BTreeSet<u64> = ring.records().iter().map(|r| r.origin).collect();
                SealStatus {
                    enabled: true,
                    origins_with_keys: origins.len(),
                    refused: lock(&s.refused).iter().cloned().collect(),
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
