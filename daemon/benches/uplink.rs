//! Uplink benchmark (a bench script, not a test), tills and cloud in one process on loopback:
//!
//! - **Leader stop**: 3 tills upload to a cloud; the leader stops, in turn: without handing
//!   over (as after a crash or kill -9: an election once the followers hear no heartbeat)
//!   and as planned (it hands the leadership over first, as on SIGTERM), on the LAN timing
//!   with pre-votes (`Timing::default()`), and without handing over on the timing before it
//!   (`Timing::wide()`, the baseline), while a cashier sells on a follower. Measured from
//!   the stop to the new leader's election, and the upload gap: from the stopping leader's
//!   last batch the cloud accepted after the stop (a leader handing over uploads until its
//!   successor leads), or from the stop, to the successor's first acknowledged batch.
//!   `TILLMESH_BENCH_FAILOVERS` runs of each (default 50).
//! - **Spurious elections**: 3 tills selling flat out while `tillmesh sim --fuzz` runs on
//!   both cores, `TILLMESH_BENCH_STEADY_S` seconds (default 60; 0 skips it) on each timing
//!   (`TILLMESH_BENCH_STEADY_BASELINE=0`: the LAN timing only);
//!   the leader changes counted.
//! - **Catch-up**: 5 tills sell `TILLMESH_BENCH_OFFLINE_SALES` each (default 2,400) while
//!   the cloud is down, then the cloud comes up on its address; measured from then to every
//!   event in the ledger. Baseline: the same events posted straight to a fresh cloud by one
//!   client in 2,000-event binary batches. The retry back-off is capped at 1 s here so the
//!   figure is the transfer, not the wait for the next retry (the default cap is 5 min).
//!
//!     cargo bench -p tillmesh --bench uplink

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tillmesh::config::{CloudSection, MeshSection, TerminalConfig};
use tillmesh_pos::payment::Method;

use tillmesh_consensus::node::Timing;
use tillmesh_test_support::{env_or, repo};

fn till_config(
    root: &std::path::Path,
    ca: &tillmesh_mesh::identity::Pem,
    t: u64,
    tills: usize,
    cloud: &CloudSection,
    timing: Timing,
) -> TerminalConfig {
    let pki = root.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    std::fs::write(pki.join("store-ca.pem"), &ca.cert).unwrap();
    let mut cfg = TerminalConfig::load(&repo().join("configs/terminal.example.toml")).unwrap();
    cfg.security.demo = true;
    cfg.vision = None; // recognition is not what these measure
    cfg.terminal.id = t;
    cfg.terminal.listen = "127.0.0.1:0".parse().unwrap();
    cfg.terminal.data_dir = root.join(format!("till-{t}"));
    let till = tillmesh_mesh::identity::enroll(ca, "S001", t).unwrap();
    let (cert, key) = (
        pki.join(format!("till-{t}.pem")),
        pki.join(format!("till-{t}.key")),
    );
    std::fs::write(&cert, till.cert).unwrap();
    std::fs::write(&key, till.key).unwrap();
    let mut mesh = MeshSection::loopback(
        "127.0.0.1:0".parse().unwrap(),
        pki.join("store-ca.pem"),
        cert,
        key,
    );
    mesh.store_tills = tills;
    mesh.set_raft_timing(timing);
    cfg.mesh = Some(mesh);
    cfg.cloud = Some(cloud.clone());
    cfg
}

async fn start_cloud(dir: &std::path::Path, listen: SocketAddr) -> tillmesh_cloud::CloudHandle {
    let mut cfg =
        tillmesh_cloud::config::CloudConfig::load(&repo().join("configs/cloud.example.toml"))
            .unwrap();
    cfg.listen = listen;
    cfg.database = tillmesh_cloud::config::DatabaseConfig::Sqlite {
        path: dir.join("cloud.db"),
    };
    cfg.master_seed = Some(repo().join("configs/catalog.example.json"));
    cfg.projection_interval_ms = 0;
    tillmesh_cloud::start(cfg).await.unwrap()
}

async fn start_store(
    root: &std::path::Path,
    n: u64,
    cloud: &CloudSection,
    timing: Timing,
) -> Vec<tillmesh::Node> {
    let ca = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
    let mut nodes = Vec::new();
    for t in 1..=n {
        let cfg = till_config(root, &ca, t, n as usize, cloud, timing);
        nodes.push(tillmesh::start(cfg).await.unwrap());
    }
    let addrs: Vec<SocketAddr> = nodes
        .iter()
        .map(|n| n.mesh.as_ref().unwrap().local_addr())
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        for (j, a) in addrs.iter().enumerate() {
            if i != j {
                node.mesh.as_ref().unwrap().add_peer(*a);
            }
        }
    }
    nodes
}

async fn leader(nodes: &[tillmesh::Node], not: Option<u64>) -> u64 {
    loop {
        let mut ls = std::collections::BTreeSet::new();
        for n in nodes {
            ls.insert(n.raft.as_ref().unwrap().leader().await);
        }
        if ls.len() == 1
            && let Some(Some(l)) = ls.first()
            && Some(*l) != not
        {
            return *l;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn fleet(cloud: &tillmesh_cloud::CloudHandle) -> (u64, u64, u64) {
    let rows = cloud.cloud.ledger.fleet().await.unwrap();
    let r = rows.iter().find(|r| r.store_id == "S001").unwrap();
    (r.events, r.term, r.leader)
}

fn section(cloud: SocketAddr, token: String) -> CloudSection {
    let mut c = CloudSection::new(format!("http://{cloud}"), token);
    c.backoff_max_ms = 1_000;
    c.heartbeat_ms = 200;
    c.linger_ms = 50;
    c
}

/// The store's uploads as the cloud saw them: `(leader, last upload ms)` on every change.
async fn watch_uploads(
    cloud: std::sync::Arc<tillmesh_cloud::CloudHandle>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(u64, u64)> {
    let mut seen: Vec<(u64, u64)> = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let rows = cloud.cloud.ledger.fleet().await.unwrap();
        if let Some(r) = rows.iter().find(|r| r.store_id == "S001")
            && seen.last() != Some(&(r.leader, r.last_upload_ms))
        {
            seen.push((r.leader, r.last_upload_ms));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    seen
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// One leader stop while a cashier sells on a follower: `(ms from the stop to the new
/// leader's election, the upload gap)`. The gap runs from the stopping leader's last batch
/// the cloud accepted after the stop (a leader handing over uploads until its successor
/// leads), or from the stop when it sent none, to the successor's first accepted batch.
async fn failover_round(root: &std::path::Path, hand_over: bool, timing: Timing) -> (f64, f64) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let cloud = Arc::new(start_cloud(root, "127.0.0.1:0".parse().unwrap()).await);
    let token = cloud.cloud.issue(Some("S001"), None).await.unwrap().0;
    let mut nodes = start_store(root, 3, &section(cloud.addr, token), timing).await;
    let first = leader(&nodes, None).await;
    // Uploads are flowing from the first leader.
    while fleet(&cloud).await.2 != first {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at = nodes
        .iter()
        .position(|n| n.till.config().terminal.id == first)
        .unwrap();
    let gone = nodes.remove(at);
    let nodes = Arc::new(nodes);
    let quit = Arc::new(AtomicBool::new(false));
    let seller = {
        let (nodes, quit) = (nodes.clone(), quit.clone());
        tokio::spawn(async move {
            while !quit.load(Ordering::Relaxed) {
                sell(&nodes[0], 1).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let watcher = tokio::spawn(watch_uploads(cloud.clone(), quit.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = Instant::now();
    let stop_ms = tillmesh_cloud::now_ms();
    gone.stop_with(hand_over).await.unwrap();
    let second = leader(&nodes, Some(first)).await;
    let elected = stopped.elapsed().as_secs_f64() * 1000.0;
    while fleet(&cloud).await.2 != second {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    quit.store(true, Ordering::Relaxed);
    seller.await.unwrap();
    let seen = watcher.await.unwrap();
    let last_old = seen
        .iter()
        .filter(|&&(l, u)| l == first && u > stop_ms)
        .map(|&(_, u)| u)
        .max()
        .unwrap_or(stop_ms);
    let first_new = seen
        .iter()
        .filter(|&&(l, _)| l == second)
        .map(|&(_, u)| u)
        .min()
        .unwrap_or(last_old);
    for n in Arc::try_unwrap(nodes).unwrap() {
        n.stop().await.unwrap();
    }
    Arc::try_unwrap(cloud).unwrap().stop().await;
    (elected, first_new.saturating_sub(last_old) as f64)
}

/// A store of 3 tills selling as fast as they can for `secs` while `tillmesh sim --fuzz`
/// runs on both cores: `(leader changes after the first leader, sales made)`.
async fn steady_round(root: &std::path::Path, timing: Timing, secs: u64) -> (u64, usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let cloud = Arc::new(start_cloud(root, "127.0.0.1:0".parse().unwrap()).await);
    let token = cloud.cloud.issue(Some("S001"), None).await.unwrap().0;
    let nodes = Arc::new(start_store(root, 3, &section(cloud.addr, token), timing).await);
    leader(&nodes, None).await;
    let mut sim = std::process::Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .args(["sim", "--fuzz", "--seeds", "100000000", "--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the simulator starts");
    let quit = Arc::new(AtomicBool::new(false));
    let sold = Arc::new(AtomicUsize::new(0));
    let mut sellers = Vec::new();
    for i in 0..nodes.len() {
        let (nodes, quit, sold) = (nodes.clone(), quit.clone(), sold.clone());
        sellers.push(tokio::spawn(async move {
            while !quit.load(Ordering::Relaxed) {
                sell(&nodes[i], 1).await;
                sold.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut terms = std::collections::BTreeSet::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        for n in nodes.iter() {
            let m = n.raft.as_ref().unwrap().raft.metrics().borrow().clone();
            if let Some(l) = m.current_leader {
                terms.insert((m.current_term, l));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    quit.store(true, Ordering::Relaxed);
    let _ = sim.kill();
    let _ = sim.wait();
    for s in sellers {
        s.await.unwrap();
    }
    // Every term with a leader after the first is an election (the same till may win it).
    let changes = terms.len().saturating_sub(1) as u64;
    for n in Arc::try_unwrap(nodes).unwrap() {
        n.stop().await.unwrap();
    }
    Arc::try_unwrap(cloud).unwrap().stop().await;
    (changes, sold.load(Ordering::Relaxed))
}

async fn sell(node: &tillmesh::Node, n: usize) {
    let till = node.till.clone();
    let login = till.login("E001", "1111", "bench").await.unwrap();
    let session = till.session(&login.token).unwrap();
    let barcodes = [
        "8932462819482",
        "8931815908309",
        "8939378657979",
        "074911862521",
    ];
    for i in 0..n {
        let t = till.create_txn(&session).await.unwrap();
        till.add_item(&session, &t.txn_id, barcodes[i % 4], 1, false)
            .await
            .unwrap();
        let t = till.checkout(&session, &t.txn_id).await.unwrap();
        let req = tillmesh::till::PaymentRequest {
            method: Method::Cash,
            amount: None,
            tendered: Some(t.totals.total),
            card: None,
        };
        till.add_payment(&session, &t.txn_id, &req).await.unwrap();
        till.finalize(&session, &t.txn_id).await.unwrap();
    }
}

fn main() {
    let failovers: usize = env_or("TILLMESH_BENCH_FAILOVERS", 50);
    let offline: usize = env_or("TILLMESH_BENCH_OFFLINE_SALES", 2_400);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = std::env::current_dir().unwrap().join("target").join("bench-tmp");
        std::fs::create_dir_all(&base).unwrap();

        // Leader stops, in turn: a crash (no hand-over) and a planned stop (hand-over) on
        // the LAN timing with pre-votes, and a crash on the timing before it (the baseline).
        let lan = Timing::default();
        let wide = Timing::wide();
        let modes = [(false, lan), (true, lan), (false, wide)];
        let mut runs: [(Vec<f64>, Vec<f64>); 3] = Default::default();
        if failovers > 0 {
        for i in 0..failovers * modes.len() {
            let (hand_over, timing) = modes[i % modes.len()];
            let dir = tempfile::tempdir_in(&base).unwrap();
            let (e, u) = failover_round(dir.path(), hand_over, timing).await;
            runs[i % modes.len()].0.push(e);
            runs[i % modes.len()].1.push(u);
        }
        println!(
            "leader stop, 3 tills, {failovers} runs of each, in turn; LAN timing: heartbeat {} ms, election timeout {}-{} ms, pre-vote; baseline: heartbeat {} ms, election timeout {}-{} ms, openraft's timer",
            lan.heartbeat_ms, lan.election_min_ms, lan.election_max_ms,
            wide.heartbeat_ms, wide.election_min_ms, wide.election_max_ms,
        );
        let [(mut ce, mut cu), (mut he, mut hu), (mut be, mut bu)] = runs;
        for (name, e, u) in [
            ("crash, LAN timing", &mut ce, &mut cu),
            ("planned, hand-over, LAN", &mut he, &mut hu),
            ("crash, baseline timing", &mut be, &mut bu),
        ] {
            println!(
                "  {name:<25} to the new leader: p50 {:.0} ms p99 {:.0} ms; to its first acknowledged upload (the upload gap): p50 {:.0} ms p99 {:.0} ms",
                pct(e, 0.5),
                pct(e, 0.99),
                pct(u, 0.5),
                pct(u, 0.99)
            );
        }
        println!(
            "  crash, LAN / baseline upload gap: {:.2}x at p50, {:.2}x at p99",
            pct(&mut cu, 0.5) / pct(&mut bu, 0.5),
            pct(&mut cu, 0.99) / pct(&mut bu, 0.99)
        );
        }

        // Spurious elections: a store selling flat out on every till while a simulator
        // saturates both cores, on each timing.
        let steady: u64 = env_or("TILLMESH_BENCH_STEADY_S", 60);
        if steady > 0 {
            // `TILLMESH_BENCH_STEADY_BASELINE=0`: the LAN timing only (a 30-minute run is long).
            let baseline: u8 = env_or("TILLMESH_BENCH_STEADY_BASELINE", 1);
            let timings = [("LAN timing, pre-vote", lan), ("baseline timing", wide)];
            for &(name, timing) in &timings[..if baseline == 0 { 1 } else { 2 }] {
                let dir = tempfile::tempdir_in(&base).unwrap();
                let (elections, sales) = steady_round(dir.path(), timing, steady).await;
                println!(
                    "spurious elections, 3 tills selling flat out ({sales} sales) beside a simulator on both cores for {steady} s, {name}: {elections}"
                );
            }
        }
        if offline == 0 {
            return;
        }

        // Catch-up.
        let dir = tempfile::tempdir_in(&base).unwrap();
        let listen: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        // The credential comes from a cloud on the same database, started and stopped first.
        let cloud = start_cloud(dir.path(), listen).await;
        let token = cloud.cloud.issue(Some("S001"), None).await.unwrap().0;
        cloud.stop().await;
        let nodes = start_store(
            dir.path(),
            5,
            &section(listen, token.clone()),
            Timing::default(),
        )
        .await;
        leader(&nodes, None).await;
        let t0 = Instant::now();
        let mut sellers = Vec::new();
        let nodes = std::sync::Arc::new(nodes);
        for i in 0..nodes.len() {
            let nodes = nodes.clone();
            sellers.push(tokio::spawn(async move { sell(&nodes[i], offline).await }));
        }
        for s in sellers {
            s.await.unwrap();
        }
        let selling = t0.elapsed();
        // Every till holds every event before the link comes up.
        let total = loop {
            let vv: Vec<u64> = nodes.iter().map(|n| n.till.version_vector().total()).collect();
            if vv.windows(2).all(|w| w[0] == w[1]) {
                break vv[0];
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let up = Instant::now();
        let cloud = start_cloud(dir.path(), listen).await;
        while fleet(&cloud).await.0 < total {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let catch_up = up.elapsed().as_secs_f64();
        // Baseline: the same events, straight to a fresh cloud in 2,000-event batches.
        let events = nodes[0].till.store().read(|r| r.events_all()).unwrap();
        let nodes = std::sync::Arc::try_unwrap(nodes).unwrap();
        for n in nodes {
            n.stop().await.unwrap();
        }
        cloud.stop().await;
        let dir2 = tempfile::tempdir_in(&base).unwrap();
        let fresh = start_cloud(dir2.path(), "127.0.0.1:0".parse().unwrap()).await;
        let token2 = fresh.cloud.issue(Some("S001"), None).await.unwrap().0;
        let http = reqwest::Client::new();
        let direct = Instant::now();
        for chunk in events.chunks(2_000) {
            let batch = tillmesh_cloud_proto::Batch {
                term: 1,
                leader: 1,
                master_version: 0,
                backlog: 0,
                tills: vec![1],
                events: chunk
                    .iter()
                    .map(|e| tillmesh_cloud_proto::StoreEvent {
                        store: "S001".into(),
                        event: e.clone(),
                    })
                    .collect(),
                sealing: Default::default(),
            };
            let body = tillmesh_cloud_proto::encode_batch(&batch).unwrap();
            let r = http
                .post(format!("http://{}/api/v1/sync/upload", fresh.addr))
                .bearer_auth(&token2)
                .header("content-type", tillmesh_cloud_proto::BINARY_CONTENT_TYPE)
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
        let direct = direct.elapsed().as_secs_f64();
        assert_eq!(fleet(&fresh).await.0, total);
        fresh.stop().await;
        println!(
            "catch-up, 5 tills x {offline} sales made offline ({} sales/s while offline), {total} events incl. opening stock",
            (5 * offline) as f64 / selling.as_secs_f64()
        );
        println!("  cloud up -> every event in the ledger:       {catch_up:.2} s");
        println!(
            "  baseline, one client posting them directly:  {direct:.2} s   ({:.2}x)",
            catch_up / direct
        );
    });
}
