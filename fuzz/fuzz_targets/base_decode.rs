//! A peer's base (compacted state), as a till receives it: decoded, then merged into a
//! replica.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tillmesh_crdt::ReplicaId;
use tillmesh_pos::state::{Base, Replica};

mod guard;

fuzz_target!(init: guard::tolerate_caught_automerge_panics(), |data: &[u8]| {
    let Ok(base) = Base::decode(data) else { return };
    let mut replica = Replica::new(ReplicaId::for_terminal(1, 7));
    let _ = replica.merge_base(&base, 1_796_000_000_000);
});
