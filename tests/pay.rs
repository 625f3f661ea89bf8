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

/// How many times the till's audit log recorded a notification of payment `pid` (it stops).
async fn notified(till: TestTill, pid: &str) -> usize {
    let dir = till.stop().await;
    let db = tillmesh_store::Store::open(dir.path().join("till.db")).unwrap();
    let chain = db.read(|r| r.audit_all()).unwrap();
    chain
        .iter()
        .filter(|e| e.record.action == "payment.notified" && e.record.target == pid)
        .count()
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
    assert_eq!(
        notified(till, &pid).await,
        1,
        "the duplicate was applied again"
    );
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

/// VNPay's notification parameters for `order_id`, signed as the sandbox merchant's VNPay
/// would sign them.
fn vnpay_notification(
    order_id: &str,
    amount: i64,
    status: &str,
    no: &str,
) -> Vec<(String, String)> {
    let mut p: std::collections::BTreeMap<String, String> = [
        ("vnp_TmnCode", "TILLMESHSANDBOX".to_string()),
        ("vnp_Amount", (amount * 100).to_string()),
        ("vnp_BankCode", "NCB".into()),
        ("vnp_OrderInfo", "Sale".into()),
        ("vnp_PayDate", "20261205153000".into()),
        ("vnp_ResponseCode", status.into()),
        ("vnp_TransactionNo", no.into()),
        ("vnp_TransactionStatus", status.into()),
        ("vnp_TxnRef", order_id.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let data = tillmesh_pay::vnpay::hash_data(p.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    p.insert(
        "vnp_SecureHash".into(),
        tillmesh_pay::sign::hmac_sha512_hex("sandbox-secret", &data),
    );
    p.into_iter().collect()
}

/// VNPay through the sandbox: the QR is VNPay's signed payment URL; the payment exists at
/// VNPay once the customer's phone opens it (until then the till's queries hear "not found"
/// and it stays pending); captured and recorded once; forged notifications refused with
/// VNPay's answer codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnpay_payments_are_signed_urls_captured_once_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::test_config(dir.path());
    let sandbox = support::pay_sandbox();
    let mut q = support::sandbox_qr(sandbox);
    q.provider = tillmesh_pay::ProviderKind::Vnpay;
    q.endpoint = format!("{sandbox}/paymentv2/vpcpay.html");
    q.access_key = String::new();
    cfg.payments.qr = Some(q);
    let store = cfg.store.store_id.clone();
    let till = TestTill::start_with(cfg, dir).await;
    let c = till.client().login("E001", "1111").await;
    let http = reqwest::Client::new();

    let (id, total) = basket(&c, 4).await;
    let t = qr(&c, &id, total).await.expect(200);
    let pid = last_payment(&t);
    let url = t["payments"][0]["qr_payload"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{sandbox}/paymentv2/vpcpay.html?"))
            && url.contains(&format!("vnp_Amount={}", total * 100))
            && url.contains("vnp_SecureHash="),
        "{url}"
    );
    // Not opened yet: VNPay knows nothing of it; the till keeps it pending.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(
        c.get(&format!("/api/v1/payments/{pid}")).await.expect(200)["status"],
        "PENDING"
    );
    // A URL changed by anyone is refused by VNPay.
    let page = http
        .get(url.replace(&format!("vnp_Amount={}", total * 100), "vnp_Amount=100"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("invalid signature"), "{page}");
    // The customer scans and pays.
    let page = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("pay"), "{page}");
    let p = support::wait_payment(&c, &pid, "CAPTURED").await;
    assert!(
        p["provider_ref"].as_str().is_some_and(|r| !r.is_empty()),
        "{p}"
    );
    assert_eq!(p["provider"], "vnpay");
    let done = c
        .post(&format!("/api/v1/transactions/{id}/finalize"), json!({}))
        .await
        .expect(200);
    assert_eq!(done["status"], "PAID");

    // Notifications: a payment the customer has not paid (the sandbox waits on amounts
    // ending in 14), its notification sent by the test as VNPay would.
    let (id, total) = basket(&c, 4).await;
    let amount = total - total.rem_euclid(100) - 86;
    let t = qr(&c, &id, amount).await.expect(200);
    let pid = last_payment(&t);
    let order = format!("{store}-{pid}");
    http.get(t["payments"][0]["qr_payload"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let notify = |params: Vec<(String, String)>| {
        let query = params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
            .collect::<Vec<_>>()
            .join("&");
        let http = http.clone();
        let url = format!("http://{}/api/v1/payments/notify/vnpay?{query}", till.addr);
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Forged (the amount changed after signing): 401, RspCode 97; not ours: 404, RspCode 01.
    let mut forged = vnpay_notification(&order, amount, "00", "5555");
    for (k, v) in forged.iter_mut() {
        if k == "vnp_Amount" {
            *v = ((amount + 1_000) * 100).to_string();
        }
    }
    let (status, body) = notify(forged).await;
    assert_eq!(
        (status, body["RspCode"].as_str()),
        (401, Some("97")),
        "{body}"
    );
    let (status, body) = notify(vnpay_notification("S999-T1-X-P1", amount, "00", "5555")).await;
    assert_eq!(
        (status, body["RspCode"].as_str()),
        (404, Some("01")),
        "{body}"
    );
    assert_eq!(
        c.get(&format!("/api/v1/payments/{pid}")).await.expect(200)["status"],
        "PENDING"
    );
    // Genuine, twice: recorded once.
    for _ in 0..2 {
        let (status, body) = notify(vnpay_notification(&order, amount, "00", "5555")).await;
        assert_eq!(
            (status, body["RspCode"].as_str()),
            (200, Some("00")),
            "{body}"
        );
    }
    let p = support::wait_payment(&c, &pid, "CAPTURED").await;
    assert_eq!(p["provider_ref"], "5555");
    assert_eq!(
        notified(till, &pid).await,
        1,
        "the duplicate was applied again"
    );
}
