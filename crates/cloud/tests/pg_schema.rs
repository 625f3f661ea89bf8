//! PostgreSQL's sales: a database at version 8 (lines and payments in tables of their own)
//! keeps every report figure after migration 9 folds them into their sales' rows and
//! migration 10 into runs of sales, and SKUs and payment ids of any text come back from the
//! runs as sold. Needs `TILLMESH_PG_URL` (see scripts/pg-up.sh); skipped without it unless
//! `TILLMESH_REQUIRE_PG` is set.

mod support;

use support::{Backend, DAY0_MS, Env, Shop};
use tillmesh_cloud::ledger::Ledger;
use tillmesh_cloud::postgres::PgLedger;

mod schema {
    refinery::embed_migrations!("migrations/postgres");
}

const AT_VERSION_8: &str = "
INSERT INTO stores (store_id, name, utc_offset_min, enabled) VALUES ('S1', 'One', 0, TRUE);
INSERT INTO sales (store, txn_id, origin, seq, day, paid_ms, terminal, cashier, subtotal,
    discount, tax, total, items) VALUES
    ('S1', 'T-1', 1, 1, 10, 864000000, 1, 'ann', 3000, 0, 0, 3000, 3),
    ('S1', 'T-2', 1, 2, 10, 864000001, 1, 'ann', 500, 0, 0, 500, 1),
    ('S1', 'T-3', 2, 1, 10, 864000002, 2, 'bo', 700, 0, 0, 700, 1);
INSERT INTO sale_lines (store, txn_id, line_no, day, sku, quantity, total) VALUES
    ('S1', 'T-1', 2, 10, 'TEA', 1, 1000),
    ('S1', 'T-1', 1, 10, 'RICE', 2, 2000),
    ('S1', 'T-2', 1, 10, 'TEA', 1, 500),
    ('S1', 'T-3', 1, 10, 'RICE', 1, 700);
INSERT INTO sale_payments (store, txn_id, payment_id, day, method, provider, amount) VALUES
    ('S1', 'T-1', 'P-b', 10, 'qr', 'vnpay', 1000),
    ('S1', 'T-1', 'P-a', 10, 'cash', '', 2000),
    ('S1', 'T-2', 'P-c', 10, 'qr', 'vnpay', 500),
    ('S1', 'T-3', 'P-d', 10, 'cash', '', 700);
INSERT INTO txn_status (store, txn_id, status, wall_ms, logical, replica) VALUES
    ('S1', 'T-1', 'PAID', 864000000, 0, 1),
    ('S1', 'T-2', 'VOID', 864000100, 0, 1);
";

#[tokio::test]
async fn version_8_lines_and_payments_keep_every_report_figure_after_migrations_9_and_10() {
    let Some(base) = tillmesh_test_support::pg_url() else {
        return;
    };
    let url = tillmesh_test_support::fresh_pg_database(&base).await;
    let (mut c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    schema::migrations::runner()
        .set_target(refinery::Target::Version(8))
        .run_async(&mut c)
        .await
        .unwrap();
    c.batch_execute(AT_VERSION_8).await.unwrap();

    schema::migrations::runner()
        .set_target(refinery::Target::Version(9))
        .run_async(&mut c)
        .await
        .unwrap();
    let gone: bool = c
        .query_one("SELECT to_regclass('sale_lines') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(gone, "migration 9 ran and dropped the per-line table");
    let row = c
        .query_one(
            "SELECT line_nos, line_skus, pay_ids, pay_methods FROM sales WHERE txn_id = 'T-1'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<i64>>(0), vec![1, 2], "lines in line order");
    assert_eq!(row.get::<_, Vec<String>>(1), vec!["RICE", "TEA"]);
    assert_eq!(row.get::<_, Vec<String>>(2), vec!["P-a", "P-b"]);
    assert_eq!(row.get::<_, Vec<String>>(3), vec!["cash", "qr"]);

    // Migration 10 makes each sale a run of its own; the reports read the runs from here on.
    let ledger = PgLedger::connect(&url, 2).await.unwrap();
    let runs: Vec<(String, i64, Vec<i32>, Vec<String>)> = c
        .query(
            "SELECT store, first_seq, line_sales, line_skus FROM sale_runs ORDER BY origin, first_seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(runs.len(), 3, "one run per sale: {runs:?}");
    assert_eq!((runs[0].1, runs[0].2.clone()), (1, vec![1, 1]));
    assert_eq!(runs[0].3, vec!["RICE", "TEA"]);

    // T-2 is void: out of the best sellers, its payment counted as reversed.
    let top = ledger.top_skus(Some("S1"), 10, 10, 10).await.unwrap();
    let top: Vec<_> = top
        .iter()
        .map(|r| (r.sku.as_str(), r.quantity, r.revenue))
        .collect();
    assert_eq!(top, vec![("RICE", 3, 2700), ("TEA", 1, 1000)]);
    let pays = ledger.payments_by_day(Some("S1"), 10, 10).await.unwrap();
    let pays: Vec<_> = pays
        .iter()
        .map(|p| (p.method.as_str(), p.count, p.amount, p.reversed_amount))
        .collect();
    assert_eq!(pays, vec![("cash", 2, 2700, 0), ("qr", 2, 1500, 500)]);
    let qr = ledger.qr_payments("S1", 10, 10, 10).await.unwrap();
    let qr: Vec<_> = qr
        .iter()
        .map(|p| {
            (
                p.reference.as_str(),
                p.txn_id.as_str(),
                p.amount,
                p.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        qr,
        vec![("P-b", "T-1", 1000, "PAID"), ("P-c", "T-2", 500, "VOID")]
    );
    let days = ledger.sales_by_day(Some("S1"), 10, 10).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!((days[0].transactions, days[0].total), (3, 4200));
    assert_eq!((days[0].voided, days[0].voided_amount), (1, 500));
}

#[tokio::test]
async fn skus_of_any_text_come_back_from_the_sale_runs_as_sold() {
    let Some(env) = Env::start_with(Backend::Postgres, 0).await else {
        return;
    };
    let odd = [
        "NULL",
        "a,b",
        "{x}",
        "q\"t",
        "back\\slash",
        "Phở bò",
        " pad ",
    ];
    let mut shop = Shop::new("S001", &[1]);
    let lines: Vec<(&str, u32, i64)> = odd
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u32 + 1, 100))
        .collect();
    let sale = shop.sale(0, DAY0_MS, &lines, Some("vn\"pay"));
    let (s, a) = env
        .upload(&env.token("S001"), &shop.batch(1, 1, &[sale]))
        .await;
    assert_eq!(s, 200, "{a}");
    env.handle.cloud.catch_up().await.unwrap();
    let ledger = &env.handle.cloud.ledger;
    let day = tillmesh_cloud::project::local_day(DAY0_MS, 420);
    let mut top: Vec<_> = ledger
        .top_skus(Some("S001"), day, day, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.sku, r.quantity))
        .collect();
    top.sort();
    let mut want: Vec<_> = odd
        .iter()
        .enumerate()
        .map(|(i, s)| (s.to_string(), i as i64 + 1))
        .collect();
    want.sort();
    assert_eq!(top, want);
    let qr = ledger.qr_payments("S001", day, day, 10).await.unwrap();
    assert_eq!(qr.len(), 1);
    assert_eq!(qr[0].provider, "vn\"pay");
    env.stop().await;
}
