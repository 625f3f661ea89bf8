//! Gift cards across tills over real QUIC (issue 22): a card is spent only within the rights
//! a till holds (escrow); a till short of them asks the others and is handed what they hold
//! spare; across a split neither side spends rights it does not hold, and after the heal
//! the card's balance is what was loaded less what was acknowledged, never below zero.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::{Client, Pki, TestTill, basket, mesh_config};

const CARD: &str = "GC-TEST-0001";

async fn store(pki: &Pki) -> Vec<TestTill> {
    let mut tills = Vec::new();
    for t in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        tills.push(TestTill::start_with(mesh_config(dir.path(), pki, t, 0), dir).await);
    }
    tills[0].mesh().add_peer(tills[1].mesh().local_addr());
    tills[1].mesh().add_peer(tills[0].mesh().local_addr());
    tills
}

fn split(tills: &[TestTill], cut: bool) {
    let (a, b) = (&tills[0], &tills[1]);
    if cut {
        a.mesh().faults().block(b.cfg.terminal.id);
        b.mesh().faults().block(a.cfg.terminal.id);
    } else {
        a.mesh().faults().unblock(b.cfg.terminal.id);
        b.mesh().faults().unblock(a.cfg.terminal.id);
    }
}

async fn converged(tills: &[TestTill]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let a = tills[0].till().version_vector();
        if tills.iter().all(|t| t.till().version_vector() == a) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never converged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pay_card(c: &Client, id: &str, amount: i64) -> support::Answer {
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "gift_card", "card": CARD, "amount": amount}),
    )
    .await
}

/// Pays the rest in cash and finalises: the sale as answered.
async fn finish(c: &Client, id: &str) -> Value {
    let t = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200);
    let due = t["remaining_due"].as_i64().unwrap();
    if due > 0 {
        c.post(
            &format!("/api/v1/transactions/{id}/payments"),
            json!({"method": "cash", "tendered": due}),
        )
        .await
        .expect(200);
    }
    c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200)
}

fn card_paid(sale: &Value) -> i64 {
    sale["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["method"] == "gift_card" && p["status"] == "CAPTURED")
        .map(|p| p["amount"].as_i64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gift_card_is_never_spent_twice_across_a_split() {
    let pki = Pki::new("S001");
    let tills = store(&pki).await;
    let c1 = tills[0].client().login("E001", "1111").await;
    let c2 = tills[1].client().login("E002", "2222").await;
    // Bad input changes nothing.
    c1.post("/api/v1/giftcards", json!({"card": "no", "amount": 1000}))
        .await
        .expect_error(400, "bad_card");
    c1.post("/api/v1/giftcards", json!({"card": CARD, "amount": 0}))
        .await
        .expect_error(422, "wrong_amount");
    const LOADED: i64 = 100_000;
    let v = c1
        .post("/api/v1/giftcards", json!({"card": CARD, "amount": LOADED}))
        .await
        .expect(201);
    assert_eq!(
        (v["balance"].as_i64(), v["spendable_here"].as_i64()),
        (Some(LOADED), Some(LOADED))
    );
    c1.post("/api/v1/giftcards", json!({"card": CARD, "amount": 5}))
        .await
        .expect_error(409, "card_exists");
    converged(&tills).await;
    let v = c2
        .get(&format!("/api/v1/giftcards/{CARD}"))
        .await
        .expect(200);
    assert_eq!(
        (v["balance"].as_i64(), v["spendable_here"].as_i64()),
        (Some(LOADED), Some(0))
    );
    c2.get("/api/v1/giftcards/GC-NOPE-0000")
        .await
        .expect_error(404, "unknown_card");

    // Till 2 holds no rights: refused, it asks till 1, and is handed them.
    let mut spent = 0_i64;
    let (id, total) = basket(&c2, 2).await;
    let want = total.min(LOADED / 4);
    let e = pay_card(&c2, &id, want)
        .await
        .expect_error(409, "rights_elsewhere");
    assert!(e["message"].as_str().unwrap().contains("asked"), "{e}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let a = pay_card(&c2, &id, want).await;
        if a.status == 200 {
            break;
        }
        assert_eq!(a.status, 409, "{:?}", a);
        assert!(tokio::time::Instant::now() < deadline, "rights never came");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    spent += card_paid(&finish(&c2, &id).await);
    assert_eq!(spent, want);

    // The split: each side spends only the rights it holds.
    converged(&tills).await;
    split(&tills, true);
    let spendable = |v: &Value| v["spendable_here"].as_i64().unwrap();
    let mut sales = 0;
    for c in [&c1, &c2] {
        loop {
            let v = c
                .get(&format!("/api/v1/giftcards/{CARD}"))
                .await
                .expect(200);
            let here = spendable(&v);
            if here == 0 {
                break;
            }
            let (id, total) = basket(c, 3).await;
            let amount = total.min(here);
            let t = pay_card(c, &id, amount).await.expect(200);
            assert_eq!(card_paid(&t), amount);
            spent += card_paid(&finish(c, &id).await);
            sales += 1;
            assert!(sales < 60, "the rights never ran out");
        }
        // Nothing more on this side, whatever the card's balance as this till knows it.
        let (id, _) = basket(c, 1).await;
        let refused = pay_card(c, &id, 1).await;
        assert!(
            matches!(refused.status, 409 | 422),
            "spent past its rights: {refused:?}"
        );
        finish(c, &id).await;
    }
    assert!(spent <= LOADED, "spent {spent} of {LOADED}");

    split(&tills, false);
    converged(&tills).await;
    // After the heal: the balance is what was loaded less what was acknowledged.
    for c in [&c1, &c2] {
        let v = c
            .get(&format!("/api/v1/giftcards/{CARD}"))
            .await
            .expect(200);
        assert_eq!(v["balance"].as_i64(), Some(LOADED - spent), "{v}");
    }
    for t in &tills {
        let state = t.till().state();
        let card = &state.gift_cards[CARD];
        assert_eq!(card.created_total(), LOADED as u64);
        assert_eq!(card.value(), (LOADED - spent) as u64);
    }
    // A top-up makes it spendable again at the till that took the money.
    let v = c2
        .post(
            &format!("/api/v1/giftcards/{CARD}/top-up"),
            json!({"amount": 2_000}),
        )
        .await
        .expect(200);
    assert_eq!(v["balance"].as_i64(), Some(LOADED - spent + 2_000), "{v}");
    assert!(spendable(&v) >= 2_000, "{v}");
    c2.post(
        "/api/v1/giftcards/GC-NOPE-0000/top-up",
        json!({"amount": 2_000}),
    )
    .await
    .expect_error(404, "unknown_card");
}

/// A gift card tender on a sale still open holds the card's rights until the sale is final
/// or the tender is cancelled: two open sales on one till cannot both take the whole card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sales_hold_what_they_tendered() {
    let dir = tempfile::tempdir().unwrap();
    let till = TestTill::start_with(support::test_config(dir.path()), dir).await;
    let c = till.client().login("E001", "1111").await;
    c.post("/api/v1/giftcards", json!({"card": CARD, "amount": 1_000}))
        .await
        .expect(201);
    let (a, _) = basket(&c, 1).await;
    let (b, _) = basket(&c, 1).await;
    // A card the store does not know: 422 (the sale exists, the card does not).
    c.post(
        &format!("/api/v1/transactions/{a}/payments"),
        json!({"method": "gift_card", "card": "GC-NOPE-0000"}),
    )
    .await
    .expect_error(422, "unknown_card");
    let t = pay_card(&c, &a, 1_000).await.expect(200);
    let pid = t["payments"][0]["payment_id"].as_str().unwrap().to_string();
    pay_card(&c, &b, 1_000)
        .await
        .expect_error(409, "rights_elsewhere");
    // Released by cancelling the tender: the other sale takes it.
    c.post(&format!("/api/v1/payments/{pid}/cancel"), json!({}))
        .await
        .expect(200);
    pay_card(&c, &b, 1_000).await.expect(200);
    assert_eq!(card_paid(&finish(&c, &b).await), 1_000);
    let v = c
        .get(&format!("/api/v1/giftcards/{CARD}"))
        .await
        .expect(200);
    assert_eq!(v["balance"], 0, "{v}");
    // Voiding the sale puts what it took back on the card, never out in cash.
    let manager = json!({"employee_id": "M001", "pin": "9999"});
    c.post(
        &format!("/api/v1/transactions/{b}/void"),
        json!({"reason": "customer changed their mind", "approval": manager}),
    )
    .await
    .expect(200);
    let v = c
        .get(&format!("/api/v1/giftcards/{CARD}"))
        .await
        .expect(200);
    assert_eq!(
        (v["balance"].as_i64(), v["spendable_here"].as_i64()),
        (Some(1_000), Some(1_000)),
        "{v}"
    );
    // An open sale holding only a gift card tender is cancelled without a manager: the
    // tender is released.
    let (open, _) = basket(&c, 1).await;
    pay_card(&c, &open, 1_000).await.expect(200);
    c.post(
        &format!("/api/v1/transactions/{open}/void"),
        json!({"reason": "left"}),
    )
    .await
    .expect(200);
    let v = c
        .get(&format!("/api/v1/giftcards/{CARD}"))
        .await
        .expect(200);
    assert_eq!(v["spendable_here"], 1_000, "{v}");
    let (last, _) = basket(&c, 1).await;
    pay_card(&c, &last, 1_000).await.expect(200);
    assert_eq!(card_paid(&finish(&c, &last).await), 1_000);
    // Kept across a restart: the balance comes back from the events.
    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let c = till.client().login("E001", "1111").await;
    let v = c
        .get(&format!("/api/v1/giftcards/{CARD}"))
        .await
        .expect(200);
    assert_eq!(v["balance"], 0, "{v}");
    c.post(
        "/api/v1/giftcards",
        json!({"card": "GC-TEST-0002", "amount": 700}),
    )
    .await
    .expect(201);
    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let c = till.client().login("E001", "1111").await;
    let v = c.get("/api/v1/giftcards/GC-TEST-0002").await.expect(200);
    assert_eq!(v["spendable_here"], 700, "{v}");
}

const COUPON: &str = "CP-TEST-0001";

fn paid_by(sale: &Value, method: &str) -> i64 {
    sale["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["method"] == method && p["status"] == "CAPTURED")
        .map(|p| p["amount"].as_i64().unwrap())
        .sum()
}

/// A single-use coupon is spent by one tender at one till: across a split the till without
/// its rights cannot take it, and after the heal it is known as used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_is_used_once_across_a_split() {
    let pki = Pki::new("S001");
    let tills = store(&pki).await;
    let c1 = tills[0].client().login("E001", "1111").await;
    let c2 = tills[1].client().login("E002", "2222").await;
    let manager = json!({"employee_id": "M001", "pin": "9999"});
    // A cashier alone cannot issue one; bad values change nothing.
    c1.post("/api/v1/coupons", json!({"code": COUPON, "value": 500}))
        .await
        .expect_error(403, "approval_required");
    c1.post(
        "/api/v1/coupons",
        json!({"code": COUPON, "value": 0, "approval": manager}),
    )
    .await
    .expect_error(422, "wrong_amount");
    c1.get(&format!("/api/v1/coupons/{COUPON}"))
        .await
        .expect_error(404, "unknown_coupon");
    // Issued offline-capable, by a manager.
    let v = c1
        .post(
            "/api/v1/coupons",
            json!({"code": COUPON, "value": 500, "approval": manager}),
        )
        .await
        .expect(201);
    assert_eq!(
        (v["kind"].as_str(), v["balance"].as_i64()),
        (Some("coupon"), Some(500))
    );
    c1.post(
        "/api/v1/coupons",
        json!({"code": COUPON, "value": 500, "approval": manager}),
    )
    .await
    .expect_error(409, "card_exists");
    // A coupon is not a gift card: the gift card endpoint does not show it.
    c1.get(&format!("/api/v1/giftcards/coupon:{COUPON}"))
        .await
        .expect_error(404, "unknown_card");
    let big = c1
        .post(
            "/api/v1/coupons",
            json!({"code": "CP-TEST-BIG1", "value": 5_000_000, "approval": manager}),
        )
        .await
        .expect(201);
    assert_eq!(big["balance"], 5_000_000);
    converged(&tills).await;

    split(&tills, true);
    let (id1, _) = basket(&c1, 2).await;
    let (id2, total2) = basket(&c2, 2).await;
    // Worth more than the sale: spent whole or not at all.
    assert!(total2 < 5_000_000);
    c1.post(
        &format!("/api/v1/transactions/{id1}/payments"),
        json!({"method": "coupon", "card": "CP-TEST-BIG1"}),
    )
    .await
    .expect_error(422, "wrong_amount");
    let coupon = |amount: Option<i64>| {
        let mut b = json!({"method": "coupon", "card": COUPON});
        if let Some(a) = amount {
            b["amount"] = json!(a);
        }
        b
    };
    c1.post(
        &format!("/api/v1/transactions/{id1}/payments"),
        coupon(Some(200)),
    )
    .await
    .expect_error(422, "wrong_amount");
    c1.post(
        &format!("/api/v1/transactions/{id1}/payments"),
        coupon(None),
    )
    .await
    .expect(200);
    assert_eq!(paid_by(&finish(&c1, &id1).await, "coupon"), 500);
    // The other side of the split holds no rights to it, and nobody it reaches does.
    c2.post(
        &format!("/api/v1/transactions/{id2}/payments"),
        coupon(None),
    )
    .await
    .expect_error(409, "rights_elsewhere");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    c2.post(
        &format!("/api/v1/transactions/{id2}/payments"),
        coupon(None),
    )
    .await
    .expect_error(409, "rights_elsewhere");

    split(&tills, false);
    converged(&tills).await;
    c2.post(
        &format!("/api/v1/transactions/{id2}/payments"),
        coupon(None),
    )
    .await
    .expect_error(422, "coupon_used");
    finish(&c2, &id2).await;
    for (t, c) in tills.iter().zip([&c1, &c2]) {
        let v = c
            .get(&format!("/api/v1/coupons/{COUPON}"))
            .await
            .expect(200);
        assert_eq!(v["balance"], 0, "{v}");
        let state = t.till().state();
        let acc = &state.gift_cards[&format!("coupon:{COUPON}")];
        assert_eq!((acc.created_total(), acc.spent_total()), (500, 500));
    }
}

/// Store credit: a return refunded to credit (a sale with a customer), spent as a tender of
/// another sale by the same customer, never below zero; a manager's goodwill credit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_credit_from_a_return_is_spent_once() {
    let dir = tempfile::tempdir().unwrap();
    let till = TestTill::start_with(support::test_config(dir.path()), dir).await;
    let c = till.client().login("E001", "1111").await;
    let manager = json!({"employee_id": "M001", "pin": "9999"});
    c.send(
        reqwest::Method::PUT,
        "/api/v1/customers/C-1",
        Some(json!({"name": "An"})),
    )
    .await
    .unwrap()
    .expect(200);
    let credit = || c.get("/api/v1/customers/C-1/credit");
    assert_eq!(credit().await.expect(200)["balance"], 0);
    c.get("/api/v1/customers/C-404/credit")
        .await
        .expect_error(404, "unknown_customer");

    // A sale without a customer cannot be refunded to credit, nor paid by it.
    let (anon, _) = basket(&c, 1).await;
    c.post(
        &format!("/api/v1/transactions/{anon}/payments"),
        json!({"method": "store_credit"}),
    )
    .await
    .expect_error(422, "no_customer");
    let anon_sale = finish(&c, &anon).await;
    let line = anon_sale["lines"][0]["line_no"].as_u64().unwrap();
    c.post(
        &format!("/api/v1/transactions/{anon}/return"),
        json!({"lines": [{"line_no": line, "quantity": 1}], "approval": manager, "refund_to": "store_credit"}),
    )
    .await
    .expect_error(422, "no_customer");

    // The customer's sale, one unit returned to store credit.
    let (id, _) = support::basket_for(&c, Some("C-1"), 2).await;
    let sale = finish(&c, &id).await;
    let line = sale["lines"][0]["line_no"].as_u64().unwrap();
    let line_total = sale["lines"][0]["total"].as_i64().unwrap();
    let qty = sale["lines"][0]["quantity"].as_i64().unwrap();
    c.post(
        &format!("/api/v1/transactions/{id}/return"),
        json!({"lines": [{"line_no": line, "quantity": 1}], "approval": manager, "refund_to": "store_credit"}),
    )
    .await
    .expect(200);
    let returned = line_total / qty;
    let v = credit().await.expect(200);
    assert_eq!(
        (v["kind"].as_str(), v["balance"].as_i64()),
        (Some("store_credit"), Some(returned)),
        "{v}"
    );

    // Goodwill credit needs a manager and a reason.
    c.post(
        "/api/v1/customers/C-1/credit",
        json!({"amount": 300, "reason": "late delivery"}),
    )
    .await
    .expect_error(403, "approval_required");
    c.post(
        "/api/v1/customers/C-1/credit",
        json!({"amount": 300, "reason": " ", "approval": manager}),
    )
    .await
    .expect_error(400, "bad_reason");
    let v = c
        .post(
            "/api/v1/customers/C-1/credit",
            json!({"amount": 300, "reason": "late delivery", "approval": manager}),
        )
        .await
        .expect(200);
    let balance = returned + 300;
    assert_eq!(v["balance"].as_i64(), Some(balance), "{v}");

    // Spent on the customer's next sale, up to the balance and no further.
    let (next, total) = support::basket_for(&c, Some("C-1"), 4).await;
    let t = c
        .post(
            &format!("/api/v1/transactions/{next}/payments"),
            json!({"method": "store_credit"}),
        )
        .await
        .expect(200);
    let took = paid_by(&t, "store_credit");
    assert_eq!(took, balance.min(total));
    let done = finish(&c, &next).await;
    assert_eq!(paid_by(&done, "store_credit"), took);
    let receipt = c
        .get(&format!("/api/v1/receipts/{next}?format=text"))
        .await
        .expect(200);
    assert!(
        receipt.as_str().unwrap().contains("STORE CREDIT"),
        "{receipt}"
    );
    assert_eq!(
        credit().await.expect(200)["balance"].as_i64(),
        Some(balance - took)
    );
    if balance - took == 0 {
        let (again, _) = support::basket_for(&c, Some("C-1"), 1).await;
        c.post(
            &format!("/api/v1/transactions/{again}/payments"),
            json!({"method": "store_credit"}),
        )
        .await
        .expect_error(422, "wrong_amount");
    }
    // A unit of the sale paid by store credit comes back: onto the credit first (never out
    // in cash), even without asking for store credit.
    let credit_before = credit().await.expect(200)["balance"].as_i64().unwrap();
    let line = &done["lines"][0];
    let unit = line["total"].as_i64().unwrap() / line["quantity"].as_i64().unwrap();
    c.post(
        &format!("/api/v1/transactions/{next}/return"),
        json!({"lines": [{"line_no": line["line_no"], "quantity": 1}], "approval": manager}),
    )
    .await
    .expect(200);
    assert_eq!(
        credit().await.expect(200)["balance"].as_i64(),
        Some(credit_before + unit.min(took))
    );
}

/// Idle rights spread out: a card activated at one till and left unused there is shared with
/// the peer it hears from, so that after a split both sides can take it without asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_rights_spread_to_peers_before_a_split() {
    let pki = Pki::new("S001");
    let tills = store(&pki).await;
    let c1 = tills[0].client().login("E001", "1111").await;
    let c2 = tills[1].client().login("E002", "2222").await;
    const LOADED: i64 = 90_000;
    c1.post("/api/v1/giftcards", json!({"card": CARD, "amount": LOADED}))
        .await
        .expect(201);
    // Till 2 sells (a till that never wrote an event is not known to its peers yet).
    let (id, _) = basket(&c2, 1).await;
    finish(&c2, &id).await;
    // Till 2 gets a share without asking, once the card sat idle at till 1.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let share = loop {
        let a = c2.get(&format!("/api/v1/giftcards/{CARD}")).await;
        // Not here yet: replication is on its way.
        let v = if a.status == 404 {
            json!({"spendable_here": 0})
        } else {
            a.expect(200)
        };
        let here = v["spendable_here"].as_i64().unwrap();
        if here > 0 {
            break here;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle rights never spread: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(share, LOADED / 2, "a fair share of two tills");
    converged(&tills).await;
    split(&tills, true);
    // Both sides take the card, neither asks.
    for c in [&c1, &c2] {
        let (id, total) = basket(c, 1).await;
        let amount = total.min(share);
        let t = pay_card(c, &id, amount).await.expect(200);
        assert_eq!(card_paid(&t), amount);
        finish(c, &id).await;
    }
    split(&tills, false);
    converged(&tills).await;
    for t in &tills {
        let state = t.till().state();
        let card = &state.gift_cards[CARD];
        assert!(card.spent_total() <= card.created_total());
        assert_eq!(card.created_total(), LOADED as u64);
    }
}
