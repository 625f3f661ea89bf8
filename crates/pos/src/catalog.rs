//! The product catalog: SKUs with several barcodes each (EAN-13, UPC-A, EAN-8, check digits
//! validated), name, category, tax rate and active flag.

use crate::money::{BasisPoints, Minor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

/// One product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// Stock keeping unit, unique in the chain.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Category (promotions may target it).
    pub category: String,
    /// Tax rate in basis points (1000 = 10 %); prices are tax-exclusive.
    pub tax_rate_bp: BasisPoints,
    /// Base price in minor units.
    pub base_price: Minor,
    /// Barcodes, normalised to EAN-13 (UPC-A gets a leading zero) or EAN-8.
    #[schema(value_type = Vec<String>)]
    pub barcodes: Barcodes,
    /// Inactive items cannot be sold.
    #[serde(default = "yes")]
    pub active: bool,
    /// Stock level below which a low-stock alert is raised.
    #[serde(default)]
    pub low_stock_threshold: i64,
    /// Sold by weight: `base_price` is the price per kilogram, the cashier weighs each
    /// item, and its stock (and low-stock threshold) counts grams.
    #[serde(default)]
    pub sold_by_weight: bool,
}

fn yes() -> bool {
    true
}

/// An item's barcodes, in the order given, held as one string with a comma between them: a
/// vector of strings cost a big catalog about 100 bytes an item (two barcodes each), this
/// about 48. Encoded as a sequence of strings, as a `Vec<String>` is (same JSON, same bytes);
/// a barcode that is empty or holds a comma is refused when decoded (no valid one does).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Barcodes(Box<str>);

impl Barcodes {
    /// The barcodes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (!self.0.is_empty())
            .then(|| self.0.split(','))
            .into_iter()
            .flatten()
    }

    /// The first barcode.
    pub fn first(&self) -> Option<&str> {
        self.iter().next()
    }

    /// Number of barcodes.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same barcodes, each normalised ([`normalise_barcode`]); the first invalid one's
    /// error.
    pub fn normalised(&self) -> Result<Barcodes, CatalogError> {
        let codes = self
            .iter()
            .map(normalise_barcode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(codes.iter().collect())
    }
}

/// Barcodes from codes that hold no comma (normalised ones never do; a comma would split one
/// into two).
impl<S: AsRef<str>> FromIterator<S> for Barcodes {
    fn from_iter<I: IntoIterator<Item = S>>(codes: I) -> Self {
        let mut joined = String::new();
        for (i, c) in codes.into_iter().enumerate() {
            if i > 0 {
                joined.push(',');
            }
            joined.push_str(c.as_ref());
        }
        Barcodes(joined.into_boxed_str())
    }
}

impl Serialize for Barcodes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // With its length first, as bincode needs (a split's length is not known ahead).
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for code in self.iter() {
            seq.serialize_element(code)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Barcodes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let codes = Vec::<String>::deserialize(d)?;
        for c in &codes {
            let why = if c.is_empty() {
                "must have 8 (EAN-8), 12 (UPC-A) or 13 (EAN-13) digits"
            } else if c.contains(',') {
                "only digits are allowed"
            } else {
                continue;
            };
            return Err(serde::de::Error::custom(format!(
                "barcode {c:?} is invalid: {why}"
            )));
        }
        Ok(codes.iter().collect())
    }
}

/// Longest SKU, barcode, name or category of an item, in bytes: a sale's event holds them
/// for each of its lines, and must stay within the event size limit every till decodes.
pub const ITEM_TEXT_BYTES_MAX: usize = 256;

/// Catalog errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The barcode is not well formed (length or check digit).
    #[error("barcode {0:?} is invalid: {1}")]
    InvalidBarcode(String, &'static str),
    /// No item carries this barcode.
    #[error("no product has barcode {0}")]
    UnknownBarcode(String),
    /// No item has this SKU.
    #[error("no product has SKU {0}")]
    UnknownSku(String),
    /// The item exists but is not for sale.
    #[error("product {0} is not active")]
    Inactive(String),
    /// Two items claim one barcode.
    #[error("barcode {0} is used by both {1} and {2}")]
    DuplicateBarcode(String, String, String),
    /// A field is out of range.
    #[error("item {0}: {1}")]
    InvalidItem(String, &'static str),
}

/// Validates a barcode and returns its normalised form: EAN-13 (UPC-A becomes EAN-13 with a
/// leading zero) or EAN-8.
pub fn normalise_barcode(code: &str) -> Result<String, CatalogError> {
    let code = code.trim();
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CatalogError::InvalidBarcode(
            code.into(),
            "only digits are allowed",
        ));
    }
    let full = match code.len() {
        8 | 13 => code.to_string(),
        12 => format!("0{code}"),
        _ => {
            return Err(CatalogError::InvalidBarcode(
                code.into(),
                "must have 8 (EAN-8), 12 (UPC-A) or 13 (EAN-13) digits",
            ));
        }
    };
    let digits: Vec<u32> = full
        .bytes()
        .map(|b| u32::from(b.saturating_sub(b'0')))
        .collect();
    let Some((check, body)) = digits.split_last() else {
        return Err(CatalogError::InvalidBarcode(code.into(), "no digits"));
    };
    if check_digit(body) != *check {
        return Err(CatalogError::InvalidBarcode(
            code.into(),
            "check digit does not match",
        ));
    }
    Ok(full)
}

/// The GS1 check digit for the digits before it (weights 3,1,3,... from the right).
pub fn check_digit(body: &[u32]) -> u32 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d.saturating_mul(3) } else { *d })
        .fold(0, u32::saturating_add);
    (10_u32.saturating_sub(sum.rem_euclid(10))).rem_euclid(10)
}

/// The catalog with a barcode index.
///
/// Held compactly, for a big store's till (50,000 SKUs): the items in one vector sorted by
/// SKU (found by binary search; the SKU is not stored a second time as a key), and the
/// barcode index from each normalised barcode as a number to the item's position.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    items: Vec<Item>,
    by_barcode: HashMap<u64, u32>,
}

/// A normalised barcode (8 or 13 digits) as one number that keeps its length: an EAN-8 and
/// the EAN-13 of the same digits with leading zeros are different barcodes.
fn barcode_key(normalised: &str) -> u64 {
    let digits = normalised.bytes().fold(0u64, |n, b| {
        n.wrapping_mul(10)
            .wrapping_add(u64::from(b.wrapping_sub(b'0')))
    });
    (normalised.len() as u64) << 56 | digits
}

impl Catalog {
    /// Builds a catalog, validating every item and barcode.
    pub fn new(items: Vec<Item>) -> Result<Self, CatalogError> {
        let mut by_barcode: HashMap<u64, &str> = HashMap::new();
        let mut checked = Vec::with_capacity(items.len());
        for mut item in items {
            if item.sku.trim().is_empty() {
                return Err(CatalogError::InvalidItem(item.sku, "SKU is empty"));
            }
            if [&item.sku, &item.name, &item.category]
                .into_iter()
                .map(String::as_str)
                .chain(item.barcodes.iter())
                .any(|t| t.len() > ITEM_TEXT_BYTES_MAX)
            {
                return Err(CatalogError::InvalidItem(
                    item.sku,
                    "a SKU, barcode, name or category is over 256 bytes",
                ));
            }
            if !crate::money::valid_price(item.base_price) {
                return Err(CatalogError::InvalidItem(
                    item.sku,
                    "base price is negative or above the price cap",
                ));
            }
            if item.tax_rate_bp > 10_000 {
                return Err(CatalogError::InvalidItem(item.sku, "tax rate above 100 %"));
            }
            item.barcodes = item.barcodes.normalised()?;
            checked.push(item);
        }
        // Barcodes in the order given: the first item to claim one keeps it.
        for item in &checked {
            for code in item.barcodes.iter() {
                match by_barcode.get(&barcode_key(code)) {
                    Some(other) if *other != item.sku => {
                        return Err(CatalogError::DuplicateBarcode(
                            code.to_string(),
                            other.to_string(),
                            item.sku.clone(),
                        ));
                    }
                    _ => {
                        by_barcode.insert(barcode_key(code), &item.sku);
                    }
                }
            }
        }
        let mut index = HashMap::with_capacity(by_barcode.len());
        // A SKU given twice is the last one given (its earlier barcodes still find it): in
        // SKU order, latest first, each run of one SKU is the position its first item keeps.
        checked.reverse();
        checked.sort_by(|a, b| a.sku.cmp(&b.sku));
        let (mut at, mut prev) = (0u32, None::<&str>);
        for item in &checked {
            if prev.is_some_and(|p| p != item.sku) {
                at = at.saturating_add(1);
            }
            prev = Some(&item.sku);
            for code in item.barcodes.iter() {
                index.insert(barcode_key(code), at);
            }
        }
        checked.dedup_by(|a, b| a.sku == b.sku);
        checked.shrink_to_fit();
        Ok(Catalog {
            items: checked,
            by_barcode: index,
        })
    }

    fn position(&self, sku: &str) -> Option<usize> {
        self.items
            .binary_search_by(|i| i.sku.as_str().cmp(sku))
            .ok()
    }

    /// Finds the active item for a scanned barcode.
    pub fn lookup(&self, barcode: &str) -> Result<&Item, CatalogError> {
        let code = normalise_barcode(barcode)?;
        let at = self
            .by_barcode
            .get(&barcode_key(&code))
            .ok_or_else(|| CatalogError::UnknownBarcode(barcode.trim().to_string()))?;
        let item = &self.items[*at as usize];
        if !item.active {
            return Err(CatalogError::Inactive(item.sku.clone()));
        }
        Ok(item)
    }

    /// Finds an item by SKU.
    pub fn get(&self, sku: &str) -> Result<&Item, CatalogError> {
        self.position(sku)
            .map(|at| &self.items[at])
            .ok_or_else(|| CatalogError::UnknownSku(sku.to_string()))
    }

    /// All items in SKU order.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.items.iter()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_check_digits_of_each_symbology() {
        assert_eq!(normalise_barcode("4006381333931").unwrap(), "4006381333931"); // EAN-13
        assert_eq!(normalise_barcode("036000291452").unwrap(), "0036000291452"); // UPC-A
        assert_eq!(normalise_barcode("96385074").unwrap(), "96385074"); // EAN-8
        assert!(matches!(
            normalise_barcode("4006381333932"),
            Err(CatalogError::InvalidBarcode(
                _,
                "check digit does not match"
            ))
        ));
        assert!(normalise_barcode("12345").is_err());
        assert!(normalise_barcode("40063813339a1").is_err());
    }

    fn item(sku: &str, codes: &[&str]) -> Item {
        Item {
            sku: sku.into(),
            name: sku.into(),
            category: "c".into(),
            tax_rate_bp: 1000,
            base_price: 100,
            barcodes: codes.iter().collect(),
            active: true,
            low_stock_threshold: 0,
            sold_by_weight: false,
        }
    }

    #[test]
    fn several_barcodes_find_one_sku_and_conflicts_are_refused() {
        let cat = Catalog::new(vec![item("A", &["4006381333931", "036000291452"])]).unwrap();
        assert_eq!(cat.lookup("036000291452").unwrap().sku, "A");
        assert_eq!(cat.lookup("0036000291452").unwrap().sku, "A");
        assert!(matches!(
            cat.lookup("96385074"),
            Err(CatalogError::UnknownBarcode(_))
        ));
        let dup = Catalog::new(vec![item("A", &["96385074"]), item("B", &["96385074"])]);
        assert!(matches!(dup, Err(CatalogError::DuplicateBarcode(..))));
    }

    #[test]
    fn a_sku_given_twice_is_the_last_one_and_its_earlier_barcodes_still_find_it() {
        let mut later = item("A", &["96385074"]);
        later.name = "later".into();
        let cat = Catalog::new(vec![
            item("C", &[]),
            item("A", &["4006381333931"]),
            item("B", &["036000291452"]),
            later,
        ])
        .unwrap();
        assert_eq!(cat.len(), 3);
        let skus: Vec<_> = cat.items().map(|i| i.sku.as_str()).collect();
        assert_eq!(skus, ["A", "B", "C"]);
        assert_eq!(cat.get("A").unwrap().name, "later");
        assert_eq!(cat.lookup("4006381333931").unwrap().name, "later");
        assert_eq!(cat.lookup("96385074").unwrap().name, "later");
        assert_eq!(cat.lookup("036000291452").unwrap().sku, "B");
        assert!(matches!(cat.get("D"), Err(CatalogError::UnknownSku(_))));
    }

    #[test]
    fn barcodes_encode_as_a_list_of_strings_and_refuse_what_would_not_read_back() {
        let config = bincode::config::standard();
        for codes in [
            vec![],
            vec!["96385074"],
            vec!["4006381333931", " 036000291452 "],
        ] {
            let ours: Barcodes = codes.iter().collect();
            assert_eq!(ours.len(), codes.len());
            assert_eq!(ours.iter().collect::<Vec<_>>(), codes);
            assert_eq!(
                serde_json::to_string(&ours).unwrap(),
                serde_json::to_string(&codes).unwrap()
            );
            let bytes = bincode::serde::encode_to_vec(&codes, config).unwrap();
            assert_eq!(bincode::serde::encode_to_vec(&ours, config).unwrap(), bytes);
            let (back, _): (Barcodes, _) =
                bincode::serde::decode_from_slice(&bytes, config).unwrap();
            assert_eq!(back, ours);
            let back: Barcodes =
                serde_json::from_str(&serde_json::to_string(&codes).unwrap()).unwrap();
            assert_eq!(back, ours);
        }
        // An empty code would vanish, a comma would split one into two: both refused.
        for bad in [r#"[""]"#, r#"["96385074",""]"#, r#"["9638,5074"]"#] {
            let e = serde_json::from_str::<Barcodes>(bad).unwrap_err();
            assert!(e.to_string().contains("is invalid"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_ean_8_and_an_ean_13_of_the_same_digits_are_different_barcodes() {
        // 96385074 as an EAN-8, and 0000096385074 (check digit 4) as an EAN-13.
        assert_eq!(check_digit(&[0, 0, 0, 0, 0, 9, 6, 3, 8, 5, 0, 7]), 4);
        let cat = Catalog::new(vec![
            item("A", &["96385074"]),
            item("B", &["0000096385074"]),
        ])
        .unwrap();
        assert_eq!(cat.lookup("96385074").unwrap().sku, "A");
        assert_eq!(cat.lookup("0000096385074").unwrap().sku, "B");
    }
}
