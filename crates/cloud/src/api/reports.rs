//! HQ reports over the ledger's projections: sales by period, payments, best sellers,
//! inventory and the fleet.

use super::*;

/// Range of a report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// One store; all stores when absent.
    #[serde(default)]
    pub store: Option<String>,
    /// First local date, `YYYY-MM-DD` (default: 29 days before `to`).
    #[serde(default)]
    pub from: Option<String>,
    /// Last local date, inclusive (default: today, UTC).
    #[serde(default)]
    pub to: Option<String>,
    /// `day`, `week` (ISO, from Monday) or `month` (sales only).
    #[serde(default)]
    pub group: Option<String>,
    /// Rows of a top list (default 10, at most 1000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

pub(super) fn parse_date(s: &str) -> Result<i64, ApiError> {
    let bad_date = || bad("bad_date", format!("{s:?} is not a date: use YYYY-MM-DD"));
    let mut it = s.splitn(3, '-');
    let (y, m, d) = (it.next(), it.next(), it.next());
    let (Some(y), Some(m), Some(d)) = (y, m, d) else {
        return Err(bad_date());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad_date())?,
        m.parse().map_err(|_| bad_date())?,
        d.parse().map_err(|_| bad_date())?,
    );
    let day = days_from_civil(y, m, d);
    if !(1..=12).contains(&m) || civil_from_days(day) != (y, m, d) {
        return Err(bad_date());
    }
    Ok(day)
}

/// A local day number as `YYYY-MM-DD`.
pub fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(super) struct Range {
    pub(super) store: Option<String>,
    pub(super) from: i64,
    pub(super) to: i64,
}

pub(super) fn range(q: &RangeQuery) -> Result<Range, ApiError> {
    if q.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(bad("bad_limit", "limit must be 1 to 1000"));
    }
    let to = match &q.to {
        Some(s) => parse_date(s)?,
        None => (now_ms() / 86_400_000) as i64,
    };
    let from = match &q.from {
        Some(s) => parse_date(s)?,
        None => to - 29,
    };
    if from > to || to - from >= REPORT_DAYS_MAX {
        return Err(bad(
            "bad_range",
            format!(
                "`from` must not be after `to`, and a range spans at most {REPORT_DAYS_MAX} days"
            ),
        ));
    }
    if let Some(s) = &q.store {
        crate::check_store_id(s).map_err(|m| bad("bad_store", m))?;
    }
    Ok(Range {
        store: q.store.clone(),
        from,
        to,
    })
}

/// One period of the sales report.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct PeriodRow {
    /// Store.
    pub store: String,
    /// `YYYY-MM-DD` (day; the Monday of a week) or `YYYY-MM` (month).
    pub period: String,
    /// Transactions.
    pub transactions: u64,
    /// Items.
    pub items: u64,
    /// Before discounts.
    pub subtotal: i64,
    /// Discounts.
    pub discount: i64,
    /// Tax.
    pub tax: i64,
    /// Gross sales (totals of every sale recorded).
    pub gross: i64,
    /// Voided after payment: count.
    pub voided: u64,
    /// ... amount.
    pub voided_amount: i64,
    /// Refunded: count.
    pub refunded: u64,
    /// ... amount.
    pub refunded_amount: i64,
    /// Handed back for units returned from sales neither voided nor refunded whole.
    #[serde(default)]
    pub returned_amount: i64,
    /// Gross minus voided, refunded and returned.
    pub net: i64,
}

impl PeriodRow {
    /// Adds one day (sums saturate: a report never panics or wraps on forged totals).
    fn add(&mut self, d: &DayRow) {
        self.transactions = self.transactions.saturating_add(d.transactions);
        self.items = self.items.saturating_add(d.items);
        self.subtotal = self.subtotal.saturating_add(d.subtotal);
        self.discount = self.discount.saturating_add(d.discount);
        self.tax = self.tax.saturating_add(d.tax);
        self.gross = self.gross.saturating_add(d.total);
        self.voided = self.voided.saturating_add(d.voided);
        self.voided_amount = self.voided_amount.saturating_add(d.voided_amount);
        self.refunded = self.refunded.saturating_add(d.refunded);
        self.refunded_amount = self.refunded_amount.saturating_add(d.refunded_amount);
        self.returned_amount = self.returned_amount.saturating_add(d.returned_amount);
        self.net = self.net.saturating_add(
            d.total
                .saturating_sub(d.voided_amount)
                .saturating_sub(d.refunded_amount)
                .saturating_sub(d.returned_amount),
        );
    }
}

/// Days (ordered by store, then day) grouped into one row per store and period (`day`,
/// `week` from Monday, `month`), and the sum of them all under `store_label`. Pure.
pub fn group_days(days: &[DayRow], group: &str, store_label: &str) -> (Vec<PeriodRow>, PeriodRow) {
    let mut rows: Vec<PeriodRow> = Vec::new();
    let mut totals = PeriodRow {
        store: store_label.to_string(),
        period: "total".into(),
        ..Default::default()
    };
    for d in days {
        let p = period(d.day, group);
        match rows.last_mut() {
            Some(last) if last.store == d.store && last.period == p => last.add(d),
            _ => {
                let mut row = PeriodRow {
                    store: d.store.clone(),
                    period: p,
                    ..Default::default()
                };
                row.add(d);
                rows.push(row);
            }
        }
        totals.add(d);
    }
    (rows, totals)
}

/// The sales report.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SalesReport {
    /// First date.
    pub from: String,
    /// Last date.
    pub to: String,
    /// `day`, `week` or `month`.
    pub group: String,
    /// Per store and period.
    pub rows: Vec<PeriodRow>,
    /// Sum of the rows.
    pub totals: PeriodRow,
}

pub(super) fn period(day: i64, group: &str) -> String {
    match group {
        "week" => date(day - (day + 3).rem_euclid(7)),
        "month" => date(day)[..7].to_owned(),
        _ => date(day),
    }
}

#[utoipa::path(get, path = "/api/v1/reports/sales", params(RangeQuery),
    responses((status = 200, body = SalesReport), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn report_sales(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SalesReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let q = query(q)?;
    let r = range(&q)?;
    let group = q.group.clone().unwrap_or_else(|| "day".into());
    if !["day", "week", "month"].contains(&group.as_str()) {
        return Err(bad("bad_group", "group is day, week or month"));
    }
    cloud.catch_up().await?;
    let days = cloud
        .ledger
        .sales_by_day(r.store.as_deref(), r.from, r.to)
        .await?;
    let (rows, totals) = group_days(&days, &group, r.store.as_deref().unwrap_or("*"));
    Ok(Json(SalesReport {
        from: date(r.from),
        to: date(r.to),
        group,
        rows,
        totals,
    }))
}

/// Payments per store, method and provider over the range.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct PaymentTotal {
    /// Store.
    pub store: String,
    /// `cash` / `qr`.
    pub method: String,
    /// Provider (`""` for cash).
    pub provider: String,
    /// Payments.
    pub count: u64,
    /// Captured.
    pub amount: i64,
    /// Captured on sales later voided or refunded.
    pub reversed_amount: i64,
    /// Captured minus reversed: what the provider should settle.
    pub net: i64,
}

/// The payment reconciliation report.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentsReport {
    /// First date.
    pub from: String,
    /// Last date.
    pub to: String,
    /// Per store, method and provider.
    pub rows: Vec<PaymentTotal>,
}

#[utoipa::path(get, path = "/api/v1/reports/payments", params(RangeQuery),
    responses((status = 200, body = PaymentsReport)), security(("bearer" = [])))]
pub(super) async fn report_payments(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PaymentsReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let r = range(&query(q)?)?;
    cloud.catch_up().await?;
    let days = cloud
        .ledger
        .payments_by_day(r.store.as_deref(), r.from, r.to)
        .await?;
    let mut map: std::collections::BTreeMap<(String, String, String), PaymentTotal> =
        Default::default();
    for p in days {
        let t = map
            .entry((p.store.clone(), p.method.clone(), p.provider.clone()))
            .or_insert_with(|| PaymentTotal {
                store: p.store.clone(),
                method: p.method.clone(),
                provider: p.provider.clone(),
                ..Default::default()
            });
        t.count += p.count;
        t.amount += p.amount;
        t.reversed_amount += p.reversed_amount;
        t.net += p.amount - p.reversed_amount;
    }
    Ok(Json(PaymentsReport {
        from: date(r.from),
        to: date(r.to),
        rows: map.into_values().collect(),
    }))
}

/// Best sellers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopReport {
    /// First date.
    pub from: String,
    /// Last date.
    pub to: String,
    /// SKUs by units sold.
    pub rows: Vec<SkuRow>,
}

#[utoipa::path(get, path = "/api/v1/reports/top-skus", params(RangeQuery),
    responses((status = 200, body = TopReport)), security(("bearer" = [])))]
pub(super) async fn report_top(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TopReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let q = query(q)?;
    let r = range(&q)?;
    let limit = q.limit.unwrap_or(10);
    if !(1..=1000).contains(&limit) {
        return Err(bad("bad_limit", "limit must be 1 to 1000"));
    }
    cloud.catch_up().await?;
    let rows = cloud
        .ledger
        .top_skus(r.store.as_deref(), r.from, r.to, limit)
        .await?;
    Ok(Json(TopReport {
        from: date(r.from),
        to: date(r.to),
        rows,
    }))
}

/// Stock of one store.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InventoryReport {
    /// Store.
    pub store: String,
    /// Per SKU (sum of every till's PN-counter entries), with its catalog name and
    /// low-stock threshold (items are chain-wide master data).
    pub rows: Vec<StockView>,
    /// SKUs at or below their low-stock threshold.
    pub low: usize,
}

/// One SKU's stock in a store.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockView {
    /// SKU.
    pub sku: String,
    /// Catalog name (empty when HQ has no record of the SKU).
    pub name: String,
    /// Units on hand.
    pub on_hand: i64,
    /// Reorder point from the catalog (0: none).
    pub low_stock_threshold: i64,
    /// At or below the threshold (with a threshold set), or below zero.
    pub low: bool,
}

/// Most catalog records read to name an inventory report's SKUs.
pub(super) const CATALOG_READ_MAX: usize = 200_000;

/// Which store.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StoreQuery {
    /// Store id.
    pub store: String,
}

/// 404 unless `store` is registered.
async fn registered(cloud: &AppState, store: &str) -> Result<(), ApiError> {
    if cloud.ledger.store(store).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_store",
            format!("store {store} is not registered"),
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/reports/inventory", params(StoreQuery),
    responses((status = 200, body = InventoryReport), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn report_inventory(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<StoreQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InventoryReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let q = query(q)?;
    registered(&cloud, &q.store).await?;
    cloud.catch_up().await?;
    let stock = cloud.ledger.inventory(&q.store).await?;
    // Name and reorder point of every current catalog item (deleted ones have no body).
    let mut items = std::collections::HashMap::<String, (String, i64)>::new();
    for r in cloud
        .ledger
        .master_since(Some(&q.store), 0, CATALOG_READ_MAX, false)
        .await?
        .into_iter()
        .filter(|r| r.kind == MasterKind::Item)
    {
        let Some(json) = r.body.as_deref() else {
            continue;
        };
        if let MasterBody::Item(i) = serde_json::from_str::<MasterBody>(json)
            .map_err(|e| LedgerError::Db(format!("stored {} {}: {e}", r.kind.as_str(), r.key)))?
        {
            items.insert(i.sku, (i.name, i.low_stock_threshold));
        }
    }
    let rows: Vec<StockView> = stock
        .into_iter()
        .map(|r| {
            let (name, threshold) = items.get(&r.sku).cloned().unwrap_or_default();
            StockView {
                low: r.on_hand < 0 || (threshold > 0 && r.on_hand <= threshold),
                sku: r.sku,
                name,
                on_hand: r.on_hand,
                low_stock_threshold: threshold,
            }
        })
        .collect();
    Ok(Json(InventoryReport {
        store: q.store,
        low: rows.iter().filter(|r| r.low).count(),
        rows,
    }))
}

/// Fleet status.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetReport {
    /// When this was read (ms).
    pub now_ms: u64,
    /// Per store.
    pub stores: Vec<FleetRow>,
}

#[utoipa::path(get, path = "/api/v1/reports/fleet",
    responses((status = 200, body = FleetReport)), security(("bearer" = [])))]
pub(super) async fn report_fleet(
    State(cloud): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<FleetReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let mut stores = cloud.ledger.fleet().await?;
    for s in &mut stores {
        (s.credential_refused, s.credential_refused_ms) = cloud.refused(&s.store_id);
        if let Some((at, report)) = cloud.till_states(&s.store_id) {
            (s.till_states_ms, s.till_states) = (at, report.tills);
        }
    }
    let now = now_ms();
    cloud.metrics.fleet(&stores);
    Ok(Json(FleetReport {
        now_ms: now,
        stores,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(store: &str, date_: &str, total: i64, voided: i64) -> DayRow {
        DayRow {
            store: store.into(),
            day: parse_date(date_).unwrap(),
            transactions: 1,
            items: 2,
            subtotal: total,
            total,
            voided: u64::from(voided > 0),
            voided_amount: voided,
            ..Default::default()
        }
    }

    #[test]
    fn periods_are_days_weeks_from_monday_and_months() {
        let d = parse_date("2026-12-03").unwrap(); // a Thursday
        assert_eq!(period(d, "day"), "2026-12-03");
        assert_eq!(period(d, "week"), "2026-11-30");
        assert_eq!(period(d, "month"), "2026-12");
        assert_eq!(
            period(parse_date("2026-11-30").unwrap(), "week"),
            "2026-11-30"
        );
        assert_eq!(
            period(parse_date("2026-11-29").unwrap(), "week"),
            "2026-11-23"
        );
    }

    #[test]
    fn days_group_per_store_and_period_and_sum_to_the_totals() {
        let days = vec![
            day("S001", "2026-11-29", 1_000, 0),
            day("S001", "2026-11-30", 2_000, 500),
            day("S001", "2026-12-01", 3_000, 0),
            day("S002", "2026-12-01", 4_000, 0),
        ];
        let (rows, totals) = group_days(&days, "week", "*");
        let got: Vec<(&str, &str, i64, i64)> = rows
            .iter()
            .map(|r| (r.store.as_str(), r.period.as_str(), r.gross, r.net))
            .collect();
        assert_eq!(
            got,
            vec![
                ("S001", "2026-11-23", 1_000, 1_000),
                ("S001", "2026-11-30", 5_000, 4_500),
                ("S002", "2026-11-30", 4_000, 4_000),
            ]
        );
        assert_eq!(
            (totals.gross, totals.net, totals.voided),
            (10_000, 9_500, 1)
        );
        assert_eq!(totals.transactions, 4);
        assert_eq!(
            (totals.store.as_str(), totals.period.as_str()),
            ("*", "total")
        );
    }

    #[test]
    fn sums_saturate_instead_of_overflowing() {
        let days = vec![
            day("S001", "2026-12-01", i64::MAX, 0),
            day("S001", "2026-12-02", i64::MAX, 0),
        ];
        let (rows, totals) = group_days(&days, "month", "S001");
        assert_eq!(rows.len(), 1);
        assert_eq!(totals.gross, i64::MAX);
    }
}

/// One stored-value account of a store, as HQ sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoredValueLine {
    /// `gift_card`, `store_credit` or `coupon`.
    pub kind: &'static str,
    /// The customer id or coupon code; a gift card's last four characters only (its code is
    /// its bearer's money).
    pub id: String,
    /// Loaded (activations, top-ups, credits, refunds put back), minor units.
    pub loaded: i64,
    /// Spent by tenders, minor units.
    pub spent: i64,
    /// What the store still owes on it: `loaded - spent`.
    pub outstanding: i64,
}

/// A store's stored value: what its customers may still spend (a liability), per account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoredValueReport {
    /// Store id.
    pub store: String,
    /// Every account, by kind and id.
    pub accounts: Vec<StoredValueLine>,
    /// Sum of `outstanding`.
    pub outstanding_total: i64,
    /// Accounts spent past what was loaded on them (escrow makes this 0; anything else is a
    /// defect to report).
    pub overdrawn: u64,
}

/// Most accounts in one report.
const STORED_VALUE_MAX: usize = 100_000;

#[utoipa::path(get, path = "/api/v1/reports/stored-value", params(StoreQuery),
    responses((status = 200, body = StoredValueReport), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn report_stored_value(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<StoreQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<StoredValueReport>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let q = query(q)?;
    registered(&cloud, &q.store).await?;
    cloud.catch_up().await?;
    let rows = cloud.ledger.balances(&q.store).await?;
    let accounts: Vec<StoredValueLine> = rows
        .into_iter()
        .take(STORED_VALUE_MAX)
        .map(|r| {
            let (kind, id) = if let Some(c) = r.account.strip_prefix("credit:") {
                ("store_credit", c.to_string())
            } else if let Some(c) = r.account.strip_prefix("coupon:") {
                ("coupon", c.to_string())
            } else {
                let tail: String = r.account.chars().rev().take(4).collect();
                (
                    "gift_card",
                    format!("..{}", tail.chars().rev().collect::<String>()),
                )
            };
            StoredValueLine {
                kind,
                id,
                loaded: r.loaded,
                spent: r.spent,
                outstanding: r.loaded.saturating_sub(r.spent),
            }
        })
        .collect();
    Ok(Json(StoredValueReport {
        store: q.store,
        outstanding_total: accounts
            .iter()
            .map(|a| a.outstanding.max(0))
            .fold(0, i64::saturating_add),
        overdrawn: accounts.iter().filter(|a| a.outstanding < 0).count() as u64,
        accounts,
    }))
}
