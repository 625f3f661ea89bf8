//! Crafted events an enrolled peer sends (`FaultKind::Poison`): each passed the checks of
//! earlier versions and broke the tills that received it. A rogue till (terminal 91) sends
//! a counter entry past its bound, an HLC logical counter near `u32::MAX`, a price past the
//! cap and a customer change forged under terminal 90's automerge actor, right after
//! terminal 90's real change, among good stock receipts of terminal 90.

use tillmesh_crdt::{Hlc, PnCounter, ReplicaId};
use tillmesh_pos::customer::CustomerPatch;
use tillmesh_pos::event::{Event, EventBody};
use tillmesh_pos::inventory::Reason;
use tillmesh_pos::state::Replica;

/// The terminal whose real events travel with the forgeries.
const HONEST: u32 = 90;
/// The terminal that forges.
const ROGUE: u32 = 91;

/// The origin of the honest peer's events.
pub fn honest() -> ReplicaId {
    ReplicaId::for_terminal(HONEST, 1)
}

/// A customer edit made by replica `r` (its automerge actor), as its event.
pub fn customer_edit(r: &mut Replica, id: &str, name: &str, now: u64) -> Event {
    let me = r.id();
    let patch = CustomerPatch {
        name: Some(name.into()),
        ..Default::default()
    };
    let change = r.customers_mut().edit(me, id, &patch).unwrap_or_default();
    r.update_customer(id, change, now)
}

/// The `round`-th batch (each round's events follow the previous round's, as a peer's
/// sequence numbers do): `(honest, rogue)` replicas carry the sequence numbers across rounds.
pub fn batch(
    peers: &mut Option<(Replica, Replica)>,
    sku: &str,
    round: u64,
    now: u64,
) -> Vec<Event> {
    let (honest, rogue) = peers.get_or_insert_with(|| {
        (
            Replica::new(ReplicaId::for_terminal(HONEST, 1)),
            Replica::new(ReplicaId::for_terminal(ROGUE, 1)),
        )
    });
    let customer = format!("SIM-POISON-{round}");
    let mut events = vec![honest.adjust(sku, 3, Reason::Receiving, None, None, "E90", now)];
    let real = customer_edit(honest, &customer, "Ann", now);
    // The forgery: terminal 90's actor and sequence number, other content, in the rogue's
    // event (it parses, so the old check passed it).
    let mut twin = Replica::new(ReplicaId::for_terminal(HONEST, 1));
    for _ in 0..round {
        customer_edit(&mut twin, "SIM-TWIN", "x", now);
    }
    let stolen = customer_edit(&mut twin, &customer, "Eve", now);
    let mut forged = customer_edit(rogue, &customer, "Bob", now);
    if let (
        EventBody::CustomerUpdated { change: c, .. },
        EventBody::CustomerUpdated { change, .. },
    ) = (&mut forged.body, &stolen.body)
    {
        *c = change.clone();
    }
    let mut huge = rogue.adjust(sku, 1, Reason::Receiving, None, None, "E91", now);
    if let EventBody::InventoryAdjusted { counter, .. } = &mut huge.body {
        let mut c = PnCounter::new();
        c.increment(rogue.id(), u64::MAX - 3);
        *counter = c;
    }
    let mut logical = rogue.adjust(sku, 1, Reason::Receiving, None, None, "E91", now);
    logical.hlc = Hlc {
        wall_ms: now,
        logical: u32::MAX - 1,
        replica: rogue.id(),
    };
    let price = rogue.override_price(sku, i64::MAX, now, "E91", now);
    events.extend([real, forged, huge, logical, price]);
    events.push(honest.adjust(sku, 2, Reason::Receiving, None, None, "E90", now));
    events
}
