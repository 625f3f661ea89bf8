//! Tills of two versions in one store (issue 20): an event of a kind this version does not
//! know (made by a newer till) is held without being applied, relayed byte for byte, kept
//! across restarts, counted in status, and never compacted past, so the upgraded till
//! applies it from its sync log.

mod support;

use support::{TestTill, demo_item};
use tillmesh_crdt::{ReplicaId, VersionVector};
use tillmesh_pos::event::{Event, EventBody};
use tillmesh_pos::inventory::Reason;
use tillmesh_pos::state::{Compaction, Replica};

fn bin(e: &Event) -> Vec<u8> {
    bincode::serde::encode_to_vec(e, bincode::config::standard()).unwrap()
}

#[tokio::test]
async fn a_newer_tills_event_kind_is_held_relayed_and_never_compacted_past() {
    let t = TestTill::start().await;
    let sku = demo_item(0).0;
    let before = t.till().stock_of(&sku);
    let now = t.till().now_ms();
    let origin = ReplicaId::for_terminal(9, 7);
    let mut peer = Replica::new(origin);
    let first = peer.adjust(&sku, 5, Reason::Receiving, None, None, "E9", now);
    let mut newer = peer.adjust(&sku, 1, Reason::Receiving, None, None, "E9", now);
    newer.body = EventBody::Unknown {
        kind: "GiftCardRedeemed".into(),
        payload: vec![3, 1, 4, 1, 5, 9, 2, 6],
    };
    let last = peer.adjust(&sku, 3, Reason::Receiving, None, None, "E9", now);
    let vv = t
        .till()
        .apply_remote(9, vec![first, newer.clone(), last])
        .await
        .expect("a batch with a newer kind is applied, not refused");
    assert_eq!(vv.get(origin), 3, "the unknown event counts as held");
    // PN-counter deltas carry the origin's whole entry: the last event brings 5 + 1 + 3.
    assert_eq!(t.till().stock_of(&sku), before + 9);
    let status = t.till().status();
    assert_eq!(status.unknown_kind_events, 1);
    assert_eq!(status.quarantined, 0, "a newer kind is not a bad event");
    // It is relayed exactly as received.
    let held = t.till().events_after(origin, 1, 10).await.unwrap();
    assert_eq!(held[0], newer);
    assert_eq!(bin(&held[0]), bin(&newer), "relayed byte for byte");
    // A compaction point past it stops below it on this till.
    let mut floor = VersionVector::new();
    floor.advance(origin, 3);
    t.till()
        .compact(
            &Compaction {
                floor,
                ..Default::default()
            },
            0,
        )
        .await
        .unwrap();
    assert_eq!(t.till().compaction().floor.get(origin), 1);
    let held = t.till().events_after(origin, 1, 10).await.unwrap();
    assert_eq!(
        held.len(),
        2,
        "the unknown event and what follows stay in the log"
    );
    // A restart keeps it, still unapplied.
    let dir = t.stop().await;
    let t = TestTill::start_in(dir).await;
    assert_eq!(t.till().version_vector().get(origin), 3);
    assert_eq!(t.till().status().unknown_kind_events, 1);
    assert_eq!(t.till().stock_of(&sku), before + 9);
    assert_eq!(t.till().events_after(origin, 1, 1).await.unwrap()[0], newer);
    t.stop().await;
}

/// The rolling upgrade with real processes (`scripts/rolling-upgrade.py`): five tills and
/// the cloud on the last release (`TILLMESH_UPGRADE_FROM`, the binary
/// `scripts/build-release.sh v0.1.0` builds from `tests/fixtures/v0.1.0/source.tar.xz`), cashiers selling on every till all the time,
/// the tills replaced one by one by this build (SIGTERM, the leader last), then the cloud;
/// nothing lost, nothing doubled, the store kept selling, every till on the newest protocol.
/// Skipped without `TILLMESH_UPGRADE_FROM` unless `TILLMESH_REQUIRE_UPGRADE=1` (set by
/// `.ci/run`, which builds the release first).
#[test]
fn a_store_upgrades_till_by_till_from_the_last_release_while_selling() {
    let Ok(old) = std::env::var("TILLMESH_UPGRADE_FROM") else {
        assert!(
            std::env::var("TILLMESH_REQUIRE_UPGRADE").is_err(),
            "TILLMESH_REQUIRE_UPGRADE is set but TILLMESH_UPGRADE_FROM names no release binary"
        );
        eprintln!(
            "SKIPPED: set TILLMESH_UPGRADE_FROM=$(scripts/build-release.sh v0.1.0) to run the rolling upgrade"
        );
        return;
    };
    let repo = support::repo();
    let report = repo.join("target/rolling-upgrade.json");
    let out = std::process::Command::new("python3")
        .arg(repo.join("scripts/rolling-upgrade.py"))
        .args([
            "--old",
            &old,
            "--new",
            env!("CARGO_BIN_EXE_tillmesh"),
            "--report",
        ])
        .arg(&report)
        .output()
        .expect("python3 runs the upgrade script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the rolling upgrade failed:\n{text}");
    // The simulator's seven invariants, every till on the newest protocol, the store selling
    // through every replacement; and the leader really was replaced last.
    assert_eq!(text.matches("  PASS ").count(), 10, "{text}");
    assert!(text.contains("(the leader) replaced"), "{text}");
    assert!(text.contains("the cloud replaced"), "{text}");
}

/// A downgrade: an older binary on a database a newer version migrated stops with one clear
/// line and a non-zero exit, and leaves the folder byte-identical (no `-wal`, no `-shm`).
#[test]
fn an_older_binary_on_a_newer_database_stops_with_one_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("till.db");
    std::fs::copy(
        support::repo().join("tests/fixtures/v0.1.0/till/till.db"),
        &db,
    )
    .unwrap();
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'from_the_future', '', '0')",
            [],
        )
        .unwrap();
    }
    let listing = || {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .args([
            "terminal",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .current_dir(support::repo())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("newer tillmesh (schema version 99"), "{err}");
    assert!(listing() == before, "the data folder changed");
}
