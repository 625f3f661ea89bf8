//! The projection of ledger events into report facts: pure functions, shared by both
//! backends. Every fact is keyed so that writing it twice changes nothing (sales, lines and
//! payments are insert-once; statuses are last-writer-wins by HLC; stock entries merge by
//! maximum, as the PN-counter does), which is what lets several instances project at once.

use tillmesh_pos::event::EventBody;

/// A recorded sale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleFact {
    /// Transaction id.
    pub txn_id: String,
    /// Origin of the event.
    pub origin: u64,
    /// Seq of the event.
    pub seq: u64,
    /// Local day number.
    pub day: i64,
    /// Paid at (ms).
    pub paid_ms: u64,
    /// Terminal id (replica id).
    pub terminal: u64,
    /// Cashier.
    pub cashier: String,
    /// Subtotal.
    pub subtotal: i64,
    /// Discount.
    pub discount: i64,
    /// Tax.
    pub tax: i64,
    /// Total.
    pub total: i64,
    /// Items.
    pub items: i64,
}

/// One sold line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineFact {
    /// Transaction id.
    pub txn_id: String,
    /// Line number.
    pub line_no: i64,
    /// Local day number.
    pub day: i64,
    /// SKU.
    pub sku: String,
    /// Units.
    pub quantity: i64,
    /// Line total.
    pub total: i64,
}

/// One captured payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentFact {
    /// Transaction id.
    pub txn_id: String,
    /// Payment id.
    pub payment_id: String,
    /// Local day number.
    pub day: i64,
    /// `cash` / `qr`.
    pub method: &'static str,
    /// Provider, `""` for cash.
    pub provider: String,
    /// Amount applied to the sale.
    pub amount: i64,
}

/// A transaction-status register value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusFact {
    /// Transaction id.
    pub txn_id: String,
    /// `PAID`, `VOID`, `REFUNDED`, ...
    pub status: String,
    /// HLC wall.
    pub wall_ms: u64,
    /// HLC logical.
    pub logical: u32,
    /// HLC replica.
    pub replica: u64,
}

/// One PN-counter entry of one SKU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockFact {
    /// SKU.
    pub sku: String,
    /// Replica owning the entry.
    pub replica: u64,
    /// Increments.
    pub p: u64,
    /// Decrements.
    pub n: u64,
}

/// One entry of a stored-value account's bounded counter (gift card, store credit, coupon):
/// merged by maximum, as the counter merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceFact {
    /// The account (a gift card code, `credit:…`, `coupon:…`).
    pub account: String,
    /// `c` created, `m` moved, `s` spent.
    pub part: &'static str,
    /// The replica (`c`, `s`) or the giver (`m`).
    pub a: u64,
    /// The replica (`c`, `s`) or the receiver (`m`).
    pub b: u64,
    /// The entry.
    pub value: u64,
}

/// One PN-counter entry of a customer's points at one store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointsFact {
    /// Customer id.
    pub customer: String,
    /// Replica owning the entry.
    pub replica: u64,
    /// Points earned.
    pub p: u64,
    /// Points spent.
    pub n: u64,
}

/// A change a store made to a customer's record (automerge change bytes), kept once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerChangeFact {
    /// Customer id.
    pub customer: String,
    /// Origin of the event.
    pub origin: u64,
    /// Seq of the event.
    pub seq: u64,
    /// The change.
    pub change: Vec<u8>,
}

/// The facts of a run of events of one store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Sales.
    pub sales: Vec<SaleFact>,
    /// Lines.
    pub lines: Vec<LineFact>,
    /// Payments.
    pub payments: Vec<PaymentFact>,
    /// Statuses.
    pub statuses: Vec<StatusFact>,
    /// Stock entries.
    pub stock: Vec<StockFact>,
    /// Returned units by line.
    pub returns: Vec<ReturnFact>,
    /// Stored-value counter entries.
    pub balances: Vec<BalanceFact>,
    /// Customers' points entries.
    pub points: Vec<PointsFact>,
    /// Changes to customers' records.
    pub customer_changes: Vec<CustomerChangeFact>,
}

/// Units of one line of a sale returned by one `ItemsReturned` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnFact {
    /// Transaction id.
    pub txn_id: String,
    /// The return event's origin.
    pub origin: i64,
    /// ... and sequence number.
    pub seq: i64,
    /// Line number.
    pub line_no: i64,
    /// Units returned.
    pub quantity: i64,
    /// Money handed back.
    pub amount: i64,
}

/// One origin's events to fold next: seqs in `(from, to]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Store.
    pub store: String,
    /// Origin.
    pub origin: u64,
    /// Folded up to here.
    pub from: u64,
    /// Fold up to here.
    pub to: u64,
    /// The store's UTC offset.
    pub utc_offset_minutes: i32,
}

/// Plans a projection step of at most `limit` events: every origin whose contiguous watermark
/// is ahead of its projection cursor. Only contiguous events are folded, so an event that
/// arrives after a later one of its origin is never skipped.
pub fn plan(
    origins: Vec<(String, u64, u64, i32)>,
    projected: &std::collections::HashMap<(String, u64), u64>,
    limit: usize,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut budget = limit as u64;
    for (store, origin, contiguous, utc_offset_minutes) in origins {
        if budget == 0 {
            break;
        }
        let from = projected
            .get(&(store.clone(), origin))
            .copied()
            .unwrap_or(0);
        if contiguous > from {
            let to = contiguous.min(from + budget);
            budget -= to - from;
            steps.push(Step {
                store,
                origin,
                from,
                to,
                utc_offset_minutes,
            });
        }
    }
    steps
}

/// Local day number of an instant for a store's UTC offset.
pub fn local_day(ms: u64, utc_offset_minutes: i32) -> i64 {
    (ms as i64 + i64::from(utc_offset_minutes) * 60_000).div_euclid(86_400_000)
}

fn status_name(s: tillmesh_pos::transaction::Status) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Facts {
    /// Stock entries merged per (SKU, replica) by maximum, as the PN-counter merges: one row
    /// per key to write.
    pub fn stock_merged(&self) -> Vec<(&str, u64, u64, u64)> {
        let mut m: std::collections::HashMap<(&str, u64), (u64, u64)> = Default::default();
        for s in &self.stock {
            let e = m.entry((s.sku.as_str(), s.replica)).or_insert((0, 0));
            e.0 = e.0.max(s.p);
            e.1 = e.1.max(s.n);
        }
        m.into_iter().map(|((k, r), (p, n))| (k, r, p, n)).collect()
    }

    /// Points entries merged per (customer, replica) by maximum: one row per key to write.
    pub fn points_merged(&self) -> Vec<(&str, u64, u64, u64)> {
        let mut m: std::collections::HashMap<(&str, u64), (u64, u64)> = Default::default();
        for s in &self.points {
            let e = m.entry((s.customer.as_str(), s.replica)).or_insert((0, 0));
            e.0 = e.0.max(s.p);
            e.1 = e.1.max(s.n);
        }
        m.into_iter().map(|((k, r), (p, n))| (k, r, p, n)).collect()
    }

    /// The customers these facts touch (their HQ record is to be rebuilt), in order.
    pub fn customers_touched(&self) -> std::collections::BTreeSet<&str> {
        self.points
            .iter()
            .map(|p| p.customer.as_str())
            .chain(self.customer_changes.iter().map(|c| c.customer.as_str()))
            .collect()
    }

    /// Stored-value entries merged per key by maximum: one row per key to write.
    pub fn balances_merged(&self) -> Vec<BalanceFact> {
        let mut m: std::collections::HashMap<(&str, &'static str, u64, u64), u64> =
            Default::default();
        for b in &self.balances {
            let e = m.entry((b.account.as_str(), b.part, b.a, b.b)).or_insert(0);
            *e = (*e).max(b.value);
        }
        m.into_iter()
            .map(|((account, part, a, b), value)| BalanceFact {
                account: account.to_string(),
                part,
                a,
                b,
                value,
            })
            .collect()
    }

    /// Statuses merged per transaction, the highest HLC winning: one row per key to write.
    pub fn statuses_merged(&self) -> Vec<&StatusFact> {
        let mut m: std::collections::HashMap<&str, &StatusFact> = Default::default();
        for s in &self.statuses {
            let e = m.entry(s.txn_id.as_str()).or_insert(s);
            if (s.wall_ms, s.logical, s.replica) > (e.wall_ms, e.logical, e.replica) {
                *e = s;
            }
        }
        m.into_values().collect()
    }

    /// Adds the facts of one event. Answers false, adding nothing, for a kind this cloud does
    /// not know: the origin's projection stops before it (facts are folded in sequence
    /// order) until a cloud that knows the kind projects it; the ledger keeps it meanwhile.
    pub fn add(
        &mut self,
        origin: u64,
        seq: u64,
        body: &EventBody,
        utc_offset_minutes: i32,
    ) -> bool {
        // `sold`: the transaction a sale event records. Its own `PAID` is left out: a sale
        // with no status row is paid (every report reads it so), and any later status of it
        // is stamped after the sale (HLC causality), so the merge would keep that one anyway.
        let statuses = |facts: &mut Facts,
                        map: &tillmesh_crdt::LwwMap<String, tillmesh_pos::transaction::Status>,
                        sold: Option<&str>| {
            for (txn, st) in map.iter() {
                if sold == Some(txn.as_str()) && *st == tillmesh_pos::transaction::Status::Paid {
                    continue;
                }
                if let Some(h) = map.stamp(txn) {
                    facts.statuses.push(StatusFact {
                        txn_id: txn.clone(),
                        status: status_name(*st),
                        wall_ms: h.wall_ms,
                        logical: h.logical,
                        replica: h.replica.0,
                    });
                }
            }
        };
        let counter = |facts: &mut Facts, sku: &str, c: &tillmesh_crdt::PnCounter| {
            for r in c.replicas() {
                let (p, n) = c.entry(r);
                facts.stock.push(StockFact {
                    sku: sku.to_owned(),
                    replica: r.0,
                    p,
                    n,
                });
            }
        };
        let balance = |facts: &mut Facts, account: &str, c: &tillmesh_crdt::BoundedCounter| {
            for (part, a, b, value) in c.entries() {
                facts.balances.push(BalanceFact {
                    account: account.to_owned(),
                    part: match part {
                        'c' => "c",
                        'm' => "m",
                        _ => "s",
                    },
                    a: a.0,
                    b: b.0,
                    value,
                });
            }
        };
        if let EventBody::WeighedSaleRecorded { gift_cards, .. } = body {
            for (account, c) in gift_cards {
                balance(self, account, c);
            }
        }
        match body {
            EventBody::SaleRecorded {
                sale,
                status,
                inventory,
                ..
            }
            | EventBody::WeighedSaleRecorded {
                sale,
                status,
                inventory,
                ..
            } => {
                let day = local_day(sale.paid_ms, utc_offset_minutes);
                self.sales.push(SaleFact {
                    txn_id: sale.txn_id.clone(),
                    origin,
                    seq,
                    day,
                    paid_ms: sale.paid_ms,
                    terminal: sale.terminal.0,
                    cashier: sale.cashier.clone(),
                    subtotal: sale.totals.subtotal,
                    discount: sale.totals.discount,
                    tax: sale.totals.tax,
                    total: sale.totals.total,
                    items: i64::from(sale.totals.items),
                });
                for l in &sale.lines {
                    self.lines.push(LineFact {
                        txn_id: sale.txn_id.clone(),
                        line_no: i64::from(l.line_no),
                        day,
                        sku: l.sku.clone(),
                        quantity: i64::from(l.quantity),
                        total: l.total,
                    });
                }
                for p in &sale.payments {
                    self.payments.push(PaymentFact {
                        txn_id: sale.txn_id.clone(),
                        payment_id: p.payment_id.clone(),
                        day,
                        method: p.method.as_str(),
                        provider: p.provider.clone().unwrap_or_default(),
                        amount: p.amount,
                    });
                }
                statuses(self, status, Some(&sale.txn_id));
                for (sku, c) in inventory {
                    counter(self, sku, c);
                }
            }
            EventBody::TransactionVoided { status, .. }
            | EventBody::RefundRecorded { status, .. } => statuses(self, status, None),
            EventBody::ItemsReturned {
                txn_id,
                lines,
                status,
                ..
            } => {
                for l in lines {
                    self.returns.push(ReturnFact {
                        txn_id: txn_id.clone(),
                        origin: origin as i64,
                        seq: seq as i64,
                        line_no: i64::from(l.line_no),
                        quantity: i64::from(l.quantity),
                        amount: l.amount,
                    });
                }
                statuses(self, status, None);
            }
            EventBody::InventoryAdjusted {
                sku, counter: c, ..
            } => counter(self, sku, c),
            EventBody::GiftCardIssued { card, rights, .. }
            | EventBody::GiftCardRightsMoved { card, rights, .. } => balance(self, card, rights),
            EventBody::CustomerUpdated {
                customer_id,
                change,
            } => self.customer_changes.push(CustomerChangeFact {
                customer: customer_id.clone(),
                origin,
                seq,
                change: change.clone(),
            }),
            EventBody::PointsChanged {
                customer_id,
                counter: c,
                ..
            } => {
                for r in c.replicas() {
                    let (p, n) = c.entry(r);
                    self.points.push(PointsFact {
                        customer: customer_id.clone(),
                        replica: r.0,
                        p,
                        n,
                    });
                }
            }
            EventBody::PriceOverridden { .. }
            | EventBody::SettingChanged { .. }
            | EventBody::VisionEnrolled { .. }
            | EventBody::GiftCardRightsAsked { .. } => {}
            // Kept, never folded: an event the store quarantined.
            EventBody::Unknown { kind, .. } if kind == tillmesh_cloud_proto::QUARANTINED_KIND => {}
            EventBody::Unknown { .. } => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::{local_day, plan};

    #[test]
    fn plans_follow_contiguous_watermarks_within_the_budget() {
        let origins = vec![
            ("S".to_string(), 1, 10, 0),
            ("S".to_string(), 2, 4, 0),
            ("S".to_string(), 3, 7, 0),
        ];
        let done = [(("S".to_string(), 2), 4), (("S".to_string(), 3), 2)]
            .into_iter()
            .collect();
        let p = plan(origins, &done, 12);
        let ranges: Vec<_> = p.iter().map(|s| (s.origin, s.from, s.to)).collect();
        assert_eq!(ranges, vec![(1, 0, 10), (3, 2, 4)]);
    }

    #[test]
    fn days_follow_the_store_offset() {
        // 2026-11-22T20:00Z is already the 23rd at UTC+7.
        let ms = 1_795_377_600_000;
        assert_eq!(local_day(ms, 0) + 1, local_day(ms, 420));
        assert_eq!(local_day(0, -60), -1);
    }
}
