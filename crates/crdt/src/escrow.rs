//! Bounded counter (escrow): a balance that never goes below zero across replicas that
//! cannot always talk (Balegas et al., "Extending Eventually Consistent Cloud Databases for
//! Enforcing Numeric Invariants", SRDS 2015). The right to decrement is split among the
//! replicas: each spends only rights it holds, and moves rights to another replica when
//! they can talk. A gift card's balance, a customer's store credit or loyalty points, a
//! single-use coupon (a balance of 1) and a promotion's cap are each one such counter.
//!
//! State, each part written only by the replica it is keyed by, so merging is a per-entry
//! maximum (a join):
//! - `created[r]`: rights `r` created (an activation, a top-up, a refund to credit);
//! - `moved[(from, to)]`: rights `from` handed to `to`;
//! - `spent[r]`: rights `r` consumed (redemptions).
//!
//! `rights(r) = created[r] + Σ moved[(·, r)] − Σ moved[(r, ·)] − spent[r]`. A replica always
//! knows its own outgoing entries exactly and may lag on incoming ones, so its own view of
//! its rights is never more than the truth: spending within it keeps
//! `Σ spent ≤ Σ created` in every merge of every replica's state.

use crate::{Crdt, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A replica asked to spend or move more rights than it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("only {held} held here (asked {asked})")]
pub struct ShortOfRights {
    /// Rights this replica holds.
    pub held: u64,
    /// What was asked.
    pub asked: u64,
}

/// A counter whose value never goes below zero (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundedCounter {
    #[serde(with = "crate::serde_pairs")]
    created: BTreeMap<ReplicaId, u64>,
    #[serde(with = "crate::serde_pairs")]
    moved: BTreeMap<(ReplicaId, ReplicaId), u64>,
    #[serde(with = "crate::serde_pairs")]
    spent: BTreeMap<ReplicaId, u64>,
}

impl BoundedCounter {
    /// A zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The balance: everything created less everything spent (never negative while every
    /// replica spends within its rights; clamped at zero otherwise).
    pub fn value(&self) -> u64 {
        let created: u128 = self.created.values().map(|&v| u128::from(v)).sum();
        let spent: u128 = self.spent.values().map(|&v| u128::from(v)).sum();
        u64::try_from(created.saturating_sub(spent)).unwrap_or(u64::MAX)
    }

    /// Everything spent, by every replica.
    pub fn spent_total(&self) -> u64 {
        let spent: u128 = self.spent.values().map(|&v| u128::from(v)).sum();
        u64::try_from(spent).unwrap_or(u64::MAX)
    }

    /// Everything created (the counter's lifetime total, for reports).
    pub fn created_total(&self) -> u64 {
        let created: u128 = self.created.values().map(|&v| u128::from(v)).sum();
        u64::try_from(created).unwrap_or(u64::MAX)
    }

    /// Every entry, to store it elsewhere (a report database): `('c', r, r, v)` created at
    /// `r`, `('m', from, to, v)` moved, `('s', r, r, v)` spent. Each merges by maximum.
    pub fn entries(&self) -> Vec<(char, ReplicaId, ReplicaId, u64)> {
        let created = self.created.iter().map(|(&r, &v)| ('c', r, r, v));
        let moved = self.moved.iter().map(|(&(a, b), &v)| ('m', a, b, v));
        let spent = self.spent.iter().map(|(&r, &v)| ('s', r, r, v));
        created.chain(moved).chain(spent).collect()
    }

    /// The rights `r` holds, as this replica knows them.
    pub fn rights(&self, r: ReplicaId) -> u64 {
        let mut have = i128::from(self.created.get(&r).copied().unwrap_or(0));
        for (&(from, to), &v) in &self.moved {
            if to == r && from != r {
                have = have.saturating_add(i128::from(v));
            }
            if from == r && to != r {
                have = have.saturating_sub(i128::from(v));
            }
        }
        have = have.saturating_sub(i128::from(self.spent.get(&r).copied().unwrap_or(0)));
        u64::try_from(have.max(0)).unwrap_or(u64::MAX)
    }

    /// Every replica that holds rights, with how many.
    pub fn holders(&self) -> Vec<(ReplicaId, u64)> {
        let mut ids: Vec<ReplicaId> = self
            .created
            .keys()
            .copied()
            .chain(self.moved.keys().flat_map(|&(a, b)| [a, b]))
            .chain(self.spent.keys().copied())
            .collect();
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .map(|r| (r, self.rights(r)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Creates `by` rights at `r` (the balance grows by `by`); returns the delta.
    pub fn increment(&mut self, r: ReplicaId, by: u64) -> BoundedCounter {
        let e = self.created.entry(r).or_insert(0);
        *e = e.saturating_add(by);
        let mut d = BoundedCounter::new();
        d.created.insert(r, *e);
        d
    }

    /// Spends `by` of `r`'s rights (the balance shrinks by `by`); refused, changing nothing,
    /// when `r` holds fewer.
    pub fn decrement(&mut self, r: ReplicaId, by: u64) -> Result<BoundedCounter, ShortOfRights> {
        let held = self.rights(r);
        if by > held {
            return Err(ShortOfRights { held, asked: by });
        }
        let e = self.spent.entry(r).or_insert(0);
        *e = e.saturating_add(by);
        let mut d = BoundedCounter::new();
        d.spent.insert(r, *e);
        Ok(d)
    }

    /// Moves `by` of `from`'s rights to `to`; refused, changing nothing, when `from` holds
    /// fewer (only `from` may move its rights, so only `from` calls this).
    pub fn transfer(
        &mut self,
        from: ReplicaId,
        to: ReplicaId,
        by: u64,
    ) -> Result<BoundedCounter, ShortOfRights> {
        let held = self.rights(from);
        if by > held {
            return Err(ShortOfRights { held, asked: by });
        }
        let mut d = BoundedCounter::new();
        if from == to || by == 0 {
            return Ok(d);
        }
        let e = self.moved.entry((from, to)).or_insert(0);
        *e = e.saturating_add(by);
        d.moved.insert((from, to), *e);
        Ok(d)
    }

    /// The largest entry (what an event check bounds).
    pub fn max_entry(&self) -> u64 {
        self.created
            .values()
            .chain(self.moved.values())
            .chain(self.spent.values())
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// Whether every entry of this (delta) was written by `r`: a replica's events may carry
    /// only its own entries.
    pub fn only_by(&self, r: ReplicaId) -> bool {
        self.created.keys().all(|k| *k == r)
            && self.spent.keys().all(|k| *k == r)
            && self.moved.keys().all(|(from, _)| *from == r)
    }
}

impl Crdt for BoundedCounter {
    fn merge(&mut self, other: &Self) {
        for (k, v) in &other.created {
            let e = self.created.entry(*k).or_insert(0);
            *e = (*e).max(*v);
        }
        for (k, v) in &other.moved {
            let e = self.moved.entry(*k).or_insert(0);
            *e = (*e).max(*v);
        }
        for (k, v) in &other.spent {
            let e = self.spent.entry(*k).or_insert(0);
            *e = (*e).max(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    #[test]
    fn a_replica_spends_only_the_rights_it_holds() {
        let mut a = BoundedCounter::new();
        let d = a.increment(A, 100);
        let mut b = BoundedCounter::new();
        b.merge(&d);
        // B sees the balance but holds no rights: it cannot spend until A moves some.
        assert_eq!((b.value(), b.rights(B)), (100, 0));
        assert_eq!(b.decrement(B, 1), Err(ShortOfRights { held: 0, asked: 1 }));
        let moved = a.transfer(A, B, 30).unwrap();
        b.merge(&moved);
        assert_eq!((a.rights(A), b.rights(B)), (70, 30));
        let spent = b.decrement(B, 30).unwrap();
        assert!(b.decrement(B, 1).is_err());
        a.merge(&spent);
        assert_eq!((a.value(), b.value()), (70, 70));
        // Both sides of a split spend all they hold, and no more: the balance reaches zero.
        let s1 = a.decrement(A, 70).unwrap();
        assert!(a.decrement(A, 1).is_err());
        b.merge(&s1);
        assert_eq!(b.value(), 0);
        assert!(a.transfer(A, B, 1).is_err());
    }

    #[test]
    fn deltas_carry_absolute_entries_and_only_their_writer() {
        let mut a = BoundedCounter::new();
        let d1 = a.increment(A, 5);
        let d2 = a.transfer(A, B, 2).unwrap();
        let mut b = BoundedCounter::new();
        b.merge(&d2);
        b.merge(&d1);
        b.merge(&d2);
        assert_eq!((b.rights(A), b.rights(B), b.value()), (3, 2, 5));
        assert!(d2.only_by(A) && !d2.only_by(B));
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<BoundedCounter>(&json).unwrap(), b);
    }
}
