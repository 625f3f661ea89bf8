//! The PostgreSQL ledger, for chains that outgrow one machine: several cloud instances share
//! one database. Ingestion of a store is serialised by a row lock on the store (which also
//! makes the fencing check and the per-store ingest sequence race-free); events go in with one
//! `INSERT .. SELECT FROM UNNEST(..) ON CONFLICT DO NOTHING RETURNING` per batch; report facts
//! are merged in Rust first and written with one statement per table.

use crate::ledger::{
    BalanceRow, DayRow, Enrolment, FleetRow, IngestOutcome, IngestRequest, Ledger, LedgerError,
    MasterEdit, MasterRow, PaymentRow, SealKeys, SkuRow, StockRow, StoreCa, StoreInfo, advance,
};
use crate::project::Facts;
use crate::sql;
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::try_join_all;
use project::PROJECTION_PARTS;
use queries::*;
use std::collections::{BTreeMap, HashMap};
use tillmesh_cloud_proto::{MasterKind, Watermark};
use tokio_postgres::NoTls;
use write::{mark_customers, write_facts};

mod customers;
mod project;
mod queries;
mod write;

/// The schema's migrations (`crates/cloud/migrations/postgres/`).
mod schema {
    refinery::embed_migrations!("migrations/postgres");
}

/// Serialises schema creation between instances starting together.
const SCHEMA_LOCK: i64 = 0x7469_6c6c_6d65_7368;

/// The PostgreSQL ledger.
#[derive(Clone)]
pub struct PgLedger {
    pool: Pool,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLedger")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// Brings the database to the newest schema: a database made before migrations were
/// tracked (it has `counters`, no history) is adopted at `V1`; one newer than this build is
/// refused before anything is written.
async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), LedgerError> {
    use tillmesh_checkpoint::migrate::{HISTORY_TABLE, MigrateError, latest};
    let runner = schema::migrations::runner();
    let fail = |e: refinery::Error| LedgerError::Db(format!("schema migration failed: {e}"));
    let exists = |t: &str| format!("SELECT to_regclass('{t}') IS NOT NULL");
    if client.query_one(&exists(HISTORY_TABLE), &[]).await?.get(0) {
        let found: Option<i32> = client
            .query_one(&format!("SELECT MAX(version) FROM {HISTORY_TABLE}"), &[])
            .await?
            .get(0);
        let found = i64::from(found.unwrap_or(0));
        if found > latest(&runner) {
            return Err(LedgerError::Db(
                MigrateError::TooNew {
                    path: "the PostgreSQL database".into(),
                    found,
                    supported: latest(&runner),
                }
                .to_string(),
            ));
        }
    } else if client.query_one(&exists("counters"), &[]).await?.get(0) {
        refinery::Runner::new(runner.get_migrations())
            .set_target(refinery::Target::FakeVersion(1))
            .run_async(client)
            .await
            .map_err(fail)?;
    }
    runner
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run_async(client)
        .await
        .map_err(fail)?;
    Ok(())
}

fn pool_err(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Db(format!("no database connection: {e}"))
}

fn u(v: i64) -> u64 {
    v as u64
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn store_ca_of(r: &tokio_postgres::Row) -> StoreCa {
    StoreCa {
        cert: r.get(0),
        key: r.get(1),
        next_terminal: u(r.get(2)),
    }
}

impl PgLedger {
    /// Connects (a pool of `size`) and creates the schema when missing.
    pub async fn connect(url: &str, size: usize) -> Result<Self, LedgerError> {
        let pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| LedgerError::Db(format!("bad PostgreSQL URL: {e}")))?;
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(size)
            .build()
            .map_err(pool_err)?;
        let mut client = pool.get().await.map_err(pool_err)?;
        // One instance migrates at a time; the others wait and then find nothing to do.
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        let migrated = migrate(&mut client).await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK])
            .await?;
        migrated?;
        Ok(Self { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, LedgerError> {
        self.pool.get().await.map_err(pool_err)
    }
}

/// A statement prepared once per pooled connection (deadpool's cache): each use then costs
/// one round trip, not a parse and an execute.
async fn cached(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
) -> Result<tokio_postgres::Statement, LedgerError> {
    Ok(tx.prepare_cached(sql).await?)
}

async fn watermarks(
    c: &impl deadpool_postgres::GenericClient,
    store: &str,
) -> Result<Vec<Watermark>, LedgerError> {
    Ok(c.query(sql::WATERMARKS, &[&store])
        .await?
        .iter()
        .map(|r| Watermark {
            origin: u(r.get(0)),
            contiguous: u(r.get(1)),
            max_seq: u(r.get(2)),
        })
        .collect())
}

#[async_trait]
impl Ledger for PgLedger {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), LedgerError> {
        self.client().await?.execute("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn ingest(&self, req: IngestRequest) -> Result<IngestOutcome, LedgerError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &cached(&tx, &format!("{} FOR UPDATE", sql::STORE_FOR_INGEST)).await?,
                &[&req.store],
            )
            .await?;
        let Some(row) = row else {
            return Err(LedgerError::UnknownStore(req.store));
        };
        let (enabled, valid_after, max_term, holder, lag): (bool, i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        crate::ledger::fence(&req, enabled, u(valid_after), u(max_term), u(holder))?;
        let n = req.rows.len();
        let origins: Vec<i64> = req.rows.iter().map(|r| r.origin as i64).collect();
        let seqs: Vec<i64> = req.rows.iter().map(|r| r.seq as i64).collect();
        let kinds: Vec<&str> = req.rows.iter().map(|r| r.kind.as_str()).collect();
        let hlcs: Vec<i64> = req.rows.iter().map(|r| r.hlc_ms as i64).collect();
        let bodies: Vec<&[u8]> = req.rows.iter().map(|r| r.body.as_slice()).collect();
        // The events and the store's watermarks before them, pipelined (the store's row lock
        // keeps its origins to this transaction).
        let insert = async {
            if n == 0 {
                return Ok(0);
            }
            // The count of rows inserted: the conflicting (duplicate) ones are not.
            Ok::<_, LedgerError>(
                tx.execute(
                    &cached(&tx, INSERT_EVENTS).await?,
                    &[&req.store, &origins, &seqs, &kinds, &hlcs, &bodies],
                )
                .await?,
            )
        };
        let (accepted, before) = tokio::try_join!(insert, watermarks(&tx, &req.store))?;
        let mut marks: BTreeMap<u64, Watermark> =
            before.into_iter().map(|w| (w.origin, w)).collect();
        let mut by_origin: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut newest = 0;
        for r in &req.rows {
            by_origin.entry(r.origin).or_default().push(r.seq);
            newest = newest.max(r.hlc_ms);
        }
        let mut moved: [Vec<i64>; 3] = Default::default();
        for (origin, mut seqs) in by_origin {
            seqs.sort_unstable();
            seqs.dedup();
            let o = origin as i64;
            let mark = marks.entry(origin).or_insert(Watermark {
                origin,
                contiguous: 0,
                max_seq: 0,
            });
            let (mut c, max, gap) = advance(mark.contiguous, mark.max_seq, &seqs);
            if gap {
                let held: Vec<u64> = tx
                    .query(sql::SEQS_ABOVE, &[&req.store, &o, &(c as i64), &100_000i64])
                    .await?
                    .iter()
                    .map(|r| u(r.get(0)))
                    .collect();
                c = advance(c, max, &held).0;
            }
            (mark.contiguous, mark.max_seq) = (c, max);
            moved[0].push(o);
            moved[1].push(c as i64);
            moved[2].push(max as i64);
        }
        let term = req.term.max(u(max_term));
        let lag = if n == 0 {
            lag
        } else {
            req.received_ms.saturating_sub(newest) as i64
        };
        let tills = serde_json::to_string(&req.tills).unwrap_or_else(|_| "[]".into());
        let upsert = async {
            if !moved[0].is_empty() {
                tx.execute(
                    &cached(&tx, UPSERT_ORIGINS).await?,
                    &[&req.store, &moved[0], &moved[1], &moved[2]],
                )
                .await?;
            }
            Ok::<_, LedgerError>(())
        };
        let after = async {
            tx.execute(
                &cached(&tx, sql::STORE_AFTER_INGEST).await?,
                &[
                    &(term as i64),
                    &(req.leader as i64),
                    &(req.received_ms as i64),
                    &(req.backlog as i64),
                    &tills,
                    &lag,
                    &(accepted as i64),
                    &req.store,
                ],
            )
            .await
            .map_err(LedgerError::from)
        };
        let version = async {
            Ok::<i64, LedgerError>(
                tx.query_one(&cached(&tx, sql::MASTER_VERSION).await?, &[])
                    .await?
                    .get(0),
            )
        };
        let ((), _, master_version) = tokio::try_join!(upsert, after, version)?;
        let watermarks = marks.into_values().collect();
        tx.commit().await?;
        Ok(IngestOutcome {
            master_version: u(master_version),
            accepted,
            duplicate: n as u64 - accepted,
            watermarks,
            term,
        })
    }

    async fn watermarks(&self, store: &str) -> Result<Vec<Watermark>, LedgerError> {
        watermarks(&self.client().await?, store).await
    }

    async fn project(&self, limit: usize) -> Result<usize, LedgerError> {
        let per_part = limit.div_ceil(PROJECTION_PARTS);
        let done =
            try_join_all((0..PROJECTION_PARTS).map(|part| self.project_part(part, per_part)))
                .await?;
        Ok(done.into_iter().sum())
    }

    async fn reset_term(&self, store: &str) -> Result<bool, LedgerError> {
        let n = self
            .client()
            .await?
            .execute(sql::RESET_TERM, &[&store])
            .await?;
        Ok(n > 0)
    }

    async fn put_store(&self, s: StoreInfo) -> Result<(), LedgerError> {
        self.client()
            .await?
            .execute(
                sql::PUT_STORE,
                &[
                    &s.store_id,
                    &s.name,
                    &s.utc_offset_minutes,
                    &s.enabled,
                    &(s.tokens_valid_after_ms as i64),
                ],
            )
            .await?;
        Ok(())
    }

    async fn seal_keys(&self, store: &str) -> Result<SealKeys, LedgerError> {
        let rows = self
            .client()
            .await?
            .query(sql::SEAL_KEYS, &[&store])
            .await?;
        Ok(SealKeys::from_rows(
            rows.iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1))),
        ))
    }

    async fn put_seal_keys(
        &self,
        store: &str,
        ca: Option<Vec<u8>>,
        records: Vec<tillmesh_pos::seal::KeyRecord>,
        revocations: Option<(u64, String)>,
    ) -> Result<(), LedgerError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (kind, origin, from, body) in SealKeys::to_rows(ca, &records, revocations) {
            tx.execute(sql::PUT_SEAL_KEY, &[&store, &kind, &origin, &from, &body])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn put_store_ca(&self, store: &str, ca: StoreCa) -> Result<(), LedgerError> {
        self.client()
            .await?
            .execute(
                sql::PUT_STORE_CA,
                &[&store, &ca.cert, &ca.key, &i(ca.next_terminal)],
            )
            .await?;
        Ok(())
    }

    async fn store_ca(&self, store: &str) -> Result<Option<StoreCa>, LedgerError> {
        let row = self
            .client()
            .await?
            .query_opt(sql::STORE_CA, &[&store])
            .await?;
        Ok(row.map(|r| store_ca_of(&r)))
    }

    async fn enrol(
        &self,
        store: &str,
        e: Enrolment,
    ) -> Result<Option<(u64, StoreCa)>, LedgerError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The row lock serialises a store's enrolments across cloud instances.
        let Some(row) = tx
            .query_opt(&format!("{} FOR UPDATE", sql::STORE_CA), &[&store])
            .await?
        else {
            return Ok(None);
        };
        let ca = store_ca_of(&row);
        let before = tx
            .query_opt(sql::ENROLMENT_BY_KEY, &[&store, &e.key_sha256])
            .await?;
        let terminal = match before {
            Some(r) => u(r.get(0)),
            None => {
                let t = ca.next_terminal;
                tx.execute(sql::TAKE_TERMINAL, &[&store]).await?;
                tx.execute(
                    sql::PUT_ENROLMENT,
                    &[
                        &store,
                        &i(t),
                        &e.key_sha256,
                        &e.code,
                        &e.approved_by,
                        &i(e.at_ms),
                    ],
                )
                .await?;
                t
            }
        };
        tx.commit().await?;
        Ok(Some((terminal, ca)))
    }

    async fn store(&self, id: &str) -> Result<Option<StoreInfo>, LedgerError> {
        Ok(stores(&self.client().await?, Some(id))
            .await?
            .into_iter()
            .next())
    }

    async fn stores(&self) -> Result<Vec<StoreInfo>, LedgerError> {
        stores(&self.client().await?, None).await
    }

    async fn fleet(&self) -> Result<Vec<FleetRow>, LedgerError> {
        let c = self.client().await?;
        let done: HashMap<String, i64> = c
            .query(sql::PROJECTED_PER_STORE, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for r in c.query(sql::ORIGINS_ALL, &[]).await? {
            let terminal = tillmesh_crdt::ReplicaId(u(r.get(1))).terminal();
            let v = seen.entry(r.get(0)).or_default();
            if !v.contains(&terminal) {
                v.push(terminal);
            }
        }
        Ok(c.query(sql::FLEET, &[])
            .await?
            .iter()
            .map(|r| {
                let id: String = r.get(0);
                FleetRow {
                    tills_seen: seen.remove(&id).unwrap_or_default(),
                    store_id: id,
                    name: r.get(1),
                    term: u(r.get(2)),
                    leader: u(r.get(3)),
                    last_upload_ms: u(r.get(4)),
                    backlog: u(r.get(5)),
                    lag_ms: u(r.get(6)),
                    tills_reported: serde_json::from_str(r.get(7)).unwrap_or_default(),
                    events: u(r.get(8)),
                    unprojected: 0,
                    quarantined: u(r.get(9)),
                    credential_refused: 0,
                    credential_refused_ms: 0,
                    till_states: Vec::new(),
                    till_states_ms: 0,
                }
            })
            .map(|mut f: FleetRow| {
                f.unprojected = f
                    .events
                    .saturating_sub(u(done.get(&f.store_id).copied().unwrap_or(0)));
                f
            })
            .collect())
    }

    async fn master_apply(&self, edits: Vec<MasterEdit>) -> Result<u64, LedgerError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let main: i64 = tx
            .query_one(&format!("{} FOR UPDATE", sql::MASTER_VERSION), &[])
            .await?
            .get(0);
        let ext: i64 = tx
            .query_one(&format!("{} FOR UPDATE", sql::MASTER_EXT_VERSION), &[])
            .await?
            .get(0);
        for e in edits.iter().filter(|e| e.body.is_none()) {
            let live: i64 = tx
                .query_one(sql::MASTER_LIVE, &[&e.kind.as_str(), &e.key, &e.store])
                .await?
                .get(0);
            if live == 0 {
                return Err(LedgerError::Invalid(format!(
                    "there is no {} {:?}{} to delete",
                    e.kind.as_str(),
                    e.key,
                    crate::ledger::scope_text(&e.store)
                )));
            }
        }
        let put = tx.prepare(sql::PUT_MASTER).await?;
        let (versions, main, ext) = crate::ledger::master_versions(&edits, main, ext);
        // Pipelined: every statement is sent before the first answer is awaited.
        {
            let tx = &tx;
            let put = &put;
            try_join_all(edits.iter().zip(&versions).map(|(e, ver)| async move {
                tx.execute(put, &[&e.kind.as_str(), &e.key, &e.store, ver, &e.body])
                    .await
            }))
            .await?;
        }
        tx.execute(sql::SET_MASTER_VERSION, &[&main]).await?;
        tx.execute(sql::SET_MASTER_EXT_VERSION, &[&ext]).await?;
        tx.commit().await?;
        Ok(u(main))
    }

    async fn master_since(
        &self,
        store: Option<&str>,
        since: u64,
        limit: usize,
        ext: bool,
    ) -> Result<Vec<MasterRow>, LedgerError> {
        let rows = self
            .client()
            .await?
            .query(
                sql::MASTER_SINCE,
                &[&(since as i64), &store, &i64::from(ext), &(limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let kind: &str = r.get(0);
                Ok(MasterRow {
                    kind: MasterKind::parse(kind)
                        .ok_or_else(|| LedgerError::Db(format!("unknown master kind {kind}")))?,
                    key: r.get(1),
                    store: r.get(2),
                    version: u(r.get(3)),
                    body: r.get(4),
                })
            })
            .collect()
    }

    async fn dirty_customers(&self, limit: usize) -> Result<Vec<(String, i64)>, LedgerError> {
        self.dirty(limit).await
    }

    async fn customer_sources(
        &self,
        customer: &str,
    ) -> Result<crate::loyalty::CustomerSources, LedgerError> {
        self.sources(customer).await
    }

    async fn put_hq_customer(
        &self,
        customer: &str,
        at_ms: u64,
        patch: Vec<u8>,
    ) -> Result<(), LedgerError> {
        self.put_hq(customer, at_ms, patch).await
    }

    async fn customer_rebuilt(&self, customer: &str, mark: i64) -> Result<(), LedgerError> {
        self.rebuilt(customer, mark).await
    }

    async fn master_version_of(&self, ext: bool) -> Result<u64, LedgerError> {
        let q = if ext {
            sql::MASTER_EXT_VERSION
        } else {
            sql::MASTER_VERSION
        };
        Ok(u(self.client().await?.query_one(q, &[]).await?.get(0)))
    }

    async fn sales_by_day(
        &self,
        store: Option<&str>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<DayRow>, LedgerError> {
        let rows = self
            .client()
            .await?
            .query(sql::SALES_BY_DAY, &[&from_day, &to_day, &store])
            .await?;
        Ok(rows
            .iter()
            .map(|r| DayRow {
                store: r.get(0),
                day: r.get(1),
                transactions: u(r.get(2)),
                items: u(r.get(3)),
                subtotal: r.get(4),
                discount: r.get(5),
                tax: r.get(6),
                total: r.get(7),
                voided: u(r.get(8)),
                voided_amount: r.get(9),
                refunded: u(r.get(10)),
                refunded_amount: r.get(11),
                returned_amount: r.get(12),
            })
            .collect())
    }

    async fn qr_payments(
        &self,
        store: &str,
        from_day: i64,
        to_day: i64,
        limit: i64,
    ) -> Result<Vec<crate::reconcile::LedgerPayment>, LedgerError> {
        let rows = self
            .client()
            .await?
            .query(QR_PAYMENTS, &[&store, &from_day, &to_day, &limit])
            .await?;
        Ok(rows
            .iter()
            .map(|r| crate::reconcile::LedgerPayment {
                reference: r.get(0),
                txn_id: r.get(1),
                amount: r.get(2),
                provider: r.get(3),
                status: r.get(4),
            })
            .collect())
    }

    async fn payments_by_day(
        &self,
        store: Option<&str>,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<PaymentRow>, LedgerError> {
        let rows = self
            .client()
            .await?
            .query(PAYMENTS_BY_DAY, &[&from_day, &to_day, &store])
            .await?;
        Ok(rows
            .iter()
            .map(|r| PaymentRow {
                store: r.get(0),
                day: r.get(1),
                method: r.get(2),
                provider: r.get(3),
                count: u(r.get(4)),
                amount: r.get(5),
                reversed_amount: r.get(6),
            })
            .collect())
    }

    async fn top_skus(
        &self,
        store: Option<&str>,
        from_day: i64,
        to_day: i64,
        limit: usize,
    ) -> Result<Vec<SkuRow>, LedgerError> {
        let rows = self
            .client()
            .await?
            .query(TOP_SKUS, &[&from_day, &to_day, &store, &(limit as i64)])
            .await?;
        Ok(rows
            .iter()
            .map(|r| SkuRow {
                sku: r.get(0),
                quantity: r.get(1),
                revenue: r.get(2),
            })
            .collect())
    }

    async fn balances(&self, store: &str) -> Result<Vec<BalanceRow>, LedgerError> {
        let rows = self.client().await?.query(sql::BALANCES, &[&store]).await?;
        Ok(rows
            .iter()
            .map(|r| BalanceRow {
                account: r.get(0),
                loaded: r.get(1),
                spent: r.get(2),
            })
            .collect())
    }

    async fn inventory(&self, store: &str) -> Result<Vec<StockRow>, LedgerError> {
        let rows = self
            .client()
            .await?
            .query(sql::INVENTORY, &[&store])
            .await?;
        Ok(rows
            .iter()
            .map(|r| StockRow {
                sku: r.get(0),
                on_hand: r.get(1),
            })
            .collect())
    }
}

async fn stores(
    c: &impl deadpool_postgres::GenericClient,
    id: Option<&str>,
) -> Result<Vec<StoreInfo>, LedgerError> {
    Ok(c.query(sql::STORES, &[&id])
        .await?
        .iter()
        .map(|r| StoreInfo {
            store_id: r.get(0),
            name: r.get(1),
            utc_offset_minutes: r.get(2),
            enabled: r.get(3),
            tokens_valid_after_ms: u(r.get(4)),
        })
        .collect())
}
