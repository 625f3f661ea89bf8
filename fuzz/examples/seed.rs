//! Writes the seed corpora (`cargo run --example seed` in `fuzz/`): a peer's batch of
//! events as a mesh frame (unsealed and sealed), its key records, a base, and an upload
//! batch in both encodings.

use std::path::Path;
use tillmesh_cloud_proto::{Batch, StoreEvent, encode_batch};
use tillmesh_crdt::ReplicaId;
use tillmesh_mesh::identity::{TillIdentity, create_store_ca, enroll};
use tillmesh_mesh::seal::Sealer;
use tillmesh_mesh::wire::{Frame, PROTOCOL_VERSION, encode};
use tillmesh_pos::inventory::Reason;
use tillmesh_pos::state::{Compaction, Replica};

fn write(dir: &str, name: &str, bytes: &[u8]) {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(dir);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), bytes).unwrap();
}

fn main() {
    let now = 1_796_000_000_000;
    let origin = ReplicaId::for_terminal(2, 9);
    let mut peer = Replica::new(origin);
    let mut events: Vec<_> = (0..3)
        .map(|i| peer.adjust("SKU00001", 5 + i, Reason::Receiving, None, None, "E1", now))
        .collect();
    // Frame bodies: the target decodes what follows the 4-byte length prefix.
    write(
        "mesh_frame",
        "events",
        &encode(&Frame::Events(events.clone()))[4..],
    );
    // Sealed by till 2 of a store CA made here, with its key record.
    let ca = create_store_ca("S001").unwrap();
    let id = TillIdentity::from_pem("S001", &ca.cert, &enroll(&ca, "S001", 2).unwrap()).unwrap();
    let sealer = Sealer::new(&id, origin.0).unwrap();
    for e in &mut events {
        e.sig = sealer.seal(e);
    }
    let keys = vec![sealer.record(1).unwrap()];
    write(
        "mesh_frame",
        "sealed",
        &encode(&Frame::events(PROTOCOL_VERSION, events.clone()))[4..],
    );
    write(
        "mesh_frame",
        "keys",
        &encode(&Frame::Keys(keys.clone()))[4..],
    );
    write("mesh_frame", "probe", &encode(&Frame::Probe)[4..]);
    write(
        "base_decode",
        "base",
        &peer.base(Compaction::default()).encode().unwrap(),
    );
    let batch = Batch {
        term: 3,
        leader: 2,
        master_version: 1,
        backlog: 0,
        tills: vec![1, 2],
        events: events
            .into_iter()
            .map(|event| StoreEvent {
                store: "S001".into(),
                event,
            })
            .collect(),
        sealing: tillmesh_cloud_proto::Sealing {
            keys,
            ..Default::default()
        },
    };
    write("cloud_batch", "binary", &encode_batch(&batch).unwrap());
    write(
        "cloud_batch",
        "json",
        serde_json::to_string(&batch).unwrap().as_bytes(),
    );
}
