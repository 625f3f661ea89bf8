//! What HQ keeps about loyalty customers on PostgreSQL (see `crate::loyalty`): the customers
//! to rebuild, each one's changes and points per store, and HQ's own edits.

use super::*;

impl PgLedger {
    pub(super) async fn dirty(&self, limit: usize) -> Result<Vec<(String, i64)>, LedgerError> {
        let rows = self
            .client()
            .await?
            .query(sql::DIRTY_CUSTOMERS, &[&(limit as i64)])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(super) async fn sources(
        &self,
        customer: &str,
    ) -> Result<crate::loyalty::CustomerSources, LedgerError> {
        let client = self.client().await?;
        let changes = client
            .query(sql::CUSTOMER_CHANGES, &[&customer])
            .await?
            .iter()
            .map(|r| (r.get(0), u(r.get(1)), r.get(2)))
            .collect();
        let points = client
            .query(sql::CUSTOMER_POINTS, &[&customer])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(crate::loyalty::CustomerSources { changes, points })
    }

    pub(super) async fn put_hq(
        &self,
        customer: &str,
        at_ms: u64,
        patch: Vec<u8>,
    ) -> Result<(), LedgerError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mark = crate::loyalty::mark();
        tx.execute(
            sql::INSERT_CUSTOMER_CHANGE,
            &[
                &customer,
                &crate::loyalty::HQ_SOURCE,
                &0i64,
                &mark,
                &(at_ms as i64),
                &patch,
            ],
        )
        .await?;
        tx.execute(sql::MARK_CUSTOMER, &[&customer, &mark]).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn rebuilt(&self, customer: &str, mark: i64) -> Result<(), LedgerError> {
        self.client()
            .await?
            .execute(sql::CLEAN_CUSTOMER, &[&customer, &mark])
            .await?;
        Ok(())
    }
}
