//! The till's reports: end of day, per-cashier performance, stock levels.

pub use super::cash::{ClosedShift, DrawerView};
use super::*;

/// The end-of-day report.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DayReport {
    /// The store's sales of the day.
    #[serde(flatten)]
    pub totals: EndOfDay,
    /// This till's drawer shifts closed that day.
    pub shifts: Vec<ClosedShift>,
}

impl Till {
    pub(super) async fn sales_of_day(
        &self,
        date: Option<&str>,
    ) -> Result<(u64, u64, Vec<(Sale, Status)>), TillError> {
        let off = self.cfg.checkout.utc_offset_minutes;
        let date = date
            .map(str::to_string)
            .unwrap_or_else(|| crate::clock::local_date(self.now(), off));
        let (from, to) = local_day_range(&date, off).ok_or_else(|| {
            TillError::bad_request("bad_date", format!("date {date:?} is not YYYY-MM-DD"))
        })?;
        Ok((from, to, self.sales_between(from, to).await?))
    }

    /// The store's sales paid in `[from_ms, to_ms)`, read off the async workers.
    pub(super) async fn sales_between(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<(Sale, Status)>, TillError> {
        let store = self.store.clone();
        Ok(self
            .off_executor(move || store.read(|r| r.sales_between(from_ms, to_ms, REPORT_SALES_MAX)))
            .await??)
    }

    /// End-of-day report for a local date (default today): the store's sales, and this
    /// till's drawer shifts closed that day with expected against counted cash.
    pub async fn end_of_day(&self, date: Option<&str>) -> Result<DayReport, TillError> {
        let (from, to, sales) = self.sales_of_day(date).await?;
        let rs = reported(&sales);
        let mut totals = report::end_of_day(&rs, from, to);
        let store = self.store.clone();
        (totals.returns, totals.returned_value) = self
            .off_executor(move || store.read(|r| r.returns_between(from, to)))
            .await??;
        Ok(DayReport {
            totals,
            shifts: self.closed_shifts(from, to).await?,
        })
    }

    /// Cashier performance for a local date (default today).
    pub async fn cashier_report(
        &self,
        date: Option<&str>,
    ) -> Result<Vec<CashierPerformance>, TillError> {
        let (from, to, sales) = self.sales_of_day(date).await?;
        let rs = reported(&sales);
        Ok(report::cashier_performance(&rs, from, to))
    }

    /// Inventory snapshot (all SKUs, or only those at or below their threshold).
    pub fn inventory_report(&self, low_only: bool) -> Vec<StockLine> {
        let core = self.core();
        core.catalog
            .items()
            .map(|i| {
                report::stock_line(
                    &i.sku,
                    &i.name,
                    core.replica.state().stock(&i.sku),
                    i.low_stock_threshold,
                )
            })
            .filter(|l| !low_only || l.low)
            .collect()
    }
}

/// Sales with their statuses, as the report functions take them.
pub(super) fn reported(sales: &[(Sale, Status)]) -> Vec<ReportedSale<'_>> {
    sales
        .iter()
        .map(|(sale, status)| ReportedSale {
            sale,
            status: *status,
        })
        .collect()
}
