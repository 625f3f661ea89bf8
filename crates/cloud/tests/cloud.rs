//! The cloud's suite, run on SQLite and on PostgreSQL (each test has a `sqlite` and a
//! `postgres` variant; the latter needs `TILLMESH_PG_URL`, see scripts/pg-up.sh): exactly-once
//! ingestion under retries and racing leaders, fencing, credentials and cross-store
//! rejection, malformed and oversized bodies, master-data deltas, and reports that equal the
//! sums of the events sent.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use support::{Backend, DAY0_MS, Env, Shop};
use tillmesh_cloud::auth::Role;
use tillmesh_cloud::now_ms;
use tillmesh_pos::event::{Event, EventBody};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await
            }
        }
    )*};
}

on_both!(
    retries_are_stored_once,
    racing_leaders_store_each_event_once,
    a_deposed_leader_is_fenced,
    a_forged_term_is_refused_and_an_admin_reset_readmits_a_store,
    a_store_renews_its_own_credential_but_not_a_revoked_one,
    credentials_and_stores_are_checked,
    bad_bodies_are_refused_and_change_nothing,
    master_data_comes_down_as_deltas,
    categories_and_customers_are_a_second_stream_older_tills_never_see,
    reports_equal_the_sums_of_the_events,
    events_of_a_newer_kind_are_kept_and_projection_waits_before_them,
    returns_of_part_of_a_sale_come_off_the_net,
    an_upload_in_flight_is_answered_when_the_cloud_stops,
    a_stores_seal_keys_keep_the_first_ca_every_record_and_the_newest_revocations,
    hq_enrols_approved_tills_with_terminal_ids_never_issued_twice,
    a_provider_statement_is_reconciled_against_the_stores_qr_payments,
    stored_value_is_reported_per_account_from_every_tills_entries,
);

/// Stored value (issue 22): gift cards, store credit and coupons loaded at one till, rights
/// moved to another, spent at both; the cloud's report sums every till's counter entries
/// once however often a batch is sent, masks gift card codes, and overdraws nothing.
async fn stored_value_is_reported_per_account_from_every_tills_entries(b: Backend) {
    use tillmesh_pos::payment::Method;
    let Some(env) = Env::start(b).await else {
        return;
    };
    let t = env.token("S001");
    let mut shop = Shop::new("S001", &[1, 2]);
    let at = |h: u64| DAY0_MS + h * HOUR;
    let (a, b2) = (shop.tills[0].id(), shop.tills[1].id());
    let mut one = vec![
        shop.tills[0].issue_gift_card("GC-CLOUD-0001", 10_000, "E001", "activation", at(9)),
        shop.tills[0].issue_gift_card("coupon:CP-1", 500, "M001", "coupon", at(9)),
        shop.tills[1].issue_gift_card("credit:C-1", 2_000, "M001", "goodwill", at(9)),
    ];
    // Till 1 hands 4,000 of the card to till 2 (as its ask would be answered).
    let moved = shop.tills[0]
        .move_gift_card_rights("GC-CLOUD-0001", b2, 4_000, at(10))
        .unwrap();
    one.push(moved.clone());
    shop.tills[1].apply_remote(&moved, at(10)).unwrap();
    one.extend(shop.stored_value_sale(0, at(11), 6_000, Method::GiftCard, "GC-CLOUD-0001"));
    one.extend(shop.stored_value_sale(1, at(11), 3_000, Method::GiftCard, "GC-CLOUD-0001"));
    one.extend(shop.stored_value_sale(0, at(12), 500, Method::Coupon, "coupon:CP-1"));
    one.extend(shop.stored_value_sale(1, at(12), 1_500, Method::StoreCredit, "credit:C-1"));
    // Past the rights: nothing recorded.
    assert!(
        shop.stored_value_sale(0, at(13), 1, Method::Coupon, "coupon:CP-1")
            .is_empty()
    );
    assert!(
        shop.stored_value_sale(1, at(13), 1_001, Method::GiftCard, "GC-CLOUD-0001")
            .is_empty()
    );
    assert_eq!(one.len(), 8);
    let mine: Vec<Event> = one.iter().filter(|e| e.origin == a).cloned().collect();
    let theirs: Vec<Event> = one.iter().filter(|e| e.origin == b2).cloned().collect();
    for _ in 0..2 {
        for batch in [shop.batch(1, 1, &mine), shop.batch(1, 1, &theirs)] {
            let (s, v) = env.upload_binary(&t, &batch).await;
            assert_eq!(s, 200, "{v}");
        }
    }
    let (s, r) = env
        .get(&env.admin, "/api/v1/reports/stored-value?store=S001")
        .await;
    assert_eq!(s, 200, "{r}");
    let got: BTreeMap<(String, String), (i64, i64, i64)> = r["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                (
                    l["kind"].as_str().unwrap().to_owned(),
                    l["id"].as_str().unwrap().to_owned(),
                ),
                (
                    l["loaded"].as_i64().unwrap(),
                    l["spent"].as_i64().unwrap(),
                    l["outstanding"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    let want: BTreeMap<(String, String), (i64, i64, i64)> = [
        (("coupon", "CP-1"), (500, 500, 0)),
        (("gift_card", "..0001"), (10_000, 9_000, 1_000)),
        (("store_credit", "C-1"), (2_000, 1_500, 500)),
    ]
    .into_iter()
    .map(|((k, i), v)| ((k.to_owned(), i.to_owned()), v))
    .collect();
    assert_eq!(got, want, "{r}");
    assert_eq!(
        (r["outstanding_total"].as_i64(), r["overdrawn"].as_i64()),
        (Some(1_500), Some(0))
    );
    let (s, e) = env
        .get(&env.admin, "/api/v1/reports/stored-value?store=S404")
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (404, Some("unknown_store")),
        "{e}"
    );
    env.stop().await;
}

const HOUR: u64 = 3_600_000;

/// Reconciliation (issue 22): a store's QR payments of a day, uploaded, against a provider
/// statement with planted discrepancies: each is found, nothing else is; cash payments and
/// another day's are not compared; a malformed statement or no store is a 4xx.
async fn a_provider_statement_is_reconciled_against_the_stores_qr_payments(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let token = env.token("S001");
    let mut shop = Shop::new("S001", &[1, 2]);
    let mut events = Vec::new();
    let mut qr = Vec::new();
    for i in 0..30_u64 {
        let provider = (i % 3 != 0).then_some("vnpay");
        let e = shop.sale(
            (i % 2) as usize,
            DAY0_MS + HOUR + i * 60_000,
            &[("SKU00001", 1, 10_000 + i as i64)],
            provider,
        );
        if provider.is_some() {
            // The shop's payment ids: T<terminal>-<n>-P1.
            let terminal = 1 + i % 2;
            qr.push((
                format!("T{terminal}-{}-P1", shop.next_txn),
                10_000 + i as i64,
            ));
        }
        events.push(e);
    }
    // The next day's QR sale is not in today's reconciliation.
    events.push(shop.sale(
        0,
        DAY0_MS + 25 * HOUR,
        &[("SKU00001", 1, 7_777)],
        Some("vnpay"),
    ));
    let (s, a) = env.upload(&token, &shop.batch(1, 1, &events)).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(qr.len(), 20);
    let mut csv = String::from("reference,provider_ref,amount,status,paid_at\n");
    for (n, (reference, amount)) in qr.iter().enumerate() {
        match n {
            3 => continue, // missing at the provider
            5 => csv.push_str(&format!("{reference},V{n},{},captured,x\n", amount + 1)), // differs
            _ => csv.push_str(&format!("{reference},V{n},{amount},captured,x\n")),
        }
    }
    csv.push_str("T9-1-P1,V99,4200,captured,x\n"); // a late capture no sale has
    csv.push_str(&format!("{},V98,1,refunded,x\n", qr[0].0));
    let post = |query: &str, body: String| {
        let req = env
            .http
            .post(format!("{}/api/v1/admin/reconciliation{query}", env.base))
            .bearer_auth(&env.admin)
            .header("content-type", "text/csv")
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, r) = post("?store=S001&from=2026-11-20&to=2026-11-20", csv.clone()).await;
    assert_eq!(s, 200, "{r}");
    let found: Vec<(String, String)> = r["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["reference"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("missing_at_provider".to_string(), qr[3].0.clone()),
            ("missing_in_ledger".to_string(), "T9-1-P1".to_string()),
            ("amount_differs".to_string(), qr[5].0.clone()),
        ],
        "{r}"
    );
    assert_eq!(
        (r["matched"].as_u64(), r["not_captured"].as_u64()),
        (Some(18), Some(1))
    );
    let (s, e) = post(
        "?store=S001&from=2026-11-20&to=2026-11-20",
        "reference,amount\nx,1\n".into(),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (422, Some("bad_statement")),
        "{e}"
    );
    let (s, e) = post("?from=2026-11-20&to=2026-11-20", csv.clone()).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("missing_store")),
        "{e}"
    );
    let r = env
        .http
        .post(format!(
            "{}/api/v1/admin/reconciliation?store=S001",
            env.base
        ))
        .bearer_auth(&token)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "a store credential cannot reconcile"
    );
    env.stop().await;
}

/// Enrolment at HQ (issue 21): HQ holds a store's CA only if its key is its certificate's;
/// an approved till's request gets the next terminal id and a certificate on its own key;
/// the same key asking again gets the same id, another key the next; a code that is not
/// the key's, a damaged request, another store's credential or a store whose CA HQ does not
/// hold change nothing.
async fn hq_enrols_approved_tills_with_terminal_ids_never_issued_twice(b: Backend) {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let Some(env) = Env::start(b).await else {
        return;
    };
    let cloud = &env.handle.cloud;
    let token = env.token("S001");
    let (_, csr) = tillmesh_pki::request().unwrap();
    let code = tillmesh_pki::Request::parse(&csr).unwrap().code();
    let ask = |csr: String, code: String| {
        let token = token.clone();
        let env = &env;
        async move {
            env.post(
                &token,
                "/api/v1/sync/enrolments",
                json!({"csr": csr, "code": code, "approved_by": "E2 on T1"}),
            )
            .await
        }
    };
    let (s, a) = ask(csr.clone(), code.clone()).await;
    assert_eq!((s, a["error"].as_str()), (409, Some("no_store_ca")), "{a}");
    let ca = tillmesh_pki::create_store_ca("S001").unwrap();
    let other = tillmesh_pki::create_store_ca("S001").unwrap();
    let mixed = tillmesh_pki::Pem {
        cert: ca.cert.clone(),
        key: other.key.clone(),
    };
    let r = env
        .http
        .put(format!("{}/api/v1/admin/stores/S001/ca", env.base))
        .bearer_auth(&env.admin)
        .json(&json!({"cert": mixed.cert, "key": mixed.key, "next_terminal": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(cloud.ledger.store_ca("S001").await.unwrap(), None);
    let r = env
        .http
        .put(format!("{}/api/v1/admin/stores/S001/ca", env.base))
        .bearer_auth(&env.admin)
        .json(&json!({"cert": ca.cert, "key": ca.key, "next_terminal": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    // Another CA for the store is refused; the first stays.
    assert!(cloud.hold_store_ca("S001", other.clone(), 9).await.is_err());

    let (s, a) = ask(csr.clone(), "AAAA-AAAA".into()).await;
    assert_eq!(
        (s, a["error"].as_str()),
        (422, Some("code_mismatch")),
        "{a}"
    );
    let (s, a) = ask(csr.replace('M', "N"), code.clone()).await;
    assert_eq!(s, 422, "{a}");
    let (s, a) = ask(csr.clone(), code.to_lowercase()).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["terminal"], 4);
    assert_eq!(a["store_id"], "S001");
    let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (label, terminal) = tillmesh_pos::seal::check_issued(
        der(a["ca"].as_str().unwrap()).as_ref(),
        der(a["cert"].as_str().unwrap()).as_ref(),
    )
    .unwrap();
    assert_eq!((label.as_str(), terminal), ("s001", 4));
    // A retry: the same id. Another key: the next.
    let (s, again) = ask(csr.clone(), code.clone()).await;
    assert_eq!((s, again["terminal"].as_u64()), (200, Some(4)), "{again}");
    let (_, csr2) = tillmesh_pki::request().unwrap();
    let code2 = tillmesh_pki::Request::parse(&csr2).unwrap().code();
    let (s, a2) = ask(csr2, code2).await;
    assert_eq!((s, a2["terminal"].as_u64()), (200, Some(5)), "{a2}");
    // Another store's credential: that store has no CA at HQ.
    let (s, a) = env
        .post(
            &env.token("S002"),
            "/api/v1/sync/enrolments",
            json!({"csr": csr, "code": code, "approved_by": "E2 on T1"}),
        )
        .await;
    assert_eq!((s, a["error"].as_str()), (409, Some("no_store_ca")), "{a}");
    // Ids issued concurrently are distinct.
    let mut asks = Vec::new();
    for _ in 0..6 {
        let (_, c) = tillmesh_pki::request().unwrap();
        let code = tillmesh_pki::Request::parse(&c).unwrap().code();
        asks.push(ask(c, code));
    }
    let mut ids: Vec<u64> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .map(|(s, a)| {
            assert_eq!(s, 200, "{a}");
            a["terminal"].as_u64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (6..12).collect::<Vec<_>>());
    assert_eq!(
        cloud
            .ledger
            .store_ca("S001")
            .await
            .unwrap()
            .unwrap()
            .next_terminal,
        12
    );
    env.stop().await;
}

/// What the cloud checks seals with (`seal_keys`, issue 19): the first CA pinned stays,
/// records accumulate once each, and the newest revocation list is the one read back.
async fn a_stores_seal_keys_keep_the_first_ca_every_record_and_the_newest_revocations(b: Backend) {
    use tillmesh_pos::revocation::SignedRevocations;
    use tillmesh_pos::seal::KeyRecord;
    let Some(env) = Env::start(b).await else {
        return;
    };
    let ledger = &env.handle.cloud.ledger;
    assert_eq!(ledger.seal_keys("S001").await.unwrap(), Default::default());
    let record = |origin, signs_from| KeyRecord {
        origin,
        signs_from,
        cert: vec![1, 2, 3],
        sig: vec![4; 64],
    };
    let list = |n: u64| SignedRevocations {
        list: format!("list {n}"),
        sig: "00".into(),
    };
    let json = |n| serde_json::to_string(&list(n)).unwrap();
    ledger
        .put_seal_keys(
            "S001",
            Some(vec![0xA]),
            vec![record(5, 1)],
            Some((5, json(5))),
        )
        .await
        .unwrap();
    ledger
        .put_seal_keys(
            "S001",
            Some(vec![0xB]),
            vec![record(5, 1), record(5, 9), record(6, 1)],
            Some((3, json(3))),
        )
        .await
        .unwrap();
    let keys = ledger.seal_keys("S001").await.unwrap();
    assert_eq!(keys.ca, Some(vec![0xA]), "the first CA pinned stays");
    assert_eq!(keys.records, vec![record(5, 1), record(5, 9), record(6, 1)]);
    assert_eq!(keys.revocations, Some(list(5)));
    assert_eq!(ledger.seal_keys("S002").await.unwrap(), Default::default());
    env.stop().await;
}

fn sales(shop: &mut Shop, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let till = i % shop.tills.len();
            shop.sale(
                till,
                DAY0_MS + 9 * HOUR + i as u64 * 60_000,
                &[("SKU00001", 2, 15_000), ("SKU00002", 1, 9_900)],
                None,
            )
        })
        .collect()
}

fn wm(v: &Value) -> BTreeMap<u64, (u64, u64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["origin"].as_u64().unwrap(),
                (
                    w["contiguous"].as_u64().unwrap(),
                    w["max_seq"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

async fn retries_are_stored_once(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let token = env.token("S001");
    let mut shop = Shop::new("S001", &[1, 2]);
    let events = sales(&mut shop, 40);
    let batch = shop.batch(1, 1, &events);
    let (s, a) = env.upload(&token, &batch).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (a["accepted"].as_u64(), a["duplicate"].as_u64()),
        (Some(40), Some(0))
    );
    // The leader did not see the answer and retries, once as JSON and once in binary.
    let (s, a2) = env.upload(&token, &batch).await;
    assert_eq!(s, 200);
    assert_eq!(
        (a2["accepted"].as_u64(), a2["duplicate"].as_u64()),
        (Some(0), Some(40))
    );
    let (s, a3) = env.upload_binary(&token, &batch).await;
    assert_eq!(s, 200, "{a3}");
    assert_eq!(
        (a3["accepted"].as_u64(), a3["duplicate"].as_u64()),
        (Some(0), Some(40))
    );
    assert_eq!(env.events_of("S001").await, 40);
    // Watermarks: each till sold 20, contiguous.
    let marks = wm(&a3["watermarks"]);
    assert_eq!(marks.len(), 2);
    assert!(
        marks.values().all(|&(c, m)| c == 20 && m == 20),
        "{marks:?}"
    );
    let (_, r) = env
        .get(
            &env.admin,
            "/api/v1/reports/sales?store=S001&from=2026-11-20&to=2026-11-20",
        )
        .await;
    assert_eq!(r["totals"]["transactions"], 40);
    assert_eq!(r["totals"]["gross"], 40 * 39_900);
    env.stop().await;
}

async fn racing_leaders_store_each_event_once(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let token = env.token("S001");
    let mut shop = Shop::new("S001", &[1, 2, 3]);
    let events = sales(&mut shop, 300);
    // Two "leaders": the old one (term 4) and the new one (term 5) upload the same events in
    // overlapping batches at the same time.
    let mut stored = 0;
    let mut refused = 0;
    for chunk in events.chunks(50) {
        let old = shop.batch(4, 1, chunk);
        let new = shop.batch(5, 2, chunk);
        let ((s1, a1), (s2, a2)) = tokio::join!(env.upload(&token, &old), env.upload(&token, &new));
        for (s, a) in [(s1, a1), (s2, a2)] {
            match s {
                200 => stored += a["accepted"].as_u64().unwrap(),
                409 => {
                    assert_eq!(a["error"], "stale_term", "{a}");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {a}"),
            }
        }
    }
    assert_eq!(stored, 300, "every event stored exactly once");
    assert!(
        refused >= 5,
        "the old leader is fenced once the new term is seen"
    );
    assert_eq!(env.events_of("S001").await, 300);
    // Same term, another leader: refused.
    let (s, a) = env.upload(&token, &shop.batch(5, 3, &events[..1])).await;
    assert_eq!(
        (s, a["error"].as_str()),
        (409, Some("term_conflict")),
        "{a}"
    );
    let (_, r) = env
        .get(
            &env.admin,
            "/api/v1/reports/sales?store=S001&from=2026-11-20&to=2026-11-21",
        )
        .await;
    assert_eq!(r["totals"]["transactions"], 300);
    env.stop().await;
}

async fn a_deposed_leader_is_fenced(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let token = env.token("S001");
    let mut shop = Shop::new("S001", &[1, 2]);
    let events = sales(&mut shop, 30);
    let (s, a) = env.upload(&token, &shop.batch(3, 1, &events[..10])).await;
    assert_eq!(s, 200, "{a}");
    let before = wm(&a["watermarks"]);
    let (s, a) = env.upload(&token, &shop.batch(2, 2, &events[10..20])).await;
    assert_eq!(s, 409);
    assert_eq!(a["error"], "stale_term");
    assert!(a["message"].as_str().unwrap().contains("term 2"), "{a}");
    // Nothing of the refused batch was stored; the watermark did not move.
    let (_, w) = env.get(&token, "/api/v1/sync/watermarks").await;
    assert_eq!(wm(&w), before);
    assert_eq!(env.events_of("S001").await, 10);
    // An empty batch is a heartbeat and is fenced too.
    let (s, _) = env.upload(&token, &shop.batch(2, 2, &[])).await;
    assert_eq!(s, 409);
    let (s, a) = env.upload(&token, &shop.batch(4, 2, &events[10..])).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["term"], 4);
    assert!(wm(&a["watermarks"]).values().all(|&(c, _)| c == 15));
    let (_, f) = env.get(&env.admin, "/api/v1/reports/fleet").await;
    let s1 = &f["stores"][0];
    assert_eq!(
        (
            s1["store_id"].as_str(),
            s1["term"].as_u64(),
            s1["leader"].as_u64()
        ),
        (Some("S001"), Some(4), Some(2))
    );
    assert_eq!(s1["tills_seen"], json!([1, 2]));
    env.stop().await;
}

/// A batch with `term = u64::MAX` was acknowledged and fenced the store out for good (every
/// later upload `stale_term`, whatever the admin did). Now such a jump is refused, and a
/// store that lost its Raft state (its new leader starts again at a low term) is re-admitted
/// by `tillmesh hq reset-term`.
async fn a_forged_term_is_refused_and_an_admin_reset_readmits_a_store(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let token = env.token("S001");
    let mut shop = Shop::new("S001", &[1, 2]);
    let events = sales(&mut shop, 30);
    let (s, a) = env.upload(&token, &shop.batch(5, 1, &events[..10])).await;
    assert_eq!(s, 200, "{a}");
    let (s, a) = env
        .upload(&token, &shop.batch(u64::MAX, 2, &events[10..20]))
        .await;
    assert_eq!(s, 422, "{a}");
    assert_eq!(a["error"], "term_jump", "{a}");
    assert_eq!(env.events_of("S001").await, 10, "nothing of it was stored");
    // The real leader goes on.
    let (s, a) = env.upload(&token, &shop.batch(6, 1, &events[10..20])).await;
    assert_eq!(s, 200, "{a}");
    // Every raft.db lost: the store's new leader starts at term 1 and is fenced...
    let (s, a) = env.upload(&token, &shop.batch(1, 2, &events[20..])).await;
    assert_eq!((s, a["error"].as_str()), (409, Some("stale_term")), "{a}");
    // ...until an admin resets the store's term.
    assert!(env.handle.cloud.ledger.reset_term("S001").await.unwrap());
    assert!(!env.handle.cloud.ledger.reset_term("NOPE").await.unwrap());
    let (s, a) = env.upload(&token, &shop.batch(1, 2, &events[20..])).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(env.events_of("S001").await, 30);
    env.stop().await;
}

/// A store trades its valid credential for a fresh one (tills renew before expiry); an admin
/// credential cannot, and a revoked one cannot renew itself.
async fn a_store_renews_its_own_credential_but_not_a_revoked_one(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let old = env.token("S001");
    let (s, a) = env.post(&old, "/api/v1/sync/credential", json!({})).await;
    assert_eq!(s, 200, "{a}");
    let fresh = a["token"].as_str().unwrap().to_string();
    assert!(a["expires_ms"].as_u64().unwrap() > now_ms() + 3_600_000);
    let (s, _) = env.get(&fresh, "/api/v1/sync/watermarks").await;
    assert_eq!(s, 200);
    let (s, a) = env
        .post(&env.admin, "/api/v1/sync/credential", json!({}))
        .await;
    assert_eq!(s, 403, "{a}");
    let mut st = env
        .handle
        .cloud
        .ledger
        .store("S001")
        .await
        .unwrap()
        .unwrap();
    st.tokens_valid_after_ms = now_ms() + 1;
    env.handle.cloud.ledger.put_store(st).await.unwrap();
    let (s, a) = env.post(&fresh, "/api/v1/sync/credential", json!({})).await;
    assert_eq!(s, 401, "{a}");
    env.stop().await;
}

async fn credentials_and_stores_are_checked(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let s1 = env.token("S001");
    let mut shop1 = Shop::new("S001", &[1]);
    let mut shop2 = Shop::new("S002", &[7]);
    let mut events = sales(&mut shop1, 5);
    let mut batch = shop1.batch(1, 1, &events);
    // One event of another store in the batch: 403, and nothing of it is stored.
    events.push(shop2.sale(0, DAY0_MS + HOUR, &[("SKU00003", 1, 100)], None));
    batch.events.push(tillmesh_cloud_proto::StoreEvent {
        store: "S002".into(),
        event: events[5].clone(),
    });
    let (s, a) = env.upload(&s1, &batch).await;
    assert_eq!((s, a["error"].as_str()), (403, Some("wrong_store")), "{a}");
    assert_eq!(env.events_of("S001").await, 0);
    assert_eq!(env.events_of("S002").await, 0);
    let good = shop1.batch(1, 1, &events[..5]);
    // No credential, a forged one, an expired one, an admin one, an unknown store's.
    let r = env
        .http
        .post(format!("{}/api/v1/sync/upload", env.base))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let forged = tillmesh_cloud::auth::Keyring::new(&tillmesh_cloud::config::AuthConfig {
        keys: vec![tillmesh_cloud::config::KeyConfig {
            id: "k1".into(),
            secret: "another-secret-another-secret-another".into(),
        }],
        store_token_days: 1,
        admins: vec![],
        admin_valid_after_ms: 0,
        master_key_seed: None,
    })
    .unwrap()
    .issue("S001", Role::Store, now_ms(), 3_600_000)
    .0;
    assert_eq!(
        env.upload(&forged, &good).await.1["error"],
        "invalid_credential"
    );
    let expired = env
        .handle
        .cloud
        .keys
        .issue("S001", Role::Store, now_ms() - 10 * HOUR, HOUR)
        .0;
    assert_eq!(
        env.upload(&expired, &good).await,
        (
            401,
            json!({"error": "expired_credential", "message": "the credential has expired; ask HQ for a new one"})
        )
    );
    assert_eq!(env.upload(&env.admin, &good).await.0, 403);
    let stranger = env.token("S999");
    let (s, a) = env
        .upload(&stranger, &Shop::new("S999", &[1]).batch(1, 1, &[]))
        .await;
    assert_eq!((s, a["error"].as_str()), (401, Some("unknown_store")));
    // A store credential cannot read reports.
    assert_eq!(env.get(&s1, "/api/v1/reports/fleet").await.0, 403);
    // Revocation: a new token with revoke_older makes the old one useless.
    let (s, t) = env
        .post(
            &env.admin,
            "/api/v1/admin/stores/S001/token",
            json!({"revoke_older": true}),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let fresh = t["token"].as_str().unwrap().to_owned();
    assert_eq!(
        env.upload(&s1, &good).await.1["error"],
        "revoked_credential"
    );
    assert_eq!(
        env.get(&s1, "/api/v1/sync/master").await.1["error"],
        "revoked_credential"
    );
    let (s, a) = env.upload(&fresh, &good).await;
    assert_eq!((s, a["accepted"].as_u64()), (200, Some(5)));
    // The fleet view names the refusals of S001's own credentials (the expired one and the
    // two revoked ones; a forged one is not the store's, a stranger's store is unknown).
    let (_, f) = env.get(&env.admin, "/api/v1/reports/fleet").await;
    let row = f["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["store_id"] == "S001")
        .unwrap()
        .clone();
    assert_eq!(row["credential_refused"], 3, "{f}");
    assert!(row["credential_refused_ms"].as_u64().unwrap() > 0, "{f}");
    assert_eq!(row["quarantined"], 0, "{f}");
    // A disabled store is refused.
    let (s, _) = env
        .http
        .put(format!("{}/api/v1/admin/stores/S001", env.base))
        .bearer_auth(&env.admin)
        .json(&json!({"name": "Riverside", "utc_offset_minutes": 420, "enabled": false}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(s, 200);
    assert_eq!(env.upload(&fresh, &good).await.1["error"], "unknown_store");
    env.stop().await;
}

async fn bad_bodies_are_refused_and_change_nothing(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let t = env.token("S001");
    // An admin body must be a JSON object (serde would read a struct from an array too).
    let (s, a) = env
        .post(&env.admin, "/api/v1/admin/stores/S001/token", json!([]))
        .await;
    assert_eq!(
        (s, a["error"].as_str()),
        (400, Some("malformed_body")),
        "{a}"
    );
    let mut shop = Shop::new("S001", &[1]);
    let events = sales(&mut shop, 3);
    let (s, a) = env
        .raw_upload(
            &t,
            "application/json",
            b"{\"term\": 1, \"leader\":".to_vec(),
        )
        .await;
    assert_eq!(
        (s, a["error"].as_str()),
        (400, Some("malformed_batch")),
        "{a}"
    );
    let (s, a) = env
        .raw_upload(
            &t,
            tillmesh_cloud_proto::BINARY_CONTENT_TYPE,
            vec![0xff; 64],
        )
        .await;
    assert_eq!(
        (s, a["error"].as_str()),
        (400, Some("malformed_batch")),
        "{a}"
    );
    let (s, a) = env.raw_upload(&t, "text/plain", b"hello".to_vec()).await;
    assert_eq!(
        (s, a["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    // A body announced past the limit is refused before it is read.
    let (s, a) =
        support::announce_upload(&env, &t, tillmesh_cloud_proto::BATCH_BYTES_MAX + 1).await;
    assert_eq!((s, a["error"].as_str()), (413, Some("too_large")), "{a}");
    let many = shop.batch(
        1,
        1,
        &vec![events[0].clone(); tillmesh_cloud_proto::BATCH_EVENTS_MAX + 1],
    );
    let (s, a) = env.upload_binary(&t, &many).await;
    assert_eq!((s, a["error"].as_str()), (413, Some("too_large")), "{a}");
    let (s, a) = env.upload(&t, &shop.batch(0, 1, &events)).await;
    assert_eq!((s, a["error"].as_str()), (422, Some("invalid_batch")));
    // An event that does not hold together (seq 0), after two good ones: all refused.
    let mut bad = events.clone();
    bad[2].seq = 0;
    let (s, a) = env.upload(&t, &shop.batch(1, 1, &bad)).await;
    assert_eq!(
        (s, a["error"].as_str()),
        (422, Some("invalid_event")),
        "{a}"
    );
    assert!(a["message"].as_str().unwrap().starts_with("event 2"), "{a}");
    // A till writing in another till's name.
    let mut forged = events[0].clone();
    forged.origin = tillmesh_crdt::ReplicaId::for_terminal(9, 1);
    let (s, _) = env.upload(&t, &shop.batch(1, 1, &[forged])).await;
    assert_eq!(s, 422);
    assert_eq!(env.events_of("S001").await, 0);
    let (_, f) = env.get(&env.admin, "/api/v1/reports/fleet").await;
    assert_eq!(f["stores"][0]["term"], 0, "no refused batch moved the term");
    let (s, _) = env
        .get(&env.admin, "/api/v1/reports/sales?from=2026-13-01")
        .await;
    assert_eq!(s, 400);
    env.stop().await;
}

/// A store newer than the cloud uploads an event of a kind the cloud does not know (issue
/// 20): it is stored (exactly once, watermarks move over it), and the origin's projection
/// stops before it, so no report folds anything past a fact it cannot read; a batch of a
/// newer binary format is refused with a reason naming the side to upgrade.
async fn events_of_a_newer_kind_are_kept_and_projection_waits_before_them(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let t = env.token("S001");
    let mut shop = Shop::new("S001", &[1]);
    let mut events = sales(&mut shop, 5);
    events[3].body = EventBody::Unknown {
        kind: "GiftCardRedeemed".into(),
        payload: vec![9, 9, 9],
    };
    let batch = shop.batch(1, 1, &events);
    for round in 0..2 {
        let (s, a) = env.upload_binary(&t, &batch).await;
        assert_eq!(s, 200, "{a}");
        assert_eq!(a["accepted"].as_u64(), Some(if round == 0 { 5 } else { 0 }));
        assert!(
            wm(&a["watermarks"])
                .values()
                .all(|&(c, m)| c == 5 && m == 5)
        );
    }
    assert_eq!(env.events_of("S001").await, 5);
    let (_, r) = env
        .get(
            &env.admin,
            "/api/v1/reports/sales?store=S001&from=2026-11-20&to=2026-11-20",
        )
        .await;
    assert_eq!(r["totals"]["transactions"], 3, "{r}");
    // A batch in a binary format newer than the cloud reads.
    let mut bytes = tillmesh_cloud_proto::encode_batch(&batch).unwrap();
    bytes[3] = bytes[3].wrapping_add(1);
    let (s, a) = env
        .raw_upload(&t, tillmesh_cloud_proto::BINARY_CONTENT_TYPE, bytes)
        .await;
    assert_eq!(
        (s, a["error"].as_str()),
        (400, Some("unsupported_version")),
        "{a}"
    );
    assert!(
        a["message"].as_str().unwrap().contains("upgrade the cloud"),
        "{a}"
    );
    // An event the store quarantined (its deltas are another till's): format 1 refuses the
    // batch; format 2 keeps it as quarantined, held (the watermark passes it), never folded.
    let mut more = sales(&mut shop, 2);
    more[0].origin = tillmesh_crdt::ReplicaId(more[0].origin.0 + 1);
    more[0].hlc.replica = more[0].origin;
    more[0].seq = 1;
    let forged = shop.batch(1, 1, &more[..1]);
    let v1 = tillmesh_cloud_proto::encode_batch_as(&forged, 1).unwrap();
    let (s, a) = env
        .raw_upload(&t, tillmesh_cloud_proto::BINARY_CONTENT_TYPE, v1)
        .await;
    assert_eq!(
        (s, a["error"].as_str()),
        (422, Some("invalid_event")),
        "{a}"
    );
    let (s, a) = env.upload_binary(&t, &shop.batch(1, 1, &more)).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["accepted"], 2, "{a}");
    let forged_origin = more[0].origin.0;
    assert!(
        wm(&a["watermarks"]).get(&forged_origin) == Some(&(1, 1)),
        "{a}"
    );
    assert_eq!(env.events_of("S001").await, 7);
    let (_, r) = env
        .get(
            &env.admin,
            "/api/v1/reports/sales?store=S001&from=2026-11-20&to=2026-11-20",
        )
        .await;
    assert_eq!(
        r["totals"]["transactions"], 3,
        "nothing quarantined is folded: {r}"
    );
    // The fleet view counts it against the store.
    let (_, f) = env.get(&env.admin, "/api/v1/reports/fleet").await;
    let s1 = f["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["store_id"] == "S001")
        .unwrap();
    assert_eq!(s1["quarantined"], 1, "{f}");
    env.stop().await;
}

/// Units returned from a paid sale (`ItemsReturned`) come off the day's net sales, once
/// however often the batch is sent.
async fn returns_of_part_of_a_sale_come_off_the_net(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let t = env.token("S001");
    let mut shop = Shop::new("S001", &[1]);
    let mut events = sales(&mut shop, 2);
    let EventBody::SaleRecorded { sale, .. } = &events[0].body else {
        panic!("a sale");
    };
    let txn = sale.txn_id.clone();
    let back = tillmesh_pos::returns::ReturnedLine {
        line_no: sale.lines[0].line_no,
        quantity: 1,
        amount: 15_000,
    };
    events.push(shop.tills[0].record_return(
        &txn,
        false,
        |status| EventBody::ItemsReturned {
            txn_id: txn.clone(),
            lines: vec![back],
            amount: 15_000,
            by: "E001".into(),
            approved_by: "M001".into(),
            reason: "damaged".into(),
            status,
        },
        DAY0_MS + 10 * HOUR,
    ));
    let batch = shop.batch(1, 1, &events);
    for _ in 0..2 {
        let (s, a) = env.upload_binary(&t, &batch).await;
        assert_eq!(s, 200, "{a}");
    }
    let (_, r) = env
        .get(
            &env.admin,
            "/api/v1/reports/sales?store=S001&from=2026-11-20&to=2026-11-20",
        )
        .await;
    assert_eq!(r["totals"]["returned_amount"], 15_000, "{r}");
    assert_eq!(r["totals"]["net"], 2 * 39_900 - 15_000, "{r}");
    env.stop().await;
}

fn item(sku: &str, price: i64) -> Value {
    json!({"put": {"item": {"sku": sku, "name": format!("Item {sku}"), "category": "Snacks",
        "tax_rate_bp": 1000, "base_price": price, "barcodes": [], "active": true, "low_stock_threshold": 0}}})
}

async fn master_data_comes_down_as_deltas(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let (s1, s2) = (env.token("S001"), env.token("S002"));
    let (s, v) = env
        .post(
            &env.admin,
            "/api/v1/admin/master",
            json!({"changes": [item("A", 1000), item("B", 2000), item("C", 3000)]}),
        )
        .await;
    assert_eq!((s, v["version"].as_u64()), (200, Some(3)), "{v}");
    let (_, m) = env.get(&s1, "/api/v1/sync/master?since=0").await;
    assert_eq!(m["version"], 3);
    assert_eq!(m["more"], false);
    assert_eq!(m["changes"].as_array().unwrap().len(), 3);
    assert_eq!(m["changes"][1]["body"]["item"]["base_price"], 2000);
    // Signed by HQ for the asking store, over exactly these changes.
    let page: tillmesh_cloud_proto::MasterChanges = serde_json::from_value(m.clone()).unwrap();
    let sig = page.signature.clone().expect("the page is signed");
    assert_eq!((sig.store.as_str(), sig.since, sig.version), ("S001", 0, 3));
    let pairs = tillmesh_cloud_proto::master_pairs(&page.changes).unwrap();
    let key = hex::decode(env.handle.cloud.master_public_key().unwrap()).unwrap();
    let verify = |store: &str, pairs: &[(String, Option<String>)]| {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key)
            .verify(
                &tillmesh_cloud_proto::master_message(store, 0, 3, pairs),
                &hex::decode(&sig.sig).unwrap(),
            )
            .is_ok()
    };
    assert!(verify("S001", &pairs));
    assert!(!verify("S002", &pairs), "bound to the store");
    assert!(!verify("S001", &pairs[1..]), "bound to every change");
    // Version 4: a store price for S001 only; 5: B deleted; 6: a promotion; 7: A repriced; 8: a cashier.
    let edits = json!({"changes": [
        {"store": "S001", "put": {"price": {"sku": "A", "price": 900, "effective_from_ms": 0, "scope": "store"}}},
        {"delete": {"kind": "item", "key": "B"}},
        {"put": {"promotion": {"id": "P1", "name": "10% off", "type": "percentage", "bp": 1000, "categories": ["Snacks"]}}},
        item("A", 1100),
        {"store": "S002", "cashier": {"employee_id": "E9", "name": "New Hire", "role": "cashier", "pin": "4321"}},
    ]});
    let (s, v) = env.post(&env.admin, "/api/v1/admin/master", edits).await;
    assert_eq!((s, v["version"].as_u64()), (200, Some(8)), "{v}");
    let (_, m) = env.get(&s1, "/api/v1/sync/master?since=3").await;
    let keys: Vec<(String, u64, bool)> = m["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!(
                    "{}:{}",
                    c["kind"].as_str().unwrap(),
                    c["key"].as_str().unwrap()
                ),
                c["version"].as_u64().unwrap(),
                c["body"].is_null(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("price:A@0".to_string(), 4, false),
            ("item:B".to_string(), 5, true),
            ("promotion:P1".to_string(), 6, false),
            ("item:A".to_string(), 7, false),
        ]
    );
    assert_eq!(m["version"], 8);
    // S002 does not see S001's price, and sees its own cashier (a PIN hash, never the PIN).
    let (_, m2) = env.get(&s2, "/api/v1/sync/master?since=3").await;
    let kinds: Vec<&str> = m2["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["item", "promotion", "item", "cashier"]);
    let cashier = &m2["changes"][3]["body"]["cashier"];
    assert!(
        cashier["pin_hash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$")
    );
    assert!(!m2.to_string().contains("4321"));
    // Paging.
    // Records carry the version of their last change: from 0, S001 sees C@3, A's price@4,
    // B's deletion@5, P1@6, A@7.
    let (_, p) = env.get(&s1, "/api/v1/sync/master?since=0&limit=2").await;
    assert_eq!(
        (p["more"].as_bool(), p["version"].as_u64()),
        (Some(true), Some(4))
    );
    let (_, p) = env.get(&s1, "/api/v1/sync/master?since=3&limit=2").await;
    assert_eq!(
        (p["more"].as_bool(), p["version"].as_u64()),
        (Some(true), Some(5))
    );
    // The upload answer says newer data exists.
    let mut shop = Shop::new("S001", &[1]);
    let ev = sales(&mut shop, 1);
    let mut batch = shop.batch(1, 1, &ev);
    batch.master_version = 3;
    let (_, a) = env.upload(&s1, &batch).await;
    assert_eq!(
        (a["master_version"].as_u64(), a["master_stale"].as_bool()),
        (Some(8), Some(true))
    );
    batch.master_version = 8;
    let (_, a) = env.upload(&s1, &batch).await;
    assert_eq!(a["master_stale"], false);
    // Bad edits: refused whole, nothing versioned.
    let (s, e) = env
        .post(
            &env.admin,
            "/api/v1/admin/master",
            json!({"changes": [item("D", 1), item("E", -5)]}),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (422, Some("invalid_change")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().starts_with("change 1"));
    let (s, _) = env
        .post(
            &env.admin,
            "/api/v1/admin/master",
            json!({"changes": [item("D", 1), {"delete": {"kind": "item", "key": "nope"}}]}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = env.post(&env.admin, "/api/v1/admin/master", json!({"changes": [{"store": "S001", "put": {"price": {"sku": "A", "price": 5, "effective_from_ms": 0, "scope": "chain"}}}]})).await;
    assert_eq!(s, 422);
    let (_, m) = env.get(&s1, "/api/v1/sync/master?since=8").await;
    assert_eq!(
        (
            m["version"].as_u64(),
            m["changes"].as_array().unwrap().len()
        ),
        (Some(8), 0)
    );
    env.stop().await;
}

async fn categories_and_customers_are_a_second_stream_older_tills_never_see(b: Backend) {
    // No background projector: its rebuild of HQ's customer record is a new ext version,
    // which would race the versions this test reads.
    let Some(env) = Env::start_with(b, 0).await else {
        return;
    };
    let s1 = env.token("S001");
    let customer =
        json!({"put": {"customer": {"id": "C1", "name": "Mai", "phone": "0901 234 567"}}});
    let category =
        json!({"put": {"category": {"id": "snacks", "name": "Snacks", "parent": "food"}}});
    let (s, v) = env
        .post(
            &env.admin,
            "/api/v1/admin/master",
            json!({"changes": [item("A", 1000), category, customer]}),
        )
        .await;
    assert_eq!(
        (s, v["version"].as_u64(), v["ext_version"].as_u64()),
        (200, Some(1), Some(2)),
        "{v}"
    );
    // The first stream, as every till (a 0.1.0 one too) asks for it: the item only.
    let (_, m) = env.get(&s1, "/api/v1/sync/master?since=0").await;
    let kinds: Vec<&str> = m["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        (kinds, m["version"].as_u64()),
        (vec!["item"], Some(1)),
        "{m}"
    );
    assert!(m.get("stream").is_none(), "{m}");
    // The second, with its own versions, signed under the stream's own name.
    let (_, x) = env.get(&s1, "/api/v1/sync/master?since=0&stream=ext").await;
    assert_eq!(
        (x["stream"].as_str(), x["version"].as_u64()),
        (Some("ext"), Some(2)),
        "{x}"
    );
    assert_eq!(x["changes"][0]["body"]["category"]["parent"], "food", "{x}");
    assert_eq!(x["changes"][1]["body"]["customer"]["name"], "Mai", "{x}");
    let page: tillmesh_cloud_proto::MasterChanges = serde_json::from_value(x.clone()).unwrap();
    let sig = page.signature.clone().expect("signed");
    assert_eq!(sig.store, "S001/ext");
    let pairs = tillmesh_cloud_proto::master_pairs(&page.changes).unwrap();
    let key = hex::decode(env.handle.cloud.master_public_key().unwrap()).unwrap();
    let verify = |store: &str| {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key)
            .verify(
                &tillmesh_cloud_proto::master_message(store, 0, 2, &pairs),
                &hex::decode(&sig.sig).unwrap(),
            )
            .is_ok()
    };
    assert!(verify("S001/ext") && !verify("S001"), "bound to the stream");
    // Second-stream changes leave the first stream's version alone: no needless pull.
    let mut shop = Shop::new("S001", &[1]);
    let ev = sales(&mut shop, 1);
    let mut batch = shop.batch(1, 1, &ev);
    batch.master_version = 1;
    let (_, a) = env.upload(&s1, &batch).await;
    assert_eq!(
        (a["master_version"].as_u64(), a["master_stale"].as_bool()),
        (Some(1), Some(false)),
        "{a}"
    );
    // Bad asks and bad records: a clear error, nothing versioned.
    let (s, e) = env
        .get(&s1, "/api/v1/sync/master?since=0&stream=nope")
        .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("bad_stream")), "{e}");
    // A version past what a signed 64-bit integer holds (the schema's int64) is refused, on
    // the stores' pull and on the admin's view alike.
    for (who, path) in [
        (&s1, "/api/v1/sync/master?since=9223372036854775808"),
        (&env.admin, "/api/v1/admin/master?since=9223372036854775808"),
    ] {
        let (s, e) = env.get(who, path).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (400, Some("bad_since")),
            "{path}: {e}"
        );
    }
    for (bad, why) in [
        (
            json!({"put": {"customer": {"id": "C2", "name": "X", "points": {"S001": 50}}}}),
            "points",
        ),
        (
            json!({"put": {"customer": {"id": "no spaces", "name": "X"}}}),
            "id",
        ),
        (
            json!({"put": {"customer": {"id": "C3", "email": "not-an-address"}}}),
            "email",
        ),
        (
            json!({"store": "S001", "put": {"category": {"id": "x", "name": "X"}}}),
            "chain-wide",
        ),
        (
            json!({"put": {"category": {"id": "x", "name": "X", "parent": "x"}}}),
            "own parent",
        ),
        (json!({"put": {"category": {"id": "", "name": "X"}}}), "id"),
    ] {
        let (s, e) = env
            .post(
                &env.admin,
                "/api/v1/admin/master",
                json!({"changes": [bad]}),
            )
            .await;
        assert_eq!(
            (s, e["error"].as_str()),
            (422, Some("invalid_change")),
            "{e}"
        );
        assert!(e["message"].as_str().unwrap().contains(why), "{why}: {e}");
    }
    let (s, e) = env
        .post(
            &env.admin,
            "/api/v1/admin/master",
            json!({"changes": [{"delete": {"kind": "customer", "key": "C1"}}]}),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (422, Some("invalid_change")),
        "{e}"
    );
    let (s, v) = env
        .post(
            &env.admin,
            "/api/v1/admin/master",
            json!({"changes": [{"delete": {"kind": "category", "key": "snacks"}}]}),
        )
        .await;
    assert_eq!(
        (s, v["ext_version"].as_u64(), v["version"].as_u64()),
        (200, Some(3), Some(1)),
        "{v}"
    );
    let (_, x) = env.get(&s1, "/api/v1/sync/master?since=2&stream=ext").await;
    assert_eq!(x["changes"][0]["key"], "snacks", "{x}");
    assert!(x["changes"][0]["body"].is_null(), "{x}");

    // Loyalty across stores: C1 earns points at S001 and registers a new phone at S002,
    // where they also spend points; HQ's record merges both stores.
    let now = tillmesh_cloud::now_ms();
    let mut s001 = Shop::new("S001", &[2]);
    let earn = s001.tills[0].change_points("C1", 120, now);
    let mut s002 = Shop::new("S002", &[1]);
    let me = s002.tills[0].id();
    let patch = tillmesh_pos::customer::CustomerPatch {
        phone: Some("0988 000 111".into()),
        ..Default::default()
    };
    let change = s002.tills[0]
        .customers_mut()
        .edit(me, "C1", &patch)
        .unwrap();
    let edited = s002.tills[0].update_customer("C1", change, now);
    let spend = s002.tills[0].change_points("C1", -20, now);
    let (s, a) = env.upload(&s1, &s001.batch(1, 1, &[earn])).await;
    assert_eq!(s, 200, "{a}");
    let s2 = env.token("S002");
    let (s, a) = env.upload(&s2, &s002.batch(1, 1, &[edited, spend])).await;
    assert_eq!(s, 200, "{a}");
    env.handle.cloud.catch_up().await.unwrap();
    let (_, x) = env.get(&s1, "/api/v1/sync/master?since=3&stream=ext").await;
    let rec = &x["changes"].as_array().unwrap().last().unwrap()["body"]["customer"];
    assert_eq!(rec["name"], "Mai", "HQ's name stays: {x}");
    assert_eq!(rec["phone"], "0988 000 111", "S002's newer phone: {x}");
    assert_eq!(rec["points"], json!({"S001": 120, "S002": -20}), "{x}");
    // Projected again (a retried upload): no new version.
    let before = x["version"].as_u64().unwrap();
    env.handle.cloud.catch_up().await.unwrap();
    let (_, x) = env
        .get(
            &s1,
            &format!("/api/v1/sync/master?since={before}&stream=ext"),
        )
        .await;
    assert_eq!(x["changes"].as_array().unwrap().len(), 0, "{x}");
    env.stop().await;
}

/// A small deterministic generator (xorshift), so the workload is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn reports_equal_the_sums_of_the_events(b: Backend) {
    let Some(env) = Env::start(b).await else {
        return;
    };
    let mut rng = Rng(0x5eed_1234_abcd);
    let skus = ["SKU00001", "SKU00002", "SKU00003", "SKU00004", "SKU00005"];
    // Expected figures, computed from the events as they are made.
    let mut by_day: BTreeMap<(String, u64), (i64, i64)> = BTreeMap::new(); // (store, day) -> (count, gross)
    let mut net: BTreeMap<String, i64> = BTreeMap::new();
    let mut pay: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new(); // (store, provider) -> (amount, reversed)
    let mut qty: BTreeMap<String, i64> = BTreeMap::new(); // units of unreversed sales, both stores
    let mut stock: BTreeMap<(String, String), i64> = BTreeMap::new();
    for store in ["S001", "S002"] {
        let token = env.token(store);
        let mut shop = Shop::new(store, &[1, 2, 3]);
        let mut events = Vec::new();
        for sku in skus {
            events.push(shop.receive(0, sku, 500, DAY0_MS));
            *stock.entry((store.into(), sku.into())).or_default() += 500;
        }
        for i in 0..150u64 {
            let day = i % 3;
            let till = (i % 3) as usize;
            let lines: Vec<(&str, u32, i64)> = (0..1 + rng.next(3))
                .map(|_| {
                    (
                        skus[rng.next(5) as usize],
                        1 + rng.next(4) as u32,
                        1_000 * (1 + rng.next(20) as i64),
                    )
                })
                .collect();
            let provider = ["", "vnpay", "momo"][rng.next(3) as usize];
            let e = shop.sale(
                till,
                DAY0_MS + day * 24 * HOUR + 8 * HOUR + i * 1000,
                &lines,
                (!provider.is_empty()).then_some(provider),
            );
            let EventBody::SaleRecorded { sale, .. } = &e.body else {
                unreachable!()
            };
            let total = sale.totals.total;
            let d = by_day.entry((store.into(), day)).or_default();
            d.0 += 1;
            d.1 += total;
            let reversal = match rng.next(10) {
                0 => Some(0),     // voided
                1 => Some(total), // refunded
                _ => None,
            };
            let p = pay.entry((store.into(), provider.into())).or_default();
            p.0 += total;
            if reversal.is_some() {
                p.1 += total;
            } else {
                *net.entry(store.into()).or_default() += total;
                for l in &sale.lines {
                    *qty.entry(l.sku.clone()).or_default() += i64::from(l.quantity);
                }
            }
            for l in &sale.lines {
                *stock.entry((store.into(), l.sku.clone())).or_default() -= i64::from(l.quantity);
            }
            let txn = sale.txn_id.clone();
            events.push(e);
            if let Some(r) = reversal {
                events.push(shop.reverse(till, &txn, r, DAY0_MS + day * 24 * HOUR + 20 * HOUR));
            }
        }
        // Upload out of order and in uneven batches, with one batch repeated.
        events.reverse();
        let mut start = 0;
        let mut n = 0;
        while start < events.len() {
            let end = (start + 7 + n * 13 % 40).min(events.len());
            let (s, a) = env
                .upload(&token, &shop.batch(1, 1, &events[start..end]))
                .await;
            assert_eq!(s, 200, "{a}");
            if n == 2 {
                let (s, a) = env
                    .upload(&token, &shop.batch(1, 1, &events[start..end]))
                    .await;
                assert_eq!((s, a["accepted"].as_u64()), (200, Some(0)));
            }
            start = end;
            n += 1;
        }
        assert_eq!(env.events_of(store).await as usize, events.len());
    }
    let (s, r) = env
        .get(
            &env.admin,
            "/api/v1/reports/sales?from=2026-11-20&to=2026-11-22",
        )
        .await;
    assert_eq!(s, 200, "{r}");
    for row in r["rows"].as_array().unwrap() {
        let store = row["store"].as_str().unwrap().to_owned();
        let day = match row["period"].as_str().unwrap() {
            "2026-11-20" => 0,
            "2026-11-21" => 1,
            "2026-11-22" => 2,
            p => panic!("unexpected period {p}"),
        };
        let want = by_day[&(store, day)];
        assert_eq!(
            (
                row["transactions"].as_i64().unwrap(),
                row["gross"].as_i64().unwrap()
            ),
            want,
            "{row}"
        );
    }
    assert_eq!(r["rows"].as_array().unwrap().len(), 6);
    let total_net: i64 = net.values().sum();
    assert_eq!(r["totals"]["net"].as_i64().unwrap(), total_net);
    for (group, rows) in [("week", 2), ("month", 2)] {
        let (_, g) = env
            .get(
                &env.admin,
                &format!("/api/v1/reports/sales?from=2026-11-20&to=2026-11-22&group={group}"),
            )
            .await;
        // The 20th-22nd is Friday to Sunday: one ISO week, one month, per store.
        assert_eq!(g["rows"].as_array().unwrap().len(), rows, "{g}");
        assert_eq!(g["totals"], r["totals"]);
    }
    let (_, s1) = env
        .get(
            &env.admin,
            "/api/v1/reports/sales?store=S001&from=2026-11-20&to=2026-11-22",
        )
        .await;
    assert_eq!(s1["totals"]["net"].as_i64().unwrap(), net["S001"]);
    let (_, p) = env
        .get(
            &env.admin,
            "/api/v1/reports/payments?from=2026-11-20&to=2026-11-22",
        )
        .await;
    let got: BTreeMap<(String, String), (i64, i64)> = p["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    r["store"].as_str().unwrap().to_owned(),
                    r["provider"].as_str().unwrap().to_owned(),
                ),
                (
                    r["amount"].as_i64().unwrap(),
                    r["reversed_amount"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, pay);
    let (_, t) = env
        .get(
            &env.admin,
            "/api/v1/reports/top-skus?from=2026-11-20&to=2026-11-22&limit=5",
        )
        .await;
    let top: BTreeMap<String, i64> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["sku"].as_str().unwrap().to_owned(),
                r["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(top, qty);
    let first = t["rows"][0]["quantity"].as_i64().unwrap();
    assert_eq!(first, *qty.values().max().unwrap(), "sorted by units");
    for store in ["S001", "S002"] {
        let (_, inv) = env
            .get(
                &env.admin,
                &format!("/api/v1/reports/inventory?store={store}"),
            )
            .await;
        let got: BTreeMap<(String, String), i64> = inv["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    (store.to_owned(), r["sku"].as_str().unwrap().to_owned()),
                    r["on_hand"].as_i64().unwrap(),
                )
            })
            .collect();
        let want: BTreeMap<_, _> = stock
            .iter()
            .filter(|((s, _), _)| s == store)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_eq!(got, want);
    }
    // HQ sets SKU00001's reorder point above its stock: the report names it and flags it
    // low in every store; the others stay as they were.
    let mut low = item("SKU00001", 22_000);
    low["put"]["item"]["low_stock_threshold"] = json!(10_000);
    let (s, v) = env
        .post(
            &env.admin,
            "/api/v1/admin/master",
            json!({"changes": [low]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    for store in ["S001", "S002"] {
        let (_, inv) = env
            .get(
                &env.admin,
                &format!("/api/v1/reports/inventory?store={store}"),
            )
            .await;
        assert_eq!(inv["low"], 1, "{store}: {inv}");
        let row = |sku: &str| {
            inv["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["sku"] == sku)
                .unwrap()
                .clone()
        };
        let (a, b) = (row("SKU00001"), row("SKU00002"));
        assert_eq!(
            (&a["low"], &a["name"], &a["low_stock_threshold"]),
            (&json!(true), &json!("Item SKU00001"), &json!(10_000)),
            "{a}"
        );
        assert_eq!(b["low"], false, "{b}");
    }
    let (_, f) = env.get(&env.admin, "/api/v1/reports/fleet").await;
    assert_eq!(f["stores"][1]["tills_seen"], json!([1, 2, 3]));
    assert_eq!(f["stores"][1]["unprojected"], 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_openapi_answer() {
    let env = Env::start(Backend::Sqlite).await.unwrap();
    let (s, h) = env.get("", "/health").await;
    assert_eq!((s, h["database"].as_str()), (200, Some("sqlite")));
    // The dashboard is served with a policy that allows no inline script or style.
    for path in ["/", "/dashboard.js", "/dashboard.css"] {
        let r = env
            .http
            .get(format!("{}{path}", env.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
    }
    let page = env
        .http
        .get(format!("{}/", env.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("<script>") && !page.contains("<style>"),
        "no inline script or style"
    );
    // Unknown routes and methods answer JSON too.
    let (s, e) = env.get("", "/api/v1/nothing-here").await;
    assert_eq!((s, e["error"].as_str()), (404, Some("no_route")), "{e}");
    let r = env
        .http
        .delete(format!("{}/api/v1/reports/fleet", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "method_not_allowed");
    let (_, doc) = env.get("", "/openapi.json").await;
    assert!(doc["paths"]["/api/v1/sync/upload"]["post"].is_object());
    let mut shop = Shop::new("S001", &[1]);
    let ev = sales(&mut shop, 2);
    env.upload(&env.token("S001"), &shop.batch(1, 1, &ev)).await;
    env.upload(&env.token("S001"), &shop.batch(1, 1, &ev)).await;
    let text = env
        .http
        .get(format!("{}/metrics", env.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("tillmesh_cloud_events_received_total{store=\"S001\"} 2"),
        "{text}"
    );
    assert!(text.contains("tillmesh_cloud_events_duplicate_total{store=\"S001\"} 2"));
    assert!(text.contains("tillmesh_cloud_store_lag_seconds{store=\"S001\"}"));
    let page = env
        .http
        .get(format!("{}/", env.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Tillmesh HQ"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_when_configured() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let mut cfg = support::config(tillmesh_cloud::config::DatabaseConfig::Sqlite {
        path: dir.path().join("c.db"),
    });
    cfg.tls = Some(tillmesh_cloud::config::TlsConfig {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    });
    let h = tillmesh_cloud::start(cfg).await.unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap()])
        .resolve("localhost", h.addr)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{}/health", h.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Plain HTTP on the TLS port gets nowhere.
    assert!(
        !reqwest::get(format!("http://{}/health", h.addr))
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    );
    h.stop().await;
}

/// Two stateless instances behind a "load balancer" on one PostgreSQL database: racing
/// leaders upload through different instances, and every event is still stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_store_each_event_once() {
    let Some(a) = Env::start(Backend::Postgres).await else {
        return;
    };
    let mut cfg = support::config(tillmesh_cloud::config::DatabaseConfig::Postgres {
        url: a.pg_url.clone().unwrap(),
        pool_size: 8,
    });
    cfg.projection_interval_ms = 50;
    let b = tillmesh_cloud::start(cfg).await.unwrap();
    let token = a.token("S001");
    let mut shop = Shop::new("S001", &[1, 2, 3]);
    let events = sales(&mut shop, 200);
    let mut stored = 0;
    for (i, chunk) in events.chunks(40).enumerate() {
        let t = 10 + 2 * i as u64;
        let (old, new) = (shop.batch(t, 1, chunk), shop.batch(t + 1, 2, chunk));
        let via_b = async {
            let r = a
                .http
                .post(format!("http://{}/api/v1/sync/upload", b.addr))
                .bearer_auth(&token)
                .json(&new)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        };
        let ((s1, a1), (s2, a2)) = tokio::join!(a.upload(&token, &old), via_b);
        for (s, ack) in [(s1, a1), (s2, a2)] {
            match s {
                200 => stored += ack["accepted"].as_u64().unwrap(),
                409 => assert_eq!(ack["error"], "stale_term"),
                other => panic!("{other}: {ack}"),
            }
        }
    }
    assert_eq!(stored, 200);
    assert_eq!(a.events_of("S001").await, 200);
    let (_, r) = a
        .get(
            &a.admin,
            "/api/v1/reports/sales?store=S001&from=2026-11-20&to=2026-11-21",
        )
        .await;
    assert_eq!(r["totals"]["transactions"], 200);
    b.stop().await;
    a.stop().await;
}

/// The dashboard's sign-in (issue 18): a user and password from `[[auth.admins]]` give an
/// admin credential that reads reports; a wrong password or an unknown user is one 401,
/// an overlong field a 422, and neither gives a credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_sign_in_with_a_password_for_an_admin_credential() {
    let env = Env::start(Backend::Sqlite).await.unwrap();
    let login = |user: &str, password: &str| {
        let body = serde_json::json!({"user": user, "password": password});
        let http = env.http.clone();
        let url = format!("{}/api/v1/auth/login", env.base);
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, bad) = login("ops", "not the password").await;
    assert_eq!(
        (s, bad["error"].as_str()),
        (401, Some("bad_login")),
        "{bad}"
    );
    let (s, unknown) = login("nobody", support::ADMIN_PASSWORD).await;
    assert_eq!((s, unknown["error"].as_str()), (401, Some("bad_login")));
    let (s, long) = login("ops", &"x".repeat(300)).await;
    assert_eq!((s, long["error"].as_str()), (422, Some("too_long")));
    let (s, ok) = login("ops", support::ADMIN_PASSWORD).await;
    assert_eq!(s, 200, "{ok}");
    let token = ok["token"].as_str().unwrap();
    let (s, fleet) = env.get(token, "/api/v1/reports/fleet").await;
    assert_eq!(s, 200, "{fleet}");
    // A long-lived admin credential (older builds issued up to 400 days) is refused.
    let (long, _) = env.handle.cloud.keys.issue(
        "hq",
        Role::Admin,
        tillmesh_cloud::now_ms(),
        400 * 86_400_000,
    );
    let (s, e) = env.get(&long, "/api/v1/reports/fleet").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("credential_too_long")),
        "{e}"
    );
    // It is an admin credential for hours, not a store's.
    let left = ok["expires"].as_u64().unwrap() as i64 - (tillmesh_cloud::now_ms() / 1000) as i64;
    assert!((7 * 3600..=8 * 3600).contains(&left), "{left}");
}

/// Revoking admin credentials (issue 19): with `auth.admin_valid_after_ms` set, an admin
/// credential issued before it is refused (401 `credential_revoked`); one issued after it
/// (a fresh sign-in) works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_credentials_issued_before_the_cut_off_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = support::config(tillmesh_cloud::config::DatabaseConfig::Sqlite {
        path: dir.path().join("cloud.db"),
    });
    let now = tillmesh_cloud::now_ms();
    cfg.auth.admin_valid_after_ms = now;
    let handle = tillmesh_cloud::start(cfg).await.unwrap();
    let base = format!("http://{}", handle.addr);
    let http = reqwest::Client::new();
    let fleet = |token: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .get(format!("{base}/api/v1/reports/fleet"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (old, _) = handle
        .cloud
        .keys
        .issue("hq", Role::Admin, now - 60_000, 3_600_000);
    let (s, e) = fleet(old).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("credential_revoked")),
        "{e}"
    );
    let (fresh, _) = handle
        .cloud
        .keys
        .issue("hq", Role::Admin, now + 1, 3_600_000);
    assert_eq!(fleet(fresh).await.0, 200);
}

/// A planned stop (a deploy behind a load balancer) finishes the batches in flight: an upload
/// whose body is still arriving when the cloud is told to stop is stored and answered.
async fn an_upload_in_flight_is_answered_when_the_cloud_stops(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(env) = Env::start(b).await else {
        return;
    };
    let token = env.token("S001");
    let mut shop = Shop::new("S001", &[1]);
    let events = sales(&mut shop, 5);
    let body = serde_json::to_vec(&shop.batch(1, 1, &events)).unwrap();
    let mut s = tokio::net::TcpStream::connect(env.handle.addr)
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/sync/upload HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let half = body.len() / 2;
    s.write_all(&body[..half]).await.unwrap();
    s.flush().await.unwrap();
    // The stop begins while the body is half sent, once the server is reading it (a
    // connection whose request head it has not read yet is idle to it, and closed).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stop = tokio::spawn(env.stop());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The stop waits for the request (a process exits when it returns).
    assert!(
        !stop.is_finished(),
        "the stop did not wait for the upload in flight"
    );
    s.write_all(&body[half..]).await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"accepted\":5"), "{text}");
    stop.await.unwrap();
}

/// Two processes on one SQLite ledger (the cloud, and `tillmesh hq join-token` beside it): an
/// enrolment reads, then writes; with another connection committing in between, a deferred
/// transaction cannot upgrade and SQLite answers "database is locked" at once, without
/// waiting (CI's namespace test met it). Enrolments begin as writers and wait their turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolment_beside_another_writer_waits_its_turn() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tillmesh_cloud::ledger::{Enrolment, Ledger, StoreCa, StoreInfo};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cloud.db");
    let cloud = tillmesh_cloud::sqlite::SqliteLedger::open(&path).unwrap();
    let hq = tillmesh_cloud::sqlite::SqliteLedger::open(&path).unwrap();
    let info = |id: &str| StoreInfo {
        store_id: id.into(),
        name: id.into(),
        utc_offset_minutes: 420,
        enabled: true,
        tokens_valid_after_ms: 0,
    };
    cloud.put_store(info("S001")).await.unwrap();
    let ca = tillmesh_pki::create_store_ca("S001").unwrap();
    cloud
        .put_store_ca(
            "S001",
            StoreCa {
                cert: ca.cert,
                key: ca.key,
                next_terminal: 1,
            },
        )
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let (cloud, stop) = (cloud.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                cloud
                    .put_store(info(&format!("X{}", n % 50)))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    for k in 0..300 {
        let got = hq
            .enrol(
                "S001",
                Enrolment {
                    key_sha256: format!("{k:064x}"),
                    code: "ABCD-EFGH".into(),
                    approved_by: "join token".into(),
                    at_ms: 1,
                },
            )
            .await;
        assert!(matches!(got, Ok(Some(_))), "enrolment {k}: {got:?}");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(busy.await.unwrap() > 0);
}
