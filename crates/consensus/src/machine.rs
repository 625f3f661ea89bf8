//! The replicated store state, as a plain value: applying a command is a pure function, so
//! the state machine's storage only persists and restores it.

use crate::Command;
use openraft::{BasicNode, LogId, StoredMembership};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
}

impl StoreMachine {
    /// Applies one command.
    pub fn apply(&mut self, c: &Command) {
        match c {
            Command::Acked { watermarks } => {
                for &(origin, seq) in watermarks {
                    let w = self.acked.entry(origin).or_default();
                    *w = (*w).max(seq);
                }
            }
            Command::MasterVersion(v) => self.master_version = self.master_version.max(*v),
            Command::Setting { key, value } => {
                if self.settings.len() < SETTINGS_MAX || self.settings.contains_key(key) {
                    self.settings.insert(key.clone(), value.clone());
                } else {
                    tracing::warn!(%key, "store setting refused: {SETTINGS_MAX} settings held");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
