//! Memory and start-up benchmark (a bench script, not a test): a till of a big store started
//! as its own process, against a till of the demo store started the same way in the same run.
//!
//! - **The big store** is built once, through the real sale path: a cloud and a one-till
//!   store in this process, the cloud's master data and the till's first-start catalog
//!   `TILLMESH_BENCH_SKUS` SKUs (default 50,000; `scripts/gen_catalog.py`), then
//!   `TILLMESH_BENCH_TXNS` sales (default 1,000,000) by one cashier with 16 sales open at once, uploaded and
//!   compacted (the store's Raft group agrees the point; statuses leave memory after 1 ms, as
//!   a store's past sales would after the day `compact_keep_ms` keeps them). Kept under
//!   `target/bench-tmp/memory-<skus>-<txns>` and reused by later runs (delete it to rebuild).
//! - **Measured** on `tillmesh terminal` (this build's binary), for the big store and for a
//!   fresh demo till (1,206 SKUs, no history; the baseline), each with its mesh (a store of
//!   one) and its cloud link: start-up (process start to `/health` answering, and to the
//!   first sale acknowledged), then resident memory (VmRSS) after 200 sales over HTTP, a
//!   rest past the allocator's next purge and the page-out of start-up's code (12 s), and 20
//!   more sales, and the peak (VmHWM). Three starts of each after one uncounted start (which
//!   seeds the demo till); the medians are printed.
//!
//!     cargo bench -p tillmesh --bench memory

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tillmesh::config::{CloudSection, MeshSection, TerminalConfig};
use tillmesh_pos::payment::Method;
use tillmesh_test_support::{Client, env_or, repo};

const SELLERS: usize = 16;
const STARTS: usize = 3;
const SALES_AFTER_START: usize = 200;
const SALES_AFTER_REST: usize = 20;

fn pki(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let dir = root.join("pki");
    let files = (
        dir.join("store-ca.pem"),
        dir.join("till-1.pem"),
        dir.join("till-1.key"),
    );
    if !files.0.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let ca = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
        let till = tillmesh_mesh::identity::enroll(&ca, "S001", 1).unwrap();
        std::fs::write(&files.0, &ca.cert).unwrap();
        std::fs::write(&files.1, till.cert).unwrap();
        std::fs::write(&files.2, till.key).unwrap();
    }
    files
}

async fn start_cloud(root: &Path, catalog: &Path) -> tillmesh_cloud::CloudHandle {
    let mut cfg =
        tillmesh_cloud::config::CloudConfig::load(&repo().join("configs/cloud.example.toml"))
            .unwrap();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.database = tillmesh_cloud::config::DatabaseConfig::Sqlite {
        path: root.join("cloud.db"),
    };
    cfg.master_seed = None;
    // The reports are not what this measures.
    cfg.projection_interval_ms = 0;
    let cloud = tillmesh_cloud::start(cfg).await.unwrap();
    let ledger = &cloud.cloud.ledger;
    if ledger.master_version().await.unwrap() == 0 {
        // HQ imports at most 20,000 records at a time: the catalog goes in parts.
        let mut master: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(catalog).unwrap()).unwrap();
        let items = master["items"].as_array().unwrap().clone();
        for (i, part) in items.chunks(15_000).enumerate() {
            master["items"] = serde_json::Value::Array(part.to_vec());
            if i > 0 {
                master["prices"] = serde_json::json!([]);
                master["promotions"] = serde_json::json!([]);
            }
            let edits = tillmesh_cloud::master::import(&master.to_string()).unwrap();
            ledger.master_apply(edits).await.unwrap();
        }
    }
    cloud
}

/// Builds the big store: master data from HQ, `txns` sales, every one uploaded and compacted.
async fn build(root: &Path, catalog: &Path, txns: u64) {
    let t0 = Instant::now();
    let cloud = start_cloud(root, catalog).await;
    let token = cloud.cloud.issue(Some("S001"), None).await.unwrap().0;
    let mut cfg = TerminalConfig::load(&repo().join("configs/terminal.example.toml")).unwrap();
    cfg.security.demo = true;
    cfg.vision = None;
    cfg.catalog.path = catalog.to_path_buf();
    cfg.terminal.listen = "127.0.0.1:0".parse().unwrap();
    cfg.terminal.data_dir = root.join("till-1");
    let (ca, cert, key) = pki(root);
    let mut mesh = MeshSection::loopback("127.0.0.1:0".parse().unwrap(), ca, cert, key);
    mesh.store_tills = 1;
    // Often enough to bound the log while selling; each point rewrites the store's base
    // (every SKU's counter), so not every second.
    mesh.compact_interval_ms = 20_000;
    mesh.compact_keep_ms = 1;
    cfg.mesh = Some(mesh);
    let mut link = CloudSection::new(format!("http://{}", cloud.addr), token);
    link.backoff_max_ms = 1_000;
    cfg.cloud = Some(link);
    let node = tillmesh::start(cfg).await.unwrap();
    let barcodes = Arc::new(barcodes(catalog));
    // HQ's master data replaces the first-start catalog page by page: sell once it is whole.
    let hq = cloud.cloud.ledger.master_version().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while node.till.hq_version() < hq {
        assert!(Instant::now() < deadline, "HQ's master data did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("  master data in {:.0} s", t0.elapsed().as_secs_f64());
    let next = Arc::new(AtomicU64::new(0));
    // One cashier signed in; 16 sales open at once on that session.
    let token = node
        .till
        .login("E001", "1111", "bench")
        .await
        .unwrap()
        .token;
    let mut sellers = Vec::new();
    for s in 0..SELLERS {
        let (till, barcodes, next) = (node.till.clone(), barcodes.clone(), next.clone());
        let token = token.clone();
        sellers.push(tokio::spawn(async move {
            let session = till.session(&token).unwrap();
            let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ s as u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= txns {
                    break;
                }
                if i % 100_000 == 0 && i > 0 {
                    eprintln!("  {i} sales");
                }
                let t = till.create_txn(&session).await.unwrap();
                for _ in 0..1 + (i % 3) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let code = &barcodes[(x % barcodes.len() as u64) as usize];
                    // A scanner's double read inside the guard window is refused: scan on.
                    if let Err(e) = till.add_item(&session, &t.txn_id, code, 1, false).await {
                        eprintln!("{code}: {e}");
                    }
                }
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
        }));
    }
    for s in sellers {
        s.await.unwrap();
    }
    let sold = t0.elapsed();
    eprintln!(
        "  {txns} sales in {:.0} s; waiting for upload and compaction",
        sold.as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(1_800);
    while node.till.memory_txns() > 0 {
        assert!(Instant::now() < deadline, "compaction did not finish");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    node.stop().await.unwrap();
    cloud.stop().await;
    std::fs::write(root.join("built"), format!("{txns}\n")).unwrap();
    eprintln!("  built in {:.0} s", t0.elapsed().as_secs_f64());
}

/// Barcodes of the catalog's active items sold by the unit.
fn barcodes(catalog: &Path) -> Vec<String> {
    let master: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(catalog).unwrap()).unwrap();
    master["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["active"] == true && i["sold_by_weight"] != true)
        .filter_map(|i| i["barcodes"][0].as_str().map(str::to_owned))
        .collect()
}

/// One start of the till binary on `root`'s data: start-up, then memory.
struct Start {
    health_ms: f64,
    first_sale_ms: f64,
    rss_kb: u64,
    hwm_kb: u64,
    /// The resident memory's anonymous part (heap, stacks: what only this process can hold).
    anon_kb: u64,
    /// ... and its file-backed part (the binary's pages it touched: clean, shared with the
    /// page cache, reclaimable by the kernel).
    file_kb: u64,
    /// What SQLite says it holds (`tillmesh_sqlite_heap_bytes`), part of the anonymous part.
    sqlite_kb: u64,
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn write_config(root: &Path, catalog: &Path, cloud: SocketAddr, token: &str) -> PathBuf {
    let (ca, cert, key) = pki(root);
    let models = repo().join("models/products.json");
    let text = std::fs::read_to_string(repo().join("configs/terminal.example.toml"))
        .unwrap()
        .replace(
            "path = \"catalog.example.json\"",
            &format!("path = {:?}", catalog.display().to_string()),
        )
        .replace(
            "card = \"../models/products.json\"",
            &format!("card = {:?}", models.display().to_string()),
        );
    let text = format!(
        "{text}\n[mesh]\nlisten = \"127.0.0.1:0\"\nca_cert = {:?}\ncert = {:?}\nkey = {:?}\n\
         mdns = false\nstore_tills = 1\n\n[cloud]\nurl = \"http://{cloud}\"\ntoken = {token:?}\n",
        ca.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let path = root.join("till.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn measure(bin: &Path, config: &Path, data: &Path, barcode: &str) -> Start {
    let listen = free_port();
    let t0 = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(["terminal", "--demo", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(listen.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = Client::new(listen);
    let health_ms = loop {
        if let Ok(a) = client.send(reqwest::Method::GET, "/health", None).await
            && a.status == 200
        {
            break t0.elapsed().as_secs_f64() * 1e3;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the till exited at start"
        );
        assert!(t0.elapsed() < Duration::from_secs(120), "no start in 2 min");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let client = client.login("E001", "1111").await;
    client.sell(&[(barcode, 1)], None).await.unwrap();
    let first_sale_ms = t0.elapsed().as_secs_f64() * 1e3;
    for _ in 1..SALES_AFTER_START {
        client.sell(&[(barcode, 1)], None).await.unwrap();
    }
    // A rest past the allocator's next purge and start-up code's page-out
    // (`tillmesh::memory::RELEASE_EVERY`), then back at work: what selling needs is resident
    // again when memory is read.
    tokio::time::sleep(tillmesh::memory::RELEASE_EVERY + Duration::from_secs(2)).await;
    for _ in 0..SALES_AFTER_REST {
        client.sell(&[(barcode, 1)], None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = client.get("/metrics").await;
    let sqlite_kb = metrics
        .body
        .as_str()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("tillmesh_sqlite_heap_bytes "))
        })
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|b| (b / 1024.0) as u64)
        .expect("tillmesh_sqlite_heap_bytes in /metrics");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let start = Start {
        health_ms,
        first_sale_ms,
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
        anon_kb: kb("RssAnon:"),
        file_kb: kb("RssFile:"),
        sqlite_kb,
    };
    // SIGTERM: the till stops as it would under systemd.
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    start
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Starts the till on `root` (built, or fresh from `catalog`) `STARTS` times; medians.
async fn starts(root: &Path, catalog: &Path, fresh: bool) -> [f64; 7] {
    let cloud = start_cloud(root, catalog).await;
    let token = cloud.cloud.issue(Some("S001"), None).await.unwrap().0;
    let config = write_config(root, catalog, cloud.addr, &token);
    let barcode = barcodes(catalog)[0].clone();
    let data = root.join("till-1");
    if fresh {
        let _ = std::fs::remove_dir_all(&data);
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_tillmesh"));
    // The first start is not counted: it seeds a fresh till, and warms the page cache alike
    // for both stores.
    measure(bin, &config, &data, &barcode).await;
    let mut all = Vec::new();
    for _ in 0..STARTS {
        all.push(measure(bin, &config, &data, &barcode).await);
    }
    cloud.stop().await;
    [
        median(all.iter().map(|s| s.health_ms).collect()),
        median(all.iter().map(|s| s.first_sale_ms).collect()),
        median(all.iter().map(|s| s.rss_kb as f64 / 1024.0).collect()),
        median(all.iter().map(|s| s.hwm_kb as f64 / 1024.0).collect()),
        median(all.iter().map(|s| s.anon_kb as f64 / 1024.0).collect()),
        median(all.iter().map(|s| s.file_kb as f64 / 1024.0).collect()),
        median(all.iter().map(|s| s.sqlite_kb as f64 / 1024.0).collect()),
    ]
}

fn main() {
    let skus: usize = env_or("TILLMESH_BENCH_SKUS", 50_000);
    let txns: u64 = env_or("TILLMESH_BENCH_TXNS", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tmp = repo().join("target").join("bench-tmp");
        let big = tmp.join(format!("memory-{skus}-{txns}"));
        let catalog = big.join("catalog.json");
        if !big.join("built").exists() {
            let _ = std::fs::remove_dir_all(&big);
            std::fs::create_dir_all(&big).unwrap();
            let ok = std::process::Command::new("python3")
                .arg(repo().join("scripts/gen_catalog.py"))
                .args(["--count", &skus.to_string(), "--out"])
                .arg(&catalog)
                .status()
                .unwrap()
                .success();
            assert!(ok, "scripts/gen_catalog.py failed");
            eprintln!("building the store: {skus} SKUs, {txns} sales");
            build(&big, &catalog, txns).await;
        }
        let small = tmp.join("memory-demo");
        let _ = std::fs::remove_dir_all(&small);
        std::fs::create_dir_all(&small).unwrap();
        let base = starts(&small, &repo().join("configs/catalog.example.json"), true).await;
        let got = starts(&big, &catalog, false).await;
        let db = std::fs::metadata(big.join("till-1").join("till.db")).map_or(0, |m| m.len());
        println!(
            "memory: a till of {skus} SKUs and {txns} past sales (database {:.0} MB), median of {STARTS} starts",
            db as f64 / 1e6
        );
        let names = [
            "start-up to /health",
            "start-up to first sale",
            "resident, back at work",
            "peak resident",
            "  of it: anonymous part",
            "  of it: file-backed part",
            "  SQLite's heap (anonymous)",
        ];
        let units = ["ms", "ms", "MB", "MB", "MB", "MB", "MB"];
        for i in 0..7 {
            println!(
                "  {:<26} {:>8.1} {}   demo till {:>8.1} {}   ratio {:.2}x",
                names[i],
                got[i],
                units[i],
                base[i],
                units[i],
                got[i] / base[i]
            );
        }
        println!(
            "  goals: resident <= 64 MB ({}), start-up <= 2,000 ms ({})",
            if got[2] <= 64.0 { "met" } else { "missed" },
            if got[0] <= 2_000.0 { "met" } else { "missed" }
        );
    });
}
