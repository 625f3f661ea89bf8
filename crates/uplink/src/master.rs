//! Master data down from HQ: the uplink pulls each stream's pages since the version the
//! store's Raft group applied and commits them through Raft, so every till applies them at
//! the same log index. The second stream (categories, customers) is pulled only once every
//! till of the group reads it.

use super::*;
use tillmesh_cloud_proto::records::{EXT_PROTOCOL, EXT_STREAM};
use tillmesh_consensus::machine::MASTER_EXT_KEY;

impl<S: EventSource> Uplink<S> {
    /// Pulls master-data changes since the store's applied version, page by page, each page
    /// committed through Raft (every till applies it); then the second stream (categories
    /// and customers) once every till of the group reads it. The second stream never fails
    /// the first: a cloud that does not serve it is asked again at the next pull.
    pub(crate) async fn pull_master(&self, term: u64) -> Result<(), Failure> {
        self.pull_stream(term, false).await?;
        if !self.group_reads_ext() {
            return Ok(());
        }
        match self.pull_stream(term, true).await {
            Err(Failure::Deposed) => Err(Failure::Deposed),
            Err(e) => {
                warn!(cause = ?e, "categories and customers not pulled");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Whether every till of the store's group speaks mesh protocol [`EXT_PROTOCOL`] or
    /// later with this leader (so reads the second stream's records).
    fn group_reads_ext(&self) -> bool {
        let state = self.raft.state();
        let members: Vec<u64> = state
            .membership
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        reads_ext(&members, &self.till.tills())
    }

    /// Pulls one stream's pages (`ext`: the second).
    async fn pull_stream(&self, term: u64, ext: bool) -> Result<(), Failure> {
        for _ in 0..MASTER_PAGES_MAX {
            let state = self.raft.state();
            let (since, stream) = if ext {
                (state.master_ext_version(), "&stream=ext")
            } else {
                (state.master_version, "")
            };
            let (status, body) = self
                .exchange(
                    format!("/api/v1/sync/master?since={since}&limit={MASTER_PAGE}{stream}"),
                    None,
                )
                .await
                .map_err(|e| match e {
                    Failure::Link(why) => Failure::Link(format!("master pull: {why}")),
                    other => other,
                })?;
            if !(200..300).contains(&status) {
                return Err(refused(
                    status,
                    format!(
                        "master pull refused ({status}): {}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    ),
                ));
            }
            let page: MasterChanges = serde_json::from_slice(&body)
                .map_err(|e| Failure::Link(format!("master answer: {e}")))?;
            if ext {
                if page.stream.as_deref() != Some(EXT_STREAM) {
                    return Err(Failure::Link(
                        "the cloud does not serve categories and customers yet".into(),
                    ));
                }
                if page.version <= since || page.changes.is_empty() {
                    return Ok(());
                }
                let more = page.more;
                self.propose_page(term, page, true).await?;
                if !more {
                    return Ok(());
                }
                continue;
            }
            // The highest batch format both speak (a 0.1.0 cloud names none: format 1).
            let (lo, hi) = page.batch_versions.unwrap_or((1, 1));
            let both = hi.min(tillmesh_cloud_proto::BATCH_VERSION);
            if both < lo.max(tillmesh_cloud_proto::BATCH_VERSION_MIN) {
                return Err(Failure::Link(format!(
                    "the cloud reads batch formats {lo} to {hi}, this till writes {} to {}: upgrade the {}",
                    tillmesh_cloud_proto::BATCH_VERSION_MIN,
                    tillmesh_cloud_proto::BATCH_VERSION,
                    if hi < tillmesh_cloud_proto::BATCH_VERSION_MIN {
                        "cloud"
                    } else {
                        "tills"
                    }
                )));
            }
            if both != self.batch_version() {
                info!(format = both, "the cloud's batch format");
                self.batch_version
                    .store(both, std::sync::atomic::Ordering::Relaxed);
            }
            if page.version <= since || page.changes.is_empty() {
                return Ok(());
            }
            let more = page.more;
            self.propose_page(term, page, false).await?;
            if !more {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Commits one page through Raft (marked when it is of the second stream).
    async fn propose_page(&self, term: u64, page: MasterChanges, ext: bool) -> Result<(), Failure> {
        let mut changes =
            tillmesh_cloud_proto::master_pairs(&page.changes).map_err(Failure::Link)?;
        // HQ's signature rides with the page; each till checks it before applying.
        if let Some(sig) = &page.signature {
            let json = serde_json::to_string(sig).map_err(|e| Failure::Link(e.to_string()))?;
            changes.push((
                tillmesh_consensus::machine::MASTER_SIGNATURE_KEY.to_owned(),
                Some(json),
            ));
        }
        if ext {
            changes.push((MASTER_EXT_KEY.to_owned(), Some("1".to_owned())));
        }
        if !self.leads(term) {
            return Err(Failure::Deposed);
        }
        self.raft
            .propose(Command::Master {
                version: page.version,
                at_ms: self.till.now_ms(),
                changes,
            })
            .await
            .map_err(|_| Failure::Deposed)?;
        info!(
            ext,
            version = page.version,
            changes = page.changes.len(),
            "master data from HQ committed"
        );
        Ok(())
    }
}

/// Whether each member of the group (voters and learners) reads the second stream: `tills`
/// is the leader's view, itself first, each peer with the mesh protocol of its session.
/// A member the leader has no session with, or one on an older protocol, closes the gate.
fn reads_ext(members: &[u64], tills: &[tillmesh_cloud_proto::TillState]) -> bool {
    let Some(me) = tills.first().map(|t| t.terminal) else {
        return false;
    };
    !members.is_empty()
        && members.iter().all(|id| {
            *id == me
                || tills
                    .iter()
                    .any(|t| t.terminal == *id && t.protocol.is_some_and(|p| p >= EXT_PROTOCOL))
        })
}

#[cfg(test)]
mod tests {
    use super::reads_ext;
    use tillmesh_cloud_proto::{TillLink, TillState};

    fn till(terminal: u64, protocol: Option<u16>) -> TillState {
        TillState {
            terminal,
            link: TillLink::Connected,
            lag_events: 0,
            last_seen_ms: 0,
            version: None,
            protocol,
        }
    }

    #[test]
    fn the_second_stream_waits_for_every_member_to_read_it() {
        let me = till(1, None);
        let new = |t| till(t, Some(3));
        assert!(reads_ext(&[1, 2, 3], &[me.clone(), new(2), new(3)]));
        assert!(reads_ext(&[1], std::slice::from_ref(&me)));
        // A 0.1.0 till (protocol 1), one not heard from, or a member with no session: closed.
        assert!(!reads_ext(
            &[1, 2, 3],
            &[me.clone(), new(2), till(3, Some(1))]
        ));
        assert!(!reads_ext(&[1, 2, 3], &[me.clone(), new(2), till(3, None)]));
        assert!(!reads_ext(&[1, 2, 3], &[me.clone(), new(2)]));
        // A till outside the group does not matter; an empty view or group is closed.
        assert!(reads_ext(&[1, 2], &[me.clone(), new(2), till(9, Some(1))]));
        assert!(!reads_ext(&[1, 2], &[]));
        assert!(!reads_ext(&[], &[me]));
    }
}
