//! Loyalty customers: create, update and look up.

use super::*;

impl Till {
    /// Creates or updates a customer (per-field last writer wins).
    pub async fn upsert_customer(
        &self,
        s: &Session,
        id: &str,
        patch: &CustomerPatch,
    ) -> Result<CustomerView, TillError> {
        self.audited(&s.employee_id, "customer.update", id, async {
            let now = self.now();
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                let me = core.replica.id();
                let change = core.replica.customers_mut().edit(me, id, patch)?;
                let e = core.replica.update_customer(id, change, now);
                let rec = audit_rec(
                    now,
                    &s.employee_id,
                    "customer.update",
                    id,
                    "ok",
                    String::new(),
                );
                self.submit(
                    slot,
                    WriteBatch {
                        events: vec![e],
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?
            };
            self.durable(rx).await?;
            self.customer(id)
        })
        .await
    }

    /// One customer with points.
    pub fn customer(&self, id: &str) -> Result<CustomerView, TillError> {
        let core = self.core();
        let c =
            core.replica.state().customers.get(id).ok_or_else(|| {
                TillError::not_found("unknown_customer", format!("no customer {id}"))
            })?;
        Ok(CustomerView {
            points: core.replica.state().points_of(id),
            customer: c,
        })
    }
}
