//! An upload batch as the cloud receives it: the compact binary encoding and JSON, each
//! decoded and every event put through the validator the cloud's ingest runs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tillmesh_cloud_proto::{Batch, decode_batch};

fuzz_target!(|data: &[u8]| {
    let batches = [
        decode_batch(data).ok(),
        serde_json::from_slice::<Batch>(data).ok(),
    ];
    for b in batches.into_iter().flatten() {
        for e in &b.events {
            let _ = e.event.check();
        }
    }
});
