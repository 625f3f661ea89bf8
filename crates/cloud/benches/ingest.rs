//! Ingestion throughput: 8 concurrent uploaders (one per store, as store leaders are) send
//! batches of 500 real sale events in the binary encoding to a cloud on loopback, against a
//! raw batched `INSERT .. ON CONFLICT DO NOTHING` of the same rows by 8 concurrent writers
//! into a table of the same schema in the same database, in the same run.
//!
//! `cargo bench -p tillmesh-cloud --bench ingest` (SQLite; PostgreSQL too when
//! `TILLMESH_PG_URL` is set, see scripts/pg-up.sh). `TILLMESH_BENCH_BATCHES` sets the batches
//! per uploader (default 40). On PostgreSQL it ends with a regional outage's catch-up
//! (`TILLMESH_BENCH_OUTAGE_STORES` stores at once, default 50; 0 leaves it out).

#[path = "../tests/support/mod.rs"]
mod support;

/// The allocator `tillmesh cloud` runs on (the daemon's).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Backend, DAY0_MS, Env, Shop};
use tillmesh_cloud::ledger::StoreInfo;

const UPLOADERS: usize = 8;
const BATCH: usize = 500;

/// Batches of every uploader: (store, token-less batch bytes, raw rows for the baseline).
struct Workload {
    stores: Vec<String>,
    batches: Vec<Vec<Vec<u8>>>,
    rows: Vec<Vec<Vec<tillmesh_cloud::ledger::Row>>>,
}

fn workload(uploaders: usize, batches: usize) -> Workload {
    let skus: Vec<String> = (1..=1200).map(|i| format!("SKU{i:05}")).collect();
    let mut w = Workload {
        stores: Vec::new(),
        batches: Vec::new(),
        rows: Vec::new(),
    };
    for u in 0..uploaders {
        let store = format!("B{u:03}");
        let mut shop = Shop::new(&store, &[1, 2, 3, 4]);
        let mut mine = Vec::new();
        let mut raw = Vec::new();
        for b in 0..batches {
            let events: Vec<_> = (0..BATCH)
                .map(|i| {
                    let k = b * BATCH + i;
                    let lines: Vec<(&str, u32, i64)> = (0..1 + k % 4)
                        .map(|j| {
                            (
                                skus[(k * 7 + j * 131) % 1200].as_str(),
                                1 + (k % 3) as u32,
                                12_500,
                            )
                        })
                        .collect();
                    shop.sale(
                        k % 4,
                        DAY0_MS + k as u64 * 1_000,
                        &lines,
                        k.is_multiple_of(3).then_some("vnpay"),
                    )
                })
                .collect();
            let batch = shop.batch(1, 1, &events);
            raw.push(tillmesh_cloud::api::prepare(&store, &batch, 1).expect("valid events"));
            mine.push(tillmesh_cloud_proto::encode_batch(&batch).unwrap());
        }
        w.stores.push(store);
        w.batches.push(mine);
        w.rows.push(raw);
    }
    w
}

async fn ingest(env: &Arc<Env>, w: &Workload) -> Duration {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (u, store) in w.stores.iter().enumerate() {
        let env = env.clone();
        let token = env.token(store);
        let batches = w.batches[u].clone();
        tasks.push(tokio::spawn(async move {
            for b in batches {
                let (s, a) = env
                    .raw_upload(&token, tillmesh_cloud_proto::BINARY_CONTENT_TYPE, b)
                    .await;
                assert_eq!(s, 200, "{a}");
                assert_eq!(a["accepted"].as_u64(), Some(BATCH as u64));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    t0.elapsed()
}

/// The same table shape as the ledger's `events`.
const RAW_SQLITE: &str = "CREATE TABLE raw_events (id INTEGER PRIMARY KEY,
    store TEXT NOT NULL, origin INTEGER NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, hlc_ms INTEGER NOT NULL, body BLOB NOT NULL,
    UNIQUE (store, origin, seq));";

fn raw_sqlite(path: &std::path::Path, w: &Workload) -> Duration {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(RAW_SQLITE).unwrap();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for (u, store) in w.stores.iter().enumerate() {
            let rows = &w.rows[u];
            s.spawn(move || {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(60)).unwrap();
                c.pragma_update(None, "synchronous", "FULL").unwrap();
                for batch in rows {
                    let tx = c
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .unwrap();
                    {
                        let mut st = tx
                            .prepare_cached(
                                "INSERT INTO raw_events (store, origin, seq, kind, hlc_ms, body) \
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                            )
                            .unwrap();
                        for r in batch {
                            st.execute(rusqlite::params![
                                store,
                                r.origin as i64,
                                r.seq as i64,
                                r.kind,
                                r.hlc_ms as i64,
                                r.body
                            ])
                            .unwrap();
                        }
                    }
                    tx.commit().unwrap();
                }
            });
        }
    });
    t0.elapsed()
}

async fn raw_postgres(url: &str, w: &Workload) -> Duration {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(
        "CREATE TABLE raw_events (store TEXT NOT NULL, origin BIGINT NOT NULL, seq BIGINT NOT NULL,
         kind TEXT NOT NULL, hlc_ms BIGINT NOT NULL, body BYTEA NOT NULL,
         PRIMARY KEY (store, origin, seq));",
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (u, store) in w.stores.iter().enumerate() {
        let rows = w.rows[u].clone();
        let store = store.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let (mut c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            for batch in rows {
                let tx = c.transaction().await.unwrap();
                let origins: Vec<i64> = batch.iter().map(|r| r.origin as i64).collect();
                let seqs: Vec<i64> = batch.iter().map(|r| r.seq as i64).collect();
                let kinds: Vec<&str> = batch.iter().map(|r| r.kind.as_str()).collect();
                let hlcs: Vec<i64> = batch.iter().map(|r| r.hlc_ms as i64).collect();
                let bodies: Vec<&[u8]> = batch.iter().map(|r| r.body.as_slice()).collect();
                tx.execute(
                    "INSERT INTO raw_events (store, origin, seq, kind, hlc_ms, body) \
                     SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[], $6::BYTEA[]) \
                     ON CONFLICT DO NOTHING",
                    &[&store, &origins, &seqs, &kinds, &hlcs, &bodies],
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    t0.elapsed()
}

/// Registers the workload's stores with the cloud.
async fn register(env: &Env, w: &Workload) {
    for s in &w.stores {
        env.handle
            .cloud
            .ledger
            .put_store(StoreInfo {
                store_id: s.clone(),
                name: s.clone(),
                utc_offset_minutes: 420,
                enabled: true,
                tokens_valid_after_ms: 0,
            })
            .await
            .unwrap();
    }
}

/// One round: a fresh cloud ingests the workload; then the raw baseline inserts the same rows
/// into the same database. Returns (ingest, projection tail, raw) durations.
async fn round(backend: Backend, w: &Workload, projector: bool) -> Option<(f64, f64, f64)> {
    let env = Arc::new(Env::start_with(backend, if projector { 250 } else { 0 }).await?);
    register(&env, w).await;
    let ours = ingest(&env, w).await;
    let t0 = Instant::now();
    env.handle.cloud.catch_up().await.unwrap();
    let tail = t0.elapsed();
    let raw = match backend {
        Backend::Sqlite => {
            let path = env.dir_path().join("cloud.db");
            tokio::task::block_in_place(|| raw_sqlite(&path, w))
        }
        Backend::Postgres => raw_postgres(&env.pg_url.clone().unwrap(), w).await,
    };
    let db = env.pg_url.clone();
    Arc::try_unwrap(env).ok().unwrap().stop().await;
    drop_database(db).await;
    Some((ours.as_secs_f64(), tail.as_secs_f64(), raw.as_secs_f64()))
}

/// Drops a round's PostgreSQL database (a round leaves about 270 MB, whose autovacuum would
/// otherwise run beside the later rounds).
async fn drop_database(url: Option<String>) {
    let (Some(url), Some(server)) = (url, support::pg_url()) else {
        return;
    };
    let name = url.rsplit_once('/').map(|(_, n)| n.to_owned()).unwrap();
    let (c, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `ROUNDS` rounds and prints medians (this machine is noisy; one round can be off by
/// a third either way).
async fn run(backend: Backend, w: &Workload, projector: bool) {
    const ROUNDS: usize = 3;
    let events = (w.stores.len() * w.batches[0].len() * BATCH) as f64;
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let Some(r) = round(backend, w, projector).await else {
            return;
        };
        rounds.push(r);
    }
    let ours = median(rounds.iter().map(|r| events / r.0).collect());
    let raw = median(rounds.iter().map(|r| events / r.2).collect());
    let ratio = median(rounds.iter().map(|r| r.0 / r.2).collect());
    let tail = median(rounds.iter().map(|r| r.1).collect());
    // With no background projector, the tail is the whole projection on its own.
    let alone = if projector {
        String::new()
    } else {
        format!(" (projection alone {:.0} events/s)", events / tail)
    };
    println!(
        "{:<8} projector {:<3} ingest {:>9.0} events/s | raw INSERT .. ON CONFLICT {:>9.0} rows/s | ratio raw/ingest {:.2} (median of {ROUNDS}) | reports caught up {:.2} s after the last ack{alone}",
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        if projector { "on" } else { "off" },
        ours,
        raw,
        ratio,
        tail
    );
}

/// A regional outage ending: `stores` stores, each with 12,000 sale events held back (a
/// 1,000-store region's 12 M events, scaled down), all upload at once to a cloud on PostgreSQL
/// with its projector running. Measures from the first upload to the last event projected,
/// and extrapolates linearly in events to the 1,000-store region (the database is one, so
/// its throughput, not the store count, is what bounds it); the baseline is the raw batched
/// insert of the same rows.
async fn outage(stores: usize) {
    const PER_STORE: usize = 12_000;
    const REGION_EVENTS: f64 = 12_000_000.0;
    let w = workload(stores, PER_STORE / BATCH);
    let events = (stores * PER_STORE) as f64;
    let Some(env) = Env::start_with(Backend::Postgres, 250).await else {
        return;
    };
    let env = Arc::new(env);
    register(&env, &w).await;
    let t0 = Instant::now();
    let acked = ingest(&env, &w).await;
    env.handle.cloud.catch_up().await.unwrap();
    let total = t0.elapsed().as_secs_f64();
    let raw = raw_postgres(&env.pg_url.clone().unwrap(), &w)
        .await
        .as_secs_f64();
    let db = env.pg_url.clone();
    Arc::try_unwrap(env).ok().unwrap().stop().await;
    drop_database(db).await;
    let region = total * REGION_EVENTS / events;
    println!(
        "postgres outage: {stores} stores x {PER_STORE} events at once: all acknowledged in {:.1} s, all projected in {total:.1} s ({:.0} events/s) | raw INSERT of the same rows {raw:.1} s, ratio {:.2} | 1,000 stores (12 M events) extrapolated: {total:.1} s x 12,000,000 / {events:.0} = {region:.0} s ({:.1} min; goal <= 5 min)",
        acked.as_secs_f64(),
        events / total,
        total / raw,
        region / 60.0
    );
}

fn main() {
    let batches: usize = std::env::var("TILLMESH_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let outage_stores: usize = std::env::var("TILLMESH_BENCH_OUTAGE_STORES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let w = workload(UPLOADERS, batches);
    let bytes: usize = w.batches.iter().flatten().map(Vec::len).sum();
    println!(
        "{UPLOADERS} uploaders x {batches} batches x {BATCH} sale events ({:.0} bytes per event in the binary encoding)",
        bytes as f64 / (UPLOADERS * batches * BATCH) as f64
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for projector in [false, true] {
        rt.block_on(run(Backend::Sqlite, &w, projector));
        if support::pg_url().is_some() {
            rt.block_on(run(Backend::Postgres, &w, projector));
        }
    }
    if outage_stores > 0 && support::pg_url().is_some() {
        rt.block_on(outage(outage_stores));
    }
}
