//! Loyalty customers: create, update and look up, across the chain: a customer HQ knows
//! (registered at another store) is found here too, with the points earned elsewhere.

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
        customer_view(&core, &self.cfg.store.store_id, id)
            .ok_or_else(|| TillError::not_found("unknown_customer", format!("no customer {id}")))
    }

    /// HQ's product categories, in id order.
    pub fn categories(&self) -> Vec<tillmesh_cloud_proto::Category> {
        let mut out = self.core().hq.categories.clone();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// A customer as this till knows them: the store's own record, each field HQ's where the
/// store has none; points: the store's own plus those HQ last had from every other store.
/// None when neither the store nor HQ knows the id.
pub(super) fn customer_view(core: &Core, store: &str, id: &str) -> Option<CustomerView> {
    let state = core.replica.state();
    let hq = core.hq.customers.get(id);
    let customer = match (state.customers.get(id), hq) {
        (Some(mut c), Some(h)) => {
            let h = &h.customer;
            c.name = c.name.or_else(|| h.name.clone());
            c.email = c.email.or_else(|| h.email.clone());
            c.phone = c.phone.or_else(|| h.phone.clone());
            c.consent_marketing = c.consent_marketing.or(h.consent_marketing);
            c.consent_sms = c.consent_sms.or(h.consent_sms);
            c
        }
        (Some(c), None) => c,
        (None, Some(h)) => h.customer.clone(),
        (None, None) => return None,
    };
    let elsewhere = hq.map_or(0, |h| h.points_elsewhere(store));
    Some(CustomerView {
        points: state.points_of(id).saturating_add(elsewhere),
        points_elsewhere: elsewhere,
        customer,
    })
}

/// Whether a customer is known here or at HQ.
pub(super) fn customer_known(core: &Core, id: &str) -> bool {
    core.replica.state().customers.get(id).is_some() || core.hq.customers.contains_key(id)
}
