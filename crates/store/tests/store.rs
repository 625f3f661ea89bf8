//! Store tests against a real SQLite file: durability of committed batches, idempotent event
//! application, LWW status materialisation, audit chaining, and state rebuild on reopen.

use tillmesh_crdt::ReplicaId;
use tillmesh_pos::audit::{self, AuditRecord};
use tillmesh_pos::cart::{Line, Totals};
use tillmesh_pos::event::{EventBody, Sale};
use tillmesh_pos::inventory::Reason;
use tillmesh_pos::state::Replica;
use tillmesh_pos::transaction::Status;
use tillmesh_store::{Store, WriteBatch};

fn sale(txn: &str, sku: &str, qty: u32) -> Sale {
    Sale {
        txn_id: txn.into(),
        terminal: ReplicaId(1),
        cashier: "E1".into(),
        created_ms: 1000,
        paid_ms: 2000,
        lines: vec![Line {
            line_no: 1,
            sku: sku.into(),
            barcode: "96385074".into(),
            name: "x".into(),
            category: "c".into(),
            quantity: qty,
            unit_price: 100,
            tax_rate_bp: 0,
            gross: 100 * i64::from(qty),
            discount: 0,
            promotion: None,
            tax: 0,
            total: 100 * i64::from(qty),
        }],
        totals: Totals {
            subtotal: 100,
            discount: 0,
            tax: 0,
            total: 100 * i64::from(qty),
            items: qty,
        },
        payments: vec![],
        customer_id: None,
        points_earned: 0,
        weights: Vec::new(),
    }
}

fn rec(action: &str) -> AuditRecord {
    AuditRecord {
        at_ms: 1,
        actor: "E1".into(),
        action: action.into(),
        target: "-".into(),
        outcome: "ok".into(),
        detail: String::new(),
    }
}

#[test]
fn committed_sales_survive_reopen_and_duplicates_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("till.db");
    let mut rep = Replica::new(ReplicaId(1));
    let mut all = Vec::new();
    {
        let store = Store::open(&path).unwrap();
        let recv = rep.adjust(
            "A",
            10,
            Reason::Receiving,
            Some("ACME".into()),
            None,
            "E9",
            500,
        );
        store
            .commit_blocking(WriteBatch {
                events: vec![recv.clone()],
                ..Default::default()
            })
            .unwrap();
        all.push(recv);
        let evs = rep.record_sale(sale("T1-1", "A", 3), 2000);
        let info = store
            .commit_blocking(WriteBatch {
                events: evs.clone(),
                audit: vec![rec("sale")],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(info.events_new, evs.len());
        all.extend(evs.clone());
        // Re-delivery: nothing new.
        let again = store
            .commit_blocking(WriteBatch {
                events: evs,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(again.events_new, 0);
        let void = rep.set_status(
            "T1-1",
            Status::Void,
            |status| EventBody::TransactionVoided {
                txn_id: "T1-1".into(),
                by: "E1".into(),
                approved_by: "M1".into(),
                reason: "test".into(),
                status,
            },
            3000,
        );
        store
            .commit_blocking(WriteBatch {
                events: vec![void.clone()],
                audit: vec![rec("void")],
                ..Default::default()
            })
            .unwrap();
        all.push(void);
    }
    let store = Store::open(&path).unwrap();
    let events = store.read(|r| r.events_all()).unwrap();
    assert_eq!(events, all);
    let restored = Replica::restore(ReplicaId(1), &events);
    assert_eq!(restored.state(), rep.state());
    assert_eq!(restored.state().stock("A"), 7);
    assert_eq!(restored.next_seq(), rep.next_seq());
    let (s, status) = store.read(|r| r.sale("T1-1")).unwrap().unwrap();
    assert_eq!((s.txn_id.as_str(), status), ("T1-1", Status::Void));
    let moves = store.read(|r| r.movements("A", 10)).unwrap();
    assert_eq!(moves.iter().map(|m| m.change).sum::<i64>(), 7);
    let chain = store.read(|r| r.audit_all()).unwrap();
    assert_eq!(audit::verify(&chain).unwrap().0, 2);
    assert_eq!(store.read(|r| r.integrity_check()).unwrap(), "ok");
}

#[test]
fn older_status_never_overwrites_newer_whatever_the_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("t.db")).unwrap();
    let mut a = Replica::new(ReplicaId(1));
    let mut b = Replica::new(ReplicaId(2));
    let sale_evs = a.record_sale(sale("T1-1", "A", 1), 1000);
    for e in &sale_evs {
        b.state_apply_for_test(e);
    }
    let refund = b.set_status(
        "T1-1",
        Status::RefundRequested,
        |status| EventBody::RefundRecorded {
            txn_id: "T1-1".into(),
            amount: 100,
            by: "E2".into(),
            approved_by: String::new(),
            reason: "r".into(),
            status,
        },
        5000,
    );
    // The newer status arrives first, then the sale that it follows.
    store
        .commit_blocking(WriteBatch {
            events: vec![refund],
            ..Default::default()
        })
        .unwrap();
    store
        .commit_blocking(WriteBatch {
            events: sale_evs,
            ..Default::default()
        })
        .unwrap();
    let (_, status) = store.read(|r| r.sale("T1-1")).unwrap().unwrap();
    assert_eq!(status, Status::RefundRequested);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_share_groups_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("t.db")).unwrap();
    let mut handles = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            s.commit(WriteBatch::audit(rec(&format!("a{i}"))))
                .await
                .unwrap()
        }));
    }
    let mut grouped = 0;
    for h in handles {
        if h.await.unwrap().group_size > 1 {
            grouped += 1;
        }
    }
    let chain = store.read(|r| r.audit_all()).unwrap();
    assert_eq!(audit::verify(&chain).unwrap().0, 200);
    // With 200 requests racing one writer, at least some share a commit.
    assert!(grouped > 0);
}

mod codec {
    use proptest::prelude::*;
    use tillmesh_store::codec;

    proptest! {
        /// Arbitrary bytes (a torn or corrupt row) decode to an error, never a panic or a
        /// huge allocation.
        #[test]
        fn decoding_garbage_fails_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..2048), kind in 0..tillmesh_pos::event::KINDS.len()) {
            let _ = codec::decode(tillmesh_pos::event::KINDS[kind], &bytes);
        }

        /// Every event body survives the round trip; trailing bytes are refused.
        #[test]
        fn round_trip_and_trailing_bytes(change in -1000_i64..1000, sku in "[A-Z0-9]{1,12}") {
            let mut r = tillmesh_pos::state::Replica::new(tillmesh_crdt::ReplicaId(3));
            let e = r.adjust(&sku, if change == 0 { 1 } else { change }, tillmesh_pos::inventory::Reason::Manual, None, None, "E", 5);
            let mut bytes = codec::encode(&e.body).unwrap();
            prop_assert_eq!(codec::decode("InventoryAdjusted", &bytes).unwrap(), e.body);
            bytes.push(0);
            prop_assert!(codec::decode("InventoryAdjusted", &bytes).is_err());
        }
    }
}

#[test]
fn pruning_moves_sales_to_the_archive_keeps_unpruned_records_and_restores_from_the_base() {
    use tillmesh_pos::state::{Base, Compaction};
    use tillmesh_store::Prune;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("till.db");
    let mut rep = Replica::new(ReplicaId(1));
    let mut all = Vec::new();
    {
        let store = Store::open(&path).unwrap();
        // Four sales paid at 1,000..4,000 ms, seqs 1..=4.
        for i in 1..=4u64 {
            let mut s = sale(&format!("T1-{i}"), "A", 1);
            s.paid_ms = i * 1000;
            let evs = rep.record_sale(s, i * 1000);
            store
                .commit_blocking(WriteBatch {
                    events: evs.clone(),
                    ..Default::default()
                })
                .unwrap();
            all.extend(evs);
        }
        // Compact seqs 1..=3, and expire records paid before 2,500 ms: T1-1 and T1-2 are
        // pruned and old, so they go; T1-3 is pruned but recent; T1-4 is still in the log.
        let mut floor = tillmesh_crdt::VersionVector::new();
        floor.advance(ReplicaId(1), 3);
        let c = Compaction {
            floor,
            txlog_dots: Default::default(),
            horizon_ms: 0,
        };
        let base = rep.base(c).encode().unwrap();
        store
            .commit_blocking(WriteBatch {
                prune: Some(Prune {
                    floor: vec![(1, 3)],
                    base: base.clone(),
                    retain_from_ms: 2_500,
                }),
                ..Default::default()
            })
            .unwrap();
        let left = store.read(|r| r.events_all()).unwrap();
        assert_eq!(left, all[3..].to_vec());
        assert_eq!(store.read(|r| r.log_sizes()).unwrap(), (1, 1));
        assert!(store.read(|r| r.sale("T1-1")).unwrap().is_none());
        assert!(store.read(|r| r.sale("T1-2")).unwrap().is_none());
        let (s3, _) = store.read(|r| r.sale("T1-3")).unwrap().unwrap();
        assert_eq!(s3.paid_ms, 3000);
        assert!(store.read(|r| r.sale("T1-4")).unwrap().is_some());
        assert_eq!(
            store
                .read(|r| r.sales_between(0, 10_000, 10))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            store.read(|r| r.movements("A", 10)).unwrap().len(),
            2,
            "movements of expired pruned sales go with them"
        );
        assert_eq!(store.read(|r| r.base()).unwrap(), Some(base));
    }
    // Reopen: the base plus the log give the same state as the replica that made them.
    let store = Store::open(&path).unwrap();
    let base = Base::decode(&store.read(|r| r.base()).unwrap().unwrap()).unwrap();
    let events = store.read(|r| r.events_all()).unwrap();
    let restored = Replica::restore_from(ReplicaId(1), base, &events);
    assert_eq!(restored.state(), rep.state());
    assert_eq!(restored.state().stock("A"), -4);
    assert_eq!(restored.next_seq(), 5);
    assert_eq!(store.read(|r| r.integrity_check()).unwrap(), "ok");
}

/// A full write queue answers `Overloaded` at once instead of blocking the caller (a till
/// holding its core lock froze on a stalled disk, issue 17): places are promised by
/// `reserve`, a promised place always takes its batch, and an unused one is given back.
#[test]
fn a_full_queue_refuses_at_once_and_promised_places_always_take_their_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("t.db")).unwrap();
    let slots: Vec<_> = (0..tillmesh_store::WRITE_QUEUE_MAX)
        .map(|_| store.reserve().expect("room for every place"))
        .collect();
    assert!(matches!(
        store.reserve(),
        Err(tillmesh_store::StoreError::Overloaded)
    ));
    assert!(matches!(
        store.submit(WriteBatch::audit(rec("x"))),
        Err(tillmesh_store::StoreError::Overloaded)
    ));
    let mut slots = slots.into_iter();
    let first = slots.next().unwrap();
    let rx = store
        .submit_reserved(first, WriteBatch::audit(rec("promised")))
        .expect("a promised place takes its batch");
    drop(slots);
    assert!(rx.blocking_recv().unwrap().is_ok());
    store
        .commit_blocking(WriteBatch::audit(rec("after")))
        .unwrap();
}

/// An older version stored a sale whose kind it did not know: the event row and an
/// `unapplied` row, nothing materialised (issue 20). The first open by a version that knows
/// the kind materialises it (the sale is queryable, its stock moved) and clears the row; a
/// kind still unknown stays listed.
#[test]
fn events_stored_before_their_kind_was_known_are_materialised_at_the_first_open_that_knows_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("till.db");
    let mut rep = Replica::new(ReplicaId(1));
    let evs = rep.record_sale(sale("T1-7", "A", 2), 2000);
    let mut newer = rep.adjust("A", 1, Reason::Receiving, None, None, "E9", 2500);
    newer.body = EventBody::Unknown {
        kind: "GiftCardRedeemed".into(),
        payload: vec![1, 2, 3],
    };
    {
        let store = Store::open(&path).unwrap();
        store
            .commit_blocking(WriteBatch {
                events: evs.iter().cloned().chain([newer.clone()]).collect(),
                ..Default::default()
            })
            .unwrap();
    }
    // Undo the sale's materialisation, as a version that did not know SaleRecorded left it.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DELETE FROM transactions; DELETE FROM txn_status; DELETE FROM stock_movements;
             INSERT INTO unapplied (origin, seq) SELECT origin, seq FROM events WHERE kind = 'SaleRecorded';",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let (s, status) = store
        .read(|r| r.sale("T1-7"))
        .unwrap()
        .expect("materialised");
    assert_eq!((s.txn_id.as_str(), status), ("T1-7", Status::Paid));
    assert_eq!(
        store
            .read(|r| r.movements("A", 10))
            .unwrap()
            .iter()
            .map(|m| m.change)
            .sum::<i64>(),
        -2
    );
    drop(store);
    let c = rusqlite::Connection::open(&path).unwrap();
    let left: Vec<(i64, i64)> = c
        .prepare("SELECT origin, seq FROM unapplied")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        left,
        vec![(1, newer.seq as i64)],
        "the still-unknown kind stays listed"
    );
}

/// The key-value tables (`meta`, and the Raft database's `raft_meta`) are rowid tables, with
/// values intact across the migration. WITHOUT ROWID, SQLite compared keys against a record
/// that overflows its page by reading all of it: a big store's master data (megabytes) was
/// read in full by every write that passed it, each sale's draft included.
#[test]
fn meta_tables_keep_their_keys_apart_from_large_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("till.db");
    let big = "x".repeat(4 << 20);
    {
        let store = Store::open(&path).unwrap();
        store
            .commit_blocking(WriteBatch {
                meta: vec![
                    ("master".into(), big.clone()),
                    ("draft:T1".into(), "{}".into()),
                ],
                ..Default::default()
            })
            .unwrap();
    }
    let raft = dir.path().join("raft.db");
    tillmesh_store::raft::RaftDb::open(&raft)
        .unwrap()
        .set_meta(&[("snapshot", Some(big.as_bytes()))])
        .unwrap();
    for (db, table) in [(&path, "meta"), (&raft, "raft_meta")] {
        let c = rusqlite::Connection::open(db).unwrap();
        let sql: String = c
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.to_uppercase().contains("WITHOUT ROWID"), "{sql}");
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.read(|r| r.meta("master")).unwrap(), Some(big.clone()));
    assert_eq!(
        store.read(|r| r.meta("draft:T1")).unwrap().as_deref(),
        Some("{}")
    );
    let raft = tillmesh_store::raft::RaftDb::open(&raft).unwrap();
    assert_eq!(raft.meta("snapshot").unwrap(), Some(big.into_bytes()));
}

/// The simulator's databases (`Mode::Inline`) leave their WAL at close, as a dying process
/// does, and the next open reads what it holds: a simulated till's restart is a kill -9's.
#[test]
fn inline_databases_keep_their_wal_at_close_and_reopen_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("till.db");
    let raft = dir.path().join("raft.db");
    let wal = |p: &std::path::Path| std::path::PathBuf::from(format!("{}-wal", p.display()));
    {
        let store = Store::open_with(&path, tillmesh_store::Mode::Inline).unwrap();
        store
            .commit_blocking(WriteBatch {
                meta: vec![("draft:T1".into(), "{}".into())],
                ..Default::default()
            })
            .unwrap();
        let db =
            tillmesh_store::raft::RaftDb::open_with(&raft, tillmesh_store::Mode::Inline).unwrap();
        db.append(&[(1, vec![1])]).unwrap();
    }
    for p in [&path, &raft] {
        let len = std::fs::metadata(wal(p)).map_or(0, |m| m.len());
        assert!(len > 0, "{} has no WAL left after closing", p.display());
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.read(|r| r.meta("draft:T1")).unwrap().as_deref(),
        Some("{}")
    );
    let db = tillmesh_store::raft::RaftDb::open(&raft).unwrap();
    assert_eq!(db.last().unwrap(), Some((1, vec![1])));
}
