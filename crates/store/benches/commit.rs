//! Durable-commit benchmark (a bench script, not a test): prints p50/p99 latency of a durable
//! sale commit against a raw single-row SQLite insert with synchronous=FULL on the same disk
//! in the same run; then sustained sales/s with 1, 8, 32 and 128 concurrent clients against
//! the raw serial rate of fsync'd one-row commits measured in the same run (issue 25, P2),
//! and at 32 clients with each sale's event sealed (signed) as a meshed till's writer does.
//!
//!     cargo bench -p tillmesh-store --bench commit            # default 2000 sales
//!     TILLMESH_BENCH_SALES=5000 cargo bench -p tillmesh-store --bench commit
//!     TILLMESH_BENCH_TOTAL=32000 ...   # sales per client-count row (default 16000)

use rusqlite::Connection;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tillmesh_crdt::ReplicaId;
use tillmesh_pos::audit::AuditRecord;
use tillmesh_pos::cart::{Line, Totals};
use tillmesh_pos::event::{Event, Sale};
use tillmesh_pos::payment::{Method, Payment, PaymentStatus};
use tillmesh_pos::state::Replica;
use tillmesh_store::{Store, WriteBatch};

fn sale(n: u64) -> Sale {
    let lines: Vec<Line> = (1..=3)
        .map(|i| Line {
            line_no: i,
            sku: format!("SKU{:05}", (n + u64::from(i)) % 1000),
            barcode: "96385074".into(),
            name: "Bench product".into(),
            category: "Snacks".into(),
            quantity: 1 + i,
            unit_price: 17_500,
            tax_rate_bp: 1000,
            gross: 17_500 * i64::from(1 + i),
            discount: 0,
            promotion: None,
            tax: 1750 * i64::from(1 + i),
            total: 19_250 * i64::from(1 + i),
        })
        .collect();
    let total = lines.iter().map(|l| l.total).sum();
    Sale {
        txn_id: format!("T1-{n}"),
        terminal: ReplicaId(1),
        cashier: "E001".into(),
        created_ms: 1_795_000_000_000 + n,
        paid_ms: 1_795_000_000_000 + n,
        totals: Totals {
            subtotal: total,
            discount: 0,
            tax: 0,
            total,
            items: 9,
        },
        lines,
        payments: vec![Payment {
            payment_id: format!("T1-{n}-P1"),
            method: Method::Cash,
            amount: total,
            tendered: total,
            change: 0,
            provider: None,
            provider_ref: None,
            qr_payload: None,
            expires_at_ms: None,
            status: PaymentStatus::Captured,
        }],
        customer_id: None,
        points_earned: 0,
        weights: Vec::new(),
    }
}

fn batch(events: Vec<Event>, n: u64) -> WriteBatch {
    WriteBatch {
        events,
        audit: vec![AuditRecord {
            at_ms: n,
            actor: "E001".into(),
            action: "transaction.finalize".into(),
            target: format!("T1-{n}"),
            outcome: "ok".into(),
            detail: String::new(),
        }],
        ..Default::default()
    }
}

fn raw_conn(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .unwrap();
    c.execute_batch("PRAGMA synchronous=FULL; CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);")
        .unwrap();
    c
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // Criterion-style arguments (`--bench`) are ignored.
    let n: u64 = std::env::var("TILLMESH_BENCH_SALES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // Same disk as the build: a folder under the target directory, not a tmpfs.
    let root = std::env::current_dir()
        .unwrap()
        .join("target")
        .join("bench-tmp");
    std::fs::create_dir_all(&root).unwrap();
    let dir = tempfile::tempdir_in(&root).unwrap();

    // Interleave the two so that disk noise hits both alike.
    let raw = raw_conn(&dir.path().join("raw.db"));
    let store = Store::open(dir.path().join("till.db")).unwrap();
    let mut replica = Replica::new(ReplicaId(1));
    let (mut base, mut ours, mut fsync) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        raw.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")])
            .unwrap();
        base.push(t.elapsed());
        let events = replica.record_sale(sale(i), 1_795_000_000_000 + i);
        let t = Instant::now();
        let info = store.commit_blocking(batch(events, i)).unwrap();
        ours.push(t.elapsed());
        fsync.push(Duration::from_micros(info.commit_us));
    }
    let (b50, b99, o50, o99) = (
        pct(base.clone(), 0.5),
        pct(base, 0.99),
        pct(ours.clone(), 0.5),
        pct(ours, 0.99),
    );
    println!(
        "durable commit latency, {n} sales, one client (sale = 3 lines: 1 event, its rows, 3 stock movements, audit)"
    );
    println!("  {:<38} {:>10} {:>10}", "", "p50 us", "p99 us");
    println!(
        "  {:<38} {:>10.0} {:>10.0}",
        "raw SQLite 1-row insert, sync=FULL",
        us(b50),
        us(b99)
    );
    println!(
        "  {:<38} {:>10.0} {:>10.0}",
        "tillmesh sale commit",
        us(o50),
        us(o99)
    );
    println!(
        "  {:<38} {:>10.0} {:>10.0}",
        "  of which SQLite COMMIT (fsync)",
        us(pct(fsync.clone(), 0.5)),
        us(pct(fsync, 0.99))
    );
    println!(
        "  {:<38} {:>10.2} {:>10.2}",
        "ratio (tillmesh / raw)",
        us(o50) / us(b50),
        us(o99) / us(b99)
    );

    // Throughput (issue 25, P2): against the raw serial rate of fsync'd one-row commits on
    // the same disk in the same run (one thread, one transaction per row), sales/s with 1,
    // 8, 32 and 128 clients, each committing and waiting as a till's request does.
    let total: u64 = std::env::var("TILLMESH_BENCH_TOTAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16_000);
    let raw = raw_conn(&dir.path().join("raw2.db"));
    let t = Instant::now();
    for i in 0..n {
        raw.execute("INSERT INTO t (v) VALUES (?1)", [format!("serial row {i}")])
            .unwrap();
    }
    let raw_rate = n as f64 / t.elapsed().as_secs_f64();
    println!("sustained throughput, {total} sales per row (group commit)");
    println!("  raw serial 1-row commits, sync=FULL   {raw_rate:>10.0} commits/s (baseline)");
    let mut at32 = 0.0;
    for (k, clients) in [1_usize, 8, 32, 128].into_iter().enumerate() {
        let store = Store::open(dir.path().join(format!("till-{k}.db"))).unwrap();
        let (rate, group) = sustained(&store, clients, total / clients as u64);
        if clients == 32 {
            at32 = rate;
        }
        println!(
            "  {clients:>3} clients                         {rate:>10.0} sales/s  {:>5.2}x  (mean group {group:.1})",
            rate / raw_rate
        );
    }
    // The same with seals: the writer signs each sale's event (ECDSA P-256), as a meshed
    // till's does.
    let sealed_store = Store::open(dir.path().join("till-sealed.db")).unwrap();
    sealed_store.set_sealer(sealer()).unwrap();
    let (sealed_rate, _) = sustained(&sealed_store, 32, total / 32);
    println!(
        "   32 clients, each event sealed        {sealed_rate:>10.0} sales/s  {:>5.2}x  (sealed / unsealed {:.2})",
        sealed_rate / raw_rate,
        sealed_rate / at32
    );
}

/// A sealer as a till's: its key signs `pos::seal::message` of each of its events.
fn sealer() -> tillmesh_store::SealFn {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    Arc::new(move |e: &Event| {
        let msg = tillmesh_pos::seal::message("S001", e).ok()?;
        key.sign(&rng, &msg).ok().map(|s| s.as_ref().to_vec())
    })
}

/// Sales/s with `clients` concurrent requests committing `per` sales each, as the till's
/// HTTP handlers do: tokio tasks on a runtime with one worker per core, each making its
/// sale's events and queueing them under the replica lock, then awaiting durability outside
/// it; and the mean group a commit carried.
fn sustained(store: &Store, clients: usize, per: u64) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .build()
        .unwrap();
    let replica = Arc::new(Mutex::new(Replica::new(ReplicaId(1))));
    let t = Instant::now();
    let (done, grouped) = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients as u64 {
            let (store, replica) = (store.clone(), replica.clone());
            tasks.push(tokio::spawn(async move {
                let mut grouped = 0_u64;
                for i in 0..per {
                    let k = c * per + i;
                    let rx = {
                        let mut r = replica.lock().unwrap();
                        let events = r.record_sale(sale(k), 1_795_000_000_000 + k);
                        store.submit(batch(events, k)).unwrap()
                    };
                    grouped += rx.await.unwrap().unwrap().group_size as u64;
                }
                grouped
            }));
        }
        let mut grouped = 0;
        for t in tasks {
            grouped += t.await.unwrap();
        }
        (per * clients as u64, grouped)
    });
    let rate = done as f64 / t.elapsed().as_secs_f64();
    (rate, grouped as f64 / done.max(1) as f64)
}
