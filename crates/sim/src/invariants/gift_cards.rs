//! Stored value (escrow): on every till and in the cloud's reports, no gift card, store
//! credit or coupon has more spent than was loaded on it (its balance never goes below zero;
//! a coupon is used at most once), and every acknowledged tender is counted in the
//! account's spending (none lost). Also
//! reports how many gift card and store credit tenders were refused for lack of rights at
//! the till (rights should follow demand: a figure to keep low), and the coupons' fate.

use super::{Evidence, Verdict};
use std::collections::BTreeMap;

/// Checks it.
pub fn check(e: &Evidence) -> Verdict {
    let mut acked: BTreeMap<&str, i64> = BTreeMap::new();
    for (card, amount, _) in &e.acked.gift_spent {
        *acked.entry(card.as_str()).or_default() += amount;
    }
    let mut wrong = Vec::new();
    for (id, t) in &e.tills {
        for (card, c) in &t.state.gift_cards {
            let (created, spent) = (c.created_total(), c.spent_total());
            if spent > created {
                wrong.push(format!(
                    "T{id} {card}: {spent} spent of {created} loaded (below zero)"
                ));
            }
            let want = acked.get(card.as_str()).copied().unwrap_or(0).max(0) as u64;
            if spent < want {
                wrong.push(format!(
                    "T{id} {card}: {spent} spent, but {want} was acknowledged (a tender lost)"
                ));
            }
            if let Some(&loaded) = e.acked.gift_loaded.get(card)
                && created < loaded.max(0) as u64
            {
                wrong.push(format!(
                    "T{id} {card}: {created} loaded, {loaded} acknowledged"
                ));
            }
        }
        for card in e.acked.gift_loaded.keys() {
            if !t.state.gift_cards.contains_key(card) {
                wrong.push(format!("T{id} never saw account {card}"));
            }
        }
    }
    // The cloud, once everything is uploaded: the same accounts, none below zero, every
    // acknowledged tender counted.
    for (card, &(loaded, spent)) in &e.cloud.balances {
        if spent > loaded {
            wrong.push(format!(
                "cloud {card}: {spent} spent of {loaded} loaded (below zero)"
            ));
        }
        let want = acked.get(card.as_str()).copied().unwrap_or(0);
        if spent < want {
            wrong.push(format!(
                "cloud {card}: {spent} spent, but {want} was acknowledged (a tender lost)"
            ));
        }
    }
    for card in e.acked.gift_loaded.keys() {
        if !e.cloud.balances.contains_key(card) {
            wrong.push(format!("the cloud never saw account {card}"));
        }
    }
    let (tried, refused) = (e.acked.gift_tried, e.acked.gift_refused);
    let share = if tried == 0 {
        0.0
    } else {
        refused as f64 * 100.0 / tried as f64
    };
    Verdict::new(
        "gift_cards_never_below_zero_nor_lost",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!(
                "{} accounts (the cloud: {}), {} tenders acknowledged ({} minor units); gift card and store credit: {refused} of {tried} tried refused for lack of rights at the till ({share:.1}%); tried {:?}, refused {:?}",
                e.acked.gift_loaded.len(),
                e.cloud.balances.len(),
                e.acked.gift_spent.len(),
                acked.values().sum::<i64>(),
                e.acked.tried_by_kind,
                e.acked.refused_by_kind,
            )
        } else {
            wrong.into_iter().take(5).collect::<Vec<_>>().join("; ")
        },
    )
}
