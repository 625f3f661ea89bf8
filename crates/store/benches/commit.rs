//! Durable-commit benchmark (a bench script, not a test): prints p50/p99 latency of a durable
//! sale commit against a raw single-row SQLite insert with synchronous=FULL on the same disk
//! in the same run, and sustained sales/s with 8 concurrent clients against the same raw
//! baseline under the same concurrency, and the same with each sale's event sealed (signed)
//! as a meshed till's writer does.
//!
//!     cargo bench -p tillmesh-store --bench commit            # default 2000 sales
//!     TILLMESH_BENCH_SALES=5000 cargo bench -p tillmesh-store --bench commit

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

const CLIENTS: usize = 8;

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

    // Throughput: 8 clients. Raw baseline: 8 threads, one shared connection (SQLite has one
    // writer), one fsync'd transaction per row. Ours: 8 threads submitting sale batches,
    // grouped by the store's writer.
    let per = n;
    let raw = Arc::new(Mutex::new(raw_conn(&dir.path().join("raw2.db"))));
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let raw = raw.clone();
            s.spawn(move || {
                for i in 0..per {
                    raw.lock()
                        .unwrap()
                        .execute("INSERT INTO t (v) VALUES (?1)", [format!("c{c} row {i}")])
                        .unwrap();
                }
            });
        }
    });
    let raw_rate = (per as usize * CLIENTS) as f64 / t.elapsed().as_secs_f64();

    let our_rate = sustained(&Store::open(dir.path().join("till2.db")).unwrap(), per);
    // The same with seals: the writer signs each sale's event (ECDSA P-256), as a meshed
    // till's does.
    let sealed_store = Store::open(dir.path().join("till3.db")).unwrap();
    sealed_store.set_sealer(sealer()).unwrap();
    let sealed_rate = sustained(&sealed_store, per);
    println!(
        "sustained throughput, {CLIENTS} concurrent clients, {} commits each",
        per
    );
    println!("  raw SQLite 1-row inserts, sync=FULL     {raw_rate:>10.0} rows/s");
    println!("  tillmesh durable sales (group commit)   {our_rate:>10.0} sales/s");
    println!("  the same, each sale's event sealed      {sealed_rate:>10.0} sales/s");
    println!(
        "  ratio (tillmesh / raw)                  {:>10.2}",
        our_rate / raw_rate
    );
    println!(
        "  ratio (sealed / unsealed)               {:>10.2}",
        sealed_rate / our_rate
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

/// Sales/s with `CLIENTS` threads committing `per` sales each, as the till does: make the
/// events and queue them under the lock, wait for durability outside it.
fn sustained(store: &Store, per: u64) -> f64 {
    let replica = Arc::new(Mutex::new(Replica::new(ReplicaId(1))));
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..CLIENTS as u64 {
            let (store, replica) = (store.clone(), replica.clone());
            s.spawn(move || {
                for i in 0..per {
                    let k = c * per + i;
                    let rx = {
                        let mut r = replica.lock().unwrap();
                        let events = r.record_sale(sale(k), 1_795_000_000_000 + k);
                        store.submit(batch(events, k)).unwrap()
                    };
                    rx.blocking_recv().unwrap().unwrap();
                }
            });
        }
    });
    (per as usize * CLIENTS) as f64 / t.elapsed().as_secs_f64()
}
