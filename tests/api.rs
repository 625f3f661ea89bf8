//! API tests against a real till on 127.0.0.1:0 with its SQLite database in a tempdir.

mod support;

use serde_json::json;
use support::{TestTill, demo_barcode, demo_item};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sale_with_promotions_cash_change_receipt_and_end_of_day() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let (chips, cola) = (demo_barcode(1), demo_barcode(0));

    let t = c.post("/api/v1/transactions", json!({})).await.expect(201);
    assert_eq!(t["status"], "DRAFT");
    let id = t["txn_id"].as_str().unwrap().to_string();
    c.post(
        &format!("/api/v1/transactions/{id}/items"),
        json!({"barcode": chips, "quantity": 2}),
    )
    .await
    .expect(200);
    let t = c
        .post(
            &format!("/api/v1/transactions/{id}/items"),
            json!({"barcode": cola, "quantity": 3}),
        )
        .await
        .expect(200);
    // Chips: 2 x 17500, 10% off snacks = 3500, tax 10% of 31500 = 3150.
    // Cola: 3 x 22000, buy 2 get 1 = 22000 off, tax 10% of 44000 = 4400.
    assert_eq!(t["lines"][0]["promotion"]["id"], "P-SNACK10");
    assert_eq!(t["lines"][1]["promotion"]["id"], "P-B2G1-BEV");
    assert_eq!(
        t["totals"],
        json!({"subtotal": 101000, "discount": 25500, "tax": 7550, "total": 83050, "items": 5})
    );

    c.post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    let t = c
        .post(
            &format!("/api/v1/transactions/{id}/payments"),
            json!({"method": "cash", "tendered": 100000}),
        )
        .await
        .expect(200);
    assert_eq!(
        (t["remaining_due"].as_i64(), t["change_due"].as_i64()),
        (Some(0), Some(16950))
    );
    let t = c
        .post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
    assert_eq!(t["status"], "PAID");

    // Durable and readable back, with stock decremented on PAID.
    let t = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200);
    assert_eq!(t["status"], "PAID");
    let item = c
        .get(&format!("/api/v1/catalog/items?barcode={chips}"))
        .await
        .expect(200);
    assert_eq!(item["stock"], 98);

    let text = c
        .get(&format!("/api/v1/receipts/{id}?format=text"))
        .await
        .expect(200);
    let text = text.as_str().unwrap();
    for needle in [
        "Tillmesh Demo Mart",
        "10% off snacks",
        "Buy 2 get 1 beverages",
        "83,050",
        "Change",
        "16,950",
    ] {
        assert!(text.contains(needle), "receipt lacks {needle:?}:\n{text}");
    }
    // The store's local time and the till's number, not UTC and an internal replica id.
    let json = c.get(&format!("/api/v1/receipts/{id}")).await.expect(200);
    let local = json["paid_at"].as_str().unwrap();
    assert_eq!(local.len(), "2026-12-05 04:05".len(), "{local}");
    assert!(
        text.contains(local) && text.contains("Till 1\n"),
        "{local}:\n{text}"
    );
    let reprint = c
        .get(&format!("/api/v1/receipts/{id}?reprint=true"))
        .await
        .expect(200);
    assert_eq!(reprint["reprint"], true);
    assert_eq!(reprint["sale"]["totals"]["total"], 83050);

    let eod = c.get("/api/v1/reports/end-of-day").await.expect(200);
    assert_eq!(
        (eod["transactions"].as_i64(), eod["total_sales"].as_i64()),
        (Some(1), Some(83050))
    );
    assert_eq!(eod["payments"]["cash"], 83050);
    let perf = c.get("/api/v1/reports/cashiers").await.expect(200);
    assert_eq!(perf[0]["cashier"], "E001");
    assert_eq!(perf[0]["average"], 83050);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let till = TestTill::start().await;
    let anon = till.client();
    anon.post("/api/v1/transactions", json!({}))
        .await
        .expect_error(401, "unauthenticated");
    anon.post(
        "/api/v1/auth/login",
        json!({"employee_id": "E001", "pin": "0000"}),
    )
    .await
    .expect_error(401, "unauthenticated");
    let c = till.client().login("E001", "1111").await;
    let before = c.get("/api/v1/status").await.expect(200)["events"]
        .as_i64()
        .unwrap();

    let id = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    let items = format!("/api/v1/transactions/{id}/items");
    // A body must be a JSON object (serde would read a struct from an array too).
    c.post(&items, json!(["8930000000001", 1]))
        .await
        .expect_error(400, "malformed_body");
    // An open sale has no receipt or returns yet: a conflict, not "no such transaction".
    c.post(
        &format!("/api/v1/transactions/{id}/return"),
        json!({"lines": []}),
    )
    .await
    .expect_error(409, "not_paid");
    let e = c.post(&items, json!({"barcode": "8930000000001"})).await;
    let e = if e.status == 400 {
        e.expect_error(400, "invalid_barcode")
    } else {
        e.expect_error(404, "unknown_barcode")
    };
    assert!(e["message"].as_str().unwrap().contains("8930000000001"));
    c.post(&items, json!({"barcode": "4006381333932"}))
        .await
        .expect_error(400, "invalid_barcode");
    c.post(&items, json!({"barcode": 12}))
        .await
        .expect_error(400, "malformed_body");
    c.post(&items, json!({"barcode": demo_barcode(2), "quantity": 0}))
        .await
        .expect_error(422, "bad_quantity");
    c.post(&items, json!({"barcode": demo_barcode(2)}))
        .await
        .expect(200);
    c.post(&items, json!({"barcode": demo_barcode(2)}))
        .await
        .expect_error(409, "duplicate_scan");
    let raw = c
        .http
        .post(format!("{}{items}", c.base))
        .bearer_auth(c.token.as_ref().unwrap())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let big = "x".repeat(300 * 1024);
    c.post(&items, json!({"barcode": big}))
        .await
        .expect_error(413, "body_too_large");

    // Invalid transitions: 409.
    c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect_error(409, "invalid_transition");
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": 5}),
    )
    .await
    .expect_error(409, "invalid_transition");
    let t = c
        .post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    let due = t["totals"]["total"].as_i64().unwrap();
    c.post(&items, json!({"barcode": demo_barcode(3)}))
        .await
        .expect_error(409, "invalid_transition");
    // Wrong amounts: 422.
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "qr", "amount": due + 1}),
    )
    .await
    .expect_error(422, "wrong_amount");
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": -5}),
    )
    .await
    .expect_error(422, "wrong_amount");
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": due - 1}),
    )
    .await
    .expect(200);
    c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect_error(422, "wrong_amount");
    // None of that wrote an event; the transaction is still open and unpaid.
    assert_eq!(
        c.get("/api/v1/status").await.expect(200)["events"]
            .as_i64()
            .unwrap(),
        before
    );
    assert_eq!(
        c.get(&format!("/api/v1/transactions/{id}"))
            .await
            .expect(200)["status"],
        "PENDING_PAYMENT"
    );
    c.get("/api/v1/transactions/T1-999")
        .await
        .expect_error(404, "unknown_transaction");
    c.get("/api/v1/reports/end-of-day?date=2026-02-30")
        .await
        .expect_error(400, "bad_date");
    c.get("/api/v1/nope").await.expect_error(404, "no_route");
}

/// Items sold by weight (issue 18): a weight, never a quantity; each weighing a line priced
/// at the price per kilogram; stock in grams out on the sale and back on a return and a void;
/// the weights kept with the sale across a restart; bad weights refused, changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_sold_by_weight_are_priced_and_stocked_by_the_gram() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let bananas = "2000000000015";
    let stock = || async {
        c.get(&format!("/api/v1/catalog/items?barcode={bananas}"))
            .await
            .expect(200)["stock"]
            .as_i64()
            .unwrap()
    };
    let before = stock().await;
    let t = c.post("/api/v1/transactions", json!({})).await.expect(201);
    let id = t["txn_id"].as_str().unwrap().to_string();
    let items = format!("/api/v1/transactions/{id}/items");
    c.post(&items, json!({"barcode": bananas}))
        .await
        .expect_error(422, "needs_weight");
    c.post(
        &items,
        json!({"barcode": bananas, "quantity": 2, "weight_g": 500}),
    )
    .await
    .expect_error(422, "bad_request");
    for g in [0, -1, 50_001, 10_000_000_000i64] {
        c.post(&items, json!({"barcode": bananas, "weight_g": g}))
            .await
            .expect_error(422, "bad_weight");
    }
    c.post(&items, json!({"barcode": demo_barcode(1), "weight_g": 500}))
        .await
        .expect_error(422, "not_by_weight");
    let t = c
        .post(&items, json!({"barcode": bananas, "weight_g": 1234}))
        .await
        .expect(200);
    assert_eq!(t["lines"].as_array().unwrap().len(), 1, "{t}");
    // 1.234 kg at 29,900/kg: 36,897 (36,896.6 rounded), 5% tax 1,845.
    assert_eq!(t["lines"][0]["unit_price"], 36_897);
    assert_eq!(t["lines"][0]["total"], 38_742);
    assert_eq!(t["weights"][0]["grams"], 1234);
    assert_eq!(t["weights"][0]["price_per_kg"], 29_900);
    let t = c
        .post(&items, json!({"barcode": bananas, "weight_g": 500}))
        .await
        .expect(200);
    let second = t["lines"][1]["line_no"].as_u64().unwrap();
    c.send(
        reqwest::Method::PATCH,
        &format!("{items}/{second}"),
        Some(json!({"quantity": 3})),
    )
    .await
    .unwrap()
    .expect_error(422, "weighed_line");
    c.post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": 60_000}),
    )
    .await
    .expect(200);
    let sale = c
        .post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
    assert_eq!(sale["totals"]["total"], 54_440, "{sale}");
    assert_eq!(stock().await, before - 1734);
    // One bag comes back: its grams go back into stock.
    let manager = json!({"employee_id": "M001", "pin": "9999"});
    c.post(
        &format!("/api/v1/transactions/{id}/return"),
        json!({"lines": [{"line_no": second, "quantity": 1}], "approval": manager}),
    )
    .await
    .expect(200);
    assert_eq!(stock().await, before - 1234);
    // A voided weighed sale puts its grams back too.
    let other = c.post("/api/v1/transactions", json!({})).await.expect(201);
    let other_id = other["txn_id"].as_str().unwrap().to_string();
    c.post(
        &format!("/api/v1/transactions/{other_id}/items"),
        json!({"barcode": bananas, "weight_g": 250}),
    )
    .await
    .expect(200);
    assert_eq!(stock().await, before - 1234, "a draft takes no stock");
    c.post(
        &format!("/api/v1/transactions/{other_id}/checkout"),
        json!({}),
    )
    .await
    .expect(200);
    c.post(
        &format!("/api/v1/transactions/{other_id}/payments"),
        json!({"method": "cash", "tendered": 10_000}),
    )
    .await
    .expect(200);
    c.post(
        &format!("/api/v1/transactions/{other_id}/finalize"),
        json!({}),
    )
    .await
    .expect(200);
    assert_eq!(stock().await, before - 1484);
    c.post(
        &format!("/api/v1/transactions/{other_id}/void"),
        json!({"reason": "wrong item", "approval": manager}),
    )
    .await
    .expect(200);
    assert_eq!(stock().await, before - 1234, "the void put 250 g back");
    let receipt = c
        .get(&format!("/api/v1/receipts/{id}?format=text"))
        .await
        .expect(200);
    let text = receipt.as_str().unwrap();
    assert!(text.contains("1.234 kg x 29,900/kg"), "{text}");
    // A restart reads the weights back from the sale's event.
    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let c = till.client().login("E001", "1111").await;
    let again = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200);
    assert_eq!(again["weights"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(
        c.get(&format!("/api/v1/catalog/items?barcode={bananas}"))
            .await
            .expect(200)["stock"],
        before - 1234
    );
}

/// Returns of part of a sale by line and quantity (issue 18): a manager approves; each unit
/// hands back its share of the line's total and goes back into stock; over-returns and
/// unknown lines change nothing; the last unit makes the sale REFUNDED; the day's report
/// counts the returns; a restart keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_of_a_sale_is_returned_by_line_and_quantity_with_a_manager() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let (a, b) = (demo_barcode(4), demo_barcode(5));
    let sale = c.sell(&[(&a, 3), (&b, 1)], None).await.unwrap();
    let id = sale["txn_id"].as_str().unwrap().to_string();
    let total = sale["totals"]["total"].as_i64().unwrap();
    let line_a = &sale["lines"][0];
    let (a_total, a_no) = (
        line_a["total"].as_i64().unwrap(),
        line_a["line_no"].as_u64().unwrap(),
    );
    let b_no = sale["lines"][1]["line_no"].as_u64().unwrap();
    let stock = |v: serde_json::Value| v["stock"].as_i64().unwrap();
    let stock_a = || async {
        stock(
            c.get(&format!("/api/v1/catalog/items?barcode={a}"))
                .await
                .expect(200),
        )
    };
    let before = stock_a().await;
    let ret = format!("/api/v1/transactions/{id}/return");
    let manager = json!({"employee_id": "M001", "pin": "9999"});
    c.post(&ret, json!({"lines": [{"line_no": a_no, "quantity": 1}]}))
        .await
        .expect_error(403, "approval_required");
    c.post(
        &ret,
        json!({"lines": [{"line_no": a_no, "quantity": 4}], "approval": manager}),
    )
    .await
    .expect_error(422, "bad_return");
    c.post(
        &ret,
        json!({"lines": [{"line_no": 99, "quantity": 1}], "approval": manager}),
    )
    .await
    .expect_error(422, "bad_return");
    assert_eq!(stock_a().await, before, "refused returns changed nothing");
    let one = c
        .post(&ret, json!({"lines": [{"line_no": a_no, "quantity": 1}], "reason": "damaged", "approval": manager}))
        .await
        .expect(200);
    assert_eq!(one["status"], "PAID");
    let first = one["returned"].as_i64().unwrap();
    assert!(first > 0 && first < a_total, "{one}");
    assert_eq!(one["returned_lines"][0]["quantity"], 1);
    assert_eq!(stock_a().await, before + 1);
    // Neither a whole void nor a whole refund on top of a return (double restock and pay-out).
    c.post(
        &format!("/api/v1/transactions/{id}/void"),
        json!({"reason": "x", "approval": manager}),
    )
    .await
    .expect_error(409, "has_returns");
    c.post(
        &format!("/api/v1/transactions/{id}/refund"),
        json!({"reason": "x"}),
    )
    .await
    .expect_error(409, "has_returns");
    assert_eq!(stock_a().await, before + 1);
    // The rest: every unit back, exactly the sale's total handed back over both returns.
    let rest = c
        .post(
            &ret,
            json!({"lines": [{"line_no": a_no, "quantity": 2}, {"line_no": b_no, "quantity": 1}], "approval": manager}),
        )
        .await
        .expect(200);
    assert_eq!(rest["status"], "REFUNDED");
    assert_eq!(rest["returned"].as_i64().unwrap(), total);
    assert_eq!(stock_a().await, before + 3);
    c.post(
        &ret,
        json!({"lines": [{"line_no": b_no, "quantity": 1}], "approval": manager}),
    )
    .await
    .expect_error(409, "not_paid");
    let eod = c.get("/api/v1/reports/end-of-day").await.expect(200);
    assert_eq!(eod["returns"], 2, "{eod}");
    assert_eq!(eod["returned_value"].as_i64().unwrap(), total);
    // A restart replays the returns.
    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let c = till.client().login("E001", "1111").await;
    let after = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200);
    assert_eq!(after["status"], "REFUNDED");
    assert_eq!(after["returned"].as_i64().unwrap(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn void_needs_a_manager_and_restocks_refund_goes_through_request_and_approval() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let code = demo_barcode(4);
    let sale = c.sell(&[(&code, 3)], None).await.unwrap();
    let id = sale["txn_id"].as_str().unwrap().to_string();
    let stock = |v: serde_json::Value| v["stock"].as_i64().unwrap();
    assert_eq!(
        stock(
            c.get(&format!("/api/v1/catalog/items?barcode={code}"))
                .await
                .expect(200)
        ),
        97
    );

    let void = format!("/api/v1/transactions/{id}/void");
    c.post(&void, json!({"reason": "customer changed mind"}))
        .await
        .expect_error(403, "approval_required");
    c.post(
        &void,
        json!({"reason": "x", "approval": {"employee_id": "E002", "pin": "2222"}}),
    )
    .await
    .expect_error(403, "approval_refused");
    c.post(
        &void,
        json!({"reason": "x", "approval": {"employee_id": "M001", "pin": "1234"}}),
    )
    .await
    .expect_error(401, "unauthenticated");
    // Refusals changed nothing.
    assert_eq!(
        c.get(&format!("/api/v1/transactions/{id}"))
            .await
            .expect(200)["status"],
        "PAID"
    );
    assert_eq!(
        stock(
            c.get(&format!("/api/v1/catalog/items?barcode={code}"))
                .await
                .expect(200)
        ),
        97
    );
    let t = c
        .post(
            &void,
            json!({"reason": "x", "approval": {"employee_id": "M001", "pin": "9999"}}),
        )
        .await
        .expect(200);
    assert_eq!(t["status"], "VOID");
    assert_eq!(
        stock(
            c.get(&format!("/api/v1/catalog/items?barcode={code}"))
                .await
                .expect(200)
        ),
        100
    );
    c.post(
        &void,
        json!({"approval": {"employee_id": "M001", "pin": "9999"}}),
    )
    .await
    .expect_error(409, "invalid_transition");
    c.post(&format!("/api/v1/transactions/{id}/refund"), json!({}))
        .await
        .expect_error(409, "invalid_transition");

    let sale = c.sell(&[(&code, 2)], None).await.unwrap();
    let id = sale["txn_id"].as_str().unwrap().to_string();
    c.post(
        &format!("/api/v1/transactions/{id}/refund/approve"),
        json!({"approval": {"employee_id": "M001", "pin": "9999"}}),
    )
    .await
    .expect_error(409, "invalid_transition");
    let t = c
        .post(
            &format!("/api/v1/transactions/{id}/refund"),
            json!({"reason": "damaged"}),
        )
        .await
        .expect(200);
    assert_eq!(t["status"], "REFUND_REQUESTED");
    let m = till.client().login("M001", "9999").await;
    let t = m
        .post(
            &format!("/api/v1/transactions/{id}/refund/approve"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(t["status"], "REFUNDED");
    assert_eq!(
        stock(
            c.get(&format!("/api/v1/catalog/items?barcode={code}"))
                .await
                .expect(200)
        ),
        100
    );
    let eod = c.get("/api/v1/reports/end-of-day").await.expect(200);
    assert_eq!(
        (
            eod["transactions"].as_i64(),
            eod["voids"].as_i64(),
            eod["refunds"].as_i64()
        ),
        (Some(0), Some(1), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_and_split_tender_with_cancel() {
    let till = TestTill::start().await;
    let c = till.client().login("E002", "2222").await;
    let id = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.post(
        &format!("/api/v1/transactions/{id}/items"),
        json!({"barcode": demo_barcode(7)}),
    )
    .await
    .expect(200);
    let t = c
        .post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    let total = t["totals"]["total"].as_i64().unwrap();
    // A QR payment for part, cancelled, then again, then cash for the rest.
    let t = c
        .post(
            &format!("/api/v1/transactions/{id}/payments"),
            json!({"method": "qr", "amount": 10014}),
        )
        .await
        .expect(200);
    let pid = t["payments"][0]["payment_id"].as_str().unwrap().to_string();
    assert!(
        t["payments"][0]["qr_payload"]
            .as_str()
            .unwrap()
            .contains("sandbox"),
        "the provider's QR content: {t}"
    );
    // The customer has not paid (the sandbox waits on amounts ending in 14): cancelled.
    c.post(&format!("/api/v1/payments/{pid}/cancel"), json!({}))
        .await
        .expect(200);
    // Another QR payment, which the customer pays: captured once the provider says so.
    let t = c
        .post(
            &format!("/api/v1/transactions/{id}/payments"),
            json!({"method": "qr", "amount": 10000}),
        )
        .await
        .expect(200);
    let pid = t["payments"][1]["payment_id"].as_str().unwrap().to_string();
    let p = support::wait_payment(&c, &pid, "CAPTURED").await;
    assert!(p["provider_ref"].is_string(), "{p}");
    let captured = 10000;
    let t = c
        .post(
            &format!("/api/v1/transactions/{id}/payments"),
            json!({"method": "cash", "tendered": total - captured}),
        )
        .await
        .expect(200);
    assert_eq!(t["remaining_due"], 0);
    let t = c
        .post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
    let paid: i64 = t["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(paid, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_wrong_pins_lock_the_account_and_the_audit_chain_records_everything() {
    let till = TestTill::start().await;
    let c = till.client();
    for _ in 0..3 {
        c.post(
            "/api/v1/auth/login",
            json!({"employee_id": "E002", "pin": "0001"}),
        )
        .await
        .expect_error(401, "unauthenticated");
    }
    c.post(
        "/api/v1/auth/login",
        json!({"employee_id": "E002", "pin": "2222"}),
    )
    .await
    .expect_error(423, "account_locked");
    // One session per cashier per till: a second login ends the first.
    let a = till.client().login("E001", "1111").await;
    let b = till.client().login("E001", "1111").await;
    a.get("/api/v1/status").await.expect(200);
    a.post("/api/v1/transactions", json!({}))
        .await
        .expect_error(401, "unauthenticated");
    b.post("/api/v1/transactions", json!({})).await.expect(201);

    let dir = till.stop().await;
    let store = tillmesh_store::Store::open(dir.path().join("till.db")).unwrap();
    let chain = store.read(|r| r.audit_all()).unwrap();
    tillmesh_pos::audit::verify(&chain).expect("chain verifies");
    assert!(chain.iter().any(|e| e.record.action == "auth.locked"));
    assert_eq!(
        chain
            .iter()
            .filter(|e| e.record.action == "auth.login" && e.record.outcome.starts_with("refused"))
            .count(),
        4
    );
    drop(store);
    // And the CLI agrees.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .args(["audit", "verify", "--config"])
        .arg(support::example_config())
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit chain ok"));
    // Editing one entry is detected.
    let conn = rusqlite_free_edit(dir.path());
    assert!(conn, "edited the audit table");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tillmesh"))
        .args(["audit", "verify", "--config"])
        .arg(support::example_config())
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit chain broken at entry 3"));
}

/// Edits audit entry 3 behind the store's back, as an attacker with the file would.
fn rusqlite_free_edit(dir: &std::path::Path) -> bool {
    tillmesh_store::tamper_for_tests(
        &dir.join("till.db"),
        "UPDATE audit SET outcome = 'ok' WHERE seq = 3",
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_receive_count_adjust_and_low_stock() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let m = till.client().login("M001", "9999").await;
    let (sku, _, _) = demo_item(5);
    c.post(
        "/api/v1/inventory/adjust",
        json!({"sku": sku, "change": -3, "reason": "SHRINKAGE"}),
    )
    .await
    .expect_error(403, "approval_required");
    m.post(
        "/api/v1/inventory/adjust",
        json!({"sku": sku, "change": 3, "reason": "SHRINKAGE"}),
    )
    .await
    .expect_error(422, "bad_adjustment");
    m.post(
        "/api/v1/inventory/adjust",
        json!({"sku": "NOPE", "change": 3, "reason": "MANUAL"}),
    )
    .await
    .expect_error(404, "unknown_sku");
    let it = m
        .post(
            "/api/v1/inventory/adjust",
            json!({"sku": sku, "change": -3, "reason": "SHRINKAGE", "note": "broken"}),
        )
        .await
        .expect(200);
    assert_eq!(it["stock"], 97);
    m.post(
        "/api/v1/inventory/receive",
        json!({"supplier": "", "lines": [{"sku": sku, "quantity": 5}]}),
    )
    .await
    .expect_error(422, "missing_supplier");
    let got = m.post("/api/v1/inventory/receive", json!({"supplier": "ACME Foods", "reference": "DN-1", "lines": [{"sku": sku, "quantity": 5}]})).await.expect(200);
    assert_eq!(got[0]["stock"], 102);
    let counted = m
        .post(
            "/api/v1/inventory/count",
            json!({"counts": [{"sku": sku, "counted": 90}]}),
        )
        .await
        .expect(200);
    assert_eq!(
        (
            counted[0]["shrinkage"].as_i64(),
            counted[0]["flagged"].as_bool()
        ),
        (Some(12), Some(true))
    );
    let moves = c
        .get(&format!("/api/v1/inventory/{sku}/movements"))
        .await
        .expect(200);
    let reasons: Vec<&str> = moves
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"COUNT")
            && reasons.contains(&"RECEIVING")
            && reasons.contains(&"SHRINKAGE")
    );
    assert!(
        moves
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["supplier"] == "ACME Foods")
    );
    let low = c
        .get("/api/v1/reports/inventory?low_only=true")
        .await
        .expect(200);
    assert!(low.as_array().unwrap().iter().all(|l| l["low"] == true));
    let all = c.get("/api/v1/reports/inventory").await.expect(200);
    assert_eq!(all.as_array().unwrap().len(), 1206);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn price_override_applies_to_later_sales_only_and_customers_earn_points() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let m = till.client().login("M001", "9999").await;
    let (sku, _, base) = demo_item(6);
    let code = demo_barcode(6);
    let first = c.sell(&[(&code, 1)], None).await.unwrap();
    c.post(
        "/api/v1/prices/override",
        json!({"sku": sku, "price": 1000}),
    )
    .await
    .expect_error(403, "approval_required");
    m.post("/api/v1/prices/override", json!({"sku": sku, "price": -1}))
        .await
        .expect_error(422, "wrong_amount");
    let it = m
        .post(
            "/api/v1/prices/override",
            json!({"sku": sku, "price": base - 500}),
        )
        .await
        .expect(200);
    assert_eq!(it["price"], base - 500);
    let second = c.sell(&[(&code, 1)], None).await.unwrap();
    assert_eq!(second["lines"][0]["unit_price"], base - 500);
    // The earlier sale keeps the price it was sold at.
    let again = c
        .get(&format!(
            "/api/v1/transactions/{}",
            first["txn_id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(again["lines"][0]["unit_price"], base);

    c.send(
        reqwest::Method::PUT,
        "/api/v1/customers/C-1",
        Some(json!({"email": "nope"})),
    )
    .await
    .unwrap()
    .expect_error(422, "bad_customer");
    let cu = c
        .send(
            reqwest::Method::PUT,
            "/api/v1/customers/C-1",
            Some(json!({"name": "An", "email": "an@example.org", "consent_marketing": true})),
        )
        .await
        .unwrap()
        .expect(200);
    assert_eq!(
        (cu["name"].as_str(), cu["points"].as_i64()),
        (Some("An"), Some(0))
    );
    let id = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.post(
        &format!("/api/v1/transactions/{id}/customer"),
        json!({"customer_id": "C-404"}),
    )
    .await
    .expect_error(422, "unknown_customer");
    c.post(
        &format!("/api/v1/transactions/{id}/customer"),
        json!({"customer_id": "C-1"}),
    )
    .await
    .expect(200);
    c.post(
        &format!("/api/v1/transactions/{id}/items"),
        json!({"barcode": demo_barcode(8)}),
    )
    .await
    .expect(200);
    let t = c
        .post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    let total = t["totals"]["total"].as_i64().unwrap();
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": total}),
    )
    .await
    .expect(200);
    c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
    let cu = c.get("/api/v1/customers/C-1").await.expect(200);
    assert_eq!(cu["points"].as_i64().unwrap(), total / 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_clean_restart_and_service_endpoints_answer() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let sale = c.sell(&[(&demo_barcode(9), 2)], None).await.unwrap();
    let spec = c.get("/openapi.json").await.expect(200);
    for p in [
        "/api/v1/transactions/{id}/finalize",
        "/api/v1/auth/login",
        "/api/v1/reports/end-of-day",
    ] {
        assert!(spec["paths"][p].is_object(), "spec lacks {p}");
    }
    assert!(
        c.get("/docs")
            .await
            .expect(200)
            .as_str()
            .unwrap()
            .contains("openapi.json")
    );
    assert_eq!(c.get("/health").await.expect(200)["status"], "ok");
    let metrics = c.get("/metrics").await.expect(200);
    let metrics = metrics.as_str().unwrap();
    assert!(metrics.contains("tillmesh_sales_total 1"), "{metrics}");
    assert!(metrics.contains("tillmesh_store_fsync_seconds_bucket"));
    // SQLite's memory, read at scrape time: an open store holds schemas and pages.
    let sqlite: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tillmesh_sqlite_heap_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("tillmesh_sqlite_heap_bytes");
    assert!(sqlite > 0.0, "{metrics}");

    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let c = till.client().login("E001", "1111").await;
    let t = c
        .get(&format!(
            "/api/v1/transactions/{}",
            sale["txn_id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(t["status"], "PAID");
    assert_eq!(
        c.get(&format!(
            "/api/v1/catalog/items?barcode={}",
            demo_barcode(9)
        ))
        .await
        .expect(200)["stock"],
        98
    );
    // A new transaction after restart does not reuse a sold transaction's id.
    let next = c.post("/api/v1/transactions", json!({})).await.expect(201);
    assert_ne!(next["txn_id"], sale["txn_id"]);
}

/// A database over `startup_check_max_mb` opens unchecked and is checked after start: damage
/// found then stops the till (its fatal cause), and the marker it leaves makes the next start
/// check first (here, with no mesh to rebuild from, refuse to start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_database_is_checked_after_start_and_damage_found_then_stops_the_till() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    c.sell(&[(&demo_barcode(0), 1)], None).await.unwrap();
    let dir = till.stop().await;
    let db = dir.path().join("till.db");
    let mut cfg = support::test_config(dir.path());
    cfg.terminal.startup_check_max_mb = 0;
    // Sound: it starts, is checked, and sells on.
    let node = tillmesh::start(cfg.clone()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(node.till.fatal().borrow().is_none());
    node.stop().await.unwrap();
    // One index's root page overwritten: the till still opens (nothing reads that index at
    // start), and the check after start finds it.
    let (root, page) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let root: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'stock_movements_at'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let page: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (root, page)
    };
    let mut bytes = std::fs::read(&db).unwrap();
    let (root, page) = (root as usize, page as usize);
    let at = (root - 1) * page;
    bytes[at..at + page].fill(0xA5);
    std::fs::write(&db, bytes).unwrap();
    let node = tillmesh::start(cfg.clone()).await.unwrap();
    let mut fatal = node.till.fatal();
    let cause = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        fatal.wait_for(Option::is_some),
    )
    .await
    .expect("the check after start finds the damage")
    .unwrap()
    .clone()
    .unwrap();
    assert!(cause.contains("damaged"), "{cause}");
    drop(fatal);
    node.stop().await.unwrap();
    assert!(dir.path().join("till.db.recheck").exists());
    let err = tillmesh::start(cfg).await.unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err:#}");
    assert!(db.exists(), "left for a restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_without_a_mesh_refuses_to_start() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    c.sell(&[(&demo_barcode(0), 1)], None).await.unwrap();
    let dir = till.stop().await;
    let db = dir.path().join("till.db");
    support::damage(&db);
    let err = tillmesh::start(support::test_config(dir.path()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err:#}");
    // The file is left where it was, for a restore.
    assert!(db.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_and_its_taken_payments_survive_a_restart() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let id = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.post(
        &format!("/api/v1/transactions/{id}/items"),
        json!({"barcode": demo_barcode(2), "quantity": 2}),
    )
    .await
    .expect(200);
    let t = c
        .post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    let total = t["totals"]["total"].as_i64().unwrap();
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": 10000}),
    )
    .await
    .expect(200);
    let t = c
        .post(
            &format!("/api/v1/transactions/{id}/payments"),
            json!({"method": "qr", "amount": 5000}),
        )
        .await
        .expect(200);
    let qr = t["payments"][1]["payment_id"].as_str().unwrap().to_string();

    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let c = till.client().login("E001", "1111").await;
    let t = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200);
    assert_eq!(t["status"], "PENDING_PAYMENT");
    assert_eq!(t["lines"][0]["quantity"], 2);
    assert_eq!(t["payments"][0]["amount"], 10000);
    // The QR payment taken before the restart is still known and completes.
    support::wait_payment(&c, &qr, "CAPTURED").await;
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": total - 15000}),
    )
    .await
    .expect(200);
    assert_eq!(
        c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
            .await
            .expect(200)["status"],
        "PAID"
    );
    let next = c.post("/api/v1/transactions", json!({})).await.expect(201);
    assert_ne!(next["txn_id"].as_str().unwrap(), id);
    let t2 = c
        .post(
            &format!(
                "/api/v1/transactions/{}/items",
                next["txn_id"].as_str().unwrap()
            ),
            json!({"barcode": demo_barcode(3)}),
        )
        .await
        .expect(200);
    let _ = t2;
    // And after a further restart, the finished sale is no longer an open transaction.
    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let st = till.client().get("/api/v1/status").await.expect(200);
    assert_eq!(st["drafts_open"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_capacity_the_oldest_open_transaction_without_money_is_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::test_config(dir.path());
    cfg.checkout.drafts_max = 2;
    let till = TestTill::start_with(cfg, dir).await;
    let c = till.client().login("E001", "1111").await;
    let paid_part = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.post(
        &format!("/api/v1/transactions/{paid_part}/items"),
        json!({"barcode": demo_barcode(1)}),
    )
    .await
    .expect(200);
    c.post(
        &format!("/api/v1/transactions/{paid_part}/checkout"),
        json!({}),
    )
    .await
    .expect(200);
    c.post(
        &format!("/api/v1/transactions/{paid_part}/payments"),
        json!({"method": "cash", "tendered": 1000}),
    )
    .await
    .expect(200);
    let empty = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A third one fits: the empty one is abandoned, the one holding cash is kept.
    let third = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.get(&format!("/api/v1/transactions/{empty}"))
        .await
        .expect_error(404, "unknown_transaction");
    c.get(&format!("/api/v1/transactions/{paid_part}"))
        .await
        .expect(200);
    // When every open transaction holds money, a new one is refused.
    c.post(
        &format!("/api/v1/transactions/{third}/items"),
        json!({"barcode": demo_barcode(2)}),
    )
    .await
    .expect(200);
    c.post(&format!("/api/v1/transactions/{third}/checkout"), json!({}))
        .await
        .expect(200);
    c.post(
        &format!("/api/v1/transactions/{third}/payments"),
        json!({"method": "cash", "tendered": 1000}),
    )
    .await
    .expect(200);
    c.post("/api/v1/transactions", json!({}))
        .await
        .expect_error(409, "too_many_open_transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_qr_payment_is_drawn_as_a_qr_code() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::test_config(dir.path());
    let till = TestTill::start_with(cfg, dir).await;
    let c = till.client().login("E001", "1111").await;
    let id = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.post(
        &format!("/api/v1/transactions/{id}/items"),
        json!({"barcode": demo_barcode(3)}),
    )
    .await
    .expect(200);
    c.post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    let t = c
        .post(
            &format!("/api/v1/transactions/{id}/payments"),
            // The customer takes their time (the sandbox waits on amounts ending in 14).
            json!({"method": "qr", "amount": 5014}),
        )
        .await
        .expect(200);
    let pid = t["payments"][0]["payment_id"].as_str().unwrap().to_string();
    let svg = c.get(&format!("/api/v1/payments/{pid}/qr.svg")).await;
    assert_eq!(svg.status, 200);
    let text = svg.body.as_str().unwrap();
    assert!(text.contains("<svg") && text.contains("<path"), "{text}");
    // No code for a payment that is no longer waiting, nor for one that does not exist.
    c.post(&format!("/api/v1/payments/{pid}/cancel"), json!({}))
        .await
        .expect(200);
    c.get(&format!("/api/v1/payments/{pid}/qr.svg"))
        .await
        .expect_error(409, "no_qr");
    c.get("/api/v1/payments/P-NOPE/qr.svg")
        .await
        .expect_error(404, "unknown_payment");
    till.client()
        .get(&format!("/api/v1/payments/{pid}/qr.svg"))
        .await
        .expect_error(401, "unauthenticated");
}

/// Issue 22: a pending QR payment expires at the till after its own timeout whatever the
/// provider says (the sale is not paid and is finished in cash); the provider capturing it
/// later is recorded for a manager to refund, durably (after a restart too), counted in
/// the metrics, and never turned into a second payment of the sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_payment_expires_at_the_till_and_a_late_capture_is_kept_for_refund() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::test_config(dir.path());
    cfg.payments.qr_timeout_ms = 1_000;
    let store_id = cfg.store.store_id.clone();
    let till = TestTill::start_with(cfg, dir).await;
    let c = till.client().login("E001", "1111").await;
    let id = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    c.post(
        &format!("/api/v1/transactions/{id}/items"),
        json!({"barcode": demo_barcode(3)}),
    )
    .await
    .expect(200);
    let t = c
        .post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    let total = t["totals"]["total"].as_i64().unwrap();
    // The customer does not pay in time (the sandbox waits on amounts ending in 14).
    let t = c
        .post(
            &format!("/api/v1/transactions/{id}/payments"),
            json!({"method": "qr", "amount": 1014}),
        )
        .await
        .expect(200);
    let pid = t["payments"][0]["payment_id"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let p = c.get(&format!("/api/v1/payments/{pid}")).await.expect(200);
        if p["status"] == "EXPIRED" {
            break;
        }
        assert_eq!(p["status"], "PENDING", "{p}");
        assert!(tokio::time::Instant::now() < deadline, "never expired: {p}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The sale is not paid by it; the customer pays cash.
    c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect_error(422, "wrong_amount");
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": total}),
    )
    .await
    .expect(200);
    let done = c
        .post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
    assert_eq!(done["status"], "PAID");
    // The customer pays the QR code after all: recorded for refund.
    assert_eq!(support::sandbox_pay(&store_id, &pid).await["resultCode"], 0);
    let manager = till.client().login("M001", "9999").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let late = loop {
        let l = manager.get("/api/v1/payments/late").await.expect(200);
        if l.as_array().is_some_and(|a| !a.is_empty()) {
            break l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "late capture never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(late[0]["payment_id"], pid.as_str());
    assert_eq!(late[0]["txn_id"], id.as_str());
    assert_eq!(late[0]["amount"], 1014);
    assert!(late[0]["provider_ref"].is_string(), "{late}");
    assert!(late[0]["refund_ref"].is_null(), "{late}");
    assert_eq!(
        manager.get("/api/v1/status").await.expect(200)["late_captures"],
        1
    );
    c.get("/api/v1/payments/late")
        .await
        .expect_error(403, "manager_only");
    // The sale keeps one payment taken (the cash); the late capture is not a second one.
    let sale = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200);
    let captured: Vec<&serde_json::Value> = sale["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "CAPTURED")
        .collect();
    assert_eq!(captured.len(), 1, "{sale}");
    assert_eq!(captured[0]["method"], "cash");
    let metrics = till.client().get("/metrics").await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("tillmesh_qr_late_captures_total 1"), "{text}");
    // A manager refunds it through the provider, once: a retry answers the same refund.
    let refund = format!("/api/v1/payments/late/{pid}/refund");
    c.post(&refund, json!({}))
        .await
        .expect_error(403, "manager_only");
    let r = manager.post(&refund, json!({})).await.expect(200);
    assert!(r["refund_ref"].is_string(), "{r}");
    assert_eq!(manager.post(&refund, json!({})).await.expect(200), r);
    let orders: serde_json::Value =
        reqwest::get(format!("{}/sandbox/orders", support::pay_sandbox()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let order = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["orderId"] == format!("{store_id}-{pid}").as_str())
        .expect("the sandbox knows the order");
    assert_eq!(order["refunded"], 1014, "{order}");
    assert_eq!(
        manager.get("/api/v1/status").await.expect(200)["late_captures"],
        0
    );
    let late = manager.get("/api/v1/payments/late").await.expect(200);
    // Kept across a restart, and recorded once.
    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let manager = till.client().login("M001", "9999").await;
    let again = manager.get("/api/v1/payments/late").await.expect(200);
    assert_eq!(again, late);
}

/// Issue 18's money defects at the API: a scan typed into the cash amount was taken as
/// 8,934,003,761,434 received; a short cash payment trapped the sale (no undo, no void even
/// by a manager); a cancelled draft's number and the simulated QR reference were used again
/// after a restart; a genuine second identical item was refused as a double scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_payments_undo_and_void_with_cash_bounded_and_numbers_never_reused() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let new_sale = |barcode: String| {
        let c = c.clone();
        async move {
            let id = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
                .as_str()
                .unwrap()
                .to_string();
            c.post(
                &format!("/api/v1/transactions/{id}/items"),
                json!({"barcode": barcode}),
            )
            .await
            .expect(200);
            let t = c
                .post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
                .await
                .expect(200);
            (id, t["totals"]["total"].as_i64().unwrap())
        }
    };
    let (id, total) = new_sale(demo_barcode(2)).await;
    let pay = format!("/api/v1/transactions/{id}/payments");
    // A scanner burst as the amount received: refused, nothing taken.
    let e = c
        .post(
            &pay,
            json!({"method": "cash", "tendered": 8_934_003_761_434_i64}),
        )
        .await
        .expect_error(422, "tendered_too_high");
    assert!(e["message"].as_str().unwrap().contains("check the amount"));
    let t = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200);
    assert_eq!(t["payments"].as_array().unwrap().len(), 0);
    // A short cash payment: shown as paid, and undone (the cash handed back).
    let t = c
        .post(&pay, json!({"method": "cash", "tendered": 1000}))
        .await
        .expect(200);
    assert_eq!(
        (t["paid"].as_i64(), t["remaining_due"].as_i64()),
        (Some(1000), Some(total - 1000))
    );
    c.post(&format!("/api/v1/transactions/{id}/reopen"), json!({}))
        .await
        .expect_error(409, "payment_taken");
    let pid = t["payments"][0]["payment_id"].as_str().unwrap().to_string();
    let p = c
        .post(&format!("/api/v1/payments/{pid}/cancel"), json!({}))
        .await
        .expect(200);
    assert_eq!(p["status"], "CANCELLED");
    let t = c
        .post(&format!("/api/v1/transactions/{id}/reopen"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        (t["paid"].as_i64(), t["returned"].as_i64()),
        (Some(0), Some(1000))
    );
    // Part-paid again: a cashier cannot void it alone; a manager can, and the cash goes back.
    c.post(&format!("/api/v1/transactions/{id}/checkout"), json!({}))
        .await
        .expect(200);
    c.post(&pay, json!({"method": "cash", "tendered": 2000}))
        .await
        .expect(200);
    let void = format!("/api/v1/transactions/{id}/void");
    c.post(&void, json!({"reason": "customer left"}))
        .await
        .expect_error(403, "approval_required");
    let t = c
        .post(
            &void,
            json!({"reason": "customer left", "approval": {"employee_id": "M001", "pin": "9999"}}),
        )
        .await
        .expect(200);
    assert_eq!(t["status"], "VOID");
    assert_eq!(t["returned"].as_i64(), Some(3000));
    // A new sale starts; a six-pack bought twice: the deliberate rescan adds quantity.
    let (id2, _) = new_sale(demo_barcode(3)).await;
    c.post(&format!("/api/v1/transactions/{id2}/reopen"), json!({}))
        .await
        .expect(200);
    let items = format!("/api/v1/transactions/{id2}/items");
    c.post(&items, json!({"barcode": demo_barcode(3)}))
        .await
        .expect_error(409, "duplicate_scan");
    let t = c
        .post(&items, json!({"barcode": demo_barcode(3), "rescan": true}))
        .await
        .expect(200);
    assert_eq!(t["lines"][0]["quantity"], 2);
    // A QR payment on it; then a cancelled draft's number and the QR reference are never
    // given again after a restart.
    c.post(&format!("/api/v1/transactions/{id2}/checkout"), json!({}))
        .await
        .expect(200);
    let t = c
        .post(
            &format!("/api/v1/transactions/{id2}/payments"),
            json!({"method": "qr", "amount": 1000}),
        )
        .await
        .expect(200);
    let qr1 = t["payments"][0]["payment_id"].as_str().unwrap().to_string();
    let mut used = std::collections::BTreeSet::from([id.clone(), id2.clone()]);
    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let c = till.client().login("E001", "1111").await;
    let (id3, _) = {
        let id = c.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
            .as_str()
            .unwrap()
            .to_string();
        (id, ())
    };
    assert!(
        used.insert(id3.clone()),
        "{id3} was given before the restart"
    );
    c.post(
        &format!("/api/v1/transactions/{id3}/items"),
        json!({"barcode": demo_barcode(4)}),
    )
    .await
    .expect(200);
    c.post(&format!("/api/v1/transactions/{id3}/checkout"), json!({}))
        .await
        .expect(200);
    let t = c
        .post(
            &format!("/api/v1/transactions/{id3}/payments"),
            json!({"method": "qr", "amount": 1000}),
        )
        .await
        .expect(200);
    let qr2 = t["payments"][0]["payment_id"].as_str().unwrap().to_string();
    assert_ne!(qr1, qr2, "a QR reference was given twice");
}

/// Hold and recall (issue 18): a held sale is listed for every cashier of the till, cannot
/// be edited until recalled, survives a restart, and the recalling cashier carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_sale_is_listed_for_every_cashier_and_recalled_after_a_restart() {
    let till = TestTill::start().await;
    let a = till.client().login("E001", "1111").await;
    let id = a.post("/api/v1/transactions", json!({})).await.expect(201)["txn_id"]
        .as_str()
        .unwrap()
        .to_string();
    let items = format!("/api/v1/transactions/{id}/items");
    a.post(&items, json!({"barcode": demo_barcode(1)}))
        .await
        .expect(200);
    let t = a
        .post(&format!("/api/v1/transactions/{id}/hold"), json!({}))
        .await
        .expect(200);
    assert_eq!(t["held_by"], "E001");
    a.post(&items, json!({"barcode": demo_barcode(2)}))
        .await
        .expect_error(409, "on_hold");
    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let b = till.client().login("E002", "2222").await;
    let open = b.get("/api/v1/transactions/open").await.expect(200);
    let held: Vec<_> = open
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["held_by"] == "E001")
        .collect();
    assert_eq!(held.len(), 1, "{open}");
    assert_eq!(held[0]["txn_id"], id.as_str());
    let t = b
        .post(&format!("/api/v1/transactions/{id}/recall"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        (t["cashier"].as_str(), t["held_by"].as_str()),
        (Some("E002"), None)
    );
    b.post(&items, json!({"barcode": demo_barcode(2)}))
        .await
        .expect(200);
    b.post(&format!("/api/v1/transactions/{id}/recall"), json!({}))
        .await
        .expect_error(409, "not_held");
}

/// Cash management (issue 18): a shift opens with a float, sales in cash, a pay-in and a
/// pay-out (a manager's), a no-sale drawer open, and a close with counted cash against the
/// expected; the end-of-day report carries the shift. Bad amounts change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drawer_shift_from_float_to_counted_cash() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let approval = json!({"employee_id": "M001", "pin": "9999"});
    c.post("/api/v1/cash/no-sale", json!({"reason": "change"}))
        .await
        .expect_error(409, "no_shift");
    c.post("/api/v1/cash/shift/open", json!({"float": -5}))
        .await
        .expect_error(422, "bad_amount");
    let d = c
        .post("/api/v1/cash/shift/open", json!({"float": 200_000}))
        .await
        .expect(200);
    assert_eq!(d["summary"]["expected"], 200_000);
    c.post("/api/v1/cash/shift/open", json!({"float": 1}))
        .await
        .expect_error(409, "shift_open");
    // Two cash sales.
    let total_cash = c
        .sell(&[(demo_barcode(1).as_str(), 2)], None)
        .await
        .unwrap()["totals"]["total"]
        .as_i64()
        .unwrap()
        + c.sell(&[(demo_barcode(2).as_str(), 1)], None)
            .await
            .unwrap()["totals"]["total"]
            .as_i64()
            .unwrap();
    // A cashier's pay-out needs a manager; more than the drawer holds is refused.
    c.post(
        "/api/v1/cash/pay-out",
        json!({"amount": 10_000, "reason": "window cleaner"}),
    )
    .await
    .expect_error(403, "approval_required");
    c.post(
        "/api/v1/cash/pay-out",
        json!({"amount": 900_000_000, "reason": "too much", "approval": approval}),
    )
    .await
    .expect_error(422, "not_in_drawer");
    c.post(
        "/api/v1/cash/pay-out",
        json!({"amount": 10_000, "reason": "window cleaner", "approval": approval}),
    )
    .await
    .expect(200);
    c.post(
        "/api/v1/cash/pay-in",
        json!({"amount": 50_000, "reason": "", "approval": approval}),
    )
    .await
    .expect_error(422, "bad_reason");
    c.post(
        "/api/v1/cash/pay-in",
        json!({"amount": 50_000, "reason": "coins from the bank", "approval": approval}),
    )
    .await
    .expect(200);
    let d = c
        .post(
            "/api/v1/cash/no-sale",
            json!({"reason": "customer needed change"}),
        )
        .await
        .expect(200);
    assert_eq!(d["shift"]["no_sales"], 1);
    let expected = 200_000 + total_cash - 10_000 + 50_000;
    assert_eq!(d["summary"]["expected"], expected, "{d}");
    assert_eq!(d["summary"]["sales"], 2);
    // Counted 1,000 short, closed with a manager's PIN.
    c.post(
        "/api/v1/cash/shift/close",
        json!({"counted": expected - 1_000}),
    )
    .await
    .expect_error(403, "approval_required");
    let closed = c
        .post(
            "/api/v1/cash/shift/close",
            json!({"counted": expected - 1_000, "approval": approval}),
        )
        .await
        .expect(200);
    assert_eq!(closed["shift"]["closed"]["difference"], -1_000);
    assert_eq!(closed["shift"]["closed"]["by"], "M001");
    let d = c.get("/api/v1/cash/drawer").await.expect(200);
    assert!(d["shift"].is_null(), "{d}");
    // The end of day carries the shift (and stays the same report otherwise), also after a
    // restart.
    let dir = till.stop().await;
    let till = TestTill::start_in(dir).await;
    let c = till.client().login("M001", "9999").await;
    let eod = c.get("/api/v1/reports/end-of-day").await.expect(200);
    assert_eq!(eod["transactions"], 2, "{eod}");
    let shifts = eod["shifts"].as_array().unwrap();
    assert_eq!(shifts.len(), 1, "{eod}");
    assert_eq!(shifts[0]["summary"]["expected"], expected);
    assert_eq!(shifts[0]["shift"]["closed"]["counted"], expected - 1_000);
}

/// The back office's reads and account care (issue 18): sales history with a receipt
/// lookup, product search by name and the favourites grid, customers by phone, a refund
/// request declined, the cashier list for managers only, and unlocking a locked account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_office_history_search_customers_decline_and_unlock() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    let sold = c
        .sell(&[(demo_barcode(1).as_str(), 1)], None)
        .await
        .unwrap();
    let id = sold["txn_id"].as_str().unwrap().to_string();
    c.sell(&[(demo_barcode(2).as_str(), 3)], None)
        .await
        .unwrap();
    let h = c.get("/api/v1/transactions").await.expect(200);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[1]["txn_id"], id.as_str(), "newest first");
    assert_eq!(h[0]["items"], 3);
    let one = c
        .get(&format!("/api/v1/transactions?q={}", &id[id.len() - 2..]))
        .await
        .expect(200);
    assert!(
        one.as_array()
            .unwrap()
            .iter()
            .any(|s| s["txn_id"] == id.as_str())
    );
    c.get("/api/v1/transactions?date=yesterday")
        .await
        .expect_error(400, "bad_date");
    // Search by part of a name, case-insensitive; favourites from the config.
    let name = sold["lines"][0]["name"].as_str().unwrap().to_string();
    // The name without its first word, in lower case.
    let part = name
        .split_once(' ')
        .unwrap()
        .1
        .to_lowercase()
        .replace(' ', "%20");
    let found = c
        .get(&format!("/api/v1/catalog/search?q={part}"))
        .await
        .expect(200);
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == name.as_str()),
        "{found}"
    );
    let fav = c.get("/api/v1/catalog/favourites").await.expect(200);
    assert_eq!(fav.as_array().unwrap().len(), 6, "{fav}");
    assert_eq!(fav[0]["sku"], "SKU00001");
    // A customer found by the last digits of their phone.
    c.send(
        reqwest::Method::PUT,
        "/api/v1/customers/C-9",
        Some(json!({"name": "Binh", "phone": "+84 90 123 4567"})),
    )
    .await
    .unwrap()
    .expect(200);
    let by = c.get("/api/v1/customers?phone=4567").await.expect(200);
    assert_eq!(by[0]["name"], "Binh", "{by}");
    c.get("/api/v1/customers?phone=12")
        .await
        .expect_error(400, "bad_phone");
    // A refund request declined by a manager: the sale is paid again, nothing restocked.
    c.post(
        &format!("/api/v1/transactions/{id}/refund"),
        json!({"reason": "changed mind"}),
    )
    .await
    .expect(200);
    let decline = format!("/api/v1/transactions/{id}/refund/decline");
    c.post(&decline, json!({"reason": "opened pack"}))
        .await
        .expect_error(403, "approval_required");
    let t = c
        .post(
            &decline,
            json!({"reason": "opened pack", "approval": {"employee_id": "M001", "pin": "9999"}}),
        )
        .await
        .expect(200);
    assert_eq!(t["status"], "PAID");
    c.post(&decline, json!({"reason": "again"}))
        .await
        .expect_error(409, "invalid_transition");
    // Lock E002 with wrong PINs; a cashier cannot list or unlock; a manager can.
    for _ in 0..3 {
        till.client()
            .post(
                "/api/v1/auth/login",
                json!({"employee_id": "E002", "pin": "0000"}),
            )
            .await;
    }
    till.client()
        .post(
            "/api/v1/auth/login",
            json!({"employee_id": "E002", "pin": "2222"}),
        )
        .await
        .expect_error(423, "account_locked");
    c.get("/api/v1/cashiers")
        .await
        .expect_error(403, "approval_required");
    let m = till.client().login("M001", "9999").await;
    let list = m.get("/api/v1/cashiers").await.expect(200);
    let e2 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["employee_id"] == "E002")
        .unwrap()
        .clone();
    assert!(e2["locked_until"].is_string(), "{e2}");
    assert!(e2.get("pin_hash").is_none());
    m.post("/api/v1/cashiers/E002/unlock", json!({}))
        .await
        .expect(200);
    till.client().login("E002", "2222").await;
}

/// PIN guessing (issue 19): 200 parallel wrong PINs for one cashier. Checks run one at a
/// time per employee, so exactly the configured number of wrong PINs is verified before the
/// account locks; every other attempt is answered 423 or 429 (with `Retry-After`) without
/// hashing. After the wait a manager unlocks the account and the cashier signs in. An
/// unknown employee id answers as a wrong PIN does. A demo account is refused on a till not
/// in demo mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_pins_are_verified_at_most_the_lock_limit_and_demo_pins_need_demo_mode() {
    let till = TestTill::start().await;
    let limit = till.cfg.security.lock_attempts_max as usize;
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..200 {
        let c = till.client();
        attempts.spawn(async move {
            let pin = format!("{:04}", 2000 + i);
            let r = c
                .http
                .post(format!("{}/api/v1/auth/login", c.base))
                .json(&json!({"employee_id": "E001", "pin": pin}))
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            (r.status().as_u16(), retry)
        });
    }
    let answers = attempts.join_all().await;
    let count = |s: u16| answers.iter().filter(|(st, _)| *st == s).count();
    assert_eq!(count(401), limit, "{answers:?}");
    assert_eq!(count(401) + count(423) + count(429), 200, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s == 429)
            .all(|(_, r)| r.is_some_and(|r| r >= 1)),
        "every 429 says how long to wait"
    );
    // The asker waits; then a manager unlocks the cashier, who signs in.
    let wait = answers.iter().filter_map(|(_, r)| *r).max().unwrap_or(1);
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    till.client()
        .post(
            "/api/v1/auth/login",
            json!({"employee_id": "E001", "pin": "1111"}),
        )
        .await
        .expect_error(423, "account_locked");
    let m = till.client().login("M001", "9999").await;
    m.post("/api/v1/cashiers/E001/unlock", json!({}))
        .await
        .expect(200);
    till.client().login("E001", "1111").await;
    // An unknown employee id is a wrong PIN, nothing more; one address trying many ids
    // soon waits between tries (the account locks only guard one account each).
    let mut answers = Vec::new();
    for i in 0..8 {
        let r = till
            .client()
            .post(
                "/api/v1/auth/login",
                json!({"employee_id": format!("E9{i:02}"), "pin": "1111"}),
            )
            .await;
        answers.push((r.status, r.body["error"].as_str().unwrap_or("").to_string()));
    }
    assert_eq!(answers[0], (401, "unauthenticated".to_string()));
    assert!(
        answers
            .iter()
            .any(|(s, e)| *s == 429 && e == "too_many_attempts"),
        "{answers:?}"
    );
    let metrics = till.client().get("/metrics").await.expect(200);
    let text = metrics.as_str().unwrap_or("");
    assert!(
        text.lines()
            .any(|l| l.starts_with("tillmesh_pin_throttled_total ") && !l.ends_with(" 0")),
        "{text}"
    );
    // Out of demo mode, the example's published PINs do not sign in.
    let dir = till.stop().await;
    let mut cfg = support::test_config(dir.path());
    cfg.security.demo = false;
    let till = TestTill::start_with(cfg, dir).await;
    let e = till
        .client()
        .post(
            "/api/v1/auth/login",
            json!({"employee_id": "E001", "pin": "1111"}),
        )
        .await
        .expect_error(403, "demo_account");
    assert!(e["message"].as_str().unwrap().contains("demo mode"));
}
