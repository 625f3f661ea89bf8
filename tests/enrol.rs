//! Enrolment by join token (issue 21) over QUIC on loopback: a store of two tills with past
//! sales; `tillmesh store token` (the real CLI) makes a token for a new till; a till with no
//! identity and `[mesh] enrol` waits, showing a code, refuses a damaged token, takes the
//! real one, writes its identity, starts as the token's terminal, syncs every past sale and
//! sells. A till that was enrolled starts again as that terminal without waiting.
//! The store's leader records the token's first use: the same token on a second machine is
//! refused. Approval in the store: a manager on till 1 confirms a waiting till's code, HQ
//! signs it.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;
use support::{
    Pki, TestTill, demo_barcode, mesh_config, package_like_config, test_config, wait_in_background,
};

fn txlog(t: &TestTill) -> BTreeSet<String> {
    t.till().state().txlog.iter().cloned().collect()
}

async fn converged(tills: &[&TestTill]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let vvs: Vec<_> = tills.iter().map(|t| t.till().version_vector()).collect();
        if vvs.windows(2).all(|w| w[0] == w[1]) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tills did not converge: {vvs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Tills 1 and 2 of the store (with `cloud` when given), dialing each other, each with a
/// sale, converged.
async fn two_tills_with_sales(pki: &Pki, cloud: Option<&support::TestCloud>) -> Vec<TestTill> {
    let mut tills = Vec::new();
    for t in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = mesh_config(dir.path(), pki, t, 0);
        cfg.cloud = cloud.map(support::TestCloud::section);
        tills.push(TestTill::start_with(cfg, dir).await);
    }
    tills[0].mesh().add_peer(tills[1].mesh().local_addr());
    tills[1].mesh().add_peer(tills[0].mesh().local_addr());
    for (i, t) in tills.iter().enumerate() {
        let c = t.client().login("E001", "1111").await;
        c.sell(&[(&demo_barcode(i), 2)], None).await.unwrap();
    }
    converged(&[&tills[0], &tills[1]]).await;
    tills
}

/// The view of a waiting till at `http`, once it answers.
async fn waiting_view(http: std::net::SocketAddr) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = reqwest::get(format!("http://{http}/api/v1/enrolment")).await {
            return r.json().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the waiting till never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Approval in the store (issue 21): HQ holds the store CA; a till started from a
/// package-like config (no store, no cloud, no identity) waits with a code; a manager on
/// till 1 confirms the code with their PIN; HQ issues terminal 3 on the new till's own key;
/// the new till learns its store, the cloud and a peer, joins, syncs every past sale, gets
/// the store credential through Raft, and sells. A wrong code, a cashier's PIN, a wrong PIN
/// and an unknown code change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manager_admits_a_waiting_till_with_its_code_and_hq_signs_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new("S001");
    let cloud = support::TestCloud::start().await;
    cloud
        .handle
        .cloud
        .hold_store_ca("S001", pki.ca().clone(), 3)
        .await
        .unwrap();
    let tills = two_tills_with_sales(&pki, Some(&cloud)).await;

    let dir = tempfile::tempdir().unwrap();
    let cfg = package_like_config(dir.path());
    let http = cfg.terminal.listen;
    let (stop, waiter) = wait_in_background(cfg.clone());
    let view = waiting_view(http).await;
    assert_eq!(view["state"], "waiting");
    let code = view["code"].as_str().unwrap().to_string();

    let manager = tills[0].client().login("M001", "9999").await;
    let approve = |code: &str, who: &str, pin: &str| serde_json::json!({"code": code, "address": http.to_string(), "employee_id": who, "pin": pin});
    manager
        .post(
            "/api/v1/enrolment/approve",
            approve("AAAA-AAAA", "M001", "9999"),
        )
        .await
        .expect_error(409, "code_mismatch");
    manager
        .post("/api/v1/enrolment/approve", approve(&code, "E001", "1111"))
        .await
        .expect_error(403, "approval_refused");
    let wrong = manager
        .post("/api/v1/enrolment/approve", approve(&code, "M001", "0000"))
        .await;
    assert_eq!(wrong.status, 401, "{:?}", wrong.body);
    manager
        .post(
            "/api/v1/enrolment/approve",
            serde_json::json!({"code": "ZZZZ-ZZZZ", "employee_id": "M001", "pin": "9999"}),
        )
        .await
        .expect_error(404, "no_waiting_till");
    let cashier = tills[0].client().login("E002", "2222").await;
    cashier
        .get("/api/v1/enrolment/waiting")
        .await
        .expect_error(403, "manager_only");
    assert!(!dir.path().join("pki/till.pem").exists());
    assert_eq!(waiting_view(http).await["state"], "waiting");

    // The manager confirms the code shown, in lower case as typed.
    let admitted = manager
        .post(
            "/api/v1/enrolment/approve",
            approve(&code.to_lowercase(), "M001", "9999"),
        )
        .await
        .expect(200);
    assert_eq!(admitted["terminal"], 3, "{admitted}");
    assert_eq!(admitted["approved_by"], "M001 on T1");
    assert!(waiter.await.unwrap().unwrap(), "enrolled");
    drop(stop);
    // A second approval of the same till finds nobody waiting.
    let cfg = tillmesh::enrol::adopt(cfg).unwrap();
    assert_eq!(cfg.terminal.id, 3);
    assert_eq!(cfg.store.store_id, "S001");
    assert_eq!(cfg.store.name, tills[0].till().config().store.name);
    assert_eq!(cfg.cloud.as_ref().unwrap().url, cloud.url());
    assert_eq!(
        cfg.cloud.as_ref().unwrap().token,
        "",
        "the credential comes through Raft"
    );
    assert_eq!(
        cfg.mesh.as_ref().unwrap().peers,
        vec![tills[0].mesh().local_addr()],
        "the approving till is the first peer"
    );
    let t3 = TestTill::start_with(cfg, dir).await;
    assert_eq!(t3.till().replica_id().terminal(), 3);
    // Without mDNS here, the others learn the new till's address by hand (it dials till 1,
    // which it learned from the grant, by itself).
    for t in &tills {
        t.mesh().add_peer(t3.mesh().local_addr());
    }
    converged(&[&tills[0], &tills[1], &t3]).await;
    assert_eq!(txlog(&t3), txlog(&tills[0]), "every past sale");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while t3.raft().state().credential.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store credential never reached the new till"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = t3.client().login("E001", "1111").await;
    c.sell(&[(&demo_barcode(3), 1)], None).await.unwrap();
    converged(&[&tills[0], &tills[1], &t3]).await;
    // HQ issued terminal 3 once: the next approval would get 4.
    let held = cloud
        .handle
        .cloud
        .ledger
        .store_ca("S001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.next_terminal, 4);
    t3.stop().await;
    for t in tills {
        t.stop().await;
    }
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_till_with_no_identity_joins_with_a_join_token_syncs_and_sells() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new("S001");
    let tills = two_tills_with_sales(&pki, None).await;

    // The token, made where the CA key is.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .args(["store", "token", "--ca-dir"])
        .arg(pki.dir.path())
        .args(["--terminal-id", "3", "--valid-for", "1h", "--peer"])
        .arg(tills[0].mesh().local_addr().to_string())
        .arg("--http-peer")
        .arg(tills[0].node().http_addr.to_string())
        .arg("--http-peer")
        .arg(tills[1].node().http_addr.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().next().unwrap().to_string();
    assert!(token.starts_with(tillmesh::enrol::TOKEN_PREFIX));
    assert!(stdout.lines().count() > 20, "a QR code follows the text");

    // A till with no identity: its certificate, key and CA are to be written here.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], support::free_tcp_port()));
    cfg.terminal.listen = http;
    let pki3 = dir.path().join("pki");
    let mut mesh = tillmesh::config::MeshSection::loopback(
        "127.0.0.1:0".parse().unwrap(),
        pki3.join("store-ca.pem"),
        pki3.join("till.pem"),
        pki3.join("till.key"),
    );
    mesh.enrol = true;
    mesh.anti_entropy_ms = 300;
    cfg.mesh = Some(mesh);
    assert!(tillmesh::enrol::waiting(&cfg));
    let (stop, waiter) = wait_in_background(cfg.clone());
    let web = reqwest::Client::new();
    let url = |p: &str| format!("http://{http}{p}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let view: serde_json::Value = loop {
        if let Ok(r) = web.get(url("/api/v1/enrolment")).send().await {
            break r.json().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the waiting till never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(view["state"], "waiting");
    let code = view["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 9, "{code}");
    let page = web
        .get(url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&code), "the screen shows the code: {page}");
    // A damaged token is refused and changes nothing.
    let damaged = format!("{}AAAA", &token[..token.len() - 4]);
    let r = web
        .post(url("/api/v1/enrolment/token"))
        .json(&serde_json::json!({ "token": damaged }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "bad_token", "{body}");
    assert!(!pki3.join("till.pem").exists());
    // The real one.
    let r = web
        .post(url("/api/v1/enrolment/token"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(waiter.await.unwrap().unwrap(), "enrolled");
    drop(stop);
    let cfg = tillmesh::enrol::adopt(cfg).unwrap();

    // The same token on a second machine: the store's leader recorded the first, so it is
    // refused and nothing is written.
    let dir2 = tempfile::tempdir().unwrap();
    let mut cfg2 = package_like_config(dir2.path());
    cfg2.store.store_id = "S001".into();
    let http2 = cfg2.terminal.listen;
    let (stop2, waiter2) = wait_in_background(cfg2);
    waiting_view(http2).await;
    let r = web
        .post(format!("http://{http2}/api/v1/enrolment/token"))
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "token_used", "{body}");
    assert!(!dir2.path().join("pki/till.pem").exists());
    assert!(!dir2.path().join("pki/till.key").exists());
    assert_eq!(waiting_view(http2).await["state"], "waiting");
    drop(stop2);
    assert!(
        !waiter2.await.unwrap().unwrap(),
        "still waiting when stopped"
    );
    assert_eq!(cfg.terminal.id, 3);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pki3.join("till.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is the till's alone");
    }
    let t3 = TestTill::start_with(cfg.clone(), dir).await;
    assert_eq!(t3.till().config().terminal.id, 3);
    for t in &tills {
        t.mesh().add_peer(t3.mesh().local_addr());
    }
    t3.mesh().add_peer(tills[1].mesh().local_addr());
    converged(&[&tills[0], &tills[1], &t3]).await;
    assert_eq!(txlog(&t3), txlog(&tills[0]), "every past sale");
    let c = t3.client().login("E001", "1111").await;
    c.sell(&[(&demo_barcode(3), 1)], None).await.unwrap();
    converged(&[&tills[0], &tills[1], &t3]).await;
    // Started again, it is terminal 3 without waiting (its config still says enrol).
    let dir = t3.stop().await;
    assert!(!tillmesh::enrol::waiting(&cfg));
    let mut placeholder = cfg;
    placeholder.terminal.id = 1;
    let again = tillmesh::enrol::adopt(placeholder).unwrap();
    assert_eq!(again.terminal.id, 3);
    let t3 = TestTill::start_with(again, dir).await;
    assert_eq!(t3.till().replica_id().terminal(), 3);
    t3.stop().await;
    for t in tills {
        t.stop().await;
    }
}
