//! The store's uplink, end to end: real tills meshed over QUIC with mutual TLS form a Raft
//! group and upload to a real cloud (SQLite) over HTTP. Only the leader uploads, a new leader
//! resumes after the old one stops and the ledger holds every sale exactly once; HQ's price
//! change reaches every till while earlier sales keep their price; a store out of touch
//! past the offline limit refuses new sales until a manager overrides.

mod support;

use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use support::{Client, Pki, TestCloud, TestTill, demo_barcode, demo_item, mesh_config};

async fn start_store(pki: &Pki, cloud: &TestCloud, terminals: &[u64]) -> Vec<TestTill> {
    let mut tills = Vec::new();
    for &t in terminals {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = mesh_config(dir.path(), pki, t, 0);
        cfg.cloud = Some(cloud.section());
        tills.push(TestTill::start_with(cfg, dir).await);
    }
    for a in &tills {
        for b in &tills {
            if a.cfg.terminal.id != b.cfg.terminal.id {
                a.mesh().add_peer(b.mesh().local_addr());
            }
        }
    }
    tills
}

/// Waits until the tills agree on one leader other than `not`; returns it.
async fn leader_of(tills: &[&TestTill], not: Option<u64>, within: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut leaders = BTreeSet::new();
        for t in tills {
            leaders.insert(t.node().raft.as_ref().unwrap().leader().await);
        }
        if leaders.len() == 1
            && let Some(Some(l)) = leaders.first()
            && Some(*l) != not
        {
            return *l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no single leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Events the store holds (every origin, as `t` knows them).
fn held(t: &TestTill) -> u64 {
    t.till().version_vector().total()
}

/// Waits until the cloud's ledger holds `n` events of the store.
async fn ledger_holds(cloud: &TestCloud, n: u64, within: Duration) -> (u64, u64) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (events, term, leader) = cloud.fleet().await;
        assert!(
            events <= n,
            "the ledger holds {events} events, more than the {n} sold"
        );
        if events == n {
            return (term, leader);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ledger holds {events} of {n} events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sell(t: &TestTill, n: usize) {
    let c = t.client().login("E001", "1111").await;
    for i in 0..n {
        c.sell(&[(&demo_barcode(i % 3), 1)], None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_uploads_and_a_new_leader_resumes_exactly_once() {
    let cloud = TestCloud::start().await;
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &cloud, &[1, 2, 3]).await;
    let all: Vec<&TestTill> = tills.iter().collect();
    let first = leader_of(&all, None, Duration::from_secs(20)).await;
    for t in &tills {
        sell(t, 4).await;
    }
    // Every till holds every event once the mesh converged; the cloud gets them all, once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !tills.iter().all(|t| held(t) == held(&tills[0])) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mesh did not converge"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = held(&tills[0]);
    let (term1, by) = ledger_holds(&cloud, total, Duration::from_secs(20)).await;
    assert_eq!(by, first, "the cloud heard from the leader");
    // The cloud's acknowledgement is committed through Raft on every till.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let acked: Vec<u64> = tills
            .iter()
            .map(|t| t.node().raft.as_ref().unwrap().state().acked.values().sum())
            .collect();
        if acked.iter().all(|a| *a == total) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "acked {acked:?} of {total}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = tills[0].till().status().cloud.expect("cloud configured");
    assert!(view.online && view.last_ok.is_some(), "{view:?}");

    // The leader stops; another is elected and uploads what was sold meanwhile.
    let (gone, rest): (Vec<TestTill>, Vec<TestTill>) =
        tills.into_iter().partition(|t| t.cfg.terminal.id == first);
    for t in gone {
        t.stop().await;
    }
    let rest_refs: Vec<&TestTill> = rest.iter().collect();
    let second = leader_of(&rest_refs, Some(first), Duration::from_secs(20)).await;
    assert_ne!(second, first);
    for t in &rest {
        sell(t, 3).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !rest.iter().all(|t| held(t) == held(&rest[0])) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mesh did not converge"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = held(&rest[0]);
    let (term2, by) = ledger_holds(&cloud, total, Duration::from_secs(20)).await;
    assert_eq!(by, second);
    assert!(term2 > term1, "the new leader uploads in a later term");
    // Only the two leaders ever sent a batch: the third till, a follower throughout, never.
    assert_eq!(cloud.uploaders(), BTreeSet::from([first, second]));
    for t in &rest {
        if t.cfg.terminal.id != second {
            let metrics = t.client().get("/metrics").await.body;
            assert!(
                !metrics
                    .as_str()
                    .unwrap()
                    .contains("tillmesh_cloud_uploads_total{"),
                "a follower counted uploads"
            );
        }
    }
    for t in rest {
        t.stop().await;
    }
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hq_price_reaches_every_till_and_earlier_sales_keep_their_price() {
    let cloud = TestCloud::start().await;
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &cloud, &[1, 2]).await;
    let all: Vec<&TestTill> = tills.iter().collect();
    leader_of(&all, None, Duration::from_secs(20)).await;
    let (sku, _, base) = demo_item(0);
    let (sku2, _, base2) = demo_item(1);
    // Every till switches to HQ's master data first (the seed).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !tills.iter().all(|t| t.till().hq_version() > 0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "HQ master data not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = tills[0].client().login("E001", "1111").await;
    let before = c.sell(&[(&demo_barcode(0), 1)], None).await.unwrap();
    assert_eq!(before["totals"]["subtotal"], base);
    // A store manager overrides the second item's price at the till.
    let m = tills[1].client().login("M001", "9999").await;
    m.post(
        "/api/v1/prices/override",
        json!({"sku": sku2, "price": base2 - 100}),
    )
    .await
    .expect(200);
    // HQ changes both prices (effective now).
    let version = cloud
        .edit_master(json!([
            {"put": {"price": {"sku": sku, "price": base + 500, "effective_from_ms": 0, "scope": "chain"}}},
            {"put": {"price": {"sku": sku2, "price": base2 + 300, "effective_from_ms": 0, "scope": "chain"}}}
        ]))
        .await;
    // The leader hears of it (master_stale on its next heartbeat) and every till applies it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut prices = Vec::new();
        for t in &tills {
            let item = |sku: &str| t.till().item(sku).unwrap().price;
            let (a, b) = (item(&sku), item(&sku2));
            prices.push((Some(a), Some(b), t.till().hq_version()));
        }
        if prices
            .iter()
            .all(|p| *p == (Some(base + 500), Some(base2 + 300), version))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "prices on the tills: {prices:?}, want {} and {} at v{version}",
            base + 500,
            base2 + 300
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The sale made before keeps its price; a new one takes HQ's.
    let id = before["txn_id"].as_str().unwrap();
    let again = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200);
    assert_eq!(again["totals"]["subtotal"], base);
    let after = c.sell(&[(&demo_barcode(0), 1)], None).await.unwrap();
    assert_eq!(after["totals"]["subtotal"], base + 500);
    // The displaced override is in the leader's audit log.
    let mut found = false;
    for t in &tills {
        let audit = t.till().store().read(|r| r.audit_all()).unwrap();
        found |= audit
            .iter()
            .any(|a| a.record.action == "master.conflict" && a.record.target == sku2);
    }
    assert!(found, "the conflict with the store override was audited");
    for t in tills {
        t.stop().await;
    }
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_offline_past_the_limit_refuses_sales_until_a_manager_overrides() {
    let cloud = TestCloud::start().await;
    let pki = Pki::new("S001");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mesh_config(dir.path(), &pki, 1, 0);
    let mut section = cloud.section();
    section.offline_limit_ms = 1_500;
    cfg.cloud = Some(section);
    let t = TestTill::start_with(cfg, dir).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !t.till().status().cloud.is_some_and(|c| c.online) {
        assert!(tokio::time::Instant::now() < deadline, "never online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Online: sales go on however long it has been.
    let c = t.client().login("E001", "1111").await;
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    c.sell(&[(&demo_barcode(0), 1)], None).await.unwrap();
    // The cloud goes away: the till sees it within 5 s, then refuses new sales past the limit.
    cloud.stop().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while t.till().status().cloud.is_some_and(|c| c.online) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "offline not detected in 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let refused = c.post("/api/v1/transactions", json!({})).await;
    let body = refused.expect_error(403, "offline_limit");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("offline-override")
    );
    assert!(t.till().status().cloud.unwrap().sales_refused);
    // A cashier cannot override; a manager's PIN can.
    c.post("/api/v1/offline-override", json!({}))
        .await
        .expect_error(403, "approval_required");
    let view = c
        .post(
            "/api/v1/offline-override",
            json!({"approval": {"employee_id": "M001", "pin": "9999"}}),
        )
        .await
        .expect(200);
    assert!(view["override_until"].is_string(), "{view}");
    c.sell(&[(&demo_barcode(0), 1)], None).await.unwrap();
    let _ = Client::new(t.addr);
    t.stop().await;
}
