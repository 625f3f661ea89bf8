//! The PostgreSQL projection: a step per part, the parts over disjoint stores side by side.

use super::*;

/// Serialises projection steps between instances (one lock per part: this key plus the part).
const PROJECTION_LOCK: i64 = 0x7469_6c6c_7072_6f6a;
/// The projection runs in this many parts at once, each over its own stores (see `part_of`):
/// one connection alone leaves the database's other cores idle.
pub(super) const PROJECTION_PARTS: usize = 2;

impl PgLedger {
    /// One step of one part of the projection: the stores whose [`part_of`] is `part`.
    pub(super) async fn project_part(
        &self,
        part: usize,
        limit: usize,
    ) -> Result<usize, LedgerError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One projector of a part at a time across every instance: the others wait here and
        // then plan from the cursors this one committed (no duplicated work, no waits on its
        // rows). Parts share no store, so they run side by side, each on its own connection.
        tx.execute(
            &cached(&tx, "SELECT pg_advisory_xact_lock($1)").await?,
            &[&(PROJECTION_LOCK + part as i64)],
        )
        .await?;
        let origins: Vec<(String, u64, u64, i32)> = tx
            .query(sql::ORIGINS_TO_PROJECT, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), u(r.get(1)), u(r.get(2)), r.get(3)))
            .filter(|o: &(String, u64, u64, i32)| part_of(&o.0) == part)
            .collect();
        let projected: HashMap<(String, u64), u64> = tx
            .query(sql::PROJECTED, &[])
            .await?
            .iter()
            .map(|r| ((r.get(0), u(r.get(1))), u(r.get(2))))
            .collect();
        let mut steps = crate::project::plan(origins, &projected, limit);
        if steps.is_empty() {
            return Ok(0);
        }
        let mut by_store: BTreeMap<String, Facts> = BTreeMap::new();
        let mut done = 0;
        // Every range is asked for at once (pipelined on the one connection).
        let bounds: Vec<[i64; 3]> = steps
            .iter()
            .map(|st| [st.origin as i64, st.from as i64, st.to as i64])
            .collect();
        let txr = &tx;
        let range = &cached(txr, sql::EVENTS_RANGE).await?;
        let ranges = try_join_all(steps.iter().zip(&bounds).map(|(st, b)| async move {
            txr.query(range, &[&st.store, &b[0], &b[1], &b[2]]).await
        }))
        .await?;
        for (st, rows) in steps.iter_mut().zip(ranges) {
            let facts = by_store.entry(st.store.clone()).or_default();
            for r in &rows {
                let body = crate::decode_body(r.get(1), r.get::<_, &[u8]>(2))?;
                if !facts.add(st.origin, u(r.get(0)), &body, st.utc_offset_minutes) {
                    st.to = u(r.get(0)).saturating_sub(1);
                    break;
                }
                done += 1;
            }
        }
        // The stores' facts and the cursors, pipelined too (one transaction: all or none).
        try_join_all(
            by_store
                .iter()
                .map(|(store, facts)| write_facts(txr, store, facts)),
        )
        .await?;
        mark_customers(
            txr,
            by_store
                .values()
                .flat_map(Facts::customers_touched)
                .collect(),
        )
        .await?;
        let cursors: Vec<[i64; 2]> = steps
            .iter()
            .map(|st| [st.origin as i64, st.to as i64])
            .collect();
        let set = &cached(txr, sql::SET_PROJECTED).await?;
        try_join_all(
            steps
                .iter()
                .zip(&cursors)
                .map(|(st, c)| async move { txr.execute(set, &[&st.store, &c[0], &c[1]]).await }),
        )
        .await?;
        tx.commit().await?;
        Ok(done)
    }
}

/// Which part of the projection a store's events are folded by: a fixed hash of its id, the
/// same on every instance.
fn part_of(store: &str) -> usize {
    let h = store
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    h as usize % PROJECTION_PARTS
}
