//! Deserialises a `BTreeMap` from serde's map form (the bytes and JSON are unchanged) by
//! collecting its pairs first and building the tree in one pass.
//!
//! serde's own `BTreeMap` inserts entry by entry. A map is encoded in key order, so each
//! insert lands at the tree's right edge, and each full node splits 6 of 11 to the left:
//! the decoded tree's nodes end up half empty. A big store's inventory (50,000 SKUs, from the
//! base at every start) held twice the node memory a tree built in bulk holds.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// Most pairs reserved ahead from the length a peer's bytes claim.
const RESERVE_MAX: usize = 4096;

/// The map, as serde's `BTreeMap` would decode it: a key given twice keeps its last value.
pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
    D: Deserializer<'de>,
{
    struct Pairs<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for Pairs<K, V>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(RESERVE_MAX));
            while let Some(pair) = map.next_entry()? {
                pairs.push(pair);
            }
            // A stable sort, then the last of equal keys kept: as inserts in order would.
            Ok(pairs.into_iter().collect())
        }
    }

    d.deserialize_map(Pairs(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plain {
        m: BTreeMap<String, (u64, i64)>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Bulk {
        #[serde(deserialize_with = "super::deserialize")]
        m: BTreeMap<String, (u64, i64)>,
    }

    fn bin(v: &impl Serialize) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    #[test]
    fn decodes_what_serde_s_map_decodes_from_the_same_bytes() {
        let m: BTreeMap<String, (u64, i64)> = (0..5_000_u64)
            .map(|i| (format!("SKU{i:06}"), (i, -(i as i64))))
            .collect();
        let bytes = bin(&Plain { m: m.clone() });
        let bulk: Bulk = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .unwrap()
            .0;
        assert_eq!(bulk.m, m);
        assert_eq!(bin(&bulk), bytes);
        let json = serde_json::to_string(&Plain { m: m.clone() }).unwrap();
        let bulk: Bulk = serde_json::from_str(&json).unwrap();
        assert_eq!(bulk.m, m);
        assert_eq!(serde_json::to_string(&bulk).unwrap(), json);
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_value_as_serde_s_map_does() {
        let json = r#"{"m":{"b":[1,1],"a":[2,2],"b":[3,3],"c":[4,4],"a":[5,5]}}"#;
        let plain: Plain = serde_json::from_str(json).unwrap();
        let bulk: Bulk = serde_json::from_str(json).unwrap();
        assert_eq!(bulk.m, plain.m);
        assert_eq!(bulk.m["a"], (5, 5));
        assert_eq!(bulk.m["b"], (3, 3));
        assert!(serde_json::from_str::<Bulk>(r#"{"m":[1,2]}"#).is_err());
    }
}
