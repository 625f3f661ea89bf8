//! Events a peer can craft that pass the old checks but broke every till that received them
//! (issue 17): each must be refused by the validator, and none may panic a till that holds
//! it (an event stored by an earlier version is replayed at every start).

use tillmesh_crdt::{Hlc, PnCounter, ReplicaId};
use tillmesh_pos::customer::CustomerPatch;
use tillmesh_pos::event::{EventBody, EventError};
use tillmesh_pos::inventory::Reason;
use tillmesh_pos::state::Replica;

fn edit(r: &mut Replica, id: &str, name: &str, now: u64) -> tillmesh_pos::event::Event {
    let me = r.id();
    let patch = CustomerPatch {
        name: Some(name.into()),
        ..Default::default()
    };
    let change = r.customers_mut().edit(me, id, &patch).unwrap();
    r.update_customer(id, change, now)
}

/// Till 2 forges a customer change under till 1's automerge actor and sequence number, with
/// other content: it parses, so `Event::check` passed it, but it cannot apply after till 1's
/// real change.
fn forged_customer_change() -> (tillmesh_pos::event::Event, tillmesh_pos::event::Event) {
    let mut t1 = Replica::new(ReplicaId(1));
    let real = edit(&mut t1, "C1", "Ann", 1_000);
    let mut twin = Replica::new(ReplicaId(1));
    let stolen = edit(&mut twin, "C1", "Eve", 1_000);
    let mut t2 = Replica::new(ReplicaId(2));
    let mut forged = edit(&mut t2, "C1", "Bob", 1_000);
    let EventBody::CustomerUpdated { change, .. } = &stolen.body else {
        unreachable!()
    };
    if let EventBody::CustomerUpdated { change: c, .. } = &mut forged.body {
        *c = change.clone();
    }
    (real, forged)
}

#[test]
fn a_customer_change_that_cannot_apply_is_refused_and_never_panics() {
    let (real, forged) = forged_customer_change();
    assert!(
        forged.check().is_ok(),
        "it parses: the stateless check passes it"
    );
    let mut t3 = Replica::new(ReplicaId(3));
    t3.apply_remote(&real, 2_000).unwrap();
    assert!(
        matches!(t3.state().admit(&forged), Err(EventError::Customer(_))),
        "the validator dry-runs the change against the customer's document"
    );
    // A till that stored it anyway (an earlier version) replays it without panicking.
    t3.apply_remote(&forged, 2_000).unwrap();
    assert_eq!(
        t3.state().customers.get("C1").unwrap().name.as_deref(),
        Some("Ann")
    );
    let replayed = Replica::restore(ReplicaId(3), [&real, &forged]);
    assert!(replayed.state().holds(ReplicaId(2), 1));
}

#[test]
fn an_hlc_logical_counter_near_its_limit_is_refused_and_never_panics_a_tick() {
    let mut t1 = Replica::new(ReplicaId(1));
    let mut e = t1.adjust("SKU1", 5, Reason::Manual, None, None, "E1", 10_000);
    e.hlc = Hlc {
        wall_ms: 10_000,
        logical: u32::MAX - 1,
        replica: ReplicaId(1),
    };
    assert!(
        e.check().is_err(),
        "a logical counter near u32::MAX is refused"
    );
    // A till that observed it anyway keeps stamping (no overflow panic).
    let mut t2 = Replica::new(ReplicaId(2));
    t2.apply_remote(&e, 10_000).unwrap();
    let a = t2.adjust("SKU1", 1, Reason::Manual, None, None, "E1", 10_000);
    let b = t2.adjust("SKU1", 1, Reason::Manual, None, None, "E1", 10_000);
    assert!(e.hlc < a.hlc && a.hlc < b.hlc);
}

#[test]
fn a_counter_entry_near_u64_max_is_refused_and_values_never_panic() {
    let mut t1 = Replica::new(ReplicaId(1));
    let mut e = t1.adjust("SKU1", 5, Reason::Manual, None, None, "E1", 10_000);
    if let EventBody::InventoryAdjusted { counter, .. } = &mut e.body {
        let mut forged = PnCounter::new();
        forged.increment(ReplicaId(1), u64::MAX - 3);
        *counter = forged;
    }
    assert!(
        e.check().is_err(),
        "a counter entry past the bound is refused"
    );
    // Totals past i64 saturate rather than panic.
    let mut big = PnCounter::new();
    big.increment(ReplicaId(1), u64::MAX - 3);
    big.increment(ReplicaId(2), u64::MAX - 3);
    assert_eq!(big.value(), i64::MAX);
    let mut neg = PnCounter::new();
    neg.decrement(ReplicaId(1), u64::MAX);
    assert_eq!(neg.value(), i64::MIN);
    neg.decrement(ReplicaId(1), 5);
}
