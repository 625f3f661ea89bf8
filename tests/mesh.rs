//! Mesh tests over real QUIC with mutual TLS on loopback: convergence of 5 tills under
//! concurrent sales, a 2|3 partition healing, restart catch-up, rebuild after a lost data
//! directory, refusal of foreign certificates, and defensive handling of bad frames.

mod support;

use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use support::{Client, Pki, TestTill, demo_barcode, demo_item, mesh_config};
use tillmesh_mesh::revocation::RevocationsExt;
use tillmesh_mesh::wire::{self, Frame};

async fn start_store(pki: &Pki, terminals: &[u64]) -> Vec<TestTill> {
    let mut tills = Vec::new();
    for &t in terminals {
        let dir = tempfile::tempdir().unwrap();
        let cfg = mesh_config(dir.path(), pki, t, 0);
        tills.push(TestTill::start_with(cfg, dir).await);
    }
    connect_all(&tills);
    tills
}

fn connect_all(tills: &[TestTill]) {
    for a in tills {
        for b in tills {
            if a.cfg.terminal.id != b.cfg.terminal.id {
                a.mesh().add_peer(b.mesh().local_addr());
            }
        }
    }
}

/// Waits until every till holds the same events, then checks their states are identical.
async fn converged(tills: &[&TestTill], within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let vvs: Vec<_> = tills.iter().map(|t| t.till().version_vector()).collect();
        if vvs.windows(2).all(|w| w[0] == w[1]) {
            let states: Vec<_> = tills.iter().map(|t| t.till().state()).collect();
            if states.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
        }
        if tokio::time::Instant::now() > deadline {
            panic!("tills did not converge within {within:?}: {vvs:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cashier(t: &TestTill) -> Client {
    t.client().login("E001", "1111").await
}

/// Sells `n` baskets on a till; returns `(txn ids, units sold per demo item)`.
async fn sell_many(c: &Client, n: usize, salt: usize) -> (Vec<String>, [i64; 4]) {
    let mut ids = Vec::new();
    let mut units = [0_i64; 4];
    for i in 0..n {
        let a = (i + salt) % 4;
        let b = (i + salt + 1) % 4;
        let qa = 1 + ((i + salt) % 3) as u32;
        let done = c
            .sell(&[(&demo_barcode(a), qa), (&demo_barcode(b), 1)], None)
            .await
            .unwrap();
        units[a] += i64::from(qa);
        units[b] += 1;
        ids.push(done["txn_id"].as_str().unwrap().to_string());
    }
    (ids, units)
}

fn txlog(t: &TestTill) -> BTreeSet<String> {
    t.till().state().txlog.iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_tills_converge_under_concurrent_sales() {
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &[1, 2, 3, 4, 5]).await;
    let mut jobs = Vec::new();
    for (k, t) in tills.iter().enumerate() {
        let c = cashier(t).await;
        jobs.push(tokio::spawn(async move { sell_many(&c, 6, k).await }));
    }
    let mut all_ids = BTreeSet::new();
    let mut sold = [0_i64; 4];
    for j in jobs {
        let (ids, units) = j.await.unwrap();
        all_ids.extend(ids);
        for i in 0..4 {
            sold[i] += units[i];
        }
    }
    // A store price override on one till reaches every till.
    let m = tills[1].client().login("M001", "9999").await;
    let (sku, _, base) = demo_item(7);
    m.post(
        "/api/v1/prices/override",
        json!({"sku": sku, "price": base - 100}),
    )
    .await
    .expect(200);

    let refs: Vec<&TestTill> = tills.iter().collect();
    converged(&refs, Duration::from_secs(30)).await;
    for t in &tills {
        assert_eq!(
            txlog(t),
            all_ids,
            "terminal {} misses sales",
            t.cfg.terminal.id
        );
        let state = t.till().state();
        for (i, units) in sold.iter().enumerate() {
            assert_eq!(
                state.stock(&demo_item(i).0),
                100 - units,
                "stock of demo item {i} on terminal {}",
                t.cfg.terminal.id
            );
        }
        let item = cashier(t)
            .await
            .get(&format!("/api/v1/catalog/items?sku={sku}"))
            .await
            .expect(200);
        assert_eq!(
            item["price"],
            base - 100,
            "price on terminal {}",
            t.cfg.terminal.id
        );
    }
    assert_eq!(all_ids.len(), 30);
    // A till knows what a peer holds as of that peer's last Ack; events the peer got from
    // others show up at the next anti-entropy probe (300 ms here), so lag may read stale
    // for one round after convergence.
    let mut status = tills[0].client().get("/api/v1/status").await.expect(200);
    for _ in 0..100 {
        let all_zero = status["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag_events"] == 0);
        if all_zero {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = tills[0].client().get("/api/v1/status").await.expect(200);
    }
    assert_eq!(status["peers"].as_array().unwrap().len(), 4);
    assert!(
        status["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["outbound"] == "connected" && p["lag_events"] == 0)
    );
    let metrics = tills[0].client().get("/metrics").await.expect(200);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("tillmesh_mesh_peers_connected 4")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_2_3_heals_with_nothing_lost_or_doubled() {
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &[1, 2, 3, 4, 5]).await;
    let refs: Vec<&TestTill> = tills.iter().collect();
    converged(&refs, Duration::from_secs(30)).await;
    let (left, right) = tills.split_at(2);
    for a in left {
        for b in right {
            a.mesh().faults().block(b.cfg.terminal.id);
            b.mesh().faults().block(a.cfg.terminal.id);
        }
    }
    let (ids_l, units_l) = sell_many(&cashier(&left[0]).await, 5, 0).await;
    let (ids_r, units_r) = sell_many(&cashier(&right[1]).await, 5, 2).await;
    converged(&left.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    converged(&right.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    // Each side sold on its own and did not see the other's sales.
    assert!(ids_r.iter().all(|id| !txlog(&left[1]).contains(id)));
    assert!(ids_l.iter().all(|id| !txlog(&right[0]).contains(id)));

    for a in left {
        for b in right {
            a.mesh().faults().unblock(b.cfg.terminal.id);
            b.mesh().faults().unblock(a.cfg.terminal.id);
        }
    }
    converged(&refs, Duration::from_secs(30)).await;
    let expected: BTreeSet<String> = ids_l.iter().chain(&ids_r).cloned().collect();
    for t in &tills {
        assert_eq!(txlog(t), expected);
        let state = t.till().state();
        for i in 0..4 {
            assert_eq!(state.stock(&demo_item(i).0), 100 - units_l[i] - units_r[i]);
        }
        // Exactly once on disk too.
        let sales = t
            .till()
            .store()
            .read(|r| r.sales_between(0, u64::MAX, 10_000))
            .unwrap();
        assert_eq!(sales.len(), expected.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_till_catches_up_from_its_version_vector() {
    let pki = Pki::new("S001");
    let mut tills = start_store(&pki, &[1, 2, 3]).await;
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let third = tills.pop().unwrap();
    let port = third.mesh().local_addr().port();
    let held_before = third.till().version_vector().total();
    let dir = third.stop().await;

    let (ids, _) = sell_many(&cashier(&tills[0]).await, 8, 1).await;
    let missing = tills[0].till().version_vector().total() - held_before;
    let cfg = mesh_config(dir.path(), &pki, 3, port);
    let third = TestTill::start_with(cfg, dir).await;
    for t in &tills {
        third.mesh().add_peer(t.mesh().local_addr());
    }
    tills.push(third);
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let third = &tills[2];
    assert!(ids.iter().all(|id| txlog(third).contains(id)));
    // Only what it lacked was sent (each of the two peers may push the same events once),
    // not the full log of opening stock and earlier sales.
    let received: u64 = third.mesh().peers().iter().map(|p| p.events_received).sum();
    assert!(
        received >= missing,
        "received {received} < missing {missing}"
    );
    assert!(
        received <= 2 * missing,
        "received {received} events for {missing} missing: a resend of the log"
    );
    assert!(
        held_before > 2 * missing,
        "test premise: the log is much larger than the gap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn till_with_lost_data_dir_rebuilds_from_peers() {
    let pki = Pki::new("S001");
    let mut tills = start_store(&pki, &[1, 2, 3]).await;
    let (old_ids, _) = sell_many(&cashier(&tills[2]).await, 3, 0).await;
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let lost = tills.pop().unwrap();
    let port = lost.mesh().local_addr().port();
    drop(lost.stop().await); // the data directory is gone

    let dir = tempfile::tempdir().unwrap();
    let cfg = mesh_config(dir.path(), &pki, 3, port);
    let fresh = TestTill::start_with(cfg, dir).await;
    for t in &tills {
        fresh.mesh().add_peer(t.mesh().local_addr());
    }
    tills.push(fresh);
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let fresh = &tills[2];
    let c = cashier(fresh).await;
    for id in &old_ids {
        assert!(
            txlog(fresh).contains(id),
            "its own old sale {id} came back from peers"
        );
        assert_eq!(
            c.get(&format!("/api/v1/transactions/{id}"))
                .await
                .expect(200)["status"],
            "PAID"
        );
    }
    // It sells on under a new incarnation: no id collides with its old sales.
    let (new_ids, _) = sell_many(&c, 1, 0).await;
    assert!(!old_ids.contains(&new_ids[0]));
    assert_ne!(old_ids[0].split('-').nth(1), new_ids[0].split('-').nth(1));
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
}

/// The `Hello` frame an enrolled till `terminal` of S001 holding nothing sends.
fn hello_as(terminal: u64) -> Vec<u8> {
    wire::encode(&Frame::Hello {
        min_version: wire::PROTOCOL_MIN,
        max_version: wire::PROTOCOL_VERSION,
        store_id: "S001".into(),
        terminal,
        vv: Default::default(),
    })
}

/// A raw QUIC client presenting `tls` (or no certificate).
async fn raw_connect(
    tls: rustls::ClientConfig,
    to: std::net::SocketAddr,
) -> Result<quinn::Connection, String> {
    let mut ep =
        quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string())?;
    let qc = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    ep.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(qc)));
    let conn = ep
        .connect(to, "s001.tillmesh")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Sends raw bytes on a new stream and reads until the peer closes; returns what came back.
/// Polls `f` until it answers something, for at most `within`.
async fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not seen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(bytes).await.map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0_u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), recv.read(&mut buf)).await {
            Ok(Ok(Some(n))) => got.extend_from_slice(&buf[..n]),
            Ok(Ok(None)) => return Ok(got),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Ok(got),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreign_or_missing_certificates_are_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &[1]).await;
    let target = tills[0].mesh().local_addr();

    // A till of the same store id but enrolled by another CA: refused at the handshake, and
    // nothing it sells ever reaches the store.
    let rogue_pki = Pki::new("S001");
    let rogue = start_store(&rogue_pki, &[9]).await;
    rogue[0].mesh().add_peer(target);
    tills[0].mesh().add_peer(rogue[0].mesh().local_addr());
    let (rogue_ids, _) = sell_many(&cashier(&rogue[0]).await, 1, 0).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!txlog(&tills[0]).contains(&rogue_ids[0]));
    assert!(
        tills[0].mesh().peers().iter().all(|p| p.terminal != 9
            || (!p.inbound && p.outbound != tillmesh_mesh::PeerState::Connected))
    );

    // A client with no certificate at all.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            rustls::pki_types::pem::PemObject::from_pem_file(pki.dir.path().join("store-ca.pem"))
                .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
                .unwrap(),
        ))
        .unwrap();
    let mut anon = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    anon.alpn_protocols = vec![wire::ALPN.to_vec()];
    let hello = wire::encode(&Frame::Hello {
        min_version: wire::PROTOCOL_MIN,
        max_version: wire::PROTOCOL_VERSION,
        store_id: "S001".into(),
        terminal: 5,
        vv: Default::default(),
    });
    let outcome = match raw_connect(anon, target).await {
        Err(e) => Err(e),
        Ok(conn) => exchange(&conn, &hello).await,
    };
    assert!(
        outcome.is_err() || outcome.as_ref().is_ok_and(|b| b.is_empty()),
        "a client without a certificate got an answer: {outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_frames_disconnect_and_replays_change_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &[1, 2]).await;
    let (ids, _) = sell_many(&cashier(&tills[1]).await, 1, 0).await;
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let target = tills[0].mesh().local_addr();
    let (ca, cert, key) = pki.enroll(7);
    let id = tillmesh_mesh::identity::TillIdentity::load("S001", &ca, &cert, &key).unwrap();
    let before = tills[0].till().state();
    let hello = |terminal, version| {
        wire::encode(&Frame::Hello {
            min_version: version,
            max_version: version,
            store_id: "S001".into(),
            terminal,
            vv: Default::default(),
        })
    };

    // Oversized length prefix: closed before the body is read.
    let conn = raw_connect(id.client_config().unwrap(), target)
        .await
        .unwrap();
    let mut bytes = hello(7, wire::PROTOCOL_VERSION);
    bytes.extend_from_slice(&((wire::FRAME_BYTES_MAX as u32) + 1).to_be_bytes());
    assert!(exchange(&conn, &bytes).await.is_err() || conn.close_reason().is_some());
    // Malformed body.
    let conn = raw_connect(id.client_config().unwrap(), target)
        .await
        .unwrap();
    let mut bytes = hello(7, wire::PROTOCOL_VERSION);
    bytes.extend_from_slice(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
    let _ = exchange(&conn, &bytes).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        conn.close_reason().is_some(),
        "malformed frame did not end the connection"
    );
    // A protocol version the till does not speak: it answers its own range (so the peer can
    // tell the cashier which till to upgrade), names the reason in its status, and closes.
    let conn = raw_connect(id.client_config().unwrap(), target)
        .await
        .unwrap();
    let reply = exchange(&conn, &hello(7, 99)).await.unwrap_or_default();
    assert!(reply.len() > 4, "no Hello came back to a too-new peer");
    match wire::decode(&reply[4..]) {
        Ok(Frame::Hello {
            min_version,
            max_version,
            ..
        }) => assert_eq!(
            (min_version, max_version),
            (wire::PROTOCOL_MIN, wire::PROTOCOL_VERSION)
        ),
        other => panic!("expected the till's Hello, got {other:?}"),
    }
    conn.close(0u32.into(), b"too new");
    let reason = wait_for(Duration::from_secs(10), || {
        tills[0]
            .mesh()
            .peers()
            .into_iter()
            .find(|p| p.terminal == 7)
            .and_then(|p| p.last_error)
            .filter(|e| e.contains("too new for this till"))
    })
    .await;
    assert!(reason.contains("versions 99 to 99"), "{reason}");
    // Claiming another terminal than the certificate names.
    let conn = raw_connect(id.client_config().unwrap(), target)
        .await
        .unwrap();
    let _ = exchange(&conn, &hello(2, wire::PROTOCOL_VERSION)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        conn.close_reason().is_some(),
        "a terminal impersonation did not end the connection"
    );

    // A replayed batch of events it already holds changes nothing.
    let events = tills[1]
        .till()
        .events_after(
            tills[1]
                .till()
                .state()
                .vv
                .iter()
                .map(|(o, _)| o)
                .max()
                .unwrap(),
            0,
            100,
        )
        .await
        .unwrap();
    assert!(!events.is_empty());
    let conn = raw_connect(id.client_config().unwrap(), target)
        .await
        .unwrap();
    let mut bytes = hello(7, wire::PROTOCOL_VERSION);
    bytes.extend(wire::encode(&Frame::Events(events.clone())));
    bytes.extend(wire::encode(&Frame::Events(events)));
    let reply = exchange(&conn, &bytes).await.unwrap_or_default();
    assert!(!reply.is_empty(), "expected Hello and Acks back");
    assert_eq!(
        tills[0].till().state(),
        before,
        "replayed events changed the state"
    );
    assert!(txlog(&tills[0]).contains(&ids[0]));
    // Nothing of the bad connections broke the healthy link.
    let (more, _) = sell_many(&cashier(&tills[1]).await, 1, 1).await;
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    assert!(txlog(&tills[0]).contains(&more[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn till_with_damaged_database_rebuilds_from_peers() {
    let pki = Pki::new("S001");
    let mut tills = start_store(&pki, &[1, 2, 3]).await;
    let (old_ids, _) = sell_many(&cashier(&tills[2]).await, 2, 0).await;
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let damaged = tills.pop().unwrap();
    let port = damaged.mesh().local_addr().port();
    let dir = damaged.stop().await;
    support::damage(&dir.path().join("till.db"));

    let cfg = mesh_config(dir.path(), &pki, 3, port);
    let rebuilt = TestTill::start_with(cfg, dir).await;
    for t in &tills {
        rebuilt.mesh().add_peer(t.mesh().local_addr());
    }
    let moved_aside = std::fs::read_dir(rebuilt.dir.path())
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().contains("damaged"));
    assert!(moved_aside, "the damaged file was not kept for inspection");
    tills.push(rebuilt);
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    for id in &old_ids {
        assert!(
            txlog(&tills[2]).contains(id),
            "its own old sale {id} came back from peers"
        );
    }
}

/// Waits until every till names the same leader and the group has `voters`; returns the leader.
async fn one_leader(tills: &[&TestTill], voters: &[u64], within: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut leaders = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for t in tills {
            let r = t.node().raft.as_ref().expect("meshed tills run Raft");
            leaders.insert(r.leader().await);
            groups.insert(r.voters());
        }
        if leaders.len() == 1
            && groups.len() == 1
            && groups.first().is_some_and(|g| g == voters)
            && let Some(Some(l)) = leaders.first()
        {
            return *l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no single leader over {voters:?} yet: leaders {leaders:?}, voter sets {groups:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tills_form_one_raft_group_over_the_mesh_and_fail_over() {
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &[3, 1, 2]).await;
    let all: Vec<&TestTill> = tills.iter().collect();
    let leader = one_leader(&all, &[1, 2, 3], Duration::from_secs(20)).await;
    // Status shows the group.
    let view = all[0]
        .till()
        .status()
        .raft
        .expect("a meshed till reports Raft");
    assert_eq!((view.leader, view.voters), (Some(leader), vec![1, 2, 3]));
    // A late fourth till is added by the leader.
    let dir = tempfile::tempdir().unwrap();
    let t4 = TestTill::start_with(mesh_config(dir.path(), &pki, 4, 0), dir).await;
    for t in &tills {
        t.mesh().add_peer(t4.mesh().local_addr());
        t4.mesh().add_peer(t.mesh().local_addr());
    }
    let mut four: Vec<&TestTill> = tills.iter().collect();
    four.push(&t4);
    assert_eq!(
        one_leader(&four, &[1, 2, 3, 4], Duration::from_secs(20)).await,
        leader
    );
    // The leader stops; the others elect another.
    let mut rest = Vec::new();
    let mut stopped = None;
    for t in tills.into_iter().chain([t4]) {
        if t.cfg.terminal.id == leader {
            stopped = Some(t);
        } else {
            rest.push(t);
        }
    }
    stopped.unwrap().stop().await;
    let rest_refs: Vec<&TestTill> = rest.iter().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut leaders = BTreeSet::new();
        for t in &rest_refs {
            leaders.insert(t.node().raft.as_ref().unwrap().leader().await);
        }
        if leaders.len() == 1
            && leaders
                .first()
                .is_some_and(|l| l.is_some_and(|l| l != leader))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in rest {
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_till_gone_past_the_limit_leaves_the_raft_group() {
    let pki = Pki::new("S001");
    let mut tills = Vec::new();
    for t in [1u64, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = mesh_config(dir.path(), &pki, t, 0);
        cfg.mesh.as_mut().unwrap().raft_remove_after_ms = 2_000;
        tills.push(TestTill::start_with(cfg, dir).await);
    }
    connect_all(&tills);
    let all: Vec<&TestTill> = tills.iter().collect();
    let leader = one_leader(&all, &[1, 2, 3], Duration::from_secs(20)).await;
    // A follower goes away for good; after the limit the group is the two others.
    let gone = tills
        .iter()
        .position(|t| t.cfg.terminal.id != leader)
        .unwrap();
    let gone_id = tills[gone].cfg.terminal.id;
    tills.remove(gone).stop().await;
    let rest: Vec<&TestTill> = tills.iter().collect();
    let mut voters: Vec<u64> = [1, 2, 3].into_iter().filter(|t| *t != gone_id).collect();
    voters.sort_unstable();
    assert_eq!(
        one_leader(&rest, &voters, Duration::from_secs(20)).await,
        leader
    );
    for t in tills {
        t.stop().await;
    }
}

/// An enrolled peer sends crafted events over QUIC to one till of a three-till store (issue
/// 17): a counter entry past its bound, an HLC logical counter near `u32::MAX`, a price past
/// the cap and a forged customer change, among good events. Every till quarantines them (the
/// first relays them as received), keeps selling, and restarts cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crafted_events_from_an_enrolled_peer_are_quarantined_on_every_till() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new("S001");
    let mut tills = start_store(&pki, &[1, 2, 3]).await;
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let (sku, _, _) = demo_item(3);
    let mut rogue = None;
    let events = tillmesh::sim::poison::batch(&mut rogue, &sku, 0, tills[0].till().now_ms());
    let sent = events.len() as u64;
    let (ca, cert, key) = pki.enroll(7);
    let id = tillmesh_mesh::identity::TillIdentity::load("S001", &ca, &cert, &key).unwrap();
    let conn = raw_connect(id.client_config().unwrap(), tills[0].mesh().local_addr())
        .await
        .unwrap();
    let mut bytes = hello_as(7);
    bytes.extend(wire::encode(&Frame::Events(events)));
    let answer = exchange(&conn, &bytes).await.unwrap();
    assert!(!answer.is_empty(), "the till answered the batch");
    // Every till holds the batch (the first relays it) and quarantines the crafted events.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let q: Vec<usize> = tills.iter().map(|t| t.till().quarantined_count()).collect();
        if q.iter().all(|&n| n == 4) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "quarantined per till: {q:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let rows = tills[2].till().quarantine().await.unwrap();
    assert!(
        rows.iter().all(|r| r.from_terminal != 7),
        "till 3 got them relayed: {rows:?}"
    );
    for t in &tills {
        let held: u64 = t
            .till()
            .version_vector()
            .iter()
            .filter(|(o, _)| o.terminal() >= 90)
            .map(|(_, s)| s)
            .sum();
        assert_eq!(held, sent, "T{}: every event is held", t.cfg.terminal.id);
        sell_many(&cashier(t).await, 1, 0).await;
    }
    // A restart replays the quarantined events without applying them.
    let t3 = tills.pop().unwrap();
    let before = t3.till().state();
    let (cfg, dir) = (t3.cfg.clone(), t3.stop().await);
    let t3 = TestTill::start_with(cfg, dir).await;
    assert_eq!(t3.till().quarantined_count(), 4);
    assert_eq!(t3.till().state(), before);
    sell_many(&cashier(&t3).await, 1, 1).await;
    t3.stop().await;
    for t in tills {
        t.stop().await;
    }
}

/// Inbound connections per peer are bounded (issue 17): each may buffer a base and a set of
/// requests, so a peer opening connections without end could exhaust a till's memory. Past
/// the limit a connection is closed at once, and status counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_cannot_hold_more_than_its_share_of_connections() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &[1]).await;
    let target = tills[0].mesh().local_addr();
    let (ca, cert, key) = pki.enroll(7);
    let id = tillmesh_mesh::identity::TillIdentity::load("S001", &ca, &cert, &key).unwrap();
    let hello = hello_as(7);
    let mut held = Vec::new();
    for _ in 0..tillmesh_mesh::sync::INBOUND_PER_PEER_MAX + 2 {
        let conn = raw_connect(id.client_config().unwrap(), target)
            .await
            .unwrap();
        // A connection over the limit may be closed before its stream opens.
        let streams = match conn.open_bi().await {
            Ok((mut send, recv)) => {
                let _ = send.write_all(&hello).await;
                Some((send, recv))
            }
            Err(_) => None,
        };
        held.push((conn, streams));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let closed = held
            .iter()
            .filter(|(c, _)| c.close_reason().is_some())
            .count();
        let refused = tills[0]
            .till()
            .status()
            .peers
            .iter()
            .find(|p| p.terminal == 7)
            .map_or(0, |p| p.inbound_refused);
        if closed == 2 && refused == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed {closed}, counted {refused}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The till goes on selling.
    sell_many(&cashier(&tills[0]).await, 1, 0).await;
    drop(held);
    for t in tills {
        t.stop().await;
    }
}

/// Two tills started with the same terminal id took each other for themselves and shared a
/// Raft id (issue 17). Each now refuses the other, says so in status, and neither takes the
/// other's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tills_with_one_terminal_id_refuse_each_other_and_say_so() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new("S001");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestTill::start_with(mesh_config(d1.path(), &pki, 1, 0), d1).await;
    let b = TestTill::start_with(mesh_config(d2.path(), &pki, 1, 0), d2).await;
    sell_many(&cashier(&a).await, 1, 0).await;
    sell_many(&cashier(&b).await, 1, 1).await;
    a.mesh().add_peer(b.mesh().local_addr());
    b.mesh().add_peer(a.mesh().local_addr());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (sa, sb) = (a.till().status(), b.till().status());
        if !sa.duplicate_terminal_at.is_empty() && !sb.duplicate_terminal_at.is_empty() {
            assert_eq!(
                sa.duplicate_terminal_at,
                vec![b.mesh().local_addr().to_string()]
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not shown: {:?} / {:?}",
            sa.duplicate_terminal_at,
            sb.duplicate_terminal_at
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Neither took the other's sale.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (va, vb) = (a.till().version_vector(), b.till().version_vector());
    assert_eq!(va.iter().count(), 2, "{va:?}"); // its own origin and master data
    assert_ne!(va, vb);
    a.stop().await;
    b.stop().await;
}

/// Raft requests are bound to their sender's certificate (issue 19): an enrolled till (7)
/// sending a vote in till 2's name with a higher term and a longer log, and an append as if
/// it were leader 2, is refused by till 1, whose term does not move; before, the vote was
/// granted and the store's term jumped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_raft_request_in_another_nodes_name_is_refused() {
    use openraft::{CommittedLeaderId, LogId, Vote};
    use tillmesh_consensus::network::{RaftRpc, encode};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &[1, 2, 3]).await;
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let term = |t: &TestTill| t.till().status().raft.map(|r| r.term).unwrap_or(0);
    let before = term(&tills[0]);
    let (ca, cert, key) = pki.enroll(7);
    let id = tillmesh_mesh::identity::TillIdentity::load("S001", &ca, &cert, &key).unwrap();
    let conn = raw_connect(id.client_config().unwrap(), tills[0].mesh().local_addr())
        .await
        .unwrap();
    let forged_term = before + 5;
    let vote = RaftRpc::Vote(openraft::raft::VoteRequest::new(
        Vote::new(forged_term, 2),
        Some(LogId::new(
            CommittedLeaderId::new(forged_term, 2),
            1_000_000,
        )),
    ));
    let append = RaftRpc::Append(openraft::raft::AppendEntriesRequest {
        vote: Vote::new_committed(forged_term, 2),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    });
    // The first stream says hello and stays open; each request then has its own stream.
    let (mut hello_send, mut hello_recv) = conn.open_bi().await.unwrap();
    hello_send.write_all(&hello_as(7)).await.unwrap();
    let mut buf = [0_u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(3), hello_recv.read(&mut buf)).await;
    for rpc in [vote, append] {
        let answer = exchange(&conn, &wire::encode(&Frame::Rpc(encode(&rpc).unwrap())))
            .await
            .unwrap();
        assert_eq!(
            answer,
            wire::encode(&Frame::RpcReply(Vec::new())),
            "a request in another node's name gets an empty answer"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        term(&tills[0]) < forged_term,
        "till 1 took the forged term: {} -> {}",
        before,
        term(&tills[0])
    );
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
}

/// Seals (issue 19): an enrolled till (T7, with its own certificate) forges events under
/// till 1's origin at its next sequence number, once without a seal and once sealed with
/// its own key, and sends them to tills 2 and 3 over the mesh. Both refuse them without
/// storing them (status and metrics say so); till 1's genuine event at that sequence
/// number then arrives everywhere and the three states are equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_forged_under_another_tills_origin_is_refused_and_cannot_shadow_the_genuine_one() {
    use tillmesh_pos::inventory::Reason;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &[1, 2, 3]).await;
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    // Every till seals and holds every till's key.
    wait_for(Duration::from_secs(10), || {
        tills
            .iter()
            .all(|t| {
                let s = t.till().status().seals;
                s.enabled && s.origins_with_keys == 3
            })
            .then_some(())
    })
    .await;
    let victim = tills[0].till().replica_id();
    let next = tills[0].till().version_vector().get(victim) + 1;
    let (sku, _, _) = demo_item(2);
    let forged = |sealed_by: Option<&tillmesh_mesh::seal::Sealer>| {
        let mut r = tillmesh_pos::state::Replica::new(victim);
        let mut e = r.adjust(
            &sku,
            -5_000,
            Reason::Shrinkage,
            None,
            None,
            "E001",
            tills[0].till().now_ms(),
        );
        e.seq = next;
        if let Some(sealer) = sealed_by {
            // The rogue seals the event as if it were its own, then puts back the victim's
            // origin.
            let mut own = e.clone();
            own.origin = tillmesh_crdt::ReplicaId::for_terminal(7, 1);
            e.sig = sealer.seal(&own);
            assert!(e.sig.is_some());
        }
        e
    };
    let (ca, cert, key) = pki.enroll(7);
    let id = tillmesh_mesh::identity::TillIdentity::load("S001", &ca, &cert, &key).unwrap();
    let rogue =
        tillmesh_mesh::seal::Sealer::new(&id, tillmesh_crdt::ReplicaId::for_terminal(7, 1).0)
            .unwrap();
    for t in &tills[1..] {
        let conn = raw_connect(id.client_config().unwrap(), t.mesh().local_addr())
            .await
            .unwrap();
        let mut bytes = hello_as(7);
        bytes.extend(wire::encode(&Frame::events(
            wire::PROTOCOL_VERSION,
            vec![forged(None)],
        )));
        bytes.extend(wire::encode(&Frame::events(
            wire::PROTOCOL_VERSION,
            vec![forged(Some(&rogue))],
        )));
        let answer = exchange(&conn, &bytes).await.unwrap();
        assert!(!answer.is_empty(), "T{} answered", t.cfg.terminal.id);
        let seals = t.till().status().seals;
        assert_eq!(
            seals
                .refused
                .iter()
                .filter(|r| r.from_terminal == 7)
                .count(),
            2,
            "T{}: {seals:?}",
            t.cfg.terminal.id
        );
        assert!(
            t.till().version_vector().get(victim) < next,
            "T{} stored a forgery",
            t.cfg.terminal.id
        );
        let metrics = t.client().get("/metrics").await.body;
        assert!(
            metrics
                .as_str()
                .unwrap()
                .contains("tillmesh_seal_refused_events_total 2"),
            "{metrics}"
        );
    }
    // Till 1 sells: its genuine event at `next` reaches both and the states agree.
    sell_many(&cashier(&tills[0]).await, 2, 0).await;
    converged(&tills.iter().collect::<Vec<_>>(), Duration::from_secs(30)).await;
    let genuine = tills[0]
        .till()
        .events_after(victim, next - 1, 1)
        .await
        .unwrap();
    assert!(genuine[0].sig.is_some(), "till 1 sealed its event");
    for t in &tills[1..] {
        let held = t.till().events_after(victim, next - 1, 1).await.unwrap();
        assert_eq!(
            held, genuine,
            "T{} holds the genuine event",
            t.cfg.terminal.id
        );
    }
    for t in tills {
        t.stop().await;
    }
}

/// Revocation (issue 19): `tillmesh store revoke` signs a list with the store CA; an admin
/// hands it to the leader, which commits it through Raft; every other till closes the
/// revoked till's connections within 5 s and refuses it, restarted or not, with its old
/// certificate; a list not signed by the store CA, from a cashier, or to a follower changes
/// nothing; the till enrolled again is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_till_is_cut_off_within_seconds_and_cannot_rejoin_with_its_old_certificate() {
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &[1, 2, 3]).await;
    let all: Vec<&TestTill> = tills.iter().collect();
    let leader = one_leader(&all, &[1, 2, 3], Duration::from_secs(20)).await;
    converged(&all, Duration::from_secs(20)).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .args(["store", "revoke", "--ca-dir"])
        .arg(pki.dir.path())
        .args(["--terminal-id", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = "/api/v1/security/revocations";
    let lead = tills.iter().find(|t| t.cfg.terminal.id == leader).unwrap();
    let follower = tills.iter().find(|t| t.cfg.terminal.id != leader).unwrap();
    // Refusals: another CA's list, a cashier, a follower.
    let other = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
    let forged = tillmesh_mesh::revocation::Revocations {
        store_id: "S001".into(),
        issued_ms: u64::MAX / 2,
        revoked: [(1, u64::MAX / 2)].into(),
    }
    .sign(&other)
    .unwrap();
    let admin = |t: &TestTill| t.client().login("A001", "0000");
    admin(lead)
        .await
        .post(path, serde_json::to_value(&forged).unwrap())
        .await
        .expect_error(422, "bad_revocations");
    cashier(lead)
        .await
        .post(path, signed.clone())
        .await
        .expect_error(403, "admin_only");
    admin(follower)
        .await
        .post(path, signed.clone())
        .await
        .expect_error(409, "not_leader");
    for t in &tills {
        assert!(
            t.client().get("/api/v1/status").await.body["revoked_tills"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    let answer = admin(lead)
        .await
        .post(path, signed.clone())
        .await
        .expect(200);
    assert_eq!(answer["revoked"], serde_json::json!([3]));
    // Within 5 s every other till has closed till 3's connections and says so.
    let others: Vec<&TestTill> = tills.iter().filter(|t| t.cfg.terminal.id != 3).collect();
    let cut_off = |t: &TestTill| {
        t.mesh()
            .peers()
            .iter()
            .filter(|p| p.terminal == 3)
            .all(|p| p.outbound != tillmesh_mesh::PeerState::Connected && !p.inbound)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for t in &others {
        while !(cut_off(t)
            && t.client().get("/api/v1/status").await.body["revoked_tills"]
                == serde_json::json!([3]))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "T{} still talks to the revoked till: {:?}",
                t.cfg.terminal.id,
                t.mesh().peers()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let metrics = others[0].client().get("/metrics").await.body;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("tillmesh_revoked_tills 1"),
        "{metrics}"
    );
    // A leader proposing an older list again (the CA signed it, so it verifies) lifts
    // nothing, even on a till restarted after it: each till keeps the newest it applied.
    let ca = tillmesh_mesh::identity::Pem {
        cert: std::fs::read_to_string(pki.dir.path().join("store-ca.pem")).unwrap(),
        key: std::fs::read_to_string(pki.dir.path().join("store-ca.key")).unwrap(),
    };
    let older = tillmesh_mesh::revocation::Revocations {
        store_id: "S001".into(),
        issued_ms: 1,
        revoked: Default::default(),
    }
    .sign(&ca)
    .unwrap();
    lead.raft()
        .propose(tillmesh_consensus::Command::Setting {
            key: "store.revocations".into(),
            value: serde_json::to_string(&older).unwrap(),
        })
        .await
        .unwrap();
    let mut tills = tills;
    let at = tills
        .iter()
        .position(|t| t.cfg.terminal.id != leader && t.cfg.terminal.id != 3)
        .unwrap();
    let other = tills.remove(at);
    let cfg_other = other.cfg.clone();
    let dir_other = other.stop().await;
    let other = TestTill::start_with(cfg_other, dir_other).await;
    assert_eq!(
        other.client().get("/api/v1/status").await.body["revoked_tills"],
        serde_json::json!([3]),
        "a restarted till applies the newest list it applied before, at once"
    );
    for t in &tills {
        other.mesh().add_peer(t.mesh().local_addr());
        t.mesh().add_peer(other.mesh().local_addr());
    }
    tills.insert(at, other);
    // Till 3 restarted with its old certificate: its sales never reach the others.
    let t3 = tills.pop().unwrap();
    let cfg3 = t3.cfg.clone();
    let dir3 = t3.stop().await;
    let t3 = TestTill::start_with(cfg3.clone(), dir3).await;
    for t in &tills {
        t3.mesh().add_peer(t.mesh().local_addr());
        t.mesh().add_peer(t3.mesh().local_addr());
    }
    let sold = cashier(&t3)
        .await
        .sell(&[(&demo_barcode(0), 1)], None)
        .await
        .unwrap();
    let id = sold["txn_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for t in &tills {
        assert!(
            !txlog(t).contains(&id),
            "a revoked till's sale reached T{}",
            t.cfg.terminal.id
        );
        assert!(cut_off(t));
    }
    // Enrolled again (a certificate issued after the revocation): admitted, and its sale
    // arrives everywhere.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let dir3 = t3.stop().await;
    let cfg3 = mesh_config(dir3.path(), &pki, 3, 0);
    let t3 = TestTill::start_with(cfg3, dir3).await;
    for t in &tills {
        t3.mesh().add_peer(t.mesh().local_addr());
        t.mesh().add_peer(t3.mesh().local_addr());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !tills.iter().all(|t| txlog(t).contains(&id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the till enrolled again was not admitted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t3.stop().await;
    for t in tills {
        t.stop().await;
    }
}
