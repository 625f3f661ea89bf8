//! Receipts in JSON and plain text: store info, lines with promotions, totals, payments, time.

use crate::event::Sale;
use crate::money::format_grouped;
use crate::transaction::Status;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Store details printed on every receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StoreInfo {
    /// Store id.
    pub store_id: String,
    /// Store name.
    pub name: String,
    /// Address line.
    pub address: String,
    /// Tax registration number.
    #[serde(default)]
    pub tax_id: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Digits after the decimal point of the currency.
    pub currency_decimals: u32,
}

/// A receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// Store details.
    pub store: StoreInfo,
    /// The sale.
    pub sale: Sale,
    /// Current status (a voided sale's receipt says so).
    pub status: Status,
    /// When it was paid, in the store's local time (`YYYY-MM-DD HH:MM`), as HQ books it.
    pub paid_at: String,
    /// True on a reprint.
    pub reprint: bool,
}

impl Receipt {
    /// Renders the receipt for a 40-column printer.
    pub fn to_text(&self) -> String {
        let d = self.store.currency_decimals;
        let m = |v| format_grouped(v, d);
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(center(&self.store.name));
        line(center(&self.store.address));
        if !self.store.tax_id.is_empty() {
            line(center(&format!("Tax id {}", self.store.tax_id)));
        }
        if self.reprint {
            line(center("*** REPRINT ***"));
        }
        if self.status != Status::Paid {
            line(center(&format!("*** {} ***", self.status)));
        }
        line(format!(
            "Receipt {}  Till {}",
            self.sale.txn_id,
            self.sale.terminal.terminal()
        ));
        line(format!("{}  Cashier {}", self.paid_at, self.sale.cashier));
        line("-".repeat(40));
        for l in &self.sale.lines {
            line(two_cols(&truncate(&l.name, 28), &m(l.gross)));
            match self.sale.weights.iter().find(|w| w.line_no == l.line_no) {
                Some(w) => line(format!(
                    "  {} kg x {}/kg",
                    format_grouped(i64::from(w.grams), 3),
                    m(w.price_per_kg)
                )),
                None => line(format!("  {} x {}", l.quantity, m(l.unit_price))),
            }
            if let Some(p) = &l.promotion {
                line(two_cols(
                    &format!("  {}", truncate(&p.name, 26)),
                    &m(l.discount.saturating_neg()),
                ));
            }
        }
        line("-".repeat(40));
        let t = &self.sale.totals;
        line(two_cols("Subtotal", &m(t.subtotal)));
        if t.discount != 0 {
            line(two_cols("Discount", &m(t.discount.saturating_neg())));
        }
        line(two_cols("Tax", &m(t.tax)));
        line(two_cols(
            &format!("TOTAL {}", self.store.currency),
            &m(t.total),
        ));
        for p in &self.sale.payments {
            let label = match (&p.provider, p.method) {
                // The card's last four characters only: a receipt is handed out.
                (_, crate::payment::Method::GiftCard) => {
                    let code = p.provider_ref.as_deref().unwrap_or("");
                    let tail: String = code
                        .chars()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    format!("GIFT CARD ..{tail}")
                }
                (_, crate::payment::Method::StoreCredit) => "STORE CREDIT".to_string(),
                (_, crate::payment::Method::Coupon) => "COUPON".to_string(),
                (Some(name), _) => format!("{} ({name})", p.method.as_str().to_uppercase()),
                (None, _) => p.method.as_str().to_uppercase(),
            };
            line(two_cols(&label, &m(p.tendered.max(p.amount))));
            if p.change > 0 {
                line(two_cols("Change", &m(p.change)));
            }
            // A gift card's or coupon's code is its bearer's money: never printed whole.
            if let Some(r) = &p.provider_ref
                && !p.method.spends_balance()
            {
                line(format!("  ref {r}"));
            }
        }
        if self.sale.points_earned > 0 {
            line(format!("Points earned: {}", self.sale.points_earned));
        }
        line(center("Thank you"));
        out
    }
}

fn center(s: &str) -> String {
    format!("{s:^40}").trim_end().to_string()
}

fn two_cols(left: &str, right: &str) -> String {
    let width = 40usize.saturating_sub(right.chars().count()).max(1);
    format!("{left:<width$}{right}")
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
