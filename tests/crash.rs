//! Crash test: runs the real `tillmesh` binary as a child process, drives concurrent sales,
//! `kill -9`s it at random points, restarts it, and checks that every sale whose HTTP answer
//! arrived is present and complete, that no sale is half-written, and that SQLite's
//! `PRAGMA integrity_check` is ok. Rounds: `TILLMESH_CRASH_ROUNDS` (default 6); the seed of
//! the kill points is printed so a failing run can be repeated with `TILLMESH_CRASH_SEED`.

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Client, demo_barcode, demo_item};

/// The example config plus one cashier per worker (one session per cashier per till).
fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = support::example_config_text();
    for w in 0..WORKERS {
        text.push_str(&format!("\n[[staff]]\nemployee_id = \"W{w:02}\"\nname = \"Worker {w}\"\nrole = \"cashier\"\npin = \"4{w:03}\"\n"));
    }
    let path = dir.join("terminal.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const WORKERS: usize = 8;

fn spawn(config: &std::path::Path, dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .args(["terminal", "--demo", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tillmesh")
}

async fn wait_up(c: &Client) {
    for _ in 0..600 {
        if let Ok(a) = c.send(reqwest::Method::GET, "/health", None).await
            && a.status == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("till did not come up within 30 s");
}

/// xorshift64*: a seeded source for kill points, so a seed reproduces the schedule.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_random_points_never_loses_an_acknowledged_sale() {
    let rounds: usize = std::env::var("TILLMESH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("TILLMESH_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test: {rounds} rounds, TILLMESH_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let cfg_dir = tempfile::tempdir().unwrap();
    let config = write_config(cfg_dir.path());
    let port = support::free_tcp_port();
    let barcodes: Vec<String> = (0..4).map(demo_barcode).collect();
    let skus: Vec<String> = (0..4).map(|i| demo_item(i).0).collect();
    // txn_id -> (total, units) of every sale whose finalize answered 200.
    let acked: Arc<Mutex<BTreeMap<String, (i64, i64)>>> = Arc::default();

    for round in 0..rounds {
        let mut child = spawn(&config, dir.path(), port);
        let base = Client::new(format!("127.0.0.1:{port}").parse().unwrap());
        wait_up(&base).await;
        let mut workers = Vec::new();
        for w in 0..WORKERS {
            let who = (format!("W{w:02}"), format!("4{w:03}"));
            let c = base.clone();
            let acked = acked.clone();
            let codes = barcodes.clone();
            workers.push(tokio::spawn(async move {
                let mut i = 0_usize;
                loop {
                    let Ok(a) = c
                        .send(
                            reqwest::Method::POST,
                            "/api/v1/auth/login",
                            Some(serde_json::json!({"employee_id": who.0, "pin": who.1})),
                        )
                        .await
                    else {
                        return;
                    };
                    assert_eq!(a.status, 200, "login: {}", a.body);
                    let mut me = c.clone();
                    me.token = Some(a.body["token"].as_str().unwrap().to_string());
                    for _ in 0..5 {
                        i += 1;
                        let lines = [
                            (codes[(w + i) % 4].as_str(), 1 + (i % 3) as u32),
                            (codes[(w + i + 1) % 4].as_str(), 1),
                        ];
                        match me.sell(&lines, None).await {
                            Ok(done) => {
                                let units: i64 = done["lines"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .map(|l| l["quantity"].as_i64().unwrap())
                                    .sum();
                                acked.lock().unwrap().insert(
                                    done["txn_id"].as_str().unwrap().to_string(),
                                    (done["totals"]["total"].as_i64().unwrap(), units),
                                );
                            }
                            Err(_) => return, // the till died under us
                        }
                    }
                }
            }));
        }
        let kill_after = 150 + rng.next() % 900;
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        child.kill().expect("kill -9"); // SIGKILL
        child.wait().unwrap();
        for w in workers {
            // A worker ends quietly when the till dies under it; any other failure (an
            // unexpected answer) is a failure of the test.
            if let Err(e) = w.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        println!(
            "round {round}: killed after {kill_after} ms, {} sales acknowledged so far",
            acked.lock().unwrap().len()
        );
    }

    // The database after the last kill, opened as the next start would open it.
    let store = tillmesh_store::Store::open(dir.path().join("till.db")).unwrap();
    assert_eq!(store.read(|r| r.integrity_check()).unwrap(), "ok");
    // The audit chain survived every kill intact.
    let chain = store.read(|r| r.audit_all()).unwrap();
    tillmesh_pos::audit::verify(&chain).expect("audit chain verifies after kill -9");
    let sales = store
        .read(|r| r.sales_between(0, u64::MAX, 1_000_000))
        .unwrap();
    let by_id: BTreeMap<&str, &tillmesh_pos::event::Sale> =
        sales.iter().map(|(s, _)| (s.txn_id.as_str(), s)).collect();
    let acked = acked.lock().unwrap();
    assert!(
        !acked.is_empty(),
        "no sale was acknowledged: the test did not exercise anything"
    );
    for (id, (total, units)) in acked.iter() {
        let s = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("acknowledged sale {id} is missing after kill -9"));
        assert_eq!(s.totals.total, *total, "{id}: total differs");
        let u: i64 = s.lines.iter().map(|l| i64::from(l.quantity)).sum();
        assert_eq!(u, *units, "{id}: lines differ");
        assert_eq!(
            s.payments.iter().map(|p| p.amount).sum::<i64>(),
            *total,
            "{id}: payments incomplete"
        );
    }
    // Nothing half-written: every stored sale has its SALE stock movements, and stock equals
    // opening stock minus the units of every stored sale (acknowledged or not).
    let events = store.read(|r| r.events_all()).unwrap();
    let state = tillmesh_pos::state::Replica::restore(tillmesh_crdt::ReplicaId(1), &events);
    for (i, sku) in skus.iter().enumerate() {
        let sold: i64 = sales
            .iter()
            .flat_map(|(s, _)| &s.lines)
            .filter(|l| &l.sku == sku)
            .map(|l| i64::from(l.quantity))
            .sum();
        assert_eq!(
            state.state().stock(sku),
            100 - sold,
            "stock of demo item {i} disagrees with stored sales"
        );
        let moved: i64 = store
            .read(|r| r.movements(sku, 1_000_000))
            .unwrap()
            .iter()
            .filter(|m| m.reason == "SALE")
            .map(|m| -m.change)
            .sum();
        assert_eq!(
            moved, sold,
            "SALE movements of {sku} disagree with stored sales"
        );
    }
    println!(
        "{} acknowledged, {} stored, all present and complete",
        acked.len(),
        sales.len()
    );
}
