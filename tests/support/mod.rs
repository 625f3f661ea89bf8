//! Test support: launches real tills (in-process on 127.0.0.1:0, or as a child process of
//! the real binary) on the example store in a temporary directory, and a small API client.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tillmesh::config::TerminalConfig;

#[allow(unused_imports)] // each test binary uses some of them
pub use tillmesh_test_support::{Answer, Client, is_root, repo};

/// A TCP port free on 127.0.0.1 right now (for a till whose HTTP address a test must know
/// before it starts).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The example terminal config.
pub fn example_config() -> PathBuf {
    repo().join("configs/terminal.example.toml")
}

/// The example config's text with its relative paths (catalog, model card) made absolute,
/// for configs written elsewhere.
pub fn example_config_text() -> String {
    let mut text = std::fs::read_to_string(example_config()).unwrap();
    for (rel, path) in [
        ("catalog.example.json", "configs/catalog.example.json"),
        ("../models/products.json", "models/products.json"),
    ] {
        text = text.replace(
            &format!("{rel:?}"),
            &format!("{:?}", repo().join(path).display().to_string()),
        );
    }
    text
}

/// The UTC date `shift` days from now, `YYYY-MM-DD` (a store's local day may be UTC's
/// yesterday or tomorrow: reports are asked from `utc_day(-1)` to `utc_day(1)`).
pub fn utc_day(shift: i64) -> String {
    let ms = tillmesh_cloud::now_ms().saturating_add_signed(shift * 86_400_000);
    tillmesh_pos::calendar::rfc3339(ms)[..10].to_string()
}

/// A till running inside the test process.
pub struct TestTill {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub cfg: TerminalConfig,
    node: Option<tillmesh::Node>,
}

/// The sandbox QR payment provider (`tillmesh pay-sandbox`, a process of its own), one per
/// test binary, started on first use; it captures each payment at once (amounts ending in 13
/// are declined, in 14 wait to be paid by hand, in 15 answer 4 s late) and leaves with the
/// test process (it exits when its standard input closes). Its base URL.
pub fn pay_sandbox() -> &'static str {
    static SANDBOX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SANDBOX.get_or_init(|| {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tillmesh"))
            .args([
                "pay-sandbox",
                "--listen",
                "127.0.0.1:0",
                "--capture-after-ms",
                "0",
                "--slow-ms",
                "4000",
                "--exit-with-stdin",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the pay sandbox starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the pay sandbox prints its address");
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("an address")
            .to_string();
        // Kept open for the life of the test process: the sandbox exits when it closes.
        std::mem::forget(child.stdin.take());
        std::mem::forget(child);
        url
    })
}

/// `[payments.qr]` for the sandbox at `url` (its default merchant).
pub fn sandbox_qr(url: &str) -> tillmesh_pay::ProviderConfig {
    toml::from_str(&format!(
        "provider = \"momo\"\nendpoint = \"{url}\"\npartner_code = \"TILLMESHSANDBOX\"\n\
         access_key = \"sandbox-access\"\nsecret_key = \"sandbox-secret\"\ntimeout_ms = 2000\n"
    ))
    .expect("a sandbox provider config")
}

/// Pays a payment by hand at the sandbox (a customer paying a silent or expired QR).
pub async fn sandbox_pay(store_id: &str, payment_id: &str) -> Value {
    reqwest::Client::new()
        .post(format!(
            "{}/sandbox/orders/{store_id}-{payment_id}/pay",
            pay_sandbox()
        ))
        .send()
        .await
        .expect("the sandbox answers")
        .json()
        .await
        .expect("JSON")
}

/// A new sale with `items` demo products (one each of the first four, in turn), checked out:
/// its id and what is due.
pub async fn basket(c: &Client, items: usize) -> (String, i64) {
    basket_for(c, None, items).await
}

/// [`basket`], for `customer` (attached before the first item) when one is named.
pub async fn basket_for(c: &Client, customer: Option<&str>, items: usize) -> (String, i64) {
    let id = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    if let Some(customer) = customer {
        c.post(
            &format!("/api/v1/transactions/{id}/customer"),
            json!({"customer_id": customer}),
        )
        .await
        .expect(200);
    }
    for i in 0..items {
        c.post(
            &format!("/api/v1/transactions/{id}/items"),
            json!({"barcode": demo_barcode(i % 4)}),
        )
        .await
        .expect(200);
    }
    let t = c
        .post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    (id, t["totals"]["total"].as_i64().unwrap())
}

/// Waits (up to 15 s) for payment `pid` to reach `status`; the payment.
pub async fn wait_payment(c: &Client, pid: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let p = c.get(&format!("/api/v1/payments/{pid}")).await.expect(200);
        if p["status"] == status {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "payment {pid} never reached {status}: {p}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The example config with test settings: QR through the sandbox provider (captured at once),
/// data in `dir`, HTTP on port 0.
pub fn test_config(dir: &Path) -> TerminalConfig {
    let mut cfg = TerminalConfig::load(&example_config()).expect("example config loads");
    cfg.terminal.listen = "127.0.0.1:0".parse().unwrap();
    cfg.terminal.data_dir = dir.to_path_buf();
    cfg.payments.qr = Some(sandbox_qr(pay_sandbox()));
    cfg.security.lock_ms = 60_000;
    cfg.security.demo = true;
    // A double read is anything within a minute: no test depends on how fast it runs.
    cfg.checkout.scan_guard_ms = 60_000;
    // The model loads only in the tests that recognise products.
    cfg.vision = None;
    cfg
}

impl TestTill {
    /// Starts a till on the example store with QR payments captured at once.
    pub async fn start() -> TestTill {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir).await
    }

    /// Starts a till whose data lives in `dir`.
    pub async fn start_in(dir: tempfile::TempDir) -> TestTill {
        let cfg = test_config(dir.path());
        Self::start_with(cfg, dir).await
    }

    /// Starts a till with `cfg` (whose data dir should be inside `dir`).
    pub async fn start_with(cfg: TerminalConfig, dir: tempfile::TempDir) -> TestTill {
        // Logs to the test's output when TEST_LOG is set (e.g. TEST_LOG=debug).
        if let Ok(level) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(level)
                .with_test_writer()
                .try_init();
        }
        // A restarted till rebinds its old mesh port; the previous socket may take a moment
        // to be released.
        let mut tries = 0;
        let node = loop {
            match tillmesh::start(cfg.clone()).await {
                Ok(n) => break n,
                Err(e) if tries < 50 && e.to_string().contains("Address already in use") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("till starts: {e:#}"),
            }
        };
        TestTill {
            addr: node.http_addr,
            dir,
            cfg,
            node: Some(node),
        }
    }

    pub fn node(&self) -> &tillmesh::Node {
        self.node.as_ref().expect("running")
    }

    pub fn till(&self) -> &std::sync::Arc<tillmesh::till::Till> {
        &self.node().till
    }

    pub fn raft(&self) -> &tillmesh_consensus::node::StoreRaft {
        self.node().raft.as_ref().expect("raft configured")
    }

    pub fn mesh(&self) -> &std::sync::Arc<tillmesh_mesh::Mesh<tillmesh::MeshLink>> {
        self.node().mesh.as_ref().expect("mesh configured")
    }

    /// Stops the till and waits for it; returns its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(n) = self.node.take() {
            n.stop().await.expect("till stops cleanly");
        }
        // Give the store's writer thread (dropped with the till) time to close the file.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }
}

/// A store of `terminals` configured for `cloud`, all dialing each other.
pub async fn start_store(pki: &Pki, cloud: &TestCloud, terminals: &[u64]) -> Vec<TestTill> {
    start_store_with(pki, cloud, terminals, |_| {}).await
}

/// Tills configured for `cloud`, then by `tweak`, all dialing each other.
pub async fn start_store_with(
    pki: &Pki,
    cloud: &TestCloud,
    terminals: &[u64],
    tweak: impl Fn(&mut tillmesh::config::TerminalConfig),
) -> Vec<TestTill> {
    let mut tills = Vec::new();
    for &t in terminals {
        tills.push(start_till(pki, cloud, t, &tweak).await);
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

/// One till of the store, configured for `cloud`, then by `tweak`.
pub async fn start_till(
    pki: &Pki,
    cloud: &TestCloud,
    terminal: u64,
    tweak: impl Fn(&mut tillmesh::config::TerminalConfig),
) -> TestTill {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mesh_config(dir.path(), pki, terminal, 0);
    cfg.cloud = Some(cloud.section());
    tweak(&mut cfg);
    TestTill::start_with(cfg, dir).await
}

/// A store CA in a temporary folder, enrolling tills on demand.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub store_id: String,
    ca: tillmesh_mesh::identity::Pem,
}

impl Pki {
    pub fn new(store_id: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = tillmesh_mesh::identity::create_store_ca(store_id).unwrap();
        std::fs::write(dir.path().join("store-ca.pem"), &ca.cert).unwrap();
        // The CA folder as `tillmesh store init` writes it (for `store revoke`).
        std::fs::write(dir.path().join("store-ca.key"), &ca.key).unwrap();
        std::fs::write(dir.path().join("store.id"), format!("{store_id}\n")).unwrap();
        Pki {
            dir,
            store_id: store_id.into(),
            ca,
        }
    }

    /// The store CA (certificate and key).
    pub fn ca(&self) -> &tillmesh_mesh::identity::Pem {
        &self.ca
    }

    /// Writes till `terminal`'s certificate and key; returns `(ca, cert, key)` paths.
    pub fn enroll(&self, terminal: u64) -> (PathBuf, PathBuf, PathBuf) {
        let till = tillmesh_mesh::identity::enroll(&self.ca, &self.store_id, terminal).unwrap();
        let cert = self.dir.path().join(format!("till-{terminal}.pem"));
        let key = self.dir.path().join(format!("till-{terminal}.key"));
        std::fs::write(&cert, till.cert).unwrap();
        std::fs::write(&key, till.key).unwrap();
        (self.dir.path().join("store-ca.pem"), cert, key)
    }
}

/// A till config for `terminal` with the mesh on 127.0.0.1 (`port` 0 picks one), no mDNS.
pub fn mesh_config(dir: &Path, pki: &Pki, terminal: u64, port: u16) -> TerminalConfig {
    let mut cfg = test_config(dir);
    cfg.terminal.id = terminal;
    let (ca_cert, cert, key) = pki.enroll(terminal);
    let mut mesh = tillmesh::config::MeshSection::loopback(
        SocketAddr::from(([127, 0, 0, 1], port)),
        ca_cert,
        cert,
        key,
    );
    mesh.anti_entropy_ms = 300;
    // Elections tolerant of a loaded machine: the tests run several stores of debug builds at
    // once on two cores, where a till can stall past the LAN's 300 ms, and a leader change
    // the test did not cause would fail its assertions on who uploads.
    mesh.raft_heartbeat_ms = 100;
    mesh.raft_election_min_ms = 1_000;
    mesh.raft_election_max_ms = 2_000;
    cfg.mesh = Some(mesh);
    cfg
}

/// Barcodes of the first demo products (always active, stocked 100 at start).
pub fn demo_barcode(i: usize) -> String {
    catalog()["items"][i]["barcodes"][0]
        .as_str()
        .unwrap()
        .to_string()
}

/// Barcodes of the first `n` products on sale (active, with a barcode), one per product.
pub fn sellable_barcodes(n: usize) -> Vec<String> {
    catalog()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["active"] != false)
        .filter_map(|i| i["barcodes"][0].as_str().map(str::to_string))
        .take(n)
        .collect()
}

/// `(sku, category, base_price)` of a demo product.
pub fn demo_item(i: usize) -> (String, String, i64) {
    let it = &catalog()["items"][i];
    (
        it["sku"].as_str().unwrap().into(),
        it["category"].as_str().unwrap().into(),
        it["base_price"].as_i64().unwrap(),
    )
}

/// The example catalog, read and parsed once per test binary.
fn catalog() -> &'static Value {
    static CATALOG: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    CATALOG.get_or_init(|| {
        let text = std::fs::read_to_string(repo().join("configs/catalog.example.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

/// Overwrites everything after a database's header page with garbage.
pub fn damage(db: &Path) {
    let mut bytes = std::fs::read(db).unwrap();
    assert!(
        bytes.len() > 8192,
        "database too small to damage meaningfully"
    );
    for b in bytes.iter_mut().skip(4096) {
        *b = 0xA5;
    }
    std::fs::write(db, bytes).unwrap();
}

/// A cloud on SQLite in a temporary folder, on 127.0.0.1, with the example store and
/// catalog; the projector off (reports catch up when asked).
pub struct TestCloud {
    pub handle: tillmesh_cloud::CloudHandle,
    pub dir: tempfile::TempDir,
    /// Store S001's credential.
    pub store_token: String,
    /// An HQ admin credential.
    pub admin_token: String,
}

impl TestCloud {
    pub async fn start() -> TestCloud {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, "127.0.0.1:0".parse().unwrap()).await
    }

    /// A cloud that signs master data with HQ's key (its public key: `master_public_key`).
    pub async fn start_signed() -> TestCloud {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in_with(dir, "127.0.0.1:0".parse().unwrap(), |c| {
            c.auth.master_key_seed = Some("5a".repeat(32));
        })
        .await
    }

    /// Starts (or restarts) a cloud whose database lives in `dir`, on `listen`.
    pub async fn start_in(dir: tempfile::TempDir, listen: SocketAddr) -> TestCloud {
        Self::start_in_with(dir, listen, |_| {}).await
    }

    /// [`TestCloud::start_in`] with the config changed by `tweak`.
    pub async fn start_in_with(
        dir: tempfile::TempDir,
        listen: SocketAddr,
        tweak: impl FnOnce(&mut tillmesh_cloud::config::CloudConfig),
    ) -> TestCloud {
        let mut cfg =
            tillmesh_cloud::config::CloudConfig::load(&repo().join("configs/cloud.example.toml"))
                .expect("example cloud config loads");
        cfg.listen = listen;
        cfg.database = tillmesh_cloud::config::DatabaseConfig::Sqlite {
            path: dir.path().join("cloud.db"),
        };
        cfg.master_seed = Some(repo().join("configs/catalog.example.json"));
        cfg.projection_interval_ms = 0;
        tweak(&mut cfg);
        let mut tries = 0;
        let handle = loop {
            match tillmesh_cloud::start(cfg.clone()).await {
                Ok(h) => break h,
                Err(e) if tries < 50 && e.to_string().contains("in use") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cloud starts: {e:#}"),
            }
        };
        let store_token = handle.cloud.issue(Some("S001"), None).await.unwrap().0;
        let admin_token = handle.cloud.issue(None, None).await.unwrap().0;
        TestCloud {
            handle,
            dir,
            store_token,
            admin_token,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.handle.addr)
    }

    /// The `[cloud]` section a test till uses: fast heartbeat and retries.
    pub fn section(&self) -> tillmesh::config::CloudSection {
        let mut c = tillmesh::config::CloudSection::new(self.url(), self.store_token.clone());
        c.heartbeat_ms = 500;
        c.timeout_ms = 2_000;
        c.backoff_min_ms = 200;
        c.backoff_max_ms = 1_000;
        c.linger_ms = 50;
        c
    }

    /// Events of store S001 in the ledger, and the (term, leader) it last accepted.
    pub async fn fleet(&self) -> (u64, u64, u64) {
        let rows = self.handle.cloud.ledger.fleet().await.unwrap();
        let r = rows
            .iter()
            .find(|r| r.store_id == "S001")
            .expect("S001 registered");
        (r.events, r.term, r.leader)
    }

    /// Terminals the cloud accepted batches from.
    pub fn uploaders(&self) -> std::collections::BTreeSet<u64> {
        self.handle.cloud.metrics.uploaders("S001")
    }

    /// An HQ master-data edit through the admin API; returns the new version.
    pub async fn edit_master(&self, changes: Value) -> u64 {
        let mut c = Client::new(self.handle.addr);
        c.token = Some(self.admin_token.clone());
        let b = c
            .post("/api/v1/admin/master", json!({ "changes": changes }))
            .await
            .expect(200);
        b["version"].as_u64().unwrap()
    }

    pub async fn stop(self) -> tempfile::TempDir {
        self.handle.stop().await;
        self.dir
    }
}

/// A TCP forwarder on 127.0.0.1 to `target` that a test can cut (every connection closed,
/// new ones refused at once) and heal: one till's own path to the cloud.
pub struct CutProxy {
    pub addr: SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(target: SocketAddr) -> CutProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c2, k2) = (cut.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c2.load(Ordering::SeqCst) {
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                let mut held = k2.lock().unwrap();
                held.retain(|t: &tokio::task::JoinHandle<()>| !t.is_finished());
                held.push(task);
            }
        });
        CutProxy {
            addr,
            cut,
            conns,
            accept,
        }
    }

    /// Closes every connection and refuses new ones until [`CutProxy::heal`].
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Runs `enrol::wait` for `cfg` in the background; dropping the sender stops it.
pub fn wait_in_background(
    cfg: tillmesh::config::TerminalConfig,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<bool>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let waiter = tokio::spawn(async move {
        let mut shutdown = Box::pin(async {
            let _ = stopped.await;
        });
        tillmesh::enrol::wait(cfg, &mut shutdown).await
    });
    (stop, waiter)
}

/// A till as the package's config starts it: no store id, no cloud, `[mesh] enrol`, its
/// files to be written under `dir`.
pub fn package_like_config(dir: &std::path::Path) -> tillmesh::config::TerminalConfig {
    let mut cfg = test_config(dir);
    cfg.store.store_id = String::new();
    cfg.store.name = String::new();
    cfg.terminal.listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let pki = dir.join("pki");
    let mut mesh = tillmesh::config::MeshSection::loopback(
        "127.0.0.1:0".parse().unwrap(),
        pki.join("store-ca.pem"),
        pki.join("till.pem"),
        pki.join("till.key"),
    );
    mesh.enrol = true;
    mesh.anti_entropy_ms = 300;
    cfg.mesh = Some(mesh);
    cfg
}
