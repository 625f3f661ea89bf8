//! The replicated store state, as a plain value: applying a command is a pure function, so
//! the state machine's storage only persists and restores it.

use crate::Command;
use openraft::{BasicNode, LogId, StoredMembership};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most settings held.
pub const SETTINGS_MAX: usize = 1_024;

/// The change key under which a master-data page carries HQ's signature of itself (JSON
/// `MasterSignature` of `tillmesh_cloud_proto`). Checked, never stored as a record.
pub const MASTER_SIGNATURE_KEY: &str = "~hq-signature";

/// The change key that marks a page of the second master-data stream (categories and
/// customers): proposed only once every till of the group reads it (a 0.1.0 till does not).
/// Checked, never stored as a record.
pub const MASTER_EXT_KEY: &str = "~ext";

/// The record key under which the master data holds the second stream's version.
pub const MASTER_EXT_VERSION_KEY: &str = "~ext-version";

/// A master-data page, as a till's check sees it before applying it.
#[derive(Debug)]
pub struct MasterPage<'a> {
    /// Whether the page is of the second stream ([`MASTER_EXT_KEY`]).
    pub ext: bool,
    /// The version of the page's stream this till holds.
    pub held_version: u64,
    /// The version the page brings the store to.
    pub version: u64,
    /// Its changes, the signature among them.
    pub changes: &'a [(String, Option<String>)],
}

/// What a till checks before applying a master-data page (HQ's signature): the page is
/// applied only when it answers `Ok`; the reason is kept otherwise. Every till applies the
/// same log, and each makes its own check.
pub type MasterCheck = Arc<dyn Fn(&MasterPage<'_>) -> Result<(), String> + Send + Sync>;

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
    /// The second master-data stream's version. Kept with the master-data records (under
    /// [`MASTER_EXT_VERSION_KEY`]), which live in the state machine's database and not in
    /// this value: a big store's catalog is megabytes, and every till held it twice.
    #[serde(skip)]
    ext_version: u64,
}

impl StoreMachine {
    /// The version of the second master-data stream applied (0: none yet).
    pub fn master_ext_version(&self) -> u64 {
        self.ext_version
    }

    /// Sets the second stream's version, as read back with the records.
    pub(crate) fn set_master_ext_version(&mut self, version: u64) {
        self.ext_version = version;
    }

    /// Applies one command, with no master-data check; answers whether the master data
    /// changed.
    pub fn apply(&mut self, c: &Command) -> bool {
        self.apply_checked(c, None).unwrap_or(false)
    }

    /// Applies one command; a master-data page only if `check` passes it. Answers whether the
    /// master data changed, or why a page was refused (nothing of it applied).
    pub fn apply_checked(
        &mut self,
        c: &Command,
        check: Option<&MasterCheck>,
    ) -> Result<bool, String> {
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
                let ext = changes.iter().any(|(k, _)| k == MASTER_EXT_KEY);
                let held = if ext {
                    self.master_ext_version()
                } else {
                    self.master_version
                };
                if *version <= held {
                    return Ok(false);
                }
                if let Some(check) = check {
                    check(&MasterPage {
                        ext,
                        held_version: held,
                        version: *version,
                        changes,
                    })?;
                }
                if ext {
                    self.ext_version = *version;
                } else {
                    self.master_version = *version;
                    self.master_at_ms = *at_ms;
                }
                return Ok(true);
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
        Ok(false)
    }
}

/// The record writes of a master-data page this machine applied (`apply_checked` answered
/// `true`), in order: its records (`None` deletes), then the second stream's version for a
/// page of that stream. Marks (`~` keys) are the machine's own, never a record.
pub fn master_writes(c: &Command) -> Vec<(String, Option<String>)> {
    let Command::Master {
        version, changes, ..
    } = c
    else {
        return Vec::new();
    };
    let ext = changes.iter().any(|(k, _)| k == MASTER_EXT_KEY);
    changes
        .iter()
        .filter(|(k, _)| !k.starts_with('~'))
        .cloned()
        .chain(ext.then(|| (MASTER_EXT_VERSION_KEY.to_owned(), Some(version.to_string()))))
        .collect()
}

/// The second stream's version held in a set of records (0: none).
pub fn ext_version_of(records: &BTreeMap<String, String>) -> u64 {
    ext_version_from(records.get(MASTER_EXT_VERSION_KEY).map(String::as_str))
}

/// The second stream's version from its record ([`MASTER_EXT_VERSION_KEY`]), if any (0: none).
pub fn ext_version_from(record: Option<&str>) -> u64 {
    record.and_then(|v| v.parse().ok()).unwrap_or(0)
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

    /// Applies `c` to the machine, and its record writes to `records` as the storage does.
    fn applied(m: &mut StoreMachine, records: &mut BTreeMap<String, String>, c: Command) -> bool {
        let changed = m.apply(&c);
        if changed {
            for (key, record) in master_writes(&c) {
                match record {
                    Some(json) => records.insert(key, json),
                    None => records.remove(&key),
                };
            }
        }
        changed
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
        let mut records = BTreeMap::new();
        let mut apply = |m: &mut StoreMachine, c: Command| applied(m, &mut records, c);
        assert!(apply(
            &mut m,
            put(2, &[("item:A", Some("a1")), ("item:B", Some("b1"))])
        ));
        assert!(apply(
            &mut m,
            put(3, &[("item:A", None), ("item:B", Some("b2"))])
        ));
        // A replay or an older pull changes nothing.
        assert!(!apply(&mut m, put(3, &[("item:C", Some("c"))])));
        assert!(!apply(&mut m, put(2, &[("item:A", Some("a1"))])));
        assert_eq!(m.master_version, 3);
        assert_eq!(m.master_at_ms, 30);
        let held: Vec<_> = records
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(held, [("item:B", "b2")]);
    }

    #[test]
    fn the_second_stream_counts_its_own_versions() {
        let mut m = StoreMachine::default();
        let page = |version, ext: bool, changes: &[(&str, Option<&str>)]| Command::Master {
            version,
            at_ms: 5,
            changes: changes
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .chain(ext.then(|| (MASTER_EXT_KEY.to_string(), Some("1".to_string()))))
                .collect(),
        };
        let mut records = BTreeMap::new();
        let mut apply = |m: &mut StoreMachine, c: Command| applied(m, &mut records, c);
        assert!(apply(&mut m, page(7, false, &[("item:A", Some("a"))])));
        // The second stream starts from its own 0, below the first's 7.
        assert!(apply(
            &mut m,
            page(2, true, &[("category:drinks", Some("d"))])
        ));
        assert_eq!((m.master_version, m.master_ext_version()), (7, 2));
        assert!(!apply(&mut m, page(2, true, &[("category:x", Some("x"))])));
        assert!(apply(&mut m, page(3, true, &[("customer:C1", Some("c"))])));
        // A record key that names the machine's own keys is not a record.
        assert!(apply(
            &mut m,
            page(8, false, &[("~ext-version", Some("99"))])
        ));
        assert_eq!((m.master_version, m.master_ext_version()), (8, 3));
        let keys: Vec<_> = records.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["category:drinks", "customer:C1", "item:A", "~ext-version"]
        );
        // What a restart reads back from the records.
        let mut back = StoreMachine::default();
        back.set_master_ext_version(ext_version_of(&records));
        assert_eq!(back.master_ext_version(), 3);
    }
}
