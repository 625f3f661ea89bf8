//! HQ's master-data edits: validation of each record before it gets a version, the request
//! shapes of the admin API, and the import of a catalog file (items, prices, promotions).

use crate::ledger::{MasterEdit, MasterRow};
use serde::Deserialize;
use tillmesh_cloud_proto::{
    Category, HqCustomer, MasterBody, MasterChange, MasterChanges, MasterKind,
};
use tillmesh_pos::cashier::{Account, Role};
use tillmesh_pos::catalog::Item;
use tillmesh_pos::customer::CustomerPatch;
use tillmesh_pos::pricing::{PriceScope, ScheduledPrice};
use tillmesh_pos::promotion::Promotion;

/// Most edits in one request.
pub const EDITS_MAX: usize = 20_000;

/// A cashier account as HQ enters it (the PIN is hashed before it is stored).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashierInput {
    /// Employee id.
    pub employee_id: String,
    /// Name.
    pub name: String,
    /// `cashier`, `manager` or `admin`.
    pub role: String,
    /// 4 to 6 digits.
    pub pin: String,
}

/// A record to delete.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MasterRef {
    /// `item`, `price`, `promotion`, `cashier`, `category` or `customer`.
    pub kind: String,
    /// Key within the kind.
    pub key: String,
}

/// One edit: exactly one of `put`, `cashier` or `delete`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditInput {
    /// The one store it applies to; absent for the whole chain.
    #[serde(default)]
    pub store: Option<String>,
    /// A record to create or replace: `{"item": {...}}`, `{"price": {...}}`, `{"promotion": {...}}`,
    /// `{"category": {...}}` or `{"customer": {...}}` (HQ's fields of a loyalty customer; the
    /// stores' points are not HQ's to set).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub put: Option<MasterBody>,
    /// A cashier account to create or replace.
    #[serde(default)]
    pub cashier: Option<CashierInput>,
    /// A record to delete.
    #[serde(default)]
    pub delete: Option<MasterRef>,
}

/// The admin request.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditsInput {
    /// Edits, applied all or nothing, each at its own version.
    pub changes: Vec<EditInput>,
}

fn check_item(mut i: Item) -> Result<Item, String> {
    if i.sku.trim().is_empty() || i.sku.len() > 64 {
        return Err("an item needs a SKU of 1 to 64 characters".into());
    }
    if i.name.trim().is_empty() {
        return Err(format!("item {} has no name", i.sku));
    }
    if !tillmesh_pos::money::valid_price(i.base_price) {
        return Err(format!(
            "item {} has a base price outside 0 to {}",
            i.sku,
            tillmesh_pos::money::PRICE_MAX
        ));
    }
    for (field, text) in [("name", &i.name), ("category", &i.category)] {
        if text.len() > tillmesh_pos::catalog::ITEM_TEXT_BYTES_MAX {
            return Err(format!(
                "item {} has a {field} over {} bytes",
                i.sku,
                tillmesh_pos::catalog::ITEM_TEXT_BYTES_MAX
            ));
        }
    }
    if !(0..=10_000).contains(&i.tax_rate_bp) {
        return Err(format!(
            "item {} has a tax rate of {} basis points; 0 to 10000 are valid",
            i.sku, i.tax_rate_bp
        ));
    }
    i.barcodes = i
        .barcodes
        .normalised()
        .map_err(|e| format!("item {}: {e}", i.sku))?;
    Ok(i)
}

/// Validates one edit and turns it into what the ledger stores.
pub fn validate(e: EditInput) -> Result<MasterEdit, String> {
    let store = e.store.unwrap_or_default();
    if !store.is_empty() {
        crate::check_store_id(&store)?;
    }
    let given = usize::from(e.put.is_some())
        + usize::from(e.cashier.is_some())
        + usize::from(e.delete.is_some());
    if given != 1 {
        return Err("each change needs exactly one of `put`, `cashier` or `delete`".into());
    }
    if let Some(d) = e.delete {
        let kind = MasterKind::parse(&d.kind).ok_or_else(|| {
            format!(
                "unknown kind {:?}: item, price, promotion, cashier, category or customer",
                d.kind
            )
        })?;
        if kind == MasterKind::Customer {
            return Err(
                "HQ rebuilds a customer's record from every store's; it cannot delete one".into(),
            );
        }
        return Ok(MasterEdit {
            kind,
            key: d.key,
            store,
            body: None,
        });
    }
    let body = match (e.put, e.cashier) {
        (Some(MasterBody::Item(i)), _) => {
            if !store.is_empty() {
                return Err("items are chain-wide; give a store price instead".into());
            }
            MasterBody::Item(check_item(i)?)
        }
        (Some(MasterBody::Price(p)), _) => {
            if !tillmesh_pos::money::valid_price(p.price) {
                return Err(format!(
                    "the price of {} is outside 0 to {}",
                    p.sku,
                    tillmesh_pos::money::PRICE_MAX
                ));
            }
            if p.sku.trim().is_empty() {
                return Err("a price needs a SKU".into());
            }
            let scope = if store.is_empty() {
                PriceScope::Chain
            } else {
                PriceScope::Store
            };
            if p.scope != scope {
                return Err(format!(
                    "a price with scope {:?} must {}name a store",
                    p.scope,
                    if scope == PriceScope::Chain {
                        ""
                    } else {
                        "not "
                    }
                ));
            }
            MasterBody::Price(p)
        }
        (Some(MasterBody::Promotion(p)), _) => MasterBody::Promotion(check_promotion(p)?),
        (Some(MasterBody::Category(c)), _) if store.is_empty() => {
            MasterBody::Category(check_category(c)?)
        }
        (Some(MasterBody::Customer(c)), _) if store.is_empty() => {
            MasterBody::Customer(check_customer(c)?)
        }
        (Some(MasterBody::Category(_) | MasterBody::Customer(_)), _) => {
            return Err("categories and customers are chain-wide; leave out `store`".into());
        }
        (Some(MasterBody::Cashier(_)), _) => {
            return Err("send cashiers as `cashier` with a PIN, not as `put`".into());
        }
        (None, Some(c)) => {
            let role = Role::parse(&c.role)
                .ok_or_else(|| format!("unknown role {:?}: cashier, manager or admin", c.role))?;
            if c.employee_id.trim().is_empty() || c.name.trim().is_empty() {
                return Err("a cashier needs an employee id and a name".into());
            }
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
            let pin_hash = tillmesh_pos::cashier::hash_pin(&c.pin, &salt)
                .map_err(|e| format!("cashier {}: {e}", c.employee_id))?;
            MasterBody::Cashier(Account {
                employee_id: c.employee_id,
                name: c.name,
                role,
                pin_hash,
                failed_attempts: 0,
                locked_until_ms: 0,
            })
        }
        (None, None) => unreachable!("checked above"),
    };
    Ok(MasterEdit {
        kind: body.kind(),
        key: body.key(),
        store,
        body: Some(serde_json::to_string(&body).map_err(|e| e.to_string())?),
    })
}

fn check_category(c: Category) -> Result<Category, String> {
    let id_ok =
        |id: &str| !id.trim().is_empty() && id.len() <= tillmesh_pos::catalog::ITEM_TEXT_BYTES_MAX;
    if !id_ok(&c.id) {
        return Err(format!(
            "a category needs an id of 1 to {} bytes",
            tillmesh_pos::catalog::ITEM_TEXT_BYTES_MAX
        ));
    }
    if c.name.trim().is_empty() || c.name.len() > tillmesh_pos::catalog::ITEM_TEXT_BYTES_MAX {
        return Err(format!(
            "category {} needs a name of 1 to {} bytes",
            c.id,
            tillmesh_pos::catalog::ITEM_TEXT_BYTES_MAX
        ));
    }
    match c.parent.as_deref() {
        Some(p) if p == c.id => Err(format!("category {} cannot be its own parent", c.id)),
        Some(p) if !id_ok(p) => Err(format!("category {} has an invalid parent id", c.id)),
        _ => Ok(c),
    }
}

fn check_customer(c: HqCustomer) -> Result<HqCustomer, String> {
    if !c.points.is_empty() {
        return Err(format!(
            "customer {}: points come from the stores' sales, not from HQ; leave out `points`",
            c.customer.id
        ));
    }
    let f = &c.customer;
    let patch = CustomerPatch {
        name: f.name.clone(),
        email: f.email.clone(),
        phone: f.phone.clone(),
        consent_marketing: f.consent_marketing,
        consent_sms: f.consent_sms,
    };
    tillmesh_pos::customer::check_patch(&f.id, &patch)
        .map_err(|e| format!("customer {:?}: {e}", f.id))?;
    Ok(c)
}

fn check_promotion(p: Promotion) -> Result<Promotion, String> {
    if p.id.trim().is_empty() || p.name.trim().is_empty() {
        return Err("a promotion needs an id and a name".into());
    }
    if p.ends_ms <= p.starts_ms {
        return Err(format!("promotion {} ends before it starts", p.id));
    }
    if p.min_basket < 0 {
        return Err(format!("promotion {} has a negative minimum basket", p.id));
    }
    Ok(p)
}

/// The edits that import a catalog file (`configs/catalog.example.json`): its items, scheduled
/// chain prices and promotions, all chain-wide.
pub fn import(text: &str) -> Result<Vec<MasterEdit>, String> {
    #[derive(Deserialize)]
    struct File {
        items: Vec<Item>,
        #[serde(default)]
        prices: Vec<ScheduledPrice>,
        #[serde(default)]
        promotions: Vec<Promotion>,
    }
    let f: File = serde_json::from_str(text).map_err(|e| format!("not a catalog file: {e}"))?;
    let bodies = f
        .items
        .into_iter()
        .map(MasterBody::Item)
        .chain(f.prices.into_iter().map(MasterBody::Price))
        .chain(f.promotions.into_iter().map(MasterBody::Promotion));
    let mut edits = Vec::new();
    for b in bodies {
        edits.push(validate(EditInput {
            store: None,
            put: Some(b),
            cashier: None,
            delete: None,
        })?);
    }
    if edits.len() > EDITS_MAX {
        return Err(format!(
            "the file holds {} records; at most {EDITS_MAX} per import",
            edits.len()
        ));
    }
    Ok(edits)
}

/// Builds the answer to "changes since": `current` is the version read before the rows.
pub fn changes(
    rows: Vec<MasterRow>,
    current: u64,
    limit: usize,
) -> Result<MasterChanges, crate::ledger::LedgerError> {
    let more = rows.len() >= limit;
    let last = rows.last().map_or(0, |r| r.version);
    let mut changes = Vec::with_capacity(rows.len());
    for r in rows {
        let body = match &r.body {
            Some(json) => Some(serde_json::from_str::<MasterBody>(json).map_err(|e| {
                crate::ledger::LedgerError::Db(format!("stored {} {}: {e}", r.kind.as_str(), r.key))
            })?),
            None => None,
        };
        changes.push(MasterChange {
            kind: r.kind,
            key: r.key,
            store: (!r.store.is_empty()).then_some(r.store),
            version: r.version,
            body,
        });
    }
    Ok(MasterChanges {
        batch_versions: Some((
            tillmesh_cloud_proto::BATCH_VERSION_MIN,
            tillmesh_cloud_proto::BATCH_VERSION,
        )),
        version: if more { last } else { last.max(current) },
        more,
        changes,
        stream: None,
        signature: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_catalog_imports() {
        let text = include_str!("../../../configs/catalog.example.json");
        let edits = import(text).unwrap();
        assert!(edits.len() > 1_200);
        assert!(edits.iter().all(|e| e.body.is_some() && e.store.is_empty()));
    }

    #[test]
    fn bad_records_are_refused_with_a_reason() {
        let bad: EditInput = serde_json::from_value(serde_json::json!({
            "put": {"item": {"sku": "X1", "name": "Thing", "category": "C", "tax_rate_bp": 1000,
                "base_price": 100, "barcodes": ["8930000000001"], "active": true,
                "low_stock_threshold": 0}}
        }))
        .unwrap();
        assert!(validate(bad).unwrap_err().contains("X1"));
        let two: EditInput = serde_json::from_value(serde_json::json!({
            "delete": {"kind": "item", "key": "X"},
            "cashier": {"employee_id": "E1", "name": "A", "role": "cashier", "pin": "1234"}
        }))
        .unwrap();
        assert!(validate(two).unwrap_err().contains("exactly one"));
    }
}
