//! Mesh benchmark (a bench script, not a test): 5 tills on loopback over QUIC with mutual
//! TLS. Sells N sales on till 1 and measures, for every sale and every other till, the time
//! from the sale's durable commit on till 1 to its visibility in the other till's state;
//! then wire bytes per delivered sale against the encoded size of the sale's events.
//!
//!     cargo bench -p tillmesh --bench mesh                    # 10,000 sales
//!     TILLMESH_BENCH_SALES=2000 cargo bench -p tillmesh --bench mesh

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tillmesh::config::{MeshSection, TerminalConfig};
use tillmesh_pos::payment::Method;

const TILLS: u64 = 5;

fn config(
    root: &std::path::Path,
    pki: &std::path::Path,
    ca: &tillmesh_mesh::identity::Pem,
    t: u64,
) -> TerminalConfig {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut cfg = TerminalConfig::load(&repo.join("configs/terminal.example.toml")).unwrap();
    cfg.security.demo = true;
    cfg.vision = None; // recognition is not what these measure
    cfg.terminal.id = t;
    cfg.terminal.listen = "127.0.0.1:0".parse().unwrap();
    cfg.terminal.data_dir = root.join(format!("till-{t}"));
    cfg.checkout.drafts_max = 64;
    let till = tillmesh_mesh::identity::enroll(ca, "S001", t).unwrap();
    let (cert, key) = (
        pki.join(format!("till-{t}.pem")),
        pki.join(format!("till-{t}.key")),
    );
    std::fs::write(&cert, till.cert).unwrap();
    std::fs::write(&key, till.key).unwrap();
    cfg.mesh = Some(MeshSection::loopback(
        "127.0.0.1:0".parse().unwrap(),
        pki.join("store-ca.pem"),
        cert,
        key,
    ));
    cfg
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

fn main() {
    let n: usize = tillmesh_test_support::env_or("TILLMESH_BENCH_SALES", 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let root = std::env::current_dir().unwrap().join("target").join("bench-tmp");
        std::fs::create_dir_all(&root).unwrap();
        let dir = tempfile::tempdir_in(&root).unwrap();
        let pki = dir.path().join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        let ca = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
        std::fs::write(pki.join("store-ca.pem"), &ca.cert).unwrap();
        let mut nodes = Vec::new();
        for t in 1..=TILLS {
            nodes.push(tillmesh::start(config(dir.path(), &pki, &ca, t)).await.unwrap());
        }
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.mesh.as_ref().unwrap().local_addr()).collect();
        for (i, n) in nodes.iter().enumerate() {
            for (j, a) in addrs.iter().enumerate() {
                if i != j {
                    n.mesh.as_ref().unwrap().add_peer(*a);
                }
            }
        }
        // Wait until everyone is connected.
        while !nodes.iter().all(|n| n.mesh.as_ref().unwrap().peers().iter().filter(|p| p.outbound == tillmesh_mesh::PeerState::Connected).count() == TILLS as usize - 1) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seller = nodes[0].till.clone();
        let origin = seller.replica_id();
        // (seq of the sale's last event, commit instant), appended by the seller.
        let sales: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let mut watchers = Vec::new();
        for node in &nodes[1..] {
            let till = node.till.clone();
            let sales = sales.clone();
            watchers.push(tokio::spawn(async move {
                let mut changes = till.changes();
                let mut next = 0_usize;
                let mut lat = Vec::with_capacity(n);
                while next < n {
                    let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
                    let seen = till.version_vector().get(origin);
                    let now = Instant::now();
                    let s = sales.lock().unwrap();
                    while next < s.len() && s[next].0 <= seen {
                        lat.push(now - s[next].1);
                        next += 1;
                    }
                }
                lat
            }));
        }
        let login = seller.login("E001", "1111", "bench").await.unwrap();
        let session = seller.session(&login.token).unwrap();
        let barcodes = ["8932462819482", "8931815908309", "8939378657979", "074911862521"];
        let mut event_bytes = 0_usize;
        let started = Instant::now();
        for i in 0..n {
            let t = seller.create_txn(&session).await.unwrap();
            seller.add_item(&session, &t.txn_id, barcodes[i % 4], 1 + (i % 3) as u32, false).await.unwrap();
            let t = seller.checkout(&session, &t.txn_id).await.unwrap();
            let req = tillmesh::till::PaymentRequest { method: Method::Cash, amount: None, tendered: Some(t.totals.total), card: None };
            seller.add_payment(&session, &t.txn_id, &req).await.unwrap();
            seller.finalize(&session, &t.txn_id).await.unwrap();
            let committed = Instant::now();
            let seq = seller.version_vector().get(origin);
            sales.lock().unwrap().push((seq, committed));
            if i == 0 {
                let evs = seller.events_after(origin, 0, 100).await.unwrap();
                event_bytes = evs.iter().map(|e| bincode::serde::encode_to_vec(e, bincode::config::standard()).unwrap().len()).sum();
            }
        }
        let selling = started.elapsed();
        let mut all = Vec::new();
        for w in watchers {
            all.extend(w.await.unwrap());
        }
        // Let the last acks land before reading the byte counters.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let peers = nodes[0].mesh.as_ref().unwrap().peers();
        let frames: u64 = peers.iter().map(|p| p.frame_bytes_sent).sum();
        let udp: u64 = peers.iter().map(|p| p.udp_bytes_sent).sum();
        let deliveries = (n as u64) * (TILLS - 1);
        println!("mesh of {TILLS} tills on loopback (QUIC + mutual TLS), {n} sales on till 1 ({:.0} sales/s incl. 5 API calls each)", n as f64 / selling.as_secs_f64());
        println!("  commit on till 1 -> visible on each other till ({} samples)", all.len());
        println!("    p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms", pct(&mut all, 0.5), pct(&mut all, 0.99), pct(&mut all, 1.0));
        println!("  encoded events of one sale (bincode):   {event_bytes} bytes");
        println!("  Events frame bytes per delivered sale:  {:.0} bytes  ({:.2}x)", frames as f64 / deliveries as f64, frames as f64 / deliveries as f64 / event_bytes as f64);
        println!("  UDP bytes per delivered sale:           {:.0} bytes  ({:.2}x, QUIC/TLS headers, acks, keep-alives)", udp as f64 / deliveries as f64, udp as f64 / deliveries as f64 / event_bytes as f64);
        for n in nodes {
            n.stop().await.unwrap();
        }
    });
}
