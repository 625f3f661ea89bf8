//! Compatibility fixtures (issue 20): what each release wrote, decoded and opened by this
//! build, forever. `tests/fixtures/<release>/` holds a release's encoded mesh frames (events
//! of every kind it knew), a base, a cloud batch, and small till, Raft and cloud databases;
//! every test run reads every release's folder. `TILLMESH_WRITE_FIXTURES=1` writes the
//! current release's folder (run once, at the release, and committed).

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::{TestTill, demo_barcode};
use tillmesh_cloud_proto::{Batch, StoreEvent, decode_batch, encode_batch};
use tillmesh_consensus::node::{StoreRaft, Timing};
use tillmesh_consensus::{Command, network::RaftTransport};
use tillmesh_crdt::{ReplicaId, VersionVector};
use tillmesh_mesh::wire::{self, Frame};
use tillmesh_pos::event::{Event, EventBody, KINDS};
use tillmesh_pos::inventory::Reason;
use tillmesh_pos::state::{Base, Compaction, Replica};

/// The release whose folder `TILLMESH_WRITE_FIXTURES=1` writes.
const RELEASE: &str = concat!("v", env!("CARGO_PKG_VERSION"));

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

const T0: u64 = 1_796_000_000_000;

/// One event of every kind, from two tills (deterministic).
fn every_kind() -> Vec<Event> {
    let (a, b) = (ReplicaId::for_terminal(1, 1), ReplicaId::for_terminal(2, 1));
    let (mut r1, mut r2) = (Replica::new(a), Replica::new(b));
    let mut out = Vec::new();
    out.push(r1.adjust(
        "SKU00001",
        24,
        Reason::Receiving,
        Some("ACME".into()),
        None,
        "M001",
        T0,
    ));
    let sale = tillmesh_pos::event::Sale {
        txn_id: "1-1".into(),
        terminal: a,
        cashier: "E001".into(),
        created_ms: T0 + 1_000,
        paid_ms: T0 + 2_000,
        lines: vec![tillmesh_pos::cart::Line {
            line_no: 1,
            sku: "SKU00001".into(),
            barcode: "8930000000019".into(),
            name: "Rice 5 kg".into(),
            category: "grocery".into(),
            quantity: 2,
            unit_price: 150_000,
            tax_rate_bp: 800,
            gross: 300_000,
            discount: 0,
            promotion: None,
            tax: 22_222,
            total: 300_000,
        }],
        totals: tillmesh_pos::cart::Totals {
            subtotal: 300_000,
            discount: 0,
            tax: 22_222,
            total: 300_000,
            items: 2,
        },
        payments: vec![],
        customer_id: Some("C001".into()),
        points_earned: 30,
        weights: Vec::new(),
    };
    out.extend(r1.record_sale(sale, T0 + 2_000));
    out.push(r1.set_status(
        "1-1",
        tillmesh_pos::transaction::Status::Refunded,
        |status| EventBody::RefundRecorded {
            txn_id: "1-1".into(),
            amount: 300_000,
            by: "E001".into(),
            approved_by: "M001".into(),
            reason: "damaged".into(),
            status,
        },
        T0 + 3_000,
    ));
    out.push(r2.set_status(
        "1-1",
        tillmesh_pos::transaction::Status::Void,
        |status| EventBody::TransactionVoided {
            txn_id: "1-1".into(),
            by: "E002".into(),
            approved_by: "M001".into(),
            reason: "test".into(),
            status,
        },
        T0 + 4_000,
    ));
    out.push(r2.override_price("SKU00002", 9_900, T0, "M001", T0 + 5_000));
    out.push(r2.set_setting("receipt_footer", "Thank you", "M001", T0 + 6_000));
    out.push(tillmesh::sim::poison::customer_edit(
        &mut r2,
        "C001",
        "Ann",
        T0 + 7_000,
    ));
    out.push(r2.change_points("C001", 30, T0 + 8_000));
    out.push(r2.enroll_vision("SKU00003", vec![0.25, -0.5, 0.75, 0.0], "M001", T0 + 9_000));
    out
}

fn frames(events: &[Event]) -> Vec<Frame> {
    let mut vv = VersionVector::new();
    for e in events {
        vv.advance(e.origin, e.seq);
    }
    vec![
        Frame::Hello {
            min_version: wire::PROTOCOL_MIN,
            max_version: wire::PROTOCOL_VERSION,
            store_id: "S001".into(),
            terminal: 1,
            vv: vv.clone(),
        },
        Frame::Events(events.to_vec()),
        Frame::Ack(vv),
        Frame::Probe,
        Frame::Rpc(vec![1, 2, 3]),
        Frame::RpcReply(vec![4, 5]),
        Frame::Base {
            index: 0,
            count: 1,
            bytes: vec![9; 16],
        },
    ]
}

fn base_of(events: &[Event]) -> Base {
    let mut r = Replica::new(ReplicaId::for_terminal(3, 1));
    for e in events {
        r.state_apply_for_test(e);
    }
    r.base(Compaction::default())
}

fn batch_of(events: &[Event]) -> Batch {
    Batch {
        term: 3,
        leader: 1,
        master_version: 2,
        backlog: 0,
        tills: vec![1, 2],
        events: events
            .iter()
            .map(|e| StoreEvent {
                store: "S001".into(),
                event: e.clone(),
            })
            .collect(),
        sealing: Default::default(),
    }
}

/// A transport to no one: a group of one.
struct Alone;
impl RaftTransport for Alone {
    async fn call(&self, _: u64, _: Vec<u8>) -> Result<Vec<u8>, String> {
        Err("no peers".into())
    }
}

fn timing() -> Timing {
    Timing {
        heartbeat_ms: 50,
        election_min_ms: 150,
        election_max_ms: 300,
        pre_vote: false,
    }
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s");
}

fn cloud_config(dir: &Path) -> tillmesh_cloud::config::CloudConfig {
    let mut cfg = tillmesh_cloud::config::CloudConfig::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/cloud.example.toml"),
    )
    .unwrap();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database = tillmesh_cloud::config::DatabaseConfig::Sqlite {
        path: dir.join("cloud.db"),
    };
    cfg.master_seed = None;
    cfg.projection_interval_ms = 0;
    cfg
}

/// Copies an SQLite database's main file, its WAL checkpointed into it first.
fn copy_db(from: &Path, to: &Path) {
    let c = rusqlite::Connection::open(from).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(c);
    std::fs::copy(from, to).unwrap();
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

/// Writes this release's fixtures (run by hand at a release).
async fn write(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let events = every_kind();
    let mut bytes = Vec::new();
    for f in frames(&events) {
        bytes.extend(wire::encode(&f));
    }
    std::fs::write(dir.join("frames.bin"), bytes).unwrap();
    std::fs::write(dir.join("base.bin"), base_of(&events).encode().unwrap()).unwrap();
    std::fs::write(
        dir.join("batch.bin"),
        encode_batch(&batch_of(&events)).unwrap(),
    )
    .unwrap();

    // A till's data directory with three sales.
    let t = TestTill::start().await;
    let c = t.client().login("E001", "1111").await;
    let mut txns = Vec::new();
    for i in 0..3 {
        let s = c
            .sell(&[(demo_barcode(i).as_str(), 1 + i as u32)], None)
            .await
            .unwrap();
        txns.push(s["txn_id"].as_str().unwrap().to_string());
    }
    let held = t.till().version_vector().total();
    let till_dir = t.stop().await;
    std::fs::create_dir_all(dir.join("till")).unwrap();
    copy_db(&till_dir.path().join("till.db"), &dir.join("till/till.db"));

    // A Raft database: a group of one, entries on both sides of a snapshot.
    let rd = tempfile::tempdir().unwrap();
    let raft = StoreRaft::start(1, &rd.path().join("raft.db"), Arc::new(Alone), timing())
        .await
        .unwrap();
    raft.bootstrap(&[1]).await.unwrap();
    until("leads", async || raft.leads()).await;
    let origin = ReplicaId::for_terminal(1, 1).0;
    raft.propose(Command::Acked {
        watermarks: vec![(origin, 5)],
    })
    .await
    .unwrap();
    raft.propose(Command::MasterVersion(4)).await.unwrap();
    raft.raft.trigger().snapshot().await.unwrap();
    until("snapshot", async || raft.raft.metrics().borrow().snapshot).await;
    raft.propose(Command::Acked {
        watermarks: vec![(origin, 9)],
    })
    .await
    .unwrap();
    raft.shutdown().await;
    drop(raft);
    std::fs::create_dir_all(dir.join("raft")).unwrap();
    copy_db(&rd.path().join("raft.db"), &dir.join("raft/raft.db"));

    // A cloud ledger (SQLite) holding the batch.
    let cd = tempfile::tempdir().unwrap();
    let cloud = tillmesh_cloud::start(cloud_config(cd.path()))
        .await
        .unwrap();
    let token = cloud.cloud.issue(Some("S001"), None).await.unwrap().0;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/api/v1/sync/upload", cloud.addr))
        .bearer_auth(&token)
        .header("content-type", tillmesh_cloud_proto::BINARY_CONTENT_TYPE)
        .body(encode_batch(&batch_of(&events)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    cloud.stop().await;
    std::fs::create_dir_all(dir.join("cloud")).unwrap();
    for f in ["cloud.db", "cloud-reports.db"] {
        copy_db(&cd.path().join(f), &dir.join("cloud").join(f));
    }

    let expected = json!({
        "release": RELEASE,
        "kinds": KINDS,
        "events": events.len(),
        "till": { "events": held, "txns": txns },
        "raft": { "origin": origin, "acked": 9, "master_version": 4 },
        "cloud": { "events": events.len() },
    });
    std::fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
}

/// Checks one release's fixtures against this build.
async fn check(dir: &Path) {
    let what = dir.display().to_string();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    // Frames: each decodes, and encodes back to the same bytes.
    let bytes = std::fs::read(dir.join("frames.bin")).unwrap();
    let mut rest = &bytes[..];
    let mut events = Vec::new();
    let mut n = 0;
    while !rest.is_empty() {
        let len = wire::check_len(rest[..4].try_into().unwrap()).unwrap();
        let body = &rest[4..4 + len];
        let frame = wire::decode(body).unwrap_or_else(|e| panic!("{what}: frame {n}: {e}"));
        assert_eq!(
            &wire::encode(&frame)[4..],
            body,
            "{what}: frame {n} re-encodes differently"
        );
        if let Frame::Events(e) = frame {
            events = e;
        }
        rest = &rest[4 + len..];
        n += 1;
    }
    assert_eq!(events.len() as u64, expected["events"].as_u64().unwrap());
    // Every kind that release knew is still known here (kinds are never removed).
    for k in expected["kinds"].as_array().unwrap() {
        let k = k.as_str().unwrap();
        assert!(KINDS.contains(&k), "{what}: kind {k} is no longer known");
        assert!(
            events
                .iter()
                .any(|e| e.body.kind() == k && e.body.is_known()),
            "{what}: no {k} decoded"
        );
    }
    for e in &events {
        e.check().unwrap_or_else(|err| panic!("{what}: {err}"));
    }
    // The base and the batch.
    let base = Base::decode(&std::fs::read(dir.join("base.bin")).unwrap())
        .unwrap_or_else(|e| panic!("{what}: base: {e}"));
    assert_eq!(base.state.vv.total(), events.len() as u64);
    let batch = decode_batch(&std::fs::read(dir.join("batch.bin")).unwrap())
        .unwrap_or_else(|e| panic!("{what}: batch: {e}"));
    assert_eq!(batch.events.len(), events.len());

    // A till of this build on that release's data directory: it migrates and keeps every
    // sale.
    let t = TestTill::start_in(copy_dir(&dir.join("till"))).await;
    assert_eq!(
        t.till().version_vector().total(),
        expected["till"]["events"].as_u64().unwrap()
    );
    let c = t.client().login("E001", "1111").await;
    for id in expected["till"]["txns"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        let r = c.get(&format!("/api/v1/transactions/{id}")).await;
        assert_eq!(r.status, 200, "{what}: sale {id}: {}", r.body);
    }
    c.sell(&[(demo_barcode(5).as_str(), 1)], None)
        .await
        .unwrap();
    t.stop().await;

    // Its Raft database: the log and the snapshot read back into the state machine.
    let rd = copy_dir(&dir.join("raft"));
    let raft = StoreRaft::start(1, &rd.path().join("raft.db"), Arc::new(Alone), timing())
        .await
        .unwrap_or_else(|e| panic!("{what}: raft.db: {e}"));
    let origin = expected["raft"]["origin"].as_u64().unwrap();
    let acked = expected["raft"]["acked"].as_u64().unwrap();
    until("the log applied", async || {
        let s = raft.state();
        (s.acked.get(&origin) == Some(&acked)).then_some(())
    })
    .await;
    assert_eq!(
        raft.state().master_version,
        expected["raft"]["master_version"].as_u64().unwrap()
    );
    raft.shutdown().await;

    // Its cloud ledger.
    let cd = copy_dir(&dir.join("cloud"));
    let cloud = tillmesh_cloud::start(cloud_config(cd.path()))
        .await
        .unwrap_or_else(|e| panic!("{what}: cloud.db: {e:#}"));
    let rows = cloud.cloud.ledger.fleet().await.unwrap();
    let s = rows.iter().find(|r| r.store_id == "S001").unwrap();
    assert_eq!(s.events, expected["cloud"]["events"].as_u64().unwrap());
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_releases_fixtures_decode_and_open() {
    if std::env::var_os("TILLMESH_WRITE_FIXTURES").is_some() {
        write(&root().join(RELEASE)).await;
    }
    let mut releases: Vec<PathBuf> = std::fs::read_dir(root())
        .expect("tests/fixtures exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    releases.sort();
    assert!(!releases.is_empty(), "no release fixtures");
    for r in releases {
        check(&r).await;
    }
}
