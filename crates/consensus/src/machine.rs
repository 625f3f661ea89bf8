//! The replicated store state, as a plain value: applying a command is a pure function, so
//! the state machine's storage only persists and restores it.

use crate::Command;
use openraft::{BasicNode, LogId, StoredMembership};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most settings held.
pub const SETTINGS_MAX: usize = 1_024;

/// The store state every till agrees on through Raft.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMachine {
    /// Last log entry applied.
    pub last_applied: Option<LogId<u64>>,
    /// Membership as of the last membership entry applied.
    pub membership: StoredMembership<u64, BasicNode>,
    /// Cloud-acknowledged contiguous watermark per origin.
    pub acked: BTreeMap<u64, u64>,
    /// Master-data version applied on every till.
    pub master_version: u64,
    /// Store-wide settings.
    pub settings: BTreeMap<String, String>,
    /// The cloud link as the leader last reported it.
    pub cloud_online: bool,
    /// Last successful exchange with the cloud (ms since epoch).
    pub cloud_last_ok_ms: u64,
    /// When the master data last changed (ms since epoch, the leader's pull time).
    pub master_at_ms: u64,
    /// The compaction point: highest compacted seq per origin.
    pub compact_floor: BTreeMap<u64, u64>,
    /// The compaction point: highest compacted transaction-log dot per origin.
    pub compact_dots: BTreeMap<u64, u64>,
    /// The compaction point: the settled-status horizon (ms since epoch).
    pub compact_horizon_ms: u64,
    /// The store's renewed cloud credential and its expiry (ms), once the leader renewed it.
    pub credential: Option<(String, u64)>,
    /// Master-data records at `master_version`, by record key, as JSON. Shared (`Arc`) so
    /// publishing the state to watchers does not copy the catalog; persisted apart from
    /// the rest, and only when it changes.
    #[serde(skip)]
    pub master: Arc<BTreeMap<String, String>>,
}

impl StoreMachine {
    /// Applies one command; answers whether the master data changed.
    pub fn apply(&mut self, c: &Command) -> bool {
        match c {
            Command::Acked { watermarks } => {
                for &(origin, seq) in watermarks {
                    let w = self.acked.entry(origin).or_default();
                    *w = (*w).max(seq);
                }
            }
            Command::MasterVersion(v) => self.master_version = self.master_version.max(*v),
            Command::Master {
                version,
                at_ms,
                changes,
            } => {
                if *version <= self.master_version {
                    return false;
                }
                let master = Arc::make_mut(&mut self.master);
                for (key, record) in changes {
                    match record {
                        Some(json) => master.insert(key.clone(), json.clone()),
                        None => master.remove(key),
                    };
                }
                self.master_version = *version;
                self.master_at_ms = *at_ms;
                return true;
            }
            Command::Cloud { online, last_ok_ms } => {
                self.cloud_online = *online;
                self.cloud_last_ok_ms = self.cloud_last_ok_ms.max(*last_ok_ms);
            }
            Command::Compact {
                floor,
                txlog_dots,
                horizon_ms,
            } => {
                for (map, pairs) in [
                    (&mut self.compact_floor, floor),
                    (&mut self.compact_dots, txlog_dots),
                ] {
                    for &(origin, n) in pairs {
                        let w = map.entry(origin).or_default();
                        *w = (*w).max(n);
                    }
                }
                self.compact_horizon_ms = self.compact_horizon_ms.max(*horizon_ms);
            }
            Command::Credential { token, expires_ms } => {
                if self.credential.as_ref().is_none_or(|(_, e)| expires_ms > e) {
                    self.credential = Some((token.clone(), *expires_ms));
                }
            }
            Command::Setting { key, value } => {
                if self.settings.len() < SETTINGS_MAX || self.settings.contains_key(key) {
                    self.settings.insert(key.clone(), value.clone());
                } else {
                    tracing::warn!(%key, "store setting refused: {SETTINGS_MAX} settings held");
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_with_the_later_expiry_wins() {
        let mut m = StoreMachine::default();
        let c = |t: &str, e| Command::Credential {
            token: t.into(),
            expires_ms: e,
        };
        m.apply(&c("b", 20));
        m.apply(&c("a", 10));
        assert_eq!(m.credential, Some(("b".into(), 20)));
        m.apply(&c("c", 30));
        assert_eq!(m.credential, Some(("c".into(), 30)));
    }

    #[test]
    fn watermarks_and_versions_never_move_backwards() {
        let mut m = StoreMachine::default();
        m.apply(&Command::Acked {
            watermarks: vec![(1, 10), (2, 5)],
        });
        m.apply(&Command::Acked {
            watermarks: vec![(1, 7), (2, 6)],
        });
        assert_eq!(m.acked, [(1, 10), (2, 6)].into_iter().collect());
        m.apply(&Command::MasterVersion(9));
        m.apply(&Command::MasterVersion(3));
        assert_eq!(m.master_version, 9);
        m.apply(&Command::Cloud {
            online: true,
            last_ok_ms: 50,
        });
        m.apply(&Command::Cloud {
            online: false,
            last_ok_ms: 40,
        });
        assert!(!m.cloud_online);
        assert_eq!(m.cloud_last_ok_ms, 50);
        m.apply(&Command::Compact {
            floor: vec![(1, 8)],
            txlog_dots: vec![(1, 3)],
            horizon_ms: 70,
        });
        m.apply(&Command::Compact {
            floor: vec![(1, 5), (2, 4)],
            txlog_dots: vec![(1, 2)],
            horizon_ms: 60,
        });
        assert_eq!(m.compact_floor, [(1, 8), (2, 4)].into_iter().collect());
        assert_eq!(m.compact_dots, [(1, 3)].into_iter().collect());
        assert_eq!(m.compact_horizon_ms, 70);
    }

    #[test]
    fn master_changes_apply_once_and_in_version_order() {
        let mut m = StoreMachine::default();
        let put = |version, changes: &[(&str, Option<&str>)]| Command::Master {
            version,
            at_ms: version * 10,
            changes: changes
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        };
        assert!(m.apply(&put(2, &[("item:A", Some("a1")), ("item:B", Some("b1"))])));
        assert!(m.apply(&put(3, &[("item:A", None), ("item:B", Some("b2"))])));
        // A replay or an older pull changes nothing.
        assert!(!m.apply(&put(3, &[("item:C", Some("c"))])));
        assert!(!m.apply(&put(2, &[("item:A", Some("a1"))])));
        assert_eq!(m.master_version, 3);
        assert_eq!(m.master_at_ms, 30);
        let held: Vec<_> = m
            .master
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(held, [("item:B", "b2")]);
    }
}
