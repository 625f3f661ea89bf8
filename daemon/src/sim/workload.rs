//! The simulated cashiers: baskets from the example catalog at a seeded Poisson rate, cash
//! payments, manager voids and stock receipts, through the till service's own API. What
//! the till acknowledged is written down, for the invariants to check against.

use crate::till::{
    ActivateRequest, AdjustRequest, Approval, CouponRequest, CreditRequest, PaymentRequest,
    Session, Till,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tillmesh_pos::inventory::Reason;
use tillmesh_pos::payment::Method;
pub use tillmesh_sim::ledger::{AckedSale, Ledger};
use tillmesh_sim::scenario::Workload;

/// The catalog products the cashiers scan: `(barcode, sku)`.
pub fn products(till: &Till, n: usize) -> Vec<(String, String)> {
    till.inventory_report(false)
        .into_iter()
        .take(n)
        .filter_map(|l| {
            till.item(&l.sku)
                .ok()
                .and_then(|i| i.item.barcodes.first().map(str::to_string))
                .map(|b| (b, l.sku))
        })
        .collect()
}

/// A cashier's shift: `busy` is held during each customer (plain crashes and the end of the
/// safety phase take it, so the till dies between customers; a `mid_sale` crash waits until
/// it is held and kills the till with the customer half served), `off` ends it. Only what
/// `finalize` answered OK is written down as acknowledged.
#[derive(Debug, Default)]
pub struct Shift {
    /// Held while serving a customer.
    pub busy: tokio::sync::Mutex<()>,
    /// The shift is over.
    pub off: std::sync::atomic::AtomicBool,
    /// The run's start: acknowledged sales are timed from it.
    pub t0: Option<tokio::time::Instant>,
}

impl Shift {
    /// Ends the shift once the current customer is served.
    pub async fn end(&self) {
        let _idle = self.busy.lock().await;
        self.off.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A human pause of about `mean_ms` (half to one and a half times it).
async fn pause(rng: &mut StdRng, mean_ms: u64) {
    if mean_ms > 0 {
        let ms = rng.random_range(mean_ms / 2..=mean_ms + mean_ms / 2);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The code of the simulation's gift card `k`.
pub fn gift_card(k: u64) -> String {
    format!("GC-SIM-{k:04}")
}

/// The simulation's customer `k` with store credit.
pub fn credit_customer(k: u64) -> String {
    format!("SIMC{k:03}")
}

/// The code of the simulation's coupon `k`.
pub fn coupon(k: u64) -> String {
    format!("CP-SIM-{k:04}")
}

/// Writes down an acknowledged load of stored value.
fn loaded(out: &Mutex<Ledger>, account: String, amount: i64) {
    *out.lock()
        .unwrap_or_else(|p| p.into_inner())
        .gift_loaded
        .entry(account)
        .or_default() += amount;
}

/// The first till's manager gives the run's customers store credit and issues its coupons
/// (allowed offline); each acknowledged one is written down.
async fn issue_credit_and_coupons(
    till: &Till,
    s: &Session,
    w: &Workload,
    out: &Mutex<Ledger>,
    manager: &Approval,
) {
    for k in 0..w.credits {
        let c = credit_customer(k);
        let patch = tillmesh_pos::customer::CustomerPatch {
            name: Some(format!("Sim customer {k}")),
            ..Default::default()
        };
        if till.upsert_customer(s, &c, &patch).await.is_err() {
            continue;
        }
        let req = CreditRequest {
            amount: w.credit_amount,
            reason: "simulated goodwill".into(),
            approval: Some(manager.clone()),
        };
        if till.credit_customer(s, &c, &req).await.is_ok() {
            loaded(
                out,
                tillmesh_pos::payment::credit_account(&c),
                w.credit_amount,
            );
        }
    }
    for k in 0..w.coupons {
        let req = CouponRequest {
            code: Some(coupon(k)),
            value: w.coupon_value,
            approval: Some(manager.clone()),
        };
        if till.issue_coupon(s, &req).await.is_ok() {
            loaded(
                out,
                tillmesh_pos::payment::coupon_account(&coupon(k)),
                w.coupon_value,
            );
        }
    }
}

/// A stored-value tender a customer presents: the payment to ask for, its kind, and the
/// customer to attach first (store credit).
fn draw_tender(
    rng: &mut StdRng,
    w: &Workload,
    out: &Mutex<Ledger>,
) -> (PaymentRequest, &'static str, Option<String>) {
    let mut kinds = Vec::new();
    if w.gift_cards > 0 {
        kinds.push("gift_card");
    }
    if w.credits > 0 {
        kinds.push("store_credit");
    }
    if w.coupons > 0 {
        kinds.push("coupon");
    }
    match kinds[rng.random_range(0..kinds.len())] {
        "store_credit" => (
            PaymentRequest {
                method: Method::StoreCredit,
                amount: None,
                tendered: None,
                card: None,
            },
            "store_credit",
            Some(credit_customer(rng.random_range(0..w.credits))),
        ),
        "coupon" => {
            let mut l = out.lock().unwrap_or_else(|p| p.into_inner());
            // One presentation in four is a coupon already presented (at another till,
            // perhaps across a split): a double spend to refuse.
            let again = l.coupon_next > 0 && rng.random_range(0..4) == 0;
            let k = if again {
                rng.random_range(0..l.coupon_next)
            } else {
                l.coupon_next += 1;
                (l.coupon_next - 1) % w.coupons
            };
            (
                PaymentRequest {
                    method: Method::Coupon,
                    amount: None,
                    tendered: None,
                    card: Some(coupon(k % w.coupons)),
                },
                if again { "coupon_again" } else { "coupon" },
                None,
            )
        }
        _ => (
            PaymentRequest {
                method: Method::GiftCard,
                amount: None,
                tendered: None,
                card: Some(gift_card(rng.random_range(0..w.gift_cards))),
            },
            "gift_card",
            None,
        ),
    }
}

/// The first till's cashier activates the run's gift cards (retrying while the store is not
/// yet online); each acknowledged activation is written down.
async fn activate_cards(
    till: &Till,
    s: &Session,
    w: &Workload,
    out: &Mutex<Ledger>,
    shift: &Shift,
) {
    for k in 0..w.gift_cards {
        for _ in 0..120 {
            if shift.off.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let req = ActivateRequest {
                card: Some(gift_card(k)),
                amount: w.gift_card_amount,
            };
            match till.activate_gift_card(s, &req).await {
                Ok(_) => {
                    loaded(out, gift_card(k), w.gift_card_amount);
                    break;
                }
                Err(e) if e.code() == "card_exists" => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(1_000)).await,
            }
        }
    }
}

/// Runs one till's cashier until its shift ends.
pub async fn cashier(
    till: Arc<Till>,
    w: Workload,
    products: Arc<Vec<(String, String)>>,
    seed: u64,
    out: Arc<Mutex<Ledger>>,
    shift: Arc<Shift>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let id = till.config().terminal.id;
    let refuse = |code: &str| {
        *out.lock()
            .unwrap_or_else(|p| p.into_inner())
            .refused
            .entry(code.to_string())
            .or_default() += 1;
    };
    let manager = Approval {
        employee_id: "M001".into(),
        pin: "9999".into(),
    };
    if w.sales_per_minute <= 0.0 || products.is_empty() {
        return;
    }
    let mean_ms = 60_000.0 / w.sales_per_minute;
    let mut n = 0_u64;
    let mut token = None;
    let mut cards_done = (w.gift_cards == 0 && w.credits == 0 && w.coupons == 0)
        || id != 1
        || out.lock().unwrap_or_else(|p| p.into_inner()).setup_done;
    loop {
        // Exponential gaps: a Poisson stream of customers.
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        let gap = (-u.ln() * mean_ms).min(mean_ms * 20.0) as u64;
        tokio::time::sleep(Duration::from_millis(gap.max(1))).await;
        let _busy = shift.busy.lock().await;
        if shift.off.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let session = match token.as_ref().and_then(|t: &String| till.session(t).ok()) {
            Some(s) => s,
            None => match till.login("E001", "1111", "sim").await {
                Ok(l) => {
                    token = Some(l.token.clone());
                    match till.session(&l.token) {
                        Ok(s) => s,
                        Err(e) => {
                            refuse(e.code());
                            continue;
                        }
                    }
                }
                Err(e) => {
                    refuse(e.code());
                    continue;
                }
            },
        };
        if !cards_done {
            issue_credit_and_coupons(&till, &session, &w, &out, &manager).await;
            activate_cards(&till, &session, &w, &out, &shift).await;
            cards_done = true;
            out.lock().unwrap_or_else(|p| p.into_inner()).setup_done = true;
        }
        n += 1;
        let txn = match till.create_txn(&session).await {
            Ok(t) => t.txn_id,
            Err(e) => {
                refuse(e.code());
                continue;
            }
        };
        let lines = rng.random_range(1..=w.basket_max);
        for _ in 0..lines {
            pause(&mut rng, w.scan_ms).await;
            let (barcode, _) = &products[rng.random_range(0..products.len())];
            let qty = rng.random_range(1..=2);
            if let Err(e) = till.add_item(&session, &txn, barcode, qty, false).await {
                refuse(e.code());
            }
        }
        let stored = w.gift_every > 0
            && (w.gift_cards > 0 || w.credits > 0 || w.coupons > 0)
            && n.is_multiple_of(w.gift_every);
        let sale = async {
            // Store credit is the customer's: attached before the total.
            let tender = stored.then(|| draw_tender(&mut rng, &w, &out));
            if let Some((_, _, Some(c))) = &tender {
                till.attach_customer(&session, &txn, c).await?;
            }
            let mut t = till.checkout(&session, &txn).await?;
            pause(&mut rng, w.tender_ms).await;
            if let Some((mut pay, kind, _)) = tender {
                if pay.method != Method::Coupon {
                    pay.amount = Some((t.totals.total / 2).max(1));
                }
                let mut tried = till.add_payment(&session, &txn, &pay).await;
                // Short of rights here: the till asked the others; the cashier tries once
                // more a moment later, as the screen says.
                if tried
                    .as_ref()
                    .is_err_and(|e| e.code() == "rights_elsewhere")
                {
                    tokio::time::sleep(Duration::from_millis(2_500)).await;
                    tried = till.add_payment(&session, &txn, &pay).await;
                }
                let mut l = out.lock().unwrap_or_else(|p| p.into_inner());
                let divisible = matches!(kind, "gift_card" | "store_credit");
                if divisible {
                    l.gift_tried += 1;
                }
                *l.tried_by_kind.entry(kind.to_string()).or_default() += 1;
                match tried {
                    Ok(v) => t = v,
                    Err(e) => {
                        if divisible && e.code() == "rights_elsewhere" {
                            l.gift_refused += 1;
                        }
                        *l.refused_by_kind
                            .entry(format!("{kind}:{}", e.code()))
                            .or_default() += 1;
                        *l.refused
                            .entry(format!("{}:{}", pay.method.as_str(), e.code()))
                            .or_default() += 1;
                    }
                }
            }
            if t.remaining_due > 0 {
                let pay = PaymentRequest {
                    method: Method::Cash,
                    amount: None,
                    tendered: Some(t.remaining_due),
                    card: None,
                };
                till.add_payment(&session, &txn, &pay).await?;
            }
            till.finalize(&session, &txn).await
        };
        match sale.await {
            Ok(done) => {
                for p in done.payments.iter().filter(|p| {
                    p.method.spends_balance()
                        && p.status == tillmesh_pos::payment::PaymentStatus::Captured
                }) {
                    out.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .gift_spent
                        .push((
                            p.provider_ref.clone().unwrap_or_default(),
                            p.amount,
                            done.txn_id.clone(),
                        ));
                }
                let acked = AckedSale {
                    at_ms: shift.t0.map_or(0, |t0| t0.elapsed().as_millis() as u64),
                    till: id,
                    txn_id: done.txn_id.clone(),
                    total: done.totals.total,
                    lines: done
                        .lines
                        .iter()
                        .map(|l| (l.sku.clone(), l.quantity))
                        .collect(),
                };
                out.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .sales
                    .push(acked);
                if w.void_every > 0 && n.is_multiple_of(w.void_every) {
                    match till
                        .void(&session, &done.txn_id, "simulated", Some(&manager))
                        .await
                    {
                        Ok(_) => {
                            out.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .voided
                                .insert(done.txn_id);
                        }
                        Err(e) => refuse(e.code()),
                    }
                }
            }
            Err(e) => {
                refuse(e.code());
                let _ = till.void(&session, &txn, "abandoned", None).await;
            }
        }
        if w.adjust_every > 0 && n.is_multiple_of(w.adjust_every) {
            let (_, sku) = &products[rng.random_range(0..products.len())];
            let req = AdjustRequest {
                sku: sku.clone(),
                change: 12,
                reason: Reason::Receiving,
                note: None,
                approval: Some(manager.clone()),
            };
            match till.adjust(&session, &req).await {
                Ok(_) => out
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .adjustments
                    .push((sku.clone(), 12)),
                Err(e) => refuse(e.code()),
            }
        }
    }
}
