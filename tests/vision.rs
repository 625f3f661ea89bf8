//! Product recognition through the till's API, with the shipped model: a manager enrols
//! catalog SKUs from a few photos on one till, the references travel over the mesh (QUIC),
//! and the other till recognises the products; bad uploads get a 4xx naming the problem and
//! change nothing; a till without a model says so; a barcode in the frame answers without
//! the model; enough enrolled products give the store its own threshold.

mod support;

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use support::{Answer, Client, Pki, TestTill, mesh_config, repo};

fn photo(rel: &str) -> Vec<u8> {
    std::fs::read(repo().join("models/eval").join(rel)).expect("eval photo")
}

fn card() -> PathBuf {
    repo().join("models/products.json")
}

async fn post_image(c: &Client, path: &str, bytes: Vec<u8>) -> Answer {
    let mut req = c
        .http
        .post(format!("{}{path}", c.base))
        .header("content-type", "application/octet-stream")
        .body(bytes);
    if let Some(t) = &c.token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn vision_till(pki: &Pki, terminal: u64) -> TestTill {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mesh_config(dir.path(), pki, terminal, 0);
    cfg.vision = Some(tillmesh::config::VisionSection {
        card: card(),
        top_k: 3,
        concurrency: 1,
    });
    TestTill::start_with(cfg, dir).await
}

/// Catalog SKUs the store photographs: the four look-alike variants of one brand.
const ENROL: [(&str, &str); 4] = [
    ("SKU00001", "V0000"),
    ("SKU00002", "V0001"),
    ("SKU00003", "V0002"),
    ("SKU00004", "V0003"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skus_enrolled_on_one_till_are_recognised_on_another() {
    let pki = Pki::new("S001");
    let (a, b) = (vision_till(&pki, 1).await, vision_till(&pki, 2).await);
    a.mesh().add_peer(b.mesh().local_addr());
    b.mesh().add_peer(a.mesh().local_addr());
    let manager = a.client().login("M001", "9999").await;
    let cashier = b.client().login("E001", "1111").await;

    // An empty gallery proposes nothing and accepts nothing.
    let r = post_image(
        &cashier,
        "/api/v1/vision/recognize",
        photo("known/query/V0000/0.jpg"),
    )
    .await
    .expect(200);
    assert_eq!(
        (r["decision"].as_str(), r["gallery_skus"].as_u64()),
        (Some("not_sure"), Some(0))
    );

    // A cashier may not enrol; a manager enrols three photos of each of four SKUs.
    post_image(
        &cashier,
        "/api/v1/vision/skus/SKU00001/photos",
        photo("known/ref/V0000/0.jpg"),
    )
    .await
    .expect_error(403, "approval_required");
    for (sku, product) in ENROL {
        for i in 0..3 {
            let r = post_image(
                &manager,
                &format!("/api/v1/vision/skus/{sku}/photos"),
                photo(&format!("known/ref/{product}/{i}.jpg")),
            )
            .await
            .expect(200);
            assert_eq!(r["references"], i + 1);
        }
    }

    // Till 2 receives the references over the mesh and recognises each variant.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while b.till().state().vision.count("SKU00004") < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "till 2 never received the references"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (sku, product) in ENROL {
        let r = post_image(
            &cashier,
            "/api/v1/vision/recognize?k=3",
            photo(&format!("known/query/{product}/0.jpg")),
        )
        .await
        .expect(200);
        assert_eq!(r["decision"], "accepted", "{product}: {r}");
        assert_eq!(r["sku"], sku, "{product}: {r}");
        assert_eq!(r["gallery_skus"], 4);
        let proposals = r["proposals"].as_array().unwrap();
        assert_eq!(proposals.len(), 3);
        assert_eq!(proposals[0]["sku"], sku);
        assert!(!proposals[0]["name"].as_str().unwrap().is_empty());
        let scores: Vec<f64> = proposals
            .iter()
            .map(|p| p["score"].as_f64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    }
    // A product of a family the model never saw, and nobody enrolled: "not sure".
    let r = post_image(
        &cashier,
        "/api/v1/vision/recognize",
        photo("unknown/V0461-0.jpg"),
    )
    .await
    .expect(200);
    assert_eq!(r["decision"], "not_sure", "{r}");
    assert!(r["sku"].is_null());

    // Six frames went through till 2's model (one empty-gallery, four variants, one unknown).
    assert_eq!(metric(&b, "tillmesh_vision_frames_total").await, "6");
    a.stop().await;
    b.stop().await;
}

/// The metric `name`'s value on a till's `/metrics` page.
async fn metric(till: &TestTill, name: &str) -> String {
    let m = till.client().get("/metrics").await.body;
    m.as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split(' ').next_back())
        .unwrap_or_default()
        .to_string()
}

/// A barcode the catalog knows, printed on a photographed package, answers at once and
/// exactly, without the model (nothing is enrolled); one no product carries falls through
/// to the model. Once enough products are enrolled, the threshold is the store's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barcode_in_the_frame_answers_without_the_model_and_the_store_calibrates() {
    let pki = Pki::new("S001");
    let till = vision_till(&pki, 1).await;
    let manager = till.client().login("M001", "9999").await;
    let recognize = |file: &str| post_image(&manager, "/api/v1/vision/recognize", photo(file));
    for (file, sku, code) in [
        ("barcode/SKU00005-turned.jpg", "SKU00005", "8939711471040"),
        ("barcode/SKU00002.jpg", "SKU00002", "8932462819482"),
    ] {
        let r = recognize(file).await.expect(200);
        assert_eq!(
            (&r["decision"], &r["sku"], &r["source"], &r["barcode"]),
            (
                &"accepted".into(),
                &sku.into(),
                &"barcode".into(),
                &code.into()
            ),
            "{file}: {r}"
        );
        assert_eq!(
            r["proposals"][0]["name"].as_str().map(str::is_empty),
            Some(false)
        );
        assert_eq!(
            r["gallery_skus"], 0,
            "no product is enrolled: the model had nothing to say"
        );
    }
    let r = recognize("barcode/unlisted.jpg").await.expect(200);
    assert_eq!(
        (
            &r["decision"],
            &r["source"],
            &r["barcode"],
            &r["threshold_from"]
        ),
        (
            &"not_sure".into(),
            &"model".into(),
            &"4006381333931".into(),
            &"card".into()
        ),
        "{r}"
    );
    assert_eq!(metric(&till, "tillmesh_vision_barcodes_total").await, "2");
    assert_eq!(metric(&till, "tillmesh_vision_frames_total").await, "3");

    // Eight products, three photos each: enough for the store's own threshold.
    let products = [
        "V0000", "V0001", "V0002", "V0003", "V0320", "V0321", "V0322", "V0323",
    ];
    for (i, product) in products.iter().enumerate() {
        let set = if i < 4 { "known" } else { "new" };
        for k in 0..3 {
            post_image(
                &manager,
                &format!("/api/v1/vision/skus/SKU0000{}/photos", i + 1),
                photo(&format!("{set}/ref/{product}/{k}.jpg")),
            )
            .await
            .expect(200);
        }
    }
    let r = recognize("known/query/V0002/0.jpg").await.expect(200);
    let card: f64 = serde_json::from_str::<Value>(&std::fs::read_to_string(card()).unwrap())
        .unwrap()["threshold"]
        .as_f64()
        .unwrap();
    assert_eq!(
        (&r["threshold_from"], &r["source"]),
        (&"store".into(), &"model".into()),
        "{r}"
    );
    assert_ne!(r["threshold"].as_f64(), Some(card), "{r}");
    assert_eq!(r["proposals"][0]["sku"], "SKU00003", "{r}");
    till.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_with_the_reason_and_change_nothing() {
    let pki = Pki::new("S001");
    let till = vision_till(&pki, 1).await;
    let manager = till.client().login("M001", "9999").await;
    let good = photo("known/ref/V0000/0.jpg");
    let before = till.till().version_vector();

    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (Vec::new(), 400, "empty_image"),
        (b"%PDF-1.7 not a photo".to_vec(), 415, "not_an_image"),
        (good[..good.len() / 3].to_vec(), 422, "corrupt_image"),
        (
            vec![0xff; tillmesh_vision::frame::MAX_BYTES + 1],
            413,
            "image_too_large",
        ),
    ];
    for (bytes, status, code) in cases {
        post_image(&manager, "/api/v1/vision/recognize", bytes.clone())
            .await
            .expect_error(status, code);
        post_image(&manager, "/api/v1/vision/skus/SKU00001/photos", bytes)
            .await
            .expect_error(status, code);
    }
    // A SKU that is not in the catalog, and one that could not be stored.
    post_image(&manager, "/api/v1/vision/skus/NOPE/photos", good.clone())
        .await
        .expect_error(404, "unknown_sku");
    post_image(&manager, "/api/v1/vision/skus/a%20b/photos", good.clone())
        .await
        .expect_error(422, "bad_sku");
    // Out-of-range k.
    for k in ["0", "21"] {
        post_image(
            &manager,
            &format!("/api/v1/vision/recognize?k={k}"),
            good.clone(),
        )
        .await
        .expect_error(422, "bad_k");
    }
    // Without a login.
    post_image(&till.client(), "/api/v1/vision/recognize", good.clone())
        .await
        .expect_error(401, "unauthenticated");

    assert_eq!(till.till().version_vector(), before, "nothing was recorded");
    assert_eq!(till.till().state().vision.count("SKU00001"), 0);
    till.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_without_a_model_says_recognition_is_off() {
    let till = TestTill::start().await;
    let c = till.client().login("E001", "1111").await;
    post_image(
        &c,
        "/api/v1/vision/recognize",
        photo("known/query/V0000/0.jpg"),
    )
    .await
    .expect_error(503, "vision_off");
    till.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_does_not_match_its_card_stops_the_till_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut card: Value = serde_json::from_str(&std::fs::read_to_string(card()).unwrap()).unwrap();
    card["output"]["dim"] = 64.into();
    card["file"] = repo()
        .join("models/products.onnx")
        .to_string_lossy()
        .to_string()
        .into();
    let bad = dir.path().join("card.json");
    std::fs::write(&bad, card.to_string()).unwrap();
    let mut cfg = support::test_config(&dir.path().join("data"));
    cfg.vision = Some(tillmesh::config::VisionSection {
        card: bad,
        top_k: 3,
        concurrency: 1,
    });
    let err = tillmesh::start(cfg).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("the card says 64"), "{msg}");
}
