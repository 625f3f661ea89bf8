//! A mesh frame as a peer sends it: decoded, and a batch of events put through the
//! remote-event validator and applied to a replica the way a till applies them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tillmesh_crdt::ReplicaId;
use tillmesh_mesh::wire::{Frame, decode};
use tillmesh_pos::state::Replica;

const NOW_MS: u64 = 1_796_000_000_000;

mod guard;

fuzz_target!(init: guard::tolerate_caught_automerge_panics(), |data: &[u8]| {
    let Ok(frame) = decode(data) else { return };
    if let Frame::Events(events) = frame {
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
