//! The master-data records of the second stream (categories and customers), which HQ serves
//! only to a store whose every till reads them: a till of 0.1.0 cannot decode them, so the
//! leader asks for this stream only once each till of the group speaks mesh protocol
//! [`EXT_PROTOCOL`] or later (ARCHITECTURE.md "Compatibility").

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tillmesh_pos::customer::Customer;
use utoipa::ToSchema;

/// The mesh protocol from which a till reads the second stream's records.
pub const EXT_PROTOCOL: u16 = 3;
/// The name of the second stream in `GET /api/v1/sync/master?stream=`.
pub const EXT_STREAM: &str = "ext";
/// Most stores whose points one customer record carries.
pub const CUSTOMER_STORES_MAX: usize = 64;

/// A product category, as HQ names and nests them (items name their category by id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Category {
    /// Category id (what `Item::category` holds).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The category this one is part of, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// A loyalty customer as HQ knows them across the chain: the fields HQ holds and the points
/// each store holds for them. A till adds the points of the other stores to its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HqCustomer {
    /// The customer's fields.
    #[serde(flatten)]
    pub customer: Customer,
    /// Points per store, as HQ last received them from each.
    #[serde(default)]
    pub points: BTreeMap<String, i64>,
}

impl HqCustomer {
    /// The points held for this customer at every store but `store`.
    pub fn points_elsewhere(&self, store: &str) -> i64 {
        self.points
            .iter()
            .filter(|(s, _)| s.as_str() != store)
            .fold(0i64, |sum, (_, p)| sum.saturating_add(*p))
    }
}

/// The store name under which HQ signs a page of the second stream, so that a page of one
/// stream is never taken for a page of the other (a store id has no `/`).
pub fn ext_signing_name(store: &str) -> String {
    format!("{store}/{EXT_STREAM}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_elsewhere_leave_out_the_asking_store() {
        let c = HqCustomer {
            customer: Customer {
                id: "C1".into(),
                ..Default::default()
            },
            points: [
                ("S1".to_string(), 40),
                ("S2".to_string(), 25),
                ("S3".to_string(), -5),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(c.points_elsewhere("S1"), 20);
        assert_eq!(c.points_elsewhere("S9"), 60);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""id":"C1""#), "{json}");
        assert_eq!(serde_json::from_str::<HqCustomer>(&json).unwrap(), c);
    }
}
