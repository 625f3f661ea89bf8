//! Writing a batch's report facts to PostgreSQL: merged in Rust first, one statement per
//! table (`UNNEST` of arrays), inside the projection's transaction. A step's sales go into a
//! run per origin and day (migration V10): a row of arrays sent in binary, not a row per sale.

use super::*;
use crate::project::{LineFact, PaymentFact};

pub(super) async fn write_facts(
    tx: &deadpool_postgres::Transaction<'_>,
    store: &str,
    f: &Facts,
) -> Result<(), LedgerError> {
    if !f.sales.is_empty() {
        let runs = sale_runs(f);
        let insert = &cached(tx, INSERT_SALE_RUN).await?;
        try_join_all(runs.iter().map(|r| r.insert(tx, insert, store))).await?;
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

/// One run of sales: the columns of a `sale_runs` row (see [`INSERT_SALE_RUN`]).
#[derive(Debug, Default, PartialEq)]
struct SaleRun<'a> {
    origin: i64,
    first_seq: i64,
    day: i64,
    txn_ids: Vec<&'a str>,
    seqs: Vec<i64>,
    paid_ms: Vec<i64>,
    terminals: Vec<i64>,
    cashiers: Vec<&'a str>,
    subtotals: Vec<i64>,
    discounts: Vec<i64>,
    taxes: Vec<i64>,
    totals: Vec<i64>,
    items: Vec<i64>,
    line_sales: Vec<i32>,
    line_nos: Vec<i64>,
    line_skus: Vec<&'a str>,
    line_quantities: Vec<i64>,
    line_totals: Vec<i64>,
    pay_sales: Vec<i32>,
    pay_ids: Vec<&'a str>,
    pay_methods: Vec<&'a str>,
    pay_providers: Vec<&'a str>,
    pay_amounts: Vec<i64>,
}

impl SaleRun<'_> {
    async fn insert(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        statement: &tokio_postgres::Statement,
        store: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        tx.execute(
            statement,
            &[
                &store,
                &self.origin,
                &self.first_seq,
                &self.day,
                &self.txn_ids,
                &self.seqs,
                &self.paid_ms,
                &self.terminals,
                &self.cashiers,
                &self.subtotals,
                &self.discounts,
                &self.taxes,
                &self.totals,
                &self.items,
                &self.line_sales,
                &self.line_nos,
                &self.line_skus,
                &self.line_quantities,
                &self.line_totals,
                &self.pay_sales,
                &self.pay_ids,
                &self.pay_methods,
                &self.pay_providers,
                &self.pay_amounts,
            ],
        )
        .await
    }
}

/// A store's sales of one projection step as runs, one per origin and day, each keyed by its
/// first sale's seq. A sale's lines go in line order and its payments in id order, each key
/// once.
fn sale_runs(f: &Facts) -> Vec<SaleRun<'_>> {
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
    let mut runs: BTreeMap<(u64, i64), SaleRun<'_>> = BTreeMap::new();
    for x in &f.sales {
        let r = runs.entry((x.origin, x.day)).or_insert_with(|| SaleRun {
            origin: x.origin as i64,
            first_seq: x.seq as i64,
            day: x.day,
            ..SaleRun::default()
        });
        r.first_seq = r.first_seq.min(x.seq as i64);
        r.txn_ids.push(&x.txn_id);
        r.seqs.push(x.seq as i64);
        r.paid_ms.push(x.paid_ms as i64);
        r.terminals.push(x.terminal as i64);
        r.cashiers.push(&x.cashier);
        r.subtotals.push(x.subtotal);
        r.discounts.push(x.discount);
        r.taxes.push(x.tax);
        r.totals.push(x.total);
        r.items.push(x.items);
        let sale = r.txn_ids.len() as i32;
        for l in lines
            .get(x.txn_id.as_str())
            .into_iter()
            .flat_map(|m| m.values())
        {
            r.line_sales.push(sale);
            r.line_nos.push(l.line_no);
            r.line_skus.push(&l.sku);
            r.line_quantities.push(l.quantity);
            r.line_totals.push(l.total);
        }
        for p in pays
            .get(x.txn_id.as_str())
            .into_iter()
            .flat_map(|m| m.values())
        {
            r.pay_sales.push(sale);
            r.pay_ids.push(&p.payment_id);
            r.pay_methods.push(p.method);
            r.pay_providers.push(&p.provider);
            r.pay_amounts.push(p.amount);
        }
    }
    runs.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::SaleFact;

    fn sale(txn: &str, origin: u64, seq: u64, day: i64) -> SaleFact {
        SaleFact {
            txn_id: txn.into(),
            origin,
            seq,
            day,
            paid_ms: seq * 10,
            terminal: origin,
            cashier: "ann".into(),
            subtotal: 100,
            discount: 0,
            tax: 0,
            total: 100,
            items: 1,
        }
    }

    fn line(txn: &str, line_no: i64, sku: &str) -> LineFact {
        LineFact {
            txn_id: txn.into(),
            line_no,
            day: 0,
            sku: sku.into(),
            quantity: 1,
            total: 100,
        }
    }

    #[test]
    fn a_step_s_sales_go_in_one_run_per_origin_and_day_with_lines_by_sale() {
        let f = Facts {
            sales: vec![
                sale("A", 1, 7, 10),
                sale("B", 1, 8, 10),
                sale("C", 1, 9, 11),
                sale("D", 2, 3, 10),
            ],
            lines: vec![
                line("B", 2, "TEA"),
                line("B", 1, "RICE"),
                line("A", 1, "TEA"),
                line("B", 1, "RICE"),
            ],
            payments: vec![PaymentFact {
                txn_id: "B".into(),
                payment_id: "P1".into(),
                day: 10,
                method: "qr",
                provider: "vnpay".into(),
                amount: 100,
            }],
            ..Facts::default()
        };
        let runs = sale_runs(&f);
        let keys: Vec<_> = runs
            .iter()
            .map(|r| (r.origin, r.day, r.first_seq))
            .collect();
        assert_eq!(keys, vec![(1, 10, 7), (1, 11, 9), (2, 10, 3)]);
        let r = &runs[0];
        assert_eq!(r.txn_ids, vec!["A", "B"]);
        assert_eq!(r.seqs, vec![7, 8]);
        // B's lines in line order, its line 1 once; each line names its sale's index.
        assert_eq!(r.line_sales, vec![1, 2, 2]);
        assert_eq!(r.line_nos, vec![1, 1, 2]);
        assert_eq!(r.line_skus, vec!["TEA", "RICE", "TEA"]);
        assert_eq!(
            (r.pay_sales.clone(), r.pay_ids.clone()),
            (vec![2], vec!["P1"])
        );
        assert!(runs[1].line_sales.is_empty() && runs[2].pay_sales.is_empty());
    }
}
