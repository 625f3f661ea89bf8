//! The SQLite ledger: zero set-up, one file (plus a derived reports file), WAL with
//! `synchronous=FULL` so an acknowledged batch survives power loss. One write connection
//! (SQLite has one writer), read connections, used from the blocking thread pool; WAL
//! checkpoints run off the commit path (`tillmesh_checkpoint::Checkpointer`).

use crate::ledger::{
    BalanceRow, DayRow, Enrolment, FleetRow, IngestOutcome, IngestRequest, Ledger, LedgerError,
    MasterEdit, MasterRow, PaymentRow, SealKeys, SkuRow, StockRow, StoreCa, StoreInfo, advance,
};
use crate::project::Facts;
use crate::sql;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tillmesh_checkpoint::migrate::Legacy;
use tillmesh_cloud_proto::{MasterKind, Watermark};

mod write;

pub use write::*;

/// The ledger's migrations (`crates/cloud/migrations/sqlite/`).
mod ledger_schema {
    refinery::embed_migrations!("migrations/sqlite");
}
/// The report tables' migrations (`crates/cloud/migrations/sqlite-reports/`): they live in
/// their own file (`<name>-reports.db`), so the projector writes them without taking the
/// ledger's write lock, and they can be rebuilt from the ledger.
mod reports_schema {
    refinery::embed_migrations!("migrations/sqlite-reports");
}

/// A ledger or reports file made before migrations were tracked has `V1`'s schema.
const LEGACY: Legacy = Legacy {
    user_version: 0,
    as_version: 1,
};

/// Opens `path` and brings it to `runner`'s newest schema, refusing a newer one before
/// writing anything.
fn open_migrated(path: &Path, runner: &refinery::Runner) -> Result<Connection, LedgerError> {
    let schema = |e: tillmesh_checkpoint::migrate::MigrateError| LedgerError::Db(e.to_string());
    tillmesh_checkpoint::migrate::check_not_newer(path, runner, Some(LEGACY)).map_err(schema)?;
    let mut conn = open(path)?;
    tillmesh_checkpoint::migrate::migrate(&mut conn, path, runner, Some(LEGACY)).map_err(schema)?;
    Ok(conn)
}

/// Most seqs read at once when closing a watermark gap.
const GAP_SCAN_MAX: i64 = 100_000;

/// The SQLite ledger.
#[derive(Debug, Clone)]
pub struct SqliteLedger {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Work runs on the caller's thread (the simulator): no writer thread, no blocking pool.
    inline: bool,
    write: Arc<Mutex<Connection>>,
    ingest: tokio::sync::mpsc::Sender<IngestJob>,
    read: Mutex<Connection>,
    /// Read and write connection of the reports file.
    reports: Mutex<Connection>,
    /// A second read connection of the ledger, for the projector.
    project_read: Mutex<Connection>,
    _checkpoints: Option<[tillmesh_checkpoint::Checkpointer; 2]>,
}

fn open(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    // Checkpoints run from a Checkpointer thread, not in the committing writer.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    tillmesh_checkpoint::stable_plans(&conn)?;
    Ok(conn)
}

impl SqliteLedger {
    /// Opens (creating when missing) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        Self::open_with(path, false)
    }

    /// Opens the ledger for the simulator: every call runs on the caller's thread,
    /// `synchronous=OFF`, checkpoints inline (as the till's store runs in the simulator).
    pub fn open_inline(path: &Path) -> Result<Self, LedgerError> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, inline: bool) -> Result<Self, LedgerError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| LedgerError::Db(format!("cannot create {}: {e}", dir.display())))?;
        }
        let write = open_migrated(path, &ledger_schema::migrations::runner())?;
        let read = open(path)?;
        let project_read = open(path)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("cloud");
        let reports_path = path.with_file_name(format!("{stem}-reports.db"));
        let reports = open_migrated(&reports_path, &reports_schema::migrations::runner())?;
        // Derived data: a power cut may lose the last projection steps, never their
        // consistency (facts and cursor commit together), and they are redone from the ledger.
        reports.pragma_update(None, "synchronous", "NORMAL")?;
        if inline {
            // The simulator's cloud: no checkpoint at close either (a seed's end removes it).
            for c in [&write, &read, &project_read, &reports] {
                c.execute_batch("PRAGMA synchronous=OFF; PRAGMA wal_autocheckpoint=1000;")?;
                c.set_db_config(
                    rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                    true,
                )?;
            }
            let (ingest, _) = tokio::sync::mpsc::channel(1);
            return Ok(Self {
                inner: Arc::new(Inner {
                    inline,
                    ingest,
                    write: Arc::new(Mutex::new(write)),
                    read: Mutex::new(read),
                    reports: Mutex::new(reports),
                    project_read: Mutex::new(project_read),
                    _checkpoints: None,
                }),
            });
        }
        let write = Arc::new(Mutex::new(write));
        let (ingest, jobs) = tokio::sync::mpsc::channel(INGEST_QUEUE_MAX);
        {
            let write = write.clone();
            std::thread::Builder::new()
                .name("cloud-ingest".into())
                .spawn(move || ingest_writer(write, jobs))
                .map_err(|e| LedgerError::Db(format!("cannot start the ingest writer: {e}")))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                inline,
                ingest,
                write,
                read: Mutex::new(read),
                reports: Mutex::new(reports),
                project_read: Mutex::new(project_read),
                _checkpoints: Some([
                    tillmesh_checkpoint::Checkpointer::start(path)
                        .map_err(|e| LedgerError::Db(e.to_string()))?,
                    tillmesh_checkpoint::Checkpointer::start(&reports_path)
                        .map_err(|e| LedgerError::Db(e.to_string()))?,
                ]),
            }),
        })
    }

    async fn with_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let inner = self.inner.clone();
        if inner.inline {
            let mut conn = inner.write.lock().unwrap_or_else(|p| p.into_inner());
            return f(&mut conn);
        }
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.write.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| LedgerError::Db(format!("worker failed: {e}")))?
    }

    async fn with_reports<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let inner = self.inner.clone();
        if inner.inline {
            let mut conn = inner.reports.lock().unwrap_or_else(|p| p.into_inner());
            return f(&mut conn);
        }
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.reports.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| LedgerError::Db(format!("worker failed: {e}")))?
    }

    async fn with_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let inner = self.inner.clone();
        if inner.inline {
            let conn = inner.read.lock().unwrap_or_else(|p| p.into_inner());
            return f(&conn);
        }
        tokio::task::spawn_blocking(move || {
            let conn = inner.read.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| LedgerError::Db(format!("worker failed: {e}")))?
    }
}

fn read_store_ca(c: &Connection, store: &str) -> rusqlite::Result<Option<StoreCa>> {
    c.query_row(sql::STORE_CA, params![store], |r| {
        Ok(StoreCa {
            cert: r.get(0)?,
            key: r.get(1)?,
            next_terminal: u(r.get(2)?),
        })
    })
    .optional()
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    v as u64
}

#[async_trait]
impl Ledger for SqliteLedger {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), LedgerError> {
        self.with_read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .map(|_| ())
    }

    async fn ingest(&self, req: IngestRequest) -> Result<IngestOutcome, LedgerError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.inner.inline {
            commit_group(&self.inner.write, vec![(req, reply)]);
            return answer
                .await
                .map_err(|_| LedgerError::Db("the batch was not answered".into()))?;
        }
        self.inner
            .ingest
            .send((req, reply))
            .await
            .map_err(|_| LedgerError::Db("the ingest writer stopped".into()))?;
        answer
            .await
            .map_err(|_| LedgerError::Db("the ingest writer stopped".into()))?
    }

    async fn watermarks(&self, store: &str) -> Result<Vec<Watermark>, LedgerError> {
        let store = store.to_owned();
        self.with_read(move |c| watermarks(c, &store)).await
    }

    async fn project(&self, limit: usize) -> Result<usize, LedgerError> {
        let inner = self.inner.clone();
        self.with_reports(move |reports| {
            let ledger = inner.project_read.lock().unwrap_or_else(|p| p.into_inner());
            project(&ledger, reports, limit)
        })
        .await
    }

    async fn reset_term(&self, store: &str) -> Result<bool, LedgerError> {
        let store = store.to_string();
        self.with_write(move |c| Ok(c.execute(sql::RESET_TERM, params![store])? > 0))
            .await
    }

    async fn put_store(&self, s: StoreInfo) -> Result<(), LedgerError> {
        self.with_write(move |c| {
            c.execute(
                sql::PUT_STORE,
                params![
                    s.store_id,
                    s.name,
                    s.utc_offset_minutes,
                    s.enabled,
                    s.tokens_valid_after_ms as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn seal_keys(&self, store: &str) -> Result<SealKeys, LedgerError> {
        let store = store.to_string();
        self.with_read(move |c| {
            let mut st = c.prepare_cached(sql::SEAL_KEYS)?;
            let rows = st
                .query_map(params![store], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<(String, Vec<u8>)>, _>>()?;
            Ok(SealKeys::from_rows(rows))
        })
        .await
    }

    async fn put_seal_keys(
        &self,
        store: &str,
        ca: Option<Vec<u8>>,
        records: Vec<tillmesh_pos::seal::KeyRecord>,
        revocations: Option<(u64, String)>,
    ) -> Result<(), LedgerError> {
        let store = store.to_string();
        let rows = SealKeys::to_rows(ca, &records, revocations);
        self.with_write(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (kind, origin, from, body) in rows {
                tx.execute(sql::PUT_SEAL_KEY, params![store, kind, origin, from, body])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn put_store_ca(&self, store: &str, ca: StoreCa) -> Result<(), LedgerError> {
        let store = store.to_string();
        self.with_write(move |c| {
            c.execute(
                sql::PUT_STORE_CA,
                params![store, ca.cert, ca.key, i(ca.next_terminal)],
            )?;
            Ok(())
        })
        .await
    }

    async fn store_ca(&self, store: &str) -> Result<Option<StoreCa>, LedgerError> {
        let store = store.to_string();
        self.with_read(move |c| Ok(read_store_ca(c, &store)?)).await
    }

    async fn enrol(
        &self,
        store: &str,
        e: Enrolment,
    ) -> Result<Option<(u64, StoreCa)>, LedgerError> {
        let store = store.to_string();
        self.with_write(move |c| {
            // A writer from the start: a deferred transaction that reads first cannot
            // upgrade once another process (the cloud beside `tillmesh hq`) committed, and
            // SQLite refuses it at once instead of waiting.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let Some(ca) = read_store_ca(&tx, &store)? else {
                return Ok(None);
            };
            let before: Option<i64> = tx
                .query_row(sql::ENROLMENT_BY_KEY, params![store, e.key_sha256], |r| {
                    r.get(0)
                })
                .optional()?;
            let terminal = match before {
                Some(t) => u(t),
                None => {
                    let t = ca.next_terminal;
                    tx.execute(sql::TAKE_TERMINAL, params![store])?;
                    tx.execute(
                        sql::PUT_ENROLMENT,
                        params![store, i(t), e.key_sha256, e.code, e.approved_by, i(e.at_ms)],
                    )?;
                    t
                }
            };
            tx.commit()?;
            Ok(Some((terminal, ca)))
        })
        .await
    }

    async fn store(&self, id: &str) -> Result<Option<StoreInfo>, LedgerError> {
        let id = id.to_owned();
        Ok(self
            .with_read(move |c| stores(c, Some(&id)))
            .await?
            .into_iter()
            .next())
    }

    async fn stores(&self) -> Result<Vec<StoreInfo>, LedgerError> {
        self.with_read(|c| stores(c, None)).await
    }

    async fn fleet(&self) -> Result<Vec<FleetRow>, LedgerError> {
        let fleet = self
            .with_read(|c| {
                let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
                let mut stmt = c.prepare_cached(sql::ORIGINS_ALL)?;
                for r in
                    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                {
                    let (store, origin) = r?;
                    let terminal = tillmesh_crdt::ReplicaId(u(origin)).terminal();
                    let v = seen.entry(store).or_default();
                    if !v.contains(&terminal) {
                        v.push(terminal);
                    }
                }
                let mut stmt = c.prepare_cached(sql::FLEET)?;
                let rows = stmt.query_map([], |r| {
                    let tills: String = r.get(7)?;
                    Ok(FleetRow {
                        store_id: r.get(0)?,
                        name: r.get(1)?,
                        term: u(r.get(2)?),
                        leader: u(r.get(3)?),
                        last_upload_ms: u(r.get(4)?),
                        backlog: u(r.get(5)?),
                        lag_ms: u(r.get(6)?),
                        tills_reported: serde_json::from_str(&tills).unwrap_or_default(),
                        tills_seen: Vec::new(),
                        events: u(r.get(8)?),
                        unprojected: 0,
                        quarantined: u(r.get(9)?),
                        credential_refused: 0,
                        credential_refused_ms: 0,
                        till_states: Vec::new(),
                        till_states_ms: 0,
                    })
                })?;
                let mut out: Vec<FleetRow> = rows.collect::<Result<_, _>>()?;
                for f in &mut out {
                    f.tills_seen = seen.remove(&f.store_id).unwrap_or_default();
                }
                Ok(out)
            })
            .await?;
        let projected: HashMap<String, i64> = self
            .with_reports(|c| {
                let mut stmt = c.prepare_cached(sql::PROJECTED_PER_STORE)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        Ok(fleet
            .into_iter()
            .map(|mut f| {
                f.unprojected = f
                    .events
                    .saturating_sub(u(projected.get(&f.store_id).copied().unwrap_or(0)));
                f
            })
            .collect())
    }

    async fn master_apply(&self, edits: Vec<MasterEdit>) -> Result<u64, LedgerError> {
        self.with_write(move |c| master_apply(c, edits)).await
    }

    async fn master_since(
        &self,
        store: Option<&str>,
        since: u64,
        limit: usize,
        ext: bool,
    ) -> Result<Vec<MasterRow>, LedgerError> {
        let store = store.map(str::to_owned);
        self.with_read(move |c| {
            let mut stmt = c.prepare_cached(sql::MASTER_SINCE)?;
            let rows = stmt.query_map(
                params![since as i64, store, i64::from(ext), limit as i64],
                |r| {
                    let kind: String = r.get(0)?;
                    Ok((kind, r.get(1)?, r.get(2)?, u(r.get(3)?), r.get(4)?))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (kind, key, store, version, body) = row?;
                let kind = MasterKind::parse(&kind)
                    .ok_or_else(|| LedgerError::Db(format!("unknown master kind {kind}")))?;
                out.push(MasterRow {
                    kind,
                    key,
                    store,
                    version,
                    body,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn dirty_customers(&self, limit: usize) -> Result<Vec<(String, i64)>, LedgerError> {
        self.with_reports(move |c| {
            let mut st = c.prepare_cached(sql::DIRTY_CUSTOMERS)?;
            let rows = st.query_map(params![limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn customer_sources(
        &self,
        customer: &str,
    ) -> Result<crate::loyalty::CustomerSources, LedgerError> {
        let customer = customer.to_owned();
        self.with_reports(move |c| {
            let changes = c
                .prepare_cached(sql::CUSTOMER_CHANGES)?
                .query_map(params![customer], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        u(r.get(1)?),
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let points = c
                .prepare_cached(sql::CUSTOMER_POINTS)?
                .query_map(params![customer], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(crate::loyalty::CustomerSources { changes, points })
        })
        .await
    }

    async fn put_hq_customer(
        &self,
        customer: &str,
        at_ms: u64,
        patch: Vec<u8>,
    ) -> Result<(), LedgerError> {
        let customer = customer.to_owned();
        self.with_reports(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mark = crate::loyalty::mark();
            tx.execute(
                sql::INSERT_CUSTOMER_CHANGE,
                params![
                    customer,
                    crate::loyalty::HQ_SOURCE,
                    0,
                    mark,
                    at_ms as i64,
                    patch
                ],
            )?;
            tx.execute(sql::MARK_CUSTOMER, params![customer, mark])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn customer_rebuilt(&self, customer: &str, mark: i64) -> Result<(), LedgerError> {
        let customer = customer.to_owned();
        self.with_reports(move |c| {
            c.execute(sql::CLEAN_CUSTOMER, params![customer, mark])?;
            Ok(())
        })
        .await
    }

    async fn master_version_of(&self, ext: bool) -> Result<u64, LedgerError> {
        let q = if ext {
            sql::MASTER_EXT_VERSION
        } else {
            sql::MASTER_VERSION
        };
        self.with_read(move |c| Ok(u(c.query_row(q, [], |r| r.get(0))?)))
            .await
    }

    async fn sales_by_day(
        &self,
        store: Option<&str>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<DayRow>, LedgerError> {
        let store = store.map(str::to_owned);
        self.with_reports(move |c| {
            let mut stmt = c.prepare_cached(sql::SALES_BY_DAY)?;
            let rows = stmt.query_map(params![from_day, to_day, store], |r| {
                Ok(DayRow {
                    store: r.get(0)?,
                    day: r.get(1)?,
                    transactions: u(r.get(2)?),
                    items: u(r.get(3)?),
                    subtotal: r.get(4)?,
                    discount: r.get(5)?,
                    tax: r.get(6)?,
                    total: r.get(7)?,
                    voided: u(r.get(8)?),
                    voided_amount: r.get(9)?,
                    refunded: u(r.get(10)?),
                    refunded_amount: r.get(11)?,
                    returned_amount: r.get(12)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn qr_payments(
        &self,
        store: &str,
        from_day: i64,
        to_day: i64,
        limit: i64,
    ) -> Result<Vec<crate::reconcile::LedgerPayment>, LedgerError> {
        let store = store.to_owned();
        self.with_reports(move |c| {
            let mut stmt = c.prepare_cached(sql::QR_PAYMENTS)?;
            let rows = stmt.query_map(params![store, from_day, to_day, limit], |r| {
                Ok(crate::reconcile::LedgerPayment {
                    reference: r.get(0)?,
                    txn_id: r.get(1)?,
                    amount: r.get(2)?,
                    provider: r.get(3)?,
                    status: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn payments_by_day(
        &self,
        store: Option<&str>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<PaymentRow>, LedgerError> {
        let store = store.map(str::to_owned);
        self.with_reports(move |c| {
            let mut stmt = c.prepare_cached(sql::PAYMENTS_BY_DAY)?;
            let rows = stmt.query_map(params![from_day, to_day, store], |r| {
                Ok(PaymentRow {
                    store: r.get(0)?,
                    day: r.get(1)?,
                    method: r.get(2)?,
                    provider: r.get(3)?,
                    count: u(r.get(4)?),
                    amount: r.get(5)?,
                    reversed_amount: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn top_skus(
        &self,
        store: Option<&str>,
        from_day: i64,
        to_day: i64,
        limit: usize,
    ) -> Result<Vec<SkuRow>, LedgerError> {
        let store = store.map(str::to_owned);
        self.with_reports(move |c| {
            let mut stmt = c.prepare_cached(sql::TOP_SKUS)?;
            let rows = stmt.query_map(params![from_day, to_day, store, limit as i64], |r| {
                Ok(SkuRow {
                    sku: r.get(0)?,
                    quantity: r.get(1)?,
                    revenue: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn balances(&self, store: &str) -> Result<Vec<BalanceRow>, LedgerError> {
        let store = store.to_owned();
        self.with_reports(move |c| {
            let mut stmt = c.prepare_cached(sql::BALANCES)?;
            let rows = stmt.query_map([store], |r| {
                Ok(BalanceRow {
                    account: r.get(0)?,
                    loaded: r.get(1)?,
                    spent: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn inventory(&self, store: &str) -> Result<Vec<StockRow>, LedgerError> {
        let store = store.to_owned();
        self.with_reports(move |c| {
            let mut stmt = c.prepare_cached(sql::INVENTORY)?;
            let rows = stmt.query_map([store], |r| {
                Ok(StockRow {
                    sku: r.get(0)?,
                    on_hand: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

fn stores(c: &Connection, id: Option<&str>) -> Result<Vec<StoreInfo>, LedgerError> {
    let mut stmt = c.prepare_cached(sql::STORES)?;
    let rows = stmt.query_map([id], |r| {
        Ok(StoreInfo {
            store_id: r.get(0)?,
            name: r.get(1)?,
            utc_offset_minutes: r.get(2)?,
            enabled: r.get(3)?,
            tokens_valid_after_ms: u(r.get(4)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    /// The ledger's connections keep a cached statement's plan across bindings of its
    /// `LIMIT` (SQLite re-prepared it at every new binding before).
    #[test]
    fn a_bound_limit_does_not_re_prepare_the_statement() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::open(&dir.path().join("ledger.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (k INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);",
        )
        .unwrap();
        let sql = "SELECT k FROM t WHERE k > $1 ORDER BY k LIMIT $2";
        for limit in 1..=3_i64 {
            let n = conn
                .prepare_cached(sql)
                .unwrap()
                .query_map([0, limit], |r| r.get::<_, i64>(0))
                .unwrap()
                .count();
            assert_eq!(n as i64, limit);
        }
        let st = conn.prepare_cached(sql).unwrap();
        assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
