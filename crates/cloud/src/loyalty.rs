//! Loyalty across stores: HQ's record of each customer (second master-data stream), rebuilt
//! from what every store uploaded (its changes to the customer's record, its points) and from
//! HQ's own edits, whenever the projection or an admin touches the customer.
//!
//! Fields: each store's changes make one document per store (automerge); HQ's edits are
//! field patches. Field by field, the source that changed the customer last (as HQ received
//! it) wins. Points: each store's PN-counter, summed per store; a till adds the other
//! stores' to its own (`HqCustomer::points_elsewhere`).

use crate::ledger::{Ledger, LedgerError, MasterEdit};
use std::collections::BTreeMap;
use tillmesh_cloud_proto::records::CUSTOMER_STORES_MAX;
use tillmesh_cloud_proto::{HqCustomer, MasterBody, MasterKind};
use tillmesh_pos::customer::{Customer, CustomerPatch, Customers};

/// Most customers rebuilt in one round (the rest wait for the next).
pub const REBUILD_MAX: usize = 1_000;
/// The points of the stores beyond [`CUSTOMER_STORES_MAX`] are summed under this key (no
/// store id has it).
pub const OTHER_STORES: &str = "*";
/// The store name under which HQ's own edits are kept.
pub const HQ_SOURCE: &str = "";

/// What HQ holds about one customer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerSources {
    /// Changes to the record: (store, or [`HQ_SOURCE`]; when HQ received it, ms; the change:
    /// automerge bytes from a store, a JSON `CustomerPatch` from HQ), per store in order.
    pub changes: Vec<(String, u64, Vec<u8>)>,
    /// Points per store.
    pub points: Vec<(String, i64)>,
}

/// A fresh mark for customers to rebuild (a mark set again meanwhile keeps them marked).
pub fn mark() -> i64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the system's random source");
    i64::from_be_bytes(b) & i64::MAX
}

/// HQ's record of customer `id` from its sources; None when no source names a field (only
/// points are known, or nothing).
pub fn record(id: &str, src: &CustomerSources) -> Option<HqCustomer> {
    // One document (or patch series) per source, and when the source last changed it.
    let mut per_source: BTreeMap<&str, (u64, Customer)> = BTreeMap::new();
    let mut docs: BTreeMap<&str, Customers> = BTreeMap::new();
    for (store, at_ms, change) in &src.changes {
        let (at, fields) = per_source
            .entry(store.as_str())
            .or_insert_with(|| (0, Customer::default()));
        *at = (*at).max(*at_ms);
        if store == HQ_SOURCE {
            if let Ok(p) = serde_json::from_slice::<CustomerPatch>(change) {
                patch(fields, &p);
            }
        } else {
            // A change a store's till already checked; one HQ cannot read is left out.
            let doc = docs.entry(store.as_str()).or_default();
            if doc.apply(id, change).is_ok()
                && let Some(c) = doc.get(id)
            {
                *fields = c;
            }
        }
    }
    let mut order: Vec<&(u64, Customer)> = per_source.values().collect();
    order.sort_by_key(|(at, _)| *at);
    let mut customer = Customer {
        id: id.to_owned(),
        ..Default::default()
    };
    for (_, fields) in order {
        patch(
            &mut customer,
            &CustomerPatch {
                name: fields.name.clone(),
                email: fields.email.clone(),
                phone: fields.phone.clone(),
                consent_marketing: fields.consent_marketing,
                consent_sms: fields.consent_sms,
            },
        );
    }
    let named = customer.name.is_some()
        || customer.email.is_some()
        || customer.phone.is_some()
        || customer.consent_marketing.is_some()
        || customer.consent_sms.is_some();
    if !named && src.points.is_empty() {
        return None;
    }
    Some(HqCustomer {
        customer,
        points: points(&src.points),
    })
}

/// Per store, at most [`CUSTOMER_STORES_MAX`] entries: the stores with the most points (by
/// size) by name, the rest summed under [`OTHER_STORES`].
fn points(rows: &[(String, i64)]) -> BTreeMap<String, i64> {
    let mut rows: Vec<&(String, i64)> = rows.iter().filter(|(_, p)| *p != 0).collect();
    rows.sort_by_key(|(s, p)| (std::cmp::Reverse(p.unsigned_abs()), s.clone()));
    let mut out = BTreeMap::new();
    for (i, (store, p)) in rows.into_iter().enumerate() {
        if i + 1 < CUSTOMER_STORES_MAX {
            out.insert(store.clone(), *p);
        } else {
            let e = out.entry(OTHER_STORES.to_owned()).or_insert(0i64);
            *e = e.saturating_add(*p);
        }
    }
    out
}

fn patch(c: &mut Customer, p: &CustomerPatch) {
    if p.name.is_some() {
        c.name = p.name.clone();
    }
    if p.email.is_some() {
        c.email = p.email.clone();
    }
    if p.phone.is_some() {
        c.phone = p.phone.clone();
    }
    if p.consent_marketing.is_some() {
        c.consent_marketing = p.consent_marketing;
    }
    if p.consent_sms.is_some() {
        c.consent_sms = p.consent_sms;
    }
}

/// Rebuilds the records of the customers marked since (at most [`REBUILD_MAX`]), each at a
/// new version of the second stream; answers how many.
pub async fn rebuild(ledger: &dyn Ledger) -> Result<usize, LedgerError> {
    let dirty = ledger.dirty_customers(REBUILD_MAX).await?;
    for (id, mark) in &dirty {
        let src = ledger.customer_sources(id).await?;
        if let Some(r) = record(id, &src) {
            let body = serde_json::to_string(&MasterBody::Customer(r))
                .map_err(|e| LedgerError::Db(e.to_string()))?;
            ledger
                .master_apply(vec![MasterEdit {
                    kind: MasterKind::Customer,
                    key: id.clone(),
                    store: String::new(),
                    body: Some(body),
                }])
                .await?;
        }
        ledger.customer_rebuilt(id, *mark).await?;
    }
    Ok(dirty.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillmesh_crdt::ReplicaId;

    fn store_change(docs: &mut Customers, me: u64, id: &str, p: CustomerPatch) -> Vec<u8> {
        docs.edit(ReplicaId(me), id, &p).unwrap()
    }

    #[test]
    fn the_source_that_changed_a_field_last_wins_and_points_sum_per_store() {
        let (mut a, mut b) = (Customers::default(), Customers::default());
        let mut src = CustomerSources::default();
        let c1 = store_change(
            &mut a,
            1 << 32,
            "C1",
            CustomerPatch {
                name: Some("Lan".into()),
                phone: Some("0901".into()),
                ..Default::default()
            },
        );
        src.changes.push(("S1".into(), 100, c1));
        // Another store, later: a new phone (its till's actor id may equal S1's: separate
        // documents never mix them).
        let c2 = store_change(
            &mut b,
            1 << 32,
            "C1",
            CustomerPatch {
                phone: Some("0902".into()),
                ..Default::default()
            },
        );
        src.changes.push(("S2".into(), 200, c2));
        // HQ, in between: an e-mail and another name, which S2 did not touch.
        let hq = serde_json::to_vec(&CustomerPatch {
            name: Some("Lan Tran".into()),
            email: Some("lan@example.com".into()),
            ..Default::default()
        })
        .unwrap();
        src.changes.push((HQ_SOURCE.into(), 150, hq));
        src.points = vec![("S1".into(), 40), ("S2".into(), -10), ("S3".into(), 0)];
        let r = record("C1", &src).unwrap();
        assert_eq!(r.customer.name.as_deref(), Some("Lan Tran"));
        assert_eq!(r.customer.phone.as_deref(), Some("0902"));
        assert_eq!(r.customer.email.as_deref(), Some("lan@example.com"));
        assert_eq!(
            r.points,
            [("S1".to_string(), 40), ("S2".to_string(), -10)]
                .into_iter()
                .collect()
        );
        assert_eq!(r.points_elsewhere("S1"), -10);
        // Points only: a record all the same; nothing at all: none.
        let only_points = CustomerSources {
            points: vec![("S1".into(), 5)],
            ..Default::default()
        };
        assert_eq!(record("C2", &only_points).unwrap().customer.name, None);
        assert_eq!(record("C3", &CustomerSources::default()), None);
    }

    #[test]
    fn points_beyond_the_store_limit_are_summed_under_one_key() {
        let rows: Vec<(String, i64)> = (0..100).map(|i| (format!("S{i:03}"), i + 1)).collect();
        let p = points(&rows);
        assert_eq!(p.len(), CUSTOMER_STORES_MAX);
        assert_eq!(p.values().sum::<i64>(), (1..=100).sum::<i64>());
        assert!(p.contains_key("S099") && !p.contains_key("S000"));
    }
}
