//! The leader's report of every till in its store (`POST /api/v1/sync/tills`, every
//! [`TILLS_REPORT_MS`] while it leads): how each till's link to the leader stands, how far
//! behind it is, what it runs and when it was last heard. HQ's fleet view shows it per till.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How often the leader reports its store's tills (ms).
pub const TILLS_REPORT_MS: u64 = 2_000;

/// Most tills one report names (a store's tills, with room to spare).
pub const TILLS_REPORT_MAX: usize = 64;

/// A peer unheard for longer than this (ms) is reported `silent` (the mesh probes every
/// peer every 2 s while idle).
pub const TILL_SILENT_MS: u64 = 5_000;

/// How a till stands, as the store's leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TillLink {
    /// The leader itself.
    Leader,
    /// Connected to the leader and heard within [`TILL_SILENT_MS`].
    Connected,
    /// Known, but unheard for longer than [`TILL_SILENT_MS`] (cut off, stopped, or down).
    Silent,
    /// Known, never reached since the leader started.
    Unreachable,
}

/// One till of the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TillState {
    /// Terminal id.
    pub terminal: u64,
    /// Its link, as the leader sees it.
    pub link: TillLink,
    /// Events the leader holds that it lacks.
    pub lag_events: u64,
    /// When the leader last heard from it (ms since the epoch; 0: never).
    pub last_seen_ms: u64,
    /// The tillmesh version it runs, when known (the leader's own).
    #[serde(default)]
    pub version: Option<String>,
    /// The mesh protocol version of its last session with the leader.
    #[serde(default)]
    pub protocol: Option<u16>,
}

/// The leader's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TillsReport {
    /// The leader's Raft term.
    pub term: u64,
    /// The leader's terminal id.
    pub leader: u64,
    /// When the leader made the report, by its clock (ms).
    pub at_ms: u64,
    /// The store's tills, the leader included; at most [`TILLS_REPORT_MAX`].
    pub tills: Vec<TillState>,
}

impl TillsReport {
    /// Why the report cannot be taken, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.tills.len() > TILLS_REPORT_MAX {
            return Err(format!(
                "the report names {} tills; at most {TILLS_REPORT_MAX}",
                self.tills.len()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.tills {
            if !seen.insert(t.terminal) {
                return Err(format!("till {} is named twice", t.terminal));
            }
            if t.version.as_ref().is_some_and(|v| v.len() > 64) {
                return Err(format!("till {}: version over 64 bytes", t.terminal));
            }
        }
        Ok(())
    }
}

/// The cloud's answer to a till report when it has something to ask (otherwise 204).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TillsAnswer {
    /// HQ asks the store to sync now: pull master data and upload what it holds.
    #[serde(default)]
    pub sync_now: bool,
    /// HQ asks the leader for a support bundle (`POST /api/v1/sync/bundle`).
    #[serde(default)]
    pub support_bundle: bool,
}

/// Largest support bundle a leader uploads to HQ, in bytes.
pub const BUNDLE_BYTES_MAX: usize = 16 << 20;
/// Content type of a support bundle (a tar archive, zstd-compressed).
pub const BUNDLE_CONTENT_TYPE: &str = "application/zstd";
