//! Writing a batch's report facts to PostgreSQL: merged in Rust first, one statement per
//! table (`UNNEST` of arrays), inside the projection's transaction. A sale's lines and
//! payments go into its own row (migration V9), so a sale event writes one row.

use super::*;
use std::collections::HashSet;

pub(super) async fn write_facts(
    tx: &deadpool_postgres::Transaction<'_>,
    store: &str,
    f: &Facts,
) -> Result<(), LedgerError> {
    let s = &f.sales;
    if !s.is_empty() {
        // Each (transaction, line) and (transaction, payment) once, as the keys of the old
        // per-line tables had it; the statement folds them into their sale's row.
        let mut seen = HashSet::new();
        let lines: Vec<_> = f
            .lines
            .iter()
            .filter(|x| seen.insert((x.txn_id.as_str(), x.line_no)))
            .collect();
        let mut seen = HashSet::new();
        let pays: Vec<_> = f
            .payments
            .iter()
            .filter(|x| seen.insert((x.txn_id.as_str(), x.payment_id.as_str())))
            .collect();
        tx.execute(
            &cached(tx, INSERT_SALES).await?,
            &[
                &store,
                &s.iter().map(|x| x.txn_id.as_str()).collect::<Vec<_>>(),
                &s.iter().map(|x| x.origin as i64).collect::<Vec<_>>(),
                &s.iter().map(|x| x.seq as i64).collect::<Vec<_>>(),
                &s.iter().map(|x| x.day).collect::<Vec<_>>(),
                &s.iter().map(|x| x.paid_ms as i64).collect::<Vec<_>>(),
                &s.iter().map(|x| x.terminal as i64).collect::<Vec<_>>(),
                &s.iter().map(|x| x.cashier.as_str()).collect::<Vec<_>>(),
                &s.iter().map(|x| x.subtotal).collect::<Vec<_>>(),
                &s.iter().map(|x| x.discount).collect::<Vec<_>>(),
                &s.iter().map(|x| x.tax).collect::<Vec<_>>(),
                &s.iter().map(|x| x.total).collect::<Vec<_>>(),
                &s.iter().map(|x| x.items).collect::<Vec<_>>(),
                &lines.iter().map(|x| x.txn_id.as_str()).collect::<Vec<_>>(),
                &lines.iter().map(|x| x.line_no).collect::<Vec<_>>(),
                &lines.iter().map(|x| x.sku.as_str()).collect::<Vec<_>>(),
                &lines.iter().map(|x| x.quantity).collect::<Vec<_>>(),
                &lines.iter().map(|x| x.total).collect::<Vec<_>>(),
                &pays.iter().map(|x| x.txn_id.as_str()).collect::<Vec<_>>(),
                &pays
                    .iter()
                    .map(|x| x.payment_id.as_str())
                    .collect::<Vec<_>>(),
                &pays.iter().map(|x| x.method).collect::<Vec<_>>(),
                &pays.iter().map(|x| x.provider.as_str()).collect::<Vec<_>>(),
                &pays.iter().map(|x| x.amount).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    let r = &f.returns;
    if !r.is_empty() {
        tx.execute(
            &cached(tx, INSERT_RETURNS).await?,
            &[
                &store,
                &r.iter().map(|x| x.txn_id.as_str()).collect::<Vec<_>>(),
                &r.iter().map(|x| x.origin).collect::<Vec<_>>(),
                &r.iter().map(|x| x.seq).collect::<Vec<_>>(),
                &r.iter().map(|x| x.line_no).collect::<Vec<_>>(),
                &r.iter().map(|x| x.quantity).collect::<Vec<_>>(),
                &r.iter().map(|x| x.amount).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    // One row per key per statement: merge in Rust first (the same merges as the SQL).
    let st = f.statuses_merged();
    if !st.is_empty() {
        tx.execute(
            &cached(tx, MERGE_STATUSES).await?,
            &[
                &store,
                &st.iter().map(|x| x.txn_id.as_str()).collect::<Vec<_>>(),
                &st.iter().map(|x| x.status.as_str()).collect::<Vec<_>>(),
                &st.iter().map(|x| x.wall_ms as i64).collect::<Vec<_>>(),
                &st.iter().map(|x| i64::from(x.logical)).collect::<Vec<_>>(),
                &st.iter().map(|x| x.replica as i64).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    let st = f.stock_merged();
    if !st.is_empty() {
        tx.execute(
            &cached(tx, MERGE_STOCKS).await?,
            &[
                &store,
                &st.iter().map(|x| x.0).collect::<Vec<_>>(),
                &st.iter().map(|x| x.1 as i64).collect::<Vec<_>>(),
                &st.iter().map(|x| x.2 as i64).collect::<Vec<_>>(),
                &st.iter().map(|x| x.3 as i64).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    let b = f.balances_merged();
    if !b.is_empty() {
        tx.execute(
            &cached(tx, MERGE_BALANCES).await?,
            &[
                &store,
                &b.iter().map(|x| x.account.as_str()).collect::<Vec<_>>(),
                &b.iter().map(|x| x.part).collect::<Vec<_>>(),
                &b.iter().map(|x| x.a as i64).collect::<Vec<_>>(),
                &b.iter().map(|x| x.b as i64).collect::<Vec<_>>(),
                &b.iter().map(|x| x.value as i64).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    // Loyalty (few rows next to the sales): one statement each.
    for (customer, replica, p, n) in f.points_merged() {
        tx.execute(
            &cached(tx, sql::MERGE_POINTS).await?,
            &[
                &customer,
                &store,
                &(replica as i64),
                &(p as i64),
                &(n as i64),
            ],
        )
        .await?;
    }
    let now = crate::now_ms() as i64;
    for c in &f.customer_changes {
        tx.execute(
            &cached(tx, sql::INSERT_CUSTOMER_CHANGE).await?,
            &[
                &c.customer,
                &store,
                &(c.origin as i64),
                &(c.seq as i64),
                &now,
                &c.change,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Marks the customers a projection step touched, in one order for every step (so that two
/// parts marking the same customers wait for each other instead of deadlocking).
pub(super) async fn mark_customers(
    tx: &deadpool_postgres::Transaction<'_>,
    touched: std::collections::BTreeSet<&str>,
) -> Result<(), LedgerError> {
    let mark = crate::loyalty::mark();
    for customer in touched {
        tx.execute(&cached(tx, sql::MARK_CUSTOMER).await?, &[&customer, &mark])
            .await?;
    }
    Ok(())
}
