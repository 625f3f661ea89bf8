//! A mesh frame as a peer sends it: decoded; key records admitted to a keyring; a batch of
//! events checked for seals, put through the remote-event validator and applied to a
//! replica the way a till applies them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tillmesh_crdt::ReplicaId;
use tillmesh_mesh::wire::{Frame, decode};
use tillmesh_pos::seal::Keyring;
use tillmesh_pos::state::Replica;

const NOW_MS: u64 = 1_796_000_000_000;

mod guard;

/// A store CA's keyring, as a till starts with (made once: key generation is slow).
fn keyring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| {
        use tillmesh_mesh::identity::{TillIdentity, create_store_ca, enroll};
        let ca = create_store_ca("S001").expect("a CA");
        let till = enroll(&ca, "S001", 1).expect("a till");
        let id = TillIdentity::from_pem("S001", &ca.cert, &till).expect("an identity");
        Keyring::new("S001", id.ca_der().as_ref()).expect("the CA parses")
    })
}

fuzz_target!(init: guard::tolerate_caught_automerge_panics(), |data: &[u8]| {
    let Ok(frame) = decode(data) else { return };
    if let Frame::Keys(records) = &frame {
        let mut ring = keyring().clone();
        for r in records {
            let _ = ring.admit(r);
        }
        return;
    }
    if let Some(events) = frame.into_events() {
        // Seals first, as a till checks them; then the validator and apply.
        let ring = keyring();
        let events: Vec<_> = events.into_iter().filter(|e| ring.check(e).is_ok()).collect();
        let mut replica = Replica::new(ReplicaId::for_terminal(1, 7));
        let verdicts = replica.state().admit_all(&events);
        for (e, v) in events.iter().zip(verdicts) {
            if v.is_ok() && replica.apply_remote(e, NOW_MS).is_err() {
                replica.apply_skewed(e);
            }
        }
        let _ = replica.state().vv.clone();
    }
});
