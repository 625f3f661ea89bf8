//! Loyalty customers as automerge documents: per-field last-writer-wins maps that merge from
//! any till. Points live beside them as PN-counters (see [`crate::state::StoreState`]).

use automerge::{ActorId, AutoCommit, ReadDoc, ScalarValue, Value, transaction::Transactable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tillmesh_crdt::ReplicaId;
use utoipa::ToSchema;

/// Most customer documents kept per store.
pub const CUSTOMERS_MAX: usize = 1_000_000;
/// Longest text field.
pub const FIELD_CHARS_MAX: usize = 200;

/// A customer as read from its document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    /// Customer id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Consents to marketing e-mail.
    pub consent_marketing: Option<bool>,
    /// Consents to SMS.
    pub consent_sms: Option<bool>,
}

/// A partial update: only the fields given are written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CustomerPatch {
    /// Name.
    pub name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Marketing consent.
    pub consent_marketing: Option<bool>,
    /// SMS consent.
    pub consent_sms: Option<bool>,
}

/// Customer errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerError {
    /// A field is too long or malformed.
    #[error("field {0} is invalid: {1}")]
    InvalidField(&'static str, &'static str),
    /// The patch writes nothing.
    #[error("the update names no field")]
    EmptyPatch,
    /// Change bytes that automerge cannot load.
    #[error("customer change is unreadable: {0}")]
    BadChange(String),
    /// Too many customers.
    #[error("the store holds at most {CUSTOMERS_MAX} customers")]
    TooMany,
}

/// All customer documents of the store.
#[derive(Debug, Default, Clone)]
pub struct Customers {
    docs: BTreeMap<String, AutoCommit>,
}

/// Saved as each document's automerge bytes (`AutoCommit::save`), so a base carries full
/// documents that merge with any till's.
impl Serialize for Customers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let saved: BTreeMap<&str, serde_bytes_vec::Bytes> = self
            .docs
            .iter()
            .map(|(k, d)| (k.as_str(), serde_bytes_vec::Bytes(d.clone().save())))
            .collect();
        saved.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Customers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let saved: BTreeMap<String, serde_bytes_vec::Bytes> = BTreeMap::deserialize(d)?;
        if saved.len() > CUSTOMERS_MAX {
            return Err(serde::de::Error::custom("too many customer documents"));
        }
        let mut docs = BTreeMap::new();
        for (k, b) in saved {
            let doc = AutoCommit::load(&b.0).map_err(serde::de::Error::custom)?;
            docs.insert(k, doc);
        }
        Ok(Customers { docs })
    }
}

mod serde_bytes_vec {
    //! A byte vector that serialises as one byte string (not a sequence of numbers).
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) struct Bytes(pub Vec<u8>);

    impl Serialize for Bytes {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Bytes, A::Error> {
                    let mut v = Vec::new();
                    while let Some(b) = a.next_element()? {
                        v.push(b);
                    }
                    Ok(Bytes(v))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

impl Customers {
    /// Merges every document of `other` into this set (automerge merge per document).
    pub fn merge(&mut self, other: &Customers) {
        for (id, doc) in &other.docs {
            // At the cap a new document is refused here as `apply` refuses it.
            if !self.docs.contains_key(id) && self.docs.len() >= CUSTOMERS_MAX {
                continue;
            }
            let mine = self.docs.entry(id.clone()).or_default();
            // A peer's document that does not merge (a change applied there that conflicts
            // with one here) leaves this one as it is: the customer record diverges instead of
            // the till stopping. The validator keeps such changes out (`dry_run`).
            let mut theirs = doc.clone();
            let before = mine.clone();
            if mine.merge(&mut theirs).is_err() {
                *mine = before;
            }
        }
    }

    /// Applies `patch` to customer `id` as replica `me`; returns the change bytes to record.
    pub fn edit(
        &mut self,
        me: ReplicaId,
        id: &str,
        patch: &CustomerPatch,
    ) -> Result<Vec<u8>, CustomerError> {
        check_patch(id, patch)?;
        if !self.docs.contains_key(id) && self.docs.len() >= CUSTOMERS_MAX {
            return Err(CustomerError::TooMany);
        }
        let doc = self.docs.entry(id.to_string()).or_default();
        doc.set_actor(ActorId::from(me.0.to_be_bytes().to_vec()));
        let root = automerge::ROOT;
        let put = |doc: &mut AutoCommit, k: &str, v: ScalarValue| {
            doc.put(&root, k, v)
                .map_err(|e| CustomerError::BadChange(e.to_string()))
        };
        for (k, v) in [
            ("name", &patch.name),
            ("email", &patch.email),
            ("phone", &patch.phone),
        ] {
            if let Some(v) = v {
                put(doc, k, ScalarValue::Str(v.as_str().into()))?;
            }
        }
        for (k, v) in [
            ("consent_marketing", patch.consent_marketing),
            ("consent_sms", patch.consent_sms),
        ] {
            if let Some(v) = v {
                put(doc, k, ScalarValue::Boolean(v))?;
            }
        }
        doc.get_last_local_change()
            .map(|c| c.raw_bytes().to_vec())
            .ok_or(CustomerError::EmptyPatch)
    }

    /// Whether bytes are one well-formed automerge change (checked before a peer's event is
    /// accepted, so that applying it cannot fail later).
    pub fn check_change(change: &[u8]) -> Result<(), CustomerError> {
        automerge::Change::from_bytes(change.to_vec())
            .map(|_| ())
            .map_err(|e| CustomerError::BadChange(e.to_string()))
    }

    /// Whether `change` would apply to customer `id`, without changing anything here: the
    /// validator's dry run for a peer's `CustomerUpdated`. `scratch` holds working copies of
    /// the documents earlier changes of the same batch touched (a change that applies is
    /// kept there, so the next one is checked against it).
    pub fn dry_run(
        &self,
        scratch: &mut BTreeMap<String, AutoCommit>,
        id: &str,
        change: &[u8],
    ) -> Result<(), CustomerError> {
        if !self.docs.contains_key(id) && !scratch.contains_key(id) {
            let new = scratch
                .keys()
                .filter(|k| !self.docs.contains_key(*k))
                .count();
            if self.docs.len().saturating_add(new) >= CUSTOMERS_MAX {
                return Err(CustomerError::TooMany);
            }
        }
        let change = automerge::Change::from_bytes(change.to_vec())
            .map_err(|e| CustomerError::BadChange(e.to_string()))?;
        let doc = scratch
            .entry(id.to_string())
            .or_insert_with(|| self.docs.get(id).cloned().unwrap_or_default());
        let mut next = doc.clone();
        apply_guarded(&mut next, change)?;
        *doc = next;
        Ok(())
    }

    /// Merges change bytes from any till.
    pub fn apply(&mut self, id: &str, change: &[u8]) -> Result<(), CustomerError> {
        if !self.docs.contains_key(id) && self.docs.len() >= CUSTOMERS_MAX {
            return Err(CustomerError::TooMany);
        }
        // Exactly one change per event, parsed strictly: malformed bytes are an error, never a
        // silent no-op.
        let change = automerge::Change::from_bytes(change.to_vec())
            .map_err(|e| CustomerError::BadChange(e.to_string()))?;
        let doc = self.docs.entry(id.to_string()).or_default();
        // Applied on a copy first: a change that fails half-way leaves the document as it was.
        let mut next = doc.clone();
        apply_guarded(&mut next, change)?;
        *doc = next;
        Ok(())
    }

    /// Customers whose phone number, reduced to its digits, contains `digits`; at most
    /// `limit`, by id.
    pub fn find_by_phone(&self, digits: &str, limit: usize) -> Vec<Customer> {
        self.docs
            .keys()
            .filter_map(|id| self.get(id))
            .filter(|c| {
                c.phone.as_ref().is_some_and(|p| {
                    p.chars()
                        .filter(char::is_ascii_digit)
                        .collect::<String>()
                        .contains(digits)
                })
            })
            .take(limit)
            .collect()
    }

    /// Reads one customer.
    pub fn get(&self, id: &str) -> Option<Customer> {
        let doc = self.docs.get(id)?;
        let text = |k: &str| match doc.get(automerge::ROOT, k) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        };
        let flag = |k: &str| match doc.get(automerge::ROOT, k) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Boolean(b) => Some(*b),
                _ => None,
            },
            _ => None,
        };
        Some(Customer {
            id: id.to_string(),
            name: text("name"),
            email: text("email"),
            phone: text("phone"),
            consent_marketing: flag("consent_marketing"),
            consent_sms: flag("consent_sms"),
        })
    }

    /// Every customer, materialised (for convergence checks).
    pub fn snapshot(&self) -> BTreeMap<String, Customer> {
        self.docs
            .keys()
            .filter_map(|k| self.get(k).map(|c| (k.clone(), c)))
            .collect()
    }
}

/// Checks a customer id and the fields a patch writes.
pub fn check_patch(id: &str, p: &CustomerPatch) -> Result<(), CustomerError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CustomerError::InvalidField(
            "id",
            "1-64 letters, digits, '-' or '_'",
        ));
    }
    if *p == CustomerPatch::default() {
        return Err(CustomerError::EmptyPatch);
    }
    for (name, v) in [("name", &p.name), ("email", &p.email), ("phone", &p.phone)] {
        if v.as_ref()
            .is_some_and(|v| v.chars().count() > FIELD_CHARS_MAX)
        {
            return Err(CustomerError::InvalidField(name, "at most 200 characters"));
        }
    }
    if p.email.as_ref().is_some_and(|e| !e.contains('@')) {
        return Err(CustomerError::InvalidField("email", "must contain '@'"));
    }
    Ok(())
}

/// Loyalty points a sale of `total` earns its customer: one per `points_per_minor` minor
/// units (rounded down); none without a customer, for a zero rate, or for a total below zero.
pub fn points_earned(total: i64, has_customer: bool, points_per_minor: i64) -> i64 {
    if !has_customer || points_per_minor <= 0 || total <= 0 {
        return 0;
    }
    total.checked_div(points_per_minor).unwrap_or(0)
}

/// Applies one change to `doc` (a working copy: on error it is thrown away). automerge 0.12
/// panics on some changes that parse but do not hang together (found by fuzzing the mesh
/// frame decoder: `op_set2/change/batch.rs`); such a panic is that change's error, not the
/// till's end, so it is caught here and the event is refused like any malformed change.
fn apply_guarded(doc: &mut AutoCommit, change: automerge::Change) -> Result<(), CustomerError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.apply_changes([change]))) {
        Ok(r) => r.map_err(|e| CustomerError::BadChange(e.to_string())),
        Err(_) => Err(CustomerError::BadChange(
            "the change does not apply (automerge refused it)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_earned_per_whole_rate_by_a_customer_only() {
        assert_eq!(points_earned(12_345, true, 100), 123);
        assert_eq!(points_earned(99, true, 100), 0);
        assert_eq!(points_earned(12_345, false, 100), 0);
        assert_eq!(points_earned(12_345, true, 0), 0);
        assert_eq!(points_earned(-500, true, 100), 0);
    }

    #[test]
    fn concurrent_field_edits_merge_per_field() {
        let mut a = Customers::default();
        let c1 = a
            .edit(
                ReplicaId(1),
                "C1",
                &CustomerPatch {
                    name: Some("Ann".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let mut b = Customers::default();
        b.apply("C1", &c1).unwrap();
        let c2 = a
            .edit(
                ReplicaId(1),
                "C1",
                &CustomerPatch {
                    email: Some("ann@x.org".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let c3 = b
            .edit(
                ReplicaId(2),
                "C1",
                &CustomerPatch {
                    consent_sms: Some(true),
                    ..Default::default()
                },
            )
            .unwrap();
        a.apply("C1", &c3).unwrap();
        b.apply("C1", &c2).unwrap();
        b.apply("C1", &c2).unwrap();
        let got = a.get("C1").unwrap();
        assert_eq!(got, b.get("C1").unwrap());
        assert_eq!(got.name.as_deref(), Some("Ann"));
        assert_eq!(got.email.as_deref(), Some("ann@x.org"));
        assert_eq!(got.consent_sms, Some(true));
        assert!(
            a.edit(ReplicaId(1), "C1", &CustomerPatch::default())
                .is_err()
        );
        assert!(a.apply("C1", b"garbage").is_err());
    }
}
