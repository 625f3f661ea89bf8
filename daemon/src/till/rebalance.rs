//! Idle rights spread out: a till holding rights to a gift card or store credit that it has
//! not used for [`IDLE_MS`] hands what it holds over a fair share (the balance split evenly
//! among itself and the peers it hears from) to the reachable tills holding under half of
//! theirs, before a split can strand them on one side. It moves only its own rights (the
//! escrow rule), and only to a peer's current incarnation (the newest events received from
//! that terminal, or the only one whose events this till holds), never to one that left; a
//! till that never wrote an event gets nothing until it does. Coupons stay whole: one tender spends them.
//! Asks (`giftcard.rs`) still serve a till short at the moment of a sale.

use super::giftcard::reserved;
use super::*;
use tracing::debug;

/// Rights untouched this long at a till are idle (ms).
pub const IDLE_MS: u64 = 15_000;
/// A peer heard from within this long counts as reachable (ms).
const REACHABLE_MS: u64 = 10_000;
/// Most moves per round.
const MOVES_MAX: usize = 64;

/// The moves one round makes: (account, to, amount).
fn plan(core: &Core, peers: &[ReplicaId], now: u64) -> Vec<(String, ReplicaId, u64)> {
    let me = core.replica.id();
    let n = peers.len() as u64 + 1;
    let recent = |m: &HashMap<String, u64>, a: &str| {
        m.get(a).is_some_and(|at| now.saturating_sub(*at) < IDLE_MS)
    };
    let mut moves = Vec::new();
    for (account, c) in &core.replica.state().gift_cards {
        if moves.len() >= MOVES_MAX {
            break;
        }
        if account.starts_with("coupon:")
            || recent(&core.used, account)
            || recent(&core.asked, account)
        {
            continue;
        }
        let spare = c.rights(me).saturating_sub(reserved(&core.drafts, account));
        let fair = c.value() / n;
        // Hysteresis: give only from over one and a half shares, to a till under half of one.
        if fair == 0 || spare <= fair.saturating_add(fair / 2) {
            continue;
        }
        let mut excess = spare - fair;
        let mut short: Vec<(u64, ReplicaId)> = peers
            .iter()
            .map(|r| (c.rights(*r), *r))
            .filter(|(held, _)| *held < fair / 2)
            .collect();
        short.sort();
        for (held, to) in short {
            let give = excess.min(fair - held);
            if give == 0 || moves.len() >= MOVES_MAX {
                break;
            }
            moves.push((account.clone(), to, give));
            excess -= give;
        }
    }
    moves
}

/// The one incarnation of terminal `t` whose events this till holds, if there is exactly
/// one (a till that never wrote an event, or wrote as two, gets nothing until it is heard).
fn only_incarnation(core: &Core, t: u64) -> Option<ReplicaId> {
    let mut of_t = core
        .replica
        .state()
        .vv
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.terminal() == t);
    let first = of_t.next()?;
    of_t.next().is_none().then_some(first)
}

impl Till {
    /// One round of spreading idle rights (see the module docs); the moves written.
    pub async fn spread_idle_rights(&self) -> Result<usize, TillError> {
        // Nothing to spread (most stores, most of the time): no peer list, no scan.
        if self.core().replica.state().gift_cards.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        // The mesh's peer list reads the version vector, which takes the core lock: read it
        // before taking that lock here.
        let heard: Vec<u64> = self
            .links
            .peers()
            .into_iter()
            .filter(|p| now.saturating_sub(p.last_contact_ms) <= REACHABLE_MS)
            .map(|p| p.terminal)
            .collect();
        let peers: Vec<ReplicaId> = {
            let core = self.core();
            heard
                .iter()
                .filter_map(|t| {
                    core.live
                        .get(t)
                        .copied()
                        .or_else(|| only_incarnation(&core, *t))
                })
                .filter(|r| *r != core.replica.id())
                .collect()
        };
        if peers.is_empty() || plan(&self.core(), &peers, now).is_empty() {
            return Ok(0);
        }
        let rx = {
            let (mut core, slot) = self.core_for_write()?;
            let mut events = Vec::new();
            for (account, to, amount) in plan(&core, &peers, now) {
                let amount = i64::try_from(amount).unwrap_or(i64::MAX);
                if let Ok(e) = core
                    .replica
                    .move_gift_card_rights(&account, to, amount, now)
                {
                    debug!(account, %to, amount, "idle rights spread");
                    events.push(e);
                }
            }
            self.submit_moves(slot, events)?
        };
        self.durable_moves(rx).await
    }
}
