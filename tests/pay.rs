//! QR payments against the sandbox provider (`tillmesh pay-sandbox`, its own process, MoMo's
//! merchant API): captured, declined, a silent provider past the till's timeout, a slow one,
//! a payment cancelled at the till and paid after, forged and duplicate notifications, and a
//! till with no provider configured.

mod support;

use serde_json::{Value, json};
use support::{Client, TestTill, basket};

async fn qr(c: &Client, id: &str, amount: i64) -> support::Answer {
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "qr", "amount": amount}),
    )
    .await
}

fn last_payment(t: &Value) -> String {
    let ps = t["payments"].as_array().unwrap();
    ps[ps.len() - 1]["payment_id"].as_str().unwrap().to_string()
}

/// A notification as the sandbox merchant's MoMo would sign it.
fn notification(order_id: &str, amount: i64, result_code: i32, trans_id: i64) -> Value {
    let mut n = tillmesh_pay::momo::Notification {
        partner_code: "TILLMESHSANDBOX".into(),
        order_id: order_id.into(),
        request_id: format!("{order_id}-N"),
        amount,
        order_info: "Sale".into(),
        order_type: "momo_wallet".into(),
        trans_id,
        result_code,
        message: "Successful.".into(),
        pay_type: "qr".into(),
        response_time: 1_767_225_600_000,
        extra_data: String::new(),
        signature: String::new(),
    };
    n.signature = tillmesh_pay::sign::hmac_sha256_hex("sandbox-secret", &n.raw("sandbox-access"));
    serde_json::to_value(n).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_payments_are_captured_declined_expired_and_timed_out_by_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::test_config(dir.path());
    cfg.payments.qr_timeout_ms = 1_500;
    let store = cfg.store.store_id.clone();
    let till = TestTill::start_with(cfg, dir).await;
    let c = till.client().login("E001", "1111").await;

    // Captured: the sale is paid by QR alone, with the provider's reference.
    let (id, total) = basket(&c, 4).await;
    let t = qr(&c, &id, total).await.expect(200);
    let pid = last_payment(&t);
    assert_eq!(t["payments"][0]["status"], "PENDING");
    let p = support::wait_payment(&c, &pid, "CAPTURED").await;
    assert!(
        p["provider_ref"].as_str().is_some_and(|r| !r.is_empty()),
        "{p}"
    );
    let done = c
        .post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
    assert_eq!(done["status"], "PAID");
    assert_eq!(done["payments"][0]["method"], "qr");

    // Declined by the customer (the sandbox declines amounts ending in 13): not paid.
    let (id, total) = basket(&c, 4).await;
    let t = qr(&c, &id, 2013).await.expect(200);
    support::wait_payment(&c, &last_payment(&t), "FAILED").await;
    c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect_error(422, "wrong_amount");

    // The provider stays silent past the till's timeout: expired at the till, not paid.
    let t = qr(&c, &id, 3014).await.expect(200);
    support::wait_payment(&c, &last_payment(&t), "EXPIRED").await;
    c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect_error(422, "wrong_amount");

    // Slow answers (amounts ending in 15, 4 s against the till's 2 s): a clear 503, nothing
    // recorded on the sale.
    let before = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200)["payments"]
        .as_array()
        .unwrap()
        .len();
    let slow = qr(&c, &id, 4015)
        .await
        .expect_error(503, "provider_unreachable");
    assert!(
        slow["message"].as_str().unwrap().contains("take cash"),
        "{slow}"
    );
    let after = c
        .get(&format!("/api/v1/transactions/{id}"))
        .await
        .expect(200);
    assert_eq!(
        after["payments"].as_array().unwrap().len(),
        before,
        "{after}"
    );

    // A QR payment cancelled at the till that the customer pays anyway: kept for refund.
    let t = qr(&c, &id, 5014).await.expect(200);
    let cancelled = last_payment(&t);
    c.post(&format!("/api/v1/payments/{cancelled}/cancel"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        support::sandbox_pay(&store, &cancelled).await["resultCode"],
        0
    );
    // Cash closes the sale meanwhile.
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": total}),
    )
    .await
    .expect(200);
    c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
    let manager = till.client().login("M001", "9999").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let l = manager.get("/api/v1/payments/late").await.expect(200);
        if let Some(x) = l
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["payment_id"] == cancelled.as_str())
        {
            assert_eq!(x["amount"], 5014, "{x}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recorded: {l}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_checked_by_signature_and_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::test_config(dir.path());
    let store = cfg.store.store_id.clone();
    let till = TestTill::start_with(cfg, dir).await;
    let c = till.client().login("E001", "1111").await;
    let (id, total) = basket(&c, 4).await;
    // The customer has not paid yet (the sandbox waits on amounts ending in 14).
    let amount = total - total.rem_euclid(100) - 86; // ends in 14
    assert_eq!(amount.rem_euclid(100), 14);
    let t = qr(&c, &id, amount).await.expect(200);
    let pid = last_payment(&t);
    let order = format!("{store}-{pid}");
    let notify = "/api/v1/payments/notify/momo";
    let anon = till.client();

    // Forged: a changed amount, another merchant's key, another partner: refused, no change.
    let mut forged = notification(&order, amount, 0, 77);
    forged["amount"] = json!(amount + 1000);
    anon.post(notify, forged)
        .await
        .expect_error(401, "unauthenticated");
    let mut n = tillmesh_pay::momo::Notification {
        signature: String::new(),
        ..serde_json::from_value(notification(&order, amount, 0, 77)).unwrap()
    };
    n.signature = tillmesh_pay::sign::hmac_sha256_hex("another-secret", &n.raw("sandbox-access"));
    anon.post(notify, serde_json::to_value(&n).unwrap())
        .await
        .expect_error(401, "unauthenticated");
    let mut other = notification(&order, amount, 0, 77);
    other["partnerCode"] = json!("SOMEONEELSE");
    anon.post(notify, other)
        .await
        .expect_error(401, "unauthenticated");
    // Not an order of this store.
    anon.post(notify, notification("S999-T1-X-P1", amount, 0, 77))
        .await
        .expect_error(404, "unknown_payment");
    // Malformed: a clear 4xx.
    let bad = anon.post(notify, json!({"orderId": order})).await;
    assert!((400..500).contains(&bad.status), "{bad:?}");
    assert_eq!(
        c.get(&format!("/api/v1/payments/{pid}")).await.expect(200)["status"],
        "PENDING"
    );

    // Genuine, sent twice (providers retry): applied once.
    let genuine = notification(&order, amount, 0, 4_242);
    let a = anon.post(notify, genuine.clone()).await;
    assert_eq!(a.status, 204, "{a:?}");
    let a = anon.post(notify, genuine).await;
    assert_eq!(a.status, 204, "{a:?}");
    let p = support::wait_payment(&c, &pid, "CAPTURED").await;
    assert_eq!(p["provider_ref"], "4242");
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": total - amount}),
    )
    .await
    .expect(200);
    let done = c
        .post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
    let qr_paid: Vec<&Value> = done["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["method"] == "qr")
        .collect();
    assert_eq!(qr_paid.len(), 1, "{done}");
    let dir = till.stop().await;
    let db = tillmesh_store::Store::open(dir.path().join("till.db")).unwrap();
    let chain = db.read(|r| r.audit_all()).unwrap();
    let notified = chain
        .iter()
        .filter(|e| e.record.action == "payment.notified" && e.record.target == pid)
        .count();
    assert_eq!(notified, 1, "the duplicate was applied again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_without_a_provider_takes_no_qr_payment() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::test_config(dir.path());
    cfg.payments.qr = None;
    let till = TestTill::start_with(cfg, dir).await;
    let c = till.client().login("E001", "1111").await;
    let (id, total) = basket(&c, 4).await;
    let e = qr(&c, &id, total)
        .await
        .expect_error(409, "qr_not_configured");
    assert!(e["message"].as_str().unwrap().contains("take cash"), "{e}");
    till.client()
        .post(
            "/api/v1/payments/notify/momo",
            notification("S001-T1-X-P1", 1000, 0, 1),
        )
        .await
        .expect_error(409, "qr_not_configured");
    // Cash still works.
    c.post(
        &format!("/api/v1/transactions/{id}/payments"),
        json!({"method": "cash", "tendered": total}),
    )
    .await
    .expect(200);
    c.post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
}
