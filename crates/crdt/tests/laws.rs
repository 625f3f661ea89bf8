//! Property tests: the join laws for every CRDT, and convergence of N replicas under
//! arbitrary reordering, duplication and re-delivery of deltas.

use proptest::prelude::*;
use tillmesh_crdt::{Crdt, Hlc, HlcClock, LwwMap, LwwRegister, OrSet, PnCounter, ReplicaId};

const REPLICAS: u64 = 4;

/// One operation issued at replica `at`.
#[derive(Clone, Debug)]
enum Op {
    Count(i64),
    SetAdd(u8),
    SetRemove(u8),
    Reg(i64),
    MapPut(u8, i64),
    MapDel(u8),
    /// Deliver a random pending delta to this replica (interleaves delivery with updates).
    Sync(usize),
}

fn op() -> impl Strategy<Value = (u64, Op)> {
    (
        0..REPLICAS,
        prop_oneof![
            (-50_i64..50).prop_map(Op::Count),
            (0_u8..6).prop_map(Op::SetAdd),
            (0_u8..6).prop_map(Op::SetRemove),
            any::<i64>().prop_map(Op::Reg),
            ((0_u8..4), any::<i64>()).prop_map(|(k, v)| Op::MapPut(k, v)),
            (0_u8..4).prop_map(Op::MapDel),
            any::<usize>().prop_map(Op::Sync),
        ],
    )
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Replica {
    counter: PnCounter,
    set: OrSet<u8>,
    reg: LwwRegister<i64>,
    map: LwwMap<u8, i64>,
}

#[derive(Clone, Debug)]
enum Delta {
    Counter(PnCounter),
    Set(OrSet<u8>),
    Reg(LwwRegister<i64>),
    Map(LwwMap<u8, i64>),
}

impl Replica {
    fn apply(&mut self, d: &Delta) {
        match d {
            Delta::Counter(x) => self.counter.merge(x),
            Delta::Set(x) => self.set.merge(x),
            Delta::Reg(x) => self.reg.merge(x),
            Delta::Map(x) => self.map.merge(x),
        }
    }
}

/// Runs the ops, returning the replicas (which saw only some deltas) and every delta made.
fn run(ops: &[(u64, Op)]) -> (Vec<Replica>, Vec<Delta>, i64) {
    let mut reps = vec![Replica::default(); REPLICAS as usize];
    let mut clocks: Vec<HlcClock> = (0..REPLICAS)
        .map(|r| HlcClock::new(ReplicaId(r), u64::MAX / 4))
        .collect();
    let mut deltas = Vec::new();
    let mut expected_count = 0;
    for (i, (at, op)) in ops.iter().enumerate() {
        let r = ReplicaId(*at);
        let idx = *at as usize;
        // Wall clocks that disagree between replicas (skew) but all move forward.
        let now = i as u64 * 3 + (*at * 7) % 5;
        let d = match op {
            Op::Count(c) => {
                expected_count += c;
                Delta::Counter(reps[idx].counter.apply(r, *c))
            }
            Op::SetAdd(e) => Delta::Set(reps[idx].set.add(r, *e)),
            Op::SetRemove(e) => Delta::Set(reps[idx].set.remove(e)),
            Op::Reg(v) => Delta::Reg(reps[idx].reg.set(*v, clocks[idx].tick(now))),
            Op::MapPut(k, v) => Delta::Map(reps[idx].map.insert(*k, *v, clocks[idx].tick(now))),
            Op::MapDel(k) => Delta::Map(reps[idx].map.remove(*k, clocks[idx].tick(now))),
            Op::Sync(pick) => {
                if deltas.is_empty() {
                    continue;
                }
                let d: &Delta = &deltas[pick % deltas.len()];
                let d = d.clone();
                reps[idx].apply(&d);
                // A merge may be observed by the clock as well, like a real till would.
                if let Delta::Reg(reg) = &d
                    && let Some(s) = reg.stamp()
                {
                    let _ = clocks[idx].observe(s, now + 1_000_000);
                }
                continue;
            }
        };
        deltas.push(d);
    }
    (reps, deltas, expected_count)
}

fn full_state(ops: &[(u64, Op)]) -> Replica {
    let (reps, _, _) = run(ops);
    let mut acc = Replica::default();
    for r in &reps {
        acc.counter.merge(&r.counter);
        acc.set.merge(&r.set);
        acc.reg.merge(&r.reg);
        acc.map.merge(&r.map);
    }
    acc
}

fn merged(a: &Replica, b: &Replica) -> Replica {
    let mut x = a.clone();
    x.counter.merge(&b.counter);
    x.set.merge(&b.set);
    x.reg.merge(&b.reg);
    x.map.merge(&b.map);
    x
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every replica that receives every delta, in any order, any number of times, ends in
    /// the same state, and the counter equals the sum of all increments.
    #[test]
    fn replicas_converge_under_reorder_and_duplication(
        ops in proptest::collection::vec(op(), 1..60),
        orders in proptest::collection::vec(proptest::collection::vec(any::<usize>(), 0..40), REPLICAS as usize),
    ) {
        let (mut reps, deltas, expected) = run(&ops);
        for (i, rep) in reps.iter_mut().enumerate() {
            // Random re-deliveries first (duplicates, arbitrary order) ...
            for pick in &orders[i] {
                if !deltas.is_empty() {
                    rep.apply(&deltas[pick % deltas.len()]);
                }
            }
            // ... then every delta at least once, in a replica-specific rotation.
            let n = deltas.len();
            for j in 0..n {
                rep.apply(&deltas[(j + i * 7) % n]);
            }
        }
        for r in &reps[1..] {
            prop_assert_eq!(r, &reps[0]);
        }
        prop_assert_eq!(reps[0].counter.value(), expected);
    }

    #[test]
    fn merge_is_commutative(a in proptest::collection::vec(op(), 0..30), b in proptest::collection::vec(op(), 0..30)) {
        let (sa, sb) = (full_state(&a), full_state(&b));
        prop_assert_eq!(merged(&sa, &sb), merged(&sb, &sa));
    }

    #[test]
    fn merge_is_associative(
        a in proptest::collection::vec(op(), 0..20),
        b in proptest::collection::vec(op(), 0..20),
        c in proptest::collection::vec(op(), 0..20),
    ) {
        let (sa, sb, sc) = (full_state(&a), full_state(&b), full_state(&c));
        prop_assert_eq!(merged(&merged(&sa, &sb), &sc), merged(&sa, &merged(&sb, &sc)));
    }

    #[test]
    fn merge_is_idempotent(a in proptest::collection::vec(op(), 0..40)) {
        let (reps, deltas, _) = run(&a);
        for r in &reps {
            prop_assert_eq!(&merged(r, r), r);
            let mut once = r.clone();
            for d in &deltas { once.apply(d); }
            let mut twice = once.clone();
            for d in &deltas { twice.apply(d); }
            prop_assert_eq!(once, twice);
        }
    }

    #[test]
    fn hlc_stamps_are_unique_and_monotonic(nows in proptest::collection::vec(0_u64..1000, 1..200)) {
        let mut c = HlcClock::new(ReplicaId(3), 10_000);
        let mut last = Hlc::default();
        for now in nows {
            let s = c.tick(now);
            prop_assert!(s > last);
            last = s;
        }
    }

    #[test]
    fn serde_round_trip(a in proptest::collection::vec(op(), 0..40)) {
        let s = full_state(&a);
        let json = serde_json::to_string(&(&s.counter, &s.set, &s.reg, &s.map)).unwrap();
        let back: (PnCounter, OrSet<u8>, LwwRegister<i64>, LwwMap<u8, i64>) = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, (s.counter, s.set, s.reg, s.map));
    }
}

proptest! {
    /// A state read back from its serialised form (which drops the OR-set's dot index)
    /// merges exactly like the original.
    #[test]
    fn merge_after_serde_round_trip_matches(a in proptest::collection::vec(op(), 0..40), b in proptest::collection::vec(op(), 0..40)) {
        let (sa, sb) = (full_state(&a), full_state(&b));
        let json = serde_json::to_string(&sa.set).unwrap();
        let mut back: OrSet<u8> = serde_json::from_str(&json).unwrap();
        back.merge(&sb.set);
        let mut direct = sa.set.clone();
        direct.merge(&sb.set);
        prop_assert_eq!(back, direct);
    }
}
