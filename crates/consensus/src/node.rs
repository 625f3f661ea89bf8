//! A till's Raft node: storage, network, timing, and the bootstrap rule.
//!
//! Bootstrap rule: after its discovery window, a till that is not in a group asks every till
//! it sees whether it is; if one is, it waits to be added by that group's leader. Otherwise
//! the one with the lowest id among those seen initialises the group with every seen
//! terminal as a voter. Initialising is refused by openraft once a node has any log or vote,
//! so a till that restarts never founds a second group. The leader adds every connected till
//! that is not a member (as a learner, then a voter) and removes a voter unreachable past a
//! limit, one change at a time.

use crate::machine::StoreMachine;
use crate::network::{Contact, Network, RaftReply, RaftRpc, RaftTransport, decode, encode};
use crate::storage::{StateMachineStore, open_with};
use crate::{Applied, Command, TypeConfig};
use openraft::{BasicNode, Config, Raft};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Raft timing (milliseconds). openraft's guidance: heartbeat below half the minimum election
/// timeout, election timeout well above the log append latency (an fsync here).
///
/// openraft 0.9 keeps a leader lease of `election_max_ms` after each heartbeat, during which
/// a follower refuses any vote. With `pre_vote` (the default) this node campaigns itself
/// ([`StoreRaft::start_with`]'s election driver, openraft's own timer off): once no leader
/// was heard from for the lease plus half the shortest timeout plus a random part of up to
/// `election_max_ms - election_min_ms`, and only after a majority of voters granted a
/// pre-vote (each had not heard from a leader for its lease either). A till that lost
/// touch with a healthy leader therefore never deposes it, and a crashed leader is
/// replaced about `election_max_ms + election_min_ms` after its last heartbeat. Without it,
/// openraft's timer campaigns after the lease plus `election_min_ms..election_max_ms`
/// (plain Raft; the simulator's tills, whose timeouts it fixes per seed).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Leader heartbeat.
    pub heartbeat_ms: u64,
    /// Election timeout, lower bound.
    pub election_min_ms: u64,
    /// Election timeout, upper bound (and the leader lease).
    pub election_max_ms: u64,
    /// Campaign only after a majority granted a pre-vote.
    pub pre_vote: bool,
}

impl Default for Timing {
    /// A store's LAN: heartbeat 50 ms, election timeout 150-300 ms, pre-vote. A crashed
    /// leader is replaced in about half a second; a leader must stall for longer than 300 ms
    /// (the lease) before a follower may campaign.
    fn default() -> Self {
        Self {
            heartbeat_ms: 50,
            election_min_ms: 150,
            election_max_ms: 300,
            pre_vote: true,
        }
    }
}

impl Timing {
    /// The timing before 0.2.0 (heartbeat 150 ms, election timeout 500-1,000 ms, no
    /// pre-vote): the failover bench's baseline.
    pub fn wide() -> Self {
        Self {
            heartbeat_ms: 150,
            election_min_ms: 500,
            election_max_ms: 1_000,
            pre_vote: false,
        }
    }
}

/// A running Raft node of one till.
#[derive(Clone)]
pub struct StoreRaft {
    /// The terminal id.
    pub id: u64,
    /// The openraft handle.
    pub raft: Raft<TypeConfig>,
    state: tokio::sync::watch::Receiver<StoreMachine>,
    /// The state machine's database (the master-data records are read from it).
    db: Arc<tillmesh_store::raft::RaftDb>,
    journal: Arc<crate::storage::VoteJournal>,
    timing: Timing,
    caller: Caller,
    handing_over: Arc<std::sync::atomic::AtomicBool>,
    master_refused: Arc<std::sync::Mutex<Option<(u64, String)>>>,
    /// When this node last heard from a leader (pre-votes).
    contact: Arc<Contact>,
    /// Campaigns the election driver started.
    campaigns: Arc<std::sync::atomic::AtomicU64>,
    /// Asks this till's uplink to sync now (set when it has a cloud link).
    sync_hook: Arc<std::sync::OnceLock<SyncHook>>,
}

/// What asks a till's uplink to sync now.
pub type SyncHook = Arc<dyn Fn() + Send + Sync>;

/// Calls one node over the group's transport (type-erased, for the hand-over).
type Caller = Arc<
    dyn Fn(
            u64,
            Vec<u8>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send>>
        + Send
        + Sync,
>;

impl std::fmt::Debug for StoreRaft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRaft").field("id", &self.id).finish()
    }
}

/// Why the store's Raft node failed to start or to do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The timing settings are not a valid Raft configuration.
    #[error("raft configuration: {0}")]
    Config(String),
    /// The Raft database could not be opened.
    #[error("raft database: {0}")]
    Storage(String),
    /// Only the leader takes proposals and membership changes.
    #[error("this till is not the store's leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<u64>,
    },
    /// A membership change was refused (another one is in progress, ...).
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The node stopped or failed (fatal for this node).
    #[error("raft: {0}")]
    Raft(String),
    /// The node hands its leadership over before a planned stop: it proposes nothing more
    /// (each entry would renew the followers' lease and delay its successor).
    #[error("this till is handing the store's leadership over")]
    HandingOver,
}

impl ConsensusError {
    /// Whether the node only paused proposals for a hand-over (nothing failed).
    pub fn is_handing_over(&self) -> bool {
        matches!(self, ConsensusError::HandingOver)
    }
}

impl<E: std::fmt::Display> From<openraft::error::RaftError<u64, E>> for ConsensusError {
    fn from(e: openraft::error::RaftError<u64, E>) -> Self {
        match e {
            openraft::error::RaftError::APIError(e) => ConsensusError::Membership(e.to_string()),
            openraft::error::RaftError::Fatal(f) => ConsensusError::Raft(f.to_string()),
        }
    }
}

fn write_error(
    e: openraft::error::RaftError<u64, openraft::error::ClientWriteError<u64, BasicNode>>,
) -> ConsensusError {
    match e {
        openraft::error::RaftError::APIError(
            openraft::error::ClientWriteError::ForwardToLeader(f),
        ) => ConsensusError::NotLeader {
            leader: f.leader_id,
        },
        other => other.into(),
    }
}

/// Who leads the store's group in which term, as one node knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// The current term.
    pub term: u64,
    /// The leader this node knows of in that term.
    pub leader: Option<u64>,
    /// Whether that leader is this node.
    pub this_node: bool,
}

/// A node's [`Leadership`], watched for changes (its Raft metrics underneath).
#[derive(Clone, Debug)]
pub struct LeadershipWatch {
    id: u64,
    metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
}

impl LeadershipWatch {
    fn of(&self, m: &openraft::RaftMetrics<u64, BasicNode>) -> Leadership {
        Leadership {
            term: m.current_term,
            leader: m.current_leader,
            this_node: m.current_leader == Some(self.id),
        }
    }

    /// Now.
    pub fn now(&self) -> Leadership {
        self.of(&self.metrics.borrow())
    }

    /// Now, marking it seen (the next [`LeadershipWatch::changed`] waits for a newer one).
    pub fn now_and_seen(&mut self) -> Leadership {
        let m = self.metrics.borrow_and_update().clone();
        self.of(&m)
    }

    /// Waits until the node's metrics change (leadership may or may not have changed); an
    /// error once the node stopped.
    pub async fn changed(&mut self) -> Result<(), tokio::sync::watch::error::RecvError> {
        self.metrics.changed().await
    }

    /// The term this node leads in, if it does.
    pub fn leading_term(&self) -> Option<u64> {
        let l = self.now();
        l.this_node.then_some(l.term)
    }
}

impl StoreRaft {
    /// The last master-data page this till refused (version, why) since it started.
    pub fn master_refused(&self) -> Option<(u64, String)> {
        self.master_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts the node on its Raft database (`path`) and a transport to its peers.
    pub async fn start<T: RaftTransport>(
        id: u64,
        path: &Path,
        transport: Arc<T>,
        timing: Timing,
    ) -> Result<Self, ConsensusError> {
        Self::start_with(
            id,
            path,
            transport,
            timing,
            tillmesh_store::Mode::Durable,
            None,
        )
        .await
    }

    /// [`StoreRaft::start`] with the Raft database opened in `mode` (`Inline` in the
    /// simulator: no fsync, see [`tillmesh_store::Mode`]).
    pub async fn start_with<T: RaftTransport>(
        id: u64,
        path: &Path,
        transport: Arc<T>,
        timing: Timing,
        mode: tillmesh_store::Mode,
        master_check: Option<crate::machine::MasterCheck>,
    ) -> Result<Self, ConsensusError> {
        let config = Config {
            cluster_name: "tillmesh-store".into(),
            heartbeat_interval: timing.heartbeat_ms,
            election_timeout_min: timing.election_min_ms,
            election_timeout_max: timing.election_max_ms,
            // With pre-votes the election driver campaigns (see `Timing`).
            enable_elect: !timing.pre_vote,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConsensusError::Config(e.to_string()))?;
        let (log, sm): (_, StateMachineStore) = open_with(path, mode, master_check)
            .map_err(|e| ConsensusError::Storage(e.to_string()))?;
        let state = sm.subscribe();
        let db = sm.db();
        let master_refused = sm.master_refused();
        let journal = log.journal();
        let t = transport.clone();
        let caller: Caller = Arc::new(move |to, body| {
            let t = t.clone();
            Box::pin(async move { t.call(to, body).await })
        });
        let raft = Raft::new(id, Arc::new(config), Network::new(transport), log, sm)
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        let node = Self {
            id,
            raft,
            state,
            db,
            journal,
            timing,
            caller,
            handing_over: Arc::default(),
            master_refused,
            contact: Arc::default(),
            campaigns: Arc::default(),
            sync_hook: Arc::default(),
        };
        if timing.pre_vote {
            tokio::spawn(node.clone().elections());
        }
        Ok(node)
    }

    /// Sets what asks this till's uplink to sync now (once; the till's cloud link).
    pub fn set_sync_hook(&self, hook: SyncHook) {
        let _ = self.sync_hook.set(hook);
    }

    /// A manager's "sync now" on any till: asks the store's leader (this till, or over the
    /// mesh) to have its uplink pull master data and upload at once. Answers the leader
    /// that did, or why none did.
    pub async fn sync_now(&self) -> Result<u64, String> {
        let leader = self
            .raft
            .current_leader()
            .await
            .ok_or("the store has no leader right now: try again in a moment")?;
        if leader == self.id {
            let hook = self
                .sync_hook
                .get()
                .ok_or("this till leads the store but has no cloud link")?;
            hook();
            return Ok(leader);
        }
        let body = encode(&RaftRpc::SyncNow)?;
        let wait = std::time::Duration::from_millis(self.timing.election_max_ms.max(1_000));
        let answer = tokio::time::timeout(wait, (self.caller)(leader, body))
            .await
            .map_err(|_| format!("the store's leader, T{leader}, did not answer in time"))?
            .map_err(|e| format!("the store's leader, T{leader}, is unreachable: {e}"))?;
        match decode::<RaftReply>(&answer) {
            Ok(RaftReply::SyncNow { asked: true }) => Ok(leader),
            Ok(RaftReply::SyncNow { asked: false }) => Err(format!(
                "the store's leader, T{leader}, could not sync (no cloud link, or it no longer leads)"
            )),
            _ => Err(format!(
                "the store's leader, T{leader}, runs an older version without \"sync now\""
            )),
        }
    }

    /// Serves one encoded request from `from` (see [`crate::network::serve`]), noting
    /// contact with the leader, answering pre-votes and "sync now".
    pub async fn serve(&self, from: u64, body: &[u8]) -> Vec<u8> {
        if let Ok(RaftRpc::SyncNow) = decode::<RaftRpc>(body) {
            let leads = self.raft.metrics().borrow().current_leader == Some(self.id);
            let hook = self.sync_hook.get().filter(|_| leads);
            if let Some(hook) = hook {
                tracing::info!(from, "a till asked the store to sync now");
                hook();
            }
            return encode(&RaftReply::SyncNow {
                asked: hook.is_some(),
            })
            .unwrap_or_default();
        }
        let lease = std::time::Duration::from_millis(self.timing.election_max_ms);
        crate::network::serve_with(&self.raft, from, body, Some((&self.contact, lease))).await
    }

    /// How many campaigns this node's election driver started (a leader's crash or stop
    /// makes one or two; more, under steady load, are spurious elections).
    pub fn campaigns(&self) -> u64 {
        self.campaigns.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The election driver (with pre-votes): checks every half heartbeat whether a leader
    /// was heard from within this round's timeout (drawn anew after each campaign, from
    /// the node id and the round, so the simulator replays it); when not, and this node is a
    /// voter, asks the other voters for a pre-vote and campaigns on a majority. Ends when the
    /// node stops.
    async fn elections(self) {
        use std::sync::atomic::Ordering;
        let t = self.timing;
        let tick = std::time::Duration::from_millis((t.heartbeat_ms / 2).max(1));
        let spread = t.election_max_ms.saturating_sub(t.election_min_ms).max(1);
        let mut round = 0_u64;
        let draw = |round: u64| {
            let x = splitmix(self.id.wrapping_mul(0x9e37_79b9).wrapping_add(round));
            t.election_max_ms + t.election_min_ms / 2 + x % spread
        };
        let mut timeout = std::time::Duration::from_millis(draw(round));
        let mut metrics = self.raft.metrics();
        loop {
            tokio::time::sleep(tick).await;
            let m = metrics.borrow_and_update().clone();
            if m.running_state.is_err() {
                return;
            }
            let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            if m.current_leader == Some(self.id) || !voters.contains(&self.id) {
                self.contact.touch();
                continue;
            }
            if self.contact.elapsed() < timeout {
                continue;
            }
            round += 1;
            timeout = std::time::Duration::from_millis(draw(round));
            self.contact.touch();
            if !self.pre_vote(&voters, m.last_log_index).await {
                continue;
            }
            self.campaigns.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                term = m.current_term,
                "no leader heard from and a majority granted a pre-vote: campaigning"
            );
            if self.raft.trigger().elect().await.is_err() {
                return;
            }
        }
    }

    /// Asks the other voters for a pre-vote (each within the shortest election timeout);
    /// whether a majority, this node included, granted it. A voter that does not answer, or
    /// does not know pre-votes (an older release: its answer does not decode), does not
    /// grant it: while a store upgrades, a restarted till that has not heard the leader yet
    /// must not depose it with the older tills' help, and the older tills still campaign on
    /// their own timer (openraft's), so the store always elects a leader.
    async fn pre_vote(&self, voters: &[u64], last_log_index: Option<u64>) -> bool {
        let Ok(body) = encode(&RaftRpc::PreVote { last_log_index }) else {
            return false;
        };
        let wait = std::time::Duration::from_millis(self.timing.election_min_ms);
        let mut asks = tokio::task::JoinSet::new();
        for &v in voters.iter().filter(|&&v| v != self.id) {
            let call = (self.caller)(v, body.clone());
            asks.spawn(async move {
                match tokio::time::timeout(wait, call).await {
                    Ok(Ok(answer)) => {
                        matches!(
                            decode::<RaftReply>(&answer),
                            Ok(RaftReply::PreVote { granted: true })
                        )
                    }
                    _ => false,
                }
            });
        }
        let mut granted = 1;
        while let Some(g) = asks.join_next().await {
            granted += usize::from(g.unwrap_or(false));
        }
        granted * 2 > voters.len()
    }

    /// Whether this node is handing its leadership over (see [`StoreRaft::hand_over`]).
    pub fn handing_over(&self) -> bool {
        self.handing_over.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// After [`StoreRaft::hand_over`]: waits (at most `within`) until another node leads or
    /// a later term began, while this node's uplink keeps uploading in its term (the
    /// cloud's term fence orders its batches before the successor's). Answers whether the
    /// successor showed up.
    pub async fn wait_for_successor(&self, within: std::time::Duration) -> bool {
        let mut m = self.raft.metrics();
        let term = m.borrow().current_term;
        let id = self.id;
        tokio::time::timeout(within, async {
            loop {
                {
                    let now = m.borrow_and_update();
                    if now.current_term > term || now.current_leader.is_some_and(|l| l != id) {
                        return;
                    }
                }
                if m.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }

    /// Before a planned stop: when this node leads, stops its heartbeats and proposals
    /// (each would renew the followers' lease) and asks the voter whose log matches its own
    /// furthest to campaign as soon as that lease (the longest election timeout since the
    /// last heartbeat) lets the followers vote: the store gets its next leader without
    /// waiting out an election timeout on top, and this node's uplink uploads until then
    /// (confirming nothing through Raft; the cloud's term fence orders its batches). The
    /// caller waits for the successor ([`StoreRaft::wait_for_successor`]), then shuts the
    /// node down. Answers the voter that accepted, if any (none: proposals resume).
    pub async fn hand_over(&self) -> Option<u64> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.id) {
            return None;
        }
        self.handing_over
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.raft.runtime_config().heartbeat(false);
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        let matched = m.replication.unwrap_or_default();
        let mut candidates: Vec<(Option<u64>, u64)> = voters
            .iter()
            .filter(|&&v| v != self.id)
            .map(|&v| (matched.get(&v).copied().flatten().map(|l| l.index), v))
            .collect();
        // Furthest matched log first (a candidate behind the others' logs loses the vote).
        candidates.sort_by(|a, b| b.cmp(a));
        // Past every follower's lease (the longest election timeout since the last
        // heartbeat), before any follower's own election timer (lease plus at least the
        // shortest timeout): the chosen voter campaigns first and wins in one round.
        let after_ms = self.timing.election_max_ms + self.timing.election_min_ms / 2;
        let body = encode(&RaftRpc::ElectNow { after_ms }).ok()?;
        for (_, target) in candidates {
            let call = (self.caller)(target, body.clone());
            let wait = std::time::Duration::from_millis(self.timing.election_min_ms);
            if let Ok(Ok(answer)) = tokio::time::timeout(wait, call).await
                && let Ok(RaftReply::ElectNow { accepted: true }) = decode(&answer)
            {
                tracing::info!(
                    target,
                    after_ms,
                    "leadership handed over for a planned stop"
                );
                return Some(target);
            }
        }
        self.handing_over
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.raft.runtime_config().heartbeat(true);
        None
    }

    /// Applies the bootstrap rule to the terminals seen (this one included): the lowest id
    /// initialises the group with all of them as voters. Returns whether this node did.
    pub async fn bootstrap(&self, seen: &[u64]) -> Result<bool, ConsensusError> {
        let lowest = seen
            .iter()
            .copied()
            .chain([self.id])
            .min()
            .unwrap_or(self.id);
        if lowest != self.id {
            return Ok(false);
        }
        let members: BTreeMap<u64, BasicNode> = seen
            .iter()
            .copied()
            .chain([self.id])
            .map(|t| (t, BasicNode::new(format!("t{t}"))))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => Ok(true),
            // Already part of a group (restart): never found a second one.
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The replicated store state as applied on this node.
    pub fn state(&self) -> StoreMachine {
        self.state.borrow().clone()
    }

    /// Watches the replicated store state as this node applies it.
    pub fn watch_state(&self) -> tokio::sync::watch::Receiver<StoreMachine> {
        self.state.clone()
    }

    /// The master data this till's state machine applied: versions and records, as one
    /// commit left them. Read from the database, off the async executor.
    pub async fn master_data(&self) -> Result<crate::storage::MasterData, ConsensusError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || crate::storage::master_data(&db))
            .await
            .map_err(|e| ConsensusError::Storage(e.to_string()))?
    }

    /// Whether this node is part of a group (has a membership).
    pub fn initialized(&self) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some()
    }

    /// Current voters.
    pub fn voters(&self) -> Vec<u64> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// The votes this node persisted since the last call (see [`crate::storage::VoteJournal`]).
    pub fn drain_votes(&self) -> Vec<crate::storage::PersistedVote> {
        self.journal.drain()
    }

    /// The term this node leads in, by its own metrics (none while it does not lead).
    pub fn leads(&self) -> Option<u64> {
        let m = self.raft.metrics().borrow().clone();
        (m.state == openraft::ServerState::Leader).then_some(m.current_term)
    }

    /// Who leads in which term, as this node knows it, and a way to wait for changes: the
    /// view the uplink and status need, without openraft's types.
    pub fn leadership(&self) -> LeadershipWatch {
        LeadershipWatch {
            id: self.id,
            metrics: self.raft.metrics(),
        }
    }

    /// Waits, at most `limit`, for this node's first entry of `term` (the blank entry a new
    /// leader appends) to be applied. That entry commits only once a quorum has accepted this
    /// node's lead in `term`, so seeing it applied confirms the lead as a heartbeat round
    /// would, one round sooner. Answers when it was seen, if it was seen happen while this
    /// node led in `term`; `None` when it was applied already when asked (that may be long
    /// ago), the lead was lost, or the limit passed.
    pub async fn term_begun(
        &self,
        term: u64,
        limit: std::time::Duration,
    ) -> Option<tokio::time::Instant> {
        let mut m = self.raft.metrics();
        let begun = |m: &openraft::RaftMetrics<u64, BasicNode>| {
            m.last_applied.is_some_and(|l| l.leader_id.term == term)
        };
        if begun(&m.borrow_and_update()) {
            return None;
        }
        let seen = async {
            loop {
                m.changed().await.ok()?;
                let now = m.borrow_and_update();
                if now.current_term != term || now.current_leader != Some(self.id) {
                    return None;
                }
                if begun(&now) {
                    return Some(tokio::time::Instant::now());
                }
            }
        };
        tokio::time::timeout(limit, seen).await.ok().flatten()
    }

    /// How long the lead counts as confirmed after [`StoreRaft::term_begun`] saw it: half
    /// the shortest election timeout. A follower that accepted the lead does not campaign
    /// before its election timeout, nor grant a vote within the leader's lease.
    pub fn begun_confirms_for(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timing.election_min_ms / 2)
    }

    /// Confirms with a quorum (one heartbeat round) that this node still leads.
    pub async fn confirm_leadership(&self) -> Result<(), ConsensusError> {
        // While handing over, the lead stands until a successor shows up (a confirmation
        // round would renew the followers' lease).
        if self.handing_over() {
            return if self.leads().is_some() {
                Ok(())
            } else {
                Err(ConsensusError::NotLeader { leader: None })
            };
        }
        self.raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::error::RaftError::APIError(
                    openraft::error::CheckIsLeaderError::ForwardToLeader(f),
                ) => ConsensusError::NotLeader {
                    leader: f.leader_id,
                },
                other => ConsensusError::Raft(other.to_string()),
            })
    }

    /// Current term.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// One round of the membership rule, given the tills this one is connected to: found the
    /// group (bootstrap rule) when no one seen is in one, or, on the leader, add one
    /// connected non-member (learner, then voter). Returns what it did, for logs.
    ///
    /// `store_tills` is how many tills the store has (0: unknown): when set, only a set of
    /// tills that is a majority of it founds, so two halves of a LAN split at boot cannot
    /// each found a group.
    pub async fn membership_round<T: RaftTransport>(
        &self,
        transport: &T,
        connected: &[u64],
        unreachable: &[u64],
        store_tills: usize,
    ) -> Result<&'static str, ConsensusError> {
        if self.handing_over() {
            return Ok("handing the leadership over");
        }
        if !self.initialized() {
            for &p in connected {
                if let Ok((true, _)) = crate::network::probe(transport, p).await {
                    return Ok("waiting to be added");
                }
            }
            if store_tills > 0 && (connected.len() + 1) * 2 <= store_tills {
                return Ok("waiting for a majority of the store's tills");
            }
            return Ok(if self.bootstrap(connected).await? {
                "founded the group"
            } else {
                "waiting for a lower terminal"
            });
        }
        if self.raft.current_leader().await != Some(self.id) {
            return Ok("follower");
        }
        let voters = self.voters();
        // A voter unreachable past the limit leaves, so the others keep a quorum; never this
        // node, never the last one.
        if let Some(&gone) = unreachable
            .iter()
            .find(|v| voters.contains(v) && **v != self.id)
            && voters.len() > 1
        {
            let rest: std::collections::BTreeSet<u64> =
                voters.into_iter().filter(|v| *v != gone).collect();
            self.raft
                .change_membership(rest, false)
                .await
                .map_err(write_error)?;
            return Ok("removed an unreachable voter");
        }
        let Some(&new) = connected.iter().find(|p| !voters.contains(p)) else {
            return Ok("leader, membership complete");
        };
        self.raft
            .add_learner(new, BasicNode::new(format!("t{new}")), true)
            .await
            .map_err(write_error)?;
        let all: std::collections::BTreeSet<u64> = voters.into_iter().chain([new]).collect();
        self.raft
            .change_membership(all, false)
            .await
            .map_err(write_error)?;
        Ok("added a voter")
    }

    /// The current leader, as this node knows it.
    pub async fn leader(&self) -> Option<u64> {
        self.raft.current_leader().await
    }

    /// Proposes a command (on the leader); answers once it is committed.
    pub async fn propose(&self, c: Command) -> Result<Applied, ConsensusError> {
        if self.handing_over() {
            return Err(ConsensusError::HandingOver);
        }
        self.raft
            .client_write(c)
            .await
            .map(|r| r.data)
            .map_err(write_error)
    }

    /// Stops the node.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// SplitMix64: a well-mixed number from `x` (the election driver's seeded draws).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
