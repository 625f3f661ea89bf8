//! Writing a batch's report facts to PostgreSQL: merged in Rust first, one statement per
//! table (`UNNEST` of arrays), inside the projection's transaction. A sale's lines and
//! payments go into its own row (migration V9), so a sale event writes one row.

use super::*;
use crate::project::{LineFact, PaymentFact};

pub(super) async fn write_facts(
    tx: &deadpool_postgres::Transaction<'_>,
    store: &str,
    f: &Facts,
) -> Result<(), LedgerError> {
    let s = &f.sales;
    if !s.is_empty() {
        // Each sale's lines in line order and payments in id order, each key once (as the
        // keys of the old per-line tables had it), as array literals of the sale's row.
        let mut lines: HashMap<&str, BTreeMap<i64, &LineFact>> = HashMap::new();
        for l in &f.lines {
            lines
                .entry(&l.txn_id)
                .or_default()
                .entry(l.line_no)
                .or_insert(l);
        }
        let mut pays: HashMap<&str, BTreeMap<&str, &PaymentFact>> = HashMap::new();
        for p in &f.payments {
            pays.entry(&p.txn_id)
                .or_default()
                .entry(&p.payment_id)
                .or_insert(p);
        }
        let (no_lines, no_pays) = (BTreeMap::new(), BTreeMap::new());
        let mut cols: [Vec<String>; 8] = Default::default();
        for x in s {
            let l = lines.get(x.txn_id.as_str()).unwrap_or(&no_lines);
            let p = pays.get(x.txn_id.as_str()).unwrap_or(&no_pays);
            cols[0].push(int_array(l.keys().copied()));
            cols[1].push(text_array(l.values().map(|l| l.sku.as_str())));
            cols[2].push(int_array(l.values().map(|l| l.quantity)));
            cols[3].push(int_array(l.values().map(|l| l.total)));
            cols[4].push(text_array(p.keys().copied()));
            cols[5].push(text_array(p.values().map(|p| p.method)));
            cols[6].push(text_array(p.values().map(|p| p.provider.as_str())));
            cols[7].push(int_array(p.values().map(|p| p.amount)));
        }
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
                &cols[0],
                &cols[1],
                &cols[2],
                &cols[3],
                &cols[4],
                &cols[5],
                &cols[6],
                &cols[7],
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

/// A PostgreSQL array literal of texts, every element quoted and escaped (so that no SKU or id
/// reads as NULL, a separator or a brace).
fn text_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut s = String::from("{");
    for (i, x) in items.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        for c in x.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// A PostgreSQL array literal of integers.
fn int_array(items: impl Iterator<Item = i64>) -> String {
    let mut s = String::from("{");
    for (i, x) in items.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_what_postgresql_would_read_otherwise() {
        assert_eq!(text_array(std::iter::empty()), "{}");
        assert_eq!(
            text_array(["a", "NULL", "x,y", "{b}", "q\"t", "b\\s", ""].into_iter()),
            r#"{"a","NULL","x,y","{b}","q\"t","b\\s",""}"#
        );
        assert_eq!(int_array([1, -2, 30].into_iter()), "{1,-2,30}");
        assert_eq!(int_array(std::iter::empty()), "{}");
    }
}
