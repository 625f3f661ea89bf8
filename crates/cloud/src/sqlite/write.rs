//! The SQLite ledger's writes: batches ingested with group commit (a savepoint each),
//! watermarks, report projection and master-data edits.

use super::*;

/// A batch waiting for the writer, and where its outcome goes.
pub(super) type IngestJob = (
    IngestRequest,
    tokio::sync::oneshot::Sender<Result<IngestOutcome, LedgerError>>,
);

/// Most batches committed in one transaction.
pub const GROUP_BATCHES_MAX: usize = 64;
/// Most batches waiting for the writer; uploaders wait for room beyond that.
pub const INGEST_QUEUE_MAX: usize = 256;

/// The ingest writer: every batch queued while a commit is in flight joins the next one
/// (group commit), each in its own savepoint so that a refused batch (stale term, unknown
/// store) leaves the others untouched; all are answered after the one COMMIT.
pub(super) fn ingest_writer(
    conn: Arc<Mutex<Connection>>,
    mut jobs: tokio::sync::mpsc::Receiver<IngestJob>,
) {
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while group.len() < GROUP_BATCHES_MAX {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        commit_group(&conn, group);
    }
}

/// Commits one group of batches, each in its own savepoint, and answers each.
pub(super) fn commit_group(conn: &Mutex<Connection>, mut group: Vec<IngestJob>) {
    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
    let mut done = Vec::with_capacity(group.len());
    let committed = (|| -> Result<(), rusqlite::Error> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (req, reply) in group.drain(..) {
            tx.execute_batch("SAVEPOINT batch")?;
            let r = ingest(&tx, req);
            if r.is_ok() {
                tx.execute_batch("RELEASE batch")?;
            } else {
                tx.execute_batch("ROLLBACK TO batch; RELEASE batch")?;
            }
            done.push((reply, r));
        }
        tx.commit()
    })();
    drop(conn);
    match committed {
        Ok(()) => {
            for (reply, r) in done {
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "ingest commit failed");
            for (reply, _) in done {
                let _ = reply.send(Err(LedgerError::Db(e.to_string())));
            }
            for (_, reply) in group {
                let _ = reply.send(Err(LedgerError::Db(e.to_string())));
            }
        }
    }
}

pub(super) fn ingest(tx: &Connection, req: IngestRequest) -> Result<IngestOutcome, LedgerError> {
    let row: Option<(bool, i64, i64, i64, i64)> = tx
        .prepare_cached(sql::STORE_FOR_INGEST)?
        .query_row([&req.store], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((enabled, valid_after, max_term, holder, lag)) = row else {
        return Err(LedgerError::UnknownStore(req.store));
    };
    crate::ledger::fence(&req, enabled, u(valid_after), u(max_term), u(holder))?;
    let mut accepted = 0u64;
    let mut by_origin: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut newest = 0u64;
    {
        let mut insert = tx.prepare_cached(sql::INSERT_EVENT)?;
        for r in &req.rows {
            accepted += insert.execute(params![
                req.store,
                r.origin as i64,
                r.seq as i64,
                r.kind,
                r.hlc_ms as i64,
                r.body
            ])? as u64;
            by_origin.entry(r.origin).or_default().push(r.seq);
            newest = newest.max(r.hlc_ms);
        }
    }
    for (origin, mut seqs) in by_origin {
        seqs.sort_unstable();
        seqs.dedup();
        let (c0, m0): (i64, i64) = tx
            .prepare_cached(sql::ORIGIN)?
            .query_row(params![req.store, origin as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?
            .unwrap_or((0, 0));
        let (mut c, max, gap) = advance(u(c0), u(m0), &seqs);
        if gap {
            let mut stmt = tx.prepare_cached(sql::SEQS_ABOVE)?;
            let held = stmt
                .query_map(
                    params![req.store, origin as i64, c as i64, GAP_SCAN_MAX],
                    |r| r.get::<_, i64>(0),
                )?
                .map(|s| s.map(u))
                .collect::<Result<Vec<_>, _>>()?;
            c = advance(c, max, &held).0;
        }
        tx.prepare_cached(sql::UPSERT_ORIGIN)?.execute(params![
            req.store,
            origin as i64,
            c as i64,
            max as i64
        ])?;
    }
    let term = req.term.max(u(max_term));
    let lag = if req.rows.is_empty() {
        lag
    } else {
        req.received_ms.saturating_sub(newest) as i64
    };
    let tills = serde_json::to_string(&req.tills).unwrap_or_else(|_| "[]".into());
    tx.prepare_cached(sql::STORE_AFTER_INGEST)?
        .execute(params![
            term as i64,
            req.leader as i64,
            req.received_ms as i64,
            req.backlog as i64,
            tills,
            lag,
            accepted as i64,
            req.store
        ])?;
    let watermarks = watermarks(tx, &req.store)?;
    let master_version: i64 = tx
        .prepare_cached(sql::MASTER_VERSION)?
        .query_row([], |r| r.get(0))?;
    Ok(IngestOutcome {
        master_version: u(master_version),
        accepted,
        duplicate: req.rows.len() as u64 - accepted,
        watermarks,
        term,
    })
}

pub(super) fn watermarks(conn: &Connection, store: &str) -> Result<Vec<Watermark>, LedgerError> {
    let mut stmt = conn.prepare_cached(sql::WATERMARKS)?;
    let rows = stmt.query_map([store], |r| {
        Ok(Watermark {
            origin: u(r.get(0)?),
            contiguous: u(r.get(1)?),
            max_seq: u(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn project(
    ledger: &Connection,
    reports: &mut Connection,
    limit: usize,
) -> Result<usize, LedgerError> {
    let origins: Vec<(String, u64, u64, i32)> = {
        let mut stmt = ledger.prepare_cached(sql::ORIGINS_TO_PROJECT)?;
        stmt.query_map([], |r| {
            Ok((r.get(0)?, u(r.get(1)?), u(r.get(2)?), r.get(3)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let projected: HashMap<(String, u64), u64> = {
        let mut stmt = reports.prepare_cached(sql::PROJECTED)?;
        stmt.query_map([], |r| Ok(((r.get(0)?, u(r.get(1)?)), u(r.get(2)?))))?
            .collect::<Result<_, _>>()?
    };
    let mut steps = crate::project::plan(origins, &projected, limit);
    if steps.is_empty() {
        return Ok(0);
    }
    // Read the events from a ledger snapshot, then fold them in one reports transaction.
    let mut by_store: BTreeMap<String, Facts> = BTreeMap::new();
    let mut done = 0;
    {
        let mut stmt = ledger.prepare_cached(sql::EVENTS_RANGE)?;
        for st in &mut steps {
            let facts = by_store.entry(st.store.clone()).or_default();
            let rows = stmt.query_map(
                params![st.store, st.origin as i64, st.from as i64, st.to as i64],
                |r| {
                    Ok((
                        u(r.get(0)?),
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )?;
            for row in rows {
                let (seq, kind, body) = row?;
                if !facts.add(
                    st.origin,
                    seq,
                    &crate::decode_body(&kind, &body)?,
                    st.utc_offset_minutes,
                ) {
                    st.to = seq.saturating_sub(1);
                    break;
                }
                done += 1;
            }
        }
    }
    let tx = reports.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (store, facts) in &by_store {
        write_facts(&tx, store, facts)?;
    }
    for st in &steps {
        tx.prepare_cached(sql::SET_PROJECTED)?.execute(params![
            st.store,
            st.origin as i64,
            st.to as i64
        ])?;
    }
    tx.commit()?;
    Ok(done)
}

pub(super) fn write_facts(tx: &Connection, store: &str, f: &Facts) -> Result<(), LedgerError> {
    let mut st = tx.prepare_cached(sql::INSERT_SALE)?;
    for s in &f.sales {
        st.execute(params![
            store,
            s.txn_id,
            s.origin as i64,
            s.seq as i64,
            s.day,
            s.paid_ms as i64,
            s.terminal as i64,
            s.cashier,
            s.subtotal,
            s.discount,
            s.tax,
            s.total,
            s.items
        ])?;
    }
    let mut st = tx.prepare_cached(sql::INSERT_LINE)?;
    for l in &f.lines {
        st.execute(params![
            store, l.txn_id, l.line_no, l.day, l.sku, l.quantity, l.total
        ])?;
    }
    let mut st = tx.prepare_cached(sql::INSERT_RETURN)?;
    for r in &f.returns {
        st.execute(params![
            store, r.txn_id, r.origin, r.seq, r.line_no, r.quantity, r.amount
        ])?;
    }
    let mut st = tx.prepare_cached(sql::INSERT_PAYMENT)?;
    for p in &f.payments {
        st.execute(params![
            store,
            p.txn_id,
            p.payment_id,
            p.day,
            p.method,
            p.provider,
            p.amount
        ])?;
    }
    let mut st = tx.prepare_cached(sql::MERGE_STATUS)?;
    for s in f.statuses_merged() {
        st.execute(params![
            store,
            s.txn_id,
            s.status,
            s.wall_ms as i64,
            s.logical,
            s.replica as i64
        ])?;
    }
    let mut st = tx.prepare_cached(sql::MERGE_STOCK)?;
    for (sku, replica, p, n) in f.stock_merged() {
        st.execute(params![store, sku, replica as i64, p as i64, n as i64])?;
    }
    let mut st = tx.prepare_cached(sql::MERGE_POINTS)?;
    for (customer, replica, p, n) in f.points_merged() {
        st.execute(params![customer, store, replica as i64, p as i64, n as i64])?;
    }
    let now = crate::now_ms() as i64;
    let mut st = tx.prepare_cached(sql::INSERT_CUSTOMER_CHANGE)?;
    for c in &f.customer_changes {
        st.execute(params![
            c.customer,
            store,
            c.origin as i64,
            c.seq as i64,
            now,
            c.change
        ])?;
    }
    let mark = crate::loyalty::mark();
    let mut st = tx.prepare_cached(sql::MARK_CUSTOMER)?;
    for customer in f.customers_touched() {
        st.execute(params![customer, mark])?;
    }
    let mut st = tx.prepare_cached(sql::MERGE_BALANCE)?;
    for b in f.balances_merged() {
        st.execute(params![
            store,
            b.account,
            b.part,
            b.a as i64,
            b.b as i64,
            b.value as i64
        ])?;
    }
    Ok(())
}

pub(super) fn master_apply(
    conn: &mut Connection,
    edits: Vec<MasterEdit>,
) -> Result<u64, LedgerError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let main: i64 = tx.query_row(sql::MASTER_VERSION, [], |r| r.get(0))?;
    let ext: i64 = tx.query_row(sql::MASTER_EXT_VERSION, [], |r| r.get(0))?;
    let (versions, main, ext) = crate::ledger::master_versions(&edits, main, ext);
    for (e, v) in edits.into_iter().zip(versions) {
        if e.body.is_none() {
            let live: i64 = tx.query_row(
                sql::MASTER_LIVE,
                params![e.kind.as_str(), e.key, e.store],
                |r| r.get(0),
            )?;
            if live == 0 {
                return Err(LedgerError::Invalid(format!(
                    "there is no {} {:?}{} to delete",
                    e.kind.as_str(),
                    e.key,
                    crate::ledger::scope_text(&e.store)
                )));
            }
        }
        tx.prepare_cached(sql::PUT_MASTER)?.execute(params![
            e.kind.as_str(),
            e.key,
            e.store,
            v,
            e.body
        ])?;
    }
    tx.execute(sql::SET_MASTER_VERSION, [main])?;
    tx.execute(sql::SET_MASTER_EXT_VERSION, [ext])?;
    tx.commit()?;
    Ok(u(main))
}
