//! Operating a chain (issue 24): the till's and the cloud's `/metrics` pass `promtool check
//! metrics` in both formats a scraper may ask for, time every request by its route template,
//! and measure each event's delay from the till to HQ; labels take no value a client chose.

mod support;

use std::time::Duration;
use support::{Pki, TestCloud, TestTill, demo_barcode, start_store};

/// Whether promtool is installed (when it is not, `TILLMESH_REQUIRE_PROMTOOL=1` fails the test).
fn promtool_installed() -> bool {
    let ok = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var("TILLMESH_REQUIRE_PROMTOOL").is_err(),
        "TILLMESH_REQUIRE_PROMTOOL is set and promtool is not installed"
    );
    if !ok {
        eprintln!("promtool not installed: skipping its check");
    }
    ok
}

/// `promtool check metrics` on `text`: what it complains about (nothing when all is well).
fn promtool(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut stdin = child.stdin.take().expect("promtool's stdin is piped");
    stdin
        .write_all(text.as_bytes())
        .expect("promtool reads its input");
    drop(stdin);
    let out = child.wait_with_output().expect("promtool runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// GET `url` with `accept`; the content type and the body.
async fn scrape(url: &str, accept: Option<&str>) -> (String, String) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
    (ctype, r.text().await.unwrap())
}

/// The value of the sample line that starts with `prefix` (the first such line).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_time_each_route_by_its_template_and_measure_the_delay_to_hq() {
    let cloud = TestCloud::start().await;
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &cloud, &[1, 2]).await;
    let till = &tills[0];
    let c = till.client().login("E001", "1111").await;
    let sale = c.sell(&[(&demo_barcode(3), 1)], None).await.unwrap();
    let txn = sale["txn_id"].as_str().unwrap().to_owned();
    // A request to no route, with a method no route takes: neither may make a series of its own.
    let _ = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            format!("http://{}/api/v1/coffee/{txn}", till.addr),
        )
        .send()
        .await
        .unwrap();
    // The store's leader uploads the sale.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cloud.fleet().await.0 == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sale never reached the cloud"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let till_url = format!("http://{}/metrics", till.addr);
    let cloud_url = format!("{}/metrics", cloud.url());
    let check = promtool_installed();
    for url in [&till_url, &cloud_url] {
        let (ctype, text) = scrape(url, None).await;
        assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8", "{url}");
        if check {
            let complaints = promtool(&text);
            assert_eq!(complaints, "", "promtool check metrics on {url}:\n{text}");
        }
        assert!(!text.contains("# EOF"), "{url}");
        // Prometheus asks for OpenMetrics and gets it, with its terminator.
        let (ctype, open) = scrape(
            url,
            Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
        )
        .await;
        assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
        assert!(open.ends_with("# EOF\n"), "{url}");
        // No label value a client chose: no transaction id, no method no route takes.
        assert!(!text.contains(&txn), "{url} has a series per transaction");
        assert!(!text.contains("BREW") && !text.contains("coffee"), "{url}");
    }

    let (_, t) = scrape(&till_url, None).await;
    let finalize = "tillmesh_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/transactions/{id}/finalize\",status=\"2xx\"}";
    assert_eq!(sample(&t, finalize), Some(1.0), "{t}");
    assert!(
        t.contains("tillmesh_http_request_duration_seconds_bucket{le=\"0.2\",method=\"POST\",route=\"/api/v1/transactions/{id}/items\",status=\"2xx\"}"),
        "the scan target (200 ms) is a bucket boundary: {t}"
    );
    assert!(t.contains("tillmesh_till_info{"), "{t}");
    assert!(t.contains("tillmesh_sales_value_total "), "{t}");
    assert!(
        sample(&t, "tillmesh_cloud_silence_seconds ").is_some_and(|s| s >= 0.0),
        "{t}"
    );

    let (_, h) = scrape(&cloud_url, None).await;
    assert!(
        sample(
            &h,
            "tillmesh_cloud_event_arrival_delay_seconds_count{store=\"S001\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{h}"
    );
    assert!(
        sample(
            &h,
            "tillmesh_cloud_store_last_upload_timestamp_seconds{store=\"S001\"}"
        )
        .is_some_and(|s| s > 1.7e9),
        "{h}"
    );
    assert!(
        h.contains("tillmesh_cloud_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/sync/upload\",status=\"2xx\"}"),
        "{h}"
    );
    assert!(
        !h.contains("leader="),
        "the uploader's own word is no label: {h}"
    );
    // Every metric the alert rules and dashboards in deploy/ name is one the till or the
    // cloud exports (a histogram by its _bucket, _count or _sum).
    let families: std::collections::BTreeSet<String> = t
        .lines()
        .chain(h.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files = vec![root.join("prometheus/tillmesh-rules.yml")];
    for e in std::fs::read_dir(root.join("grafana/dashboards")).unwrap() {
        files.push(e.unwrap().path());
    }
    let mut named = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (at, _) in text.match_indices("tillmesh_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                families.contains(&name) || families.contains(base),
                "{} names {name}, which neither the till nor the cloud exports",
                f.display()
            );
            named += 1;
        }
    }
    assert!(named > 20, "{named}");
    for t in tills {
        t.stop().await;
    }
    cloud.stop().await;
}

/// The fleet report's row of store S001.
async fn fleet_row(cloud: &TestCloud) -> serde_json::Value {
    let mut c = support::Client::new(cloud.handle.addr);
    c.token = Some(cloud.admin_token.clone());
    let f = c.get("/api/v1/reports/fleet").await.expect(200);
    f["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["store_id"] == "S001")
        .cloned()
        .expect("S001 in the fleet")
}

/// Issue 24: the leader reports every till's link, lag, version and last contact; HQ's fleet
/// report shows a 3-till store per till, and a till cut from its peers as cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_sees_every_till_and_one_cut_from_its_peers() {
    let cloud = TestCloud::start().await;
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &cloud, &[1, 2, 3]).await;
    let links = |row: &serde_json::Value| -> Vec<(u64, String)> {
        row["till_states"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        (
                            t["terminal"].as_u64().unwrap(),
                            t["link"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // All three: the leader and two connected tills.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (leader, row) = loop {
        let row = fleet_row(&cloud).await;
        let l = links(&row);
        let leaders: Vec<u64> = l
            .iter()
            .filter(|(_, s)| s == "leader")
            .map(|(t, _)| *t)
            .collect();
        if l.len() == 3
            && leaders.len() == 1
            && l.iter().filter(|(_, s)| s == "connected").count() == 2
        {
            break (leaders[0], row);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no full report: {row}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(row["till_states_ms"].as_u64().unwrap() > 0, "{row}");
    let own = row["till_states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["link"] == "leader")
        .unwrap()
        .clone();
    assert_eq!(own["version"], env!("CARGO_PKG_VERSION"), "{own}");
    // Cut a follower from both its peers.
    let cut = tills
        .iter()
        .map(|t| t.cfg.terminal.id)
        .find(|&t| t != leader)
        .unwrap();
    let t0 = tokio::time::Instant::now();
    for a in &tills {
        for b in &tills {
            if a.cfg.terminal.id == cut && b.cfg.terminal.id != cut {
                a.mesh().faults().block(b.cfg.terminal.id);
                b.mesh().faults().block(cut);
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = fleet_row(&cloud).await;
        let l = links(&row);
        if l.iter().any(|(t, s)| *t == cut && s == "silent") {
            // The other follower is still connected, and the leader unchanged.
            assert!(
                l.iter()
                    .any(|(t, s)| *t != cut && *t != leader && s == "connected"),
                "{row}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "till {cut} never showed as cut off: {row}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "till {cut} showed as cut off at HQ {} ms after the cut",
        t0.elapsed().as_millis()
    );
    for t in tills {
        t.stop().await;
    }
    cloud.stop().await;
}

/// Issue 24: a manager collects a support bundle (a cashier may not): a zstd'd tar with the
/// status, metrics, quarantine, the audit chain's head, logs, and the config with no secret in
/// it (the example store's PINs, which its config holds, never show).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_collects_a_support_bundle_with_the_secrets_masked() {
    use std::io::Read;
    let till = TestTill::start().await;
    let cashier = till.client().login("E001", "1111").await;
    cashier
        .get("/api/v1/support/bundle")
        .await
        .expect_error(403, "manager_only");
    let manager = till.client().login("M001", "9999").await;
    let r = reqwest::Client::new()
        .get(format!("http://{}/api/v1/support/bundle", till.addr))
        .bearer_auth(manager.token.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/zstd");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".tar.zst")
    );
    let zst = r.bytes().await.unwrap();
    let mut tar = Vec::new();
    ruzstd::decoding::StreamingDecoder::new(&zst[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    let mut files = std::collections::BTreeMap::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        e.read_to_string(&mut text).unwrap();
        files.insert(name, text);
    }
    for f in [
        "README.txt",
        "status.json",
        "metrics.txt",
        "config.toml",
        "quarantine.json",
        "late-captures.json",
        "audit-head.json",
        "logs.txt",
    ] {
        assert!(
            files.contains_key(&format!("support/{f}")),
            "{f} missing: {:?}",
            files.keys()
        );
    }
    let config = &files["support/config.toml"];
    assert!(
        config.contains("S001") && config.contains("E001"),
        "{config}"
    );
    for pin in ["1111", "9999", "2222"] {
        assert!(!config.contains(pin), "a PIN shows in the bundle: {config}");
    }
    let status: serde_json::Value = serde_json::from_str(&files["support/status.json"]).unwrap();
    assert_eq!(status["store_id"], "S001");
    let audit: serde_json::Value = serde_json::from_str(&files["support/audit-head.json"]).unwrap();
    let seqs: Vec<u64> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        !seqs.is_empty() && seqs.windows(2).all(|w| w[0] > w[1]),
        "{seqs:?}"
    );
    assert!(files["support/metrics.txt"].contains("tillmesh_sales_total"));
    till.stop().await;
}

/// A span as the test's OTLP receiver got it.
#[derive(Clone, Debug)]
struct Got {
    trace: String,
    span: String,
    parent: String,
    name: String,
    node: String,
}

/// An OTLP/HTTP (protobuf) receiver in the test process: its base URL and what it received.
async fn otlp_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Got>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| async move {
            let req = ExportTraceServiceRequest::decode(body).expect("an OTLP export request");
            let mut got = sink.lock().unwrap();
            for rs in req.resource_spans {
                for ss in rs.scope_spans {
                    for s in ss.spans {
                        let node = s
                            .attributes
                            .iter()
                            .find(|kv| kv.key == "tillmesh.node")
                            .and_then(|kv| kv.value.as_ref()?.value.clone())
                            .map(|v| match v {
                                Any::StringValue(s) => s,
                                other => format!("{other:?}"),
                            })
                            .unwrap_or_default();
                        got.push(Got {
                            trace: hex::encode(&s.trace_id),
                            span: hex::encode(&s.span_id),
                            parent: hex::encode(&s.parent_span_id),
                            name: s.name,
                            node,
                        });
                    }
                }
            }
            (
                [("content-type", "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// Issue 24: a cashier's sale, sent with a W3C `traceparent`, is one trace: the selling
/// till's request spans, the peer's apply of its event (mesh protocol 3 carries the context),
/// the leader's upload of it, and HQ's ingest (batch format 4) as the upload's child,
/// exported over OTLP to a receiver in this test process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sale_is_one_trace_from_the_cashiers_request_through_a_peer_to_hq() {
    use tillmesh_cloud::telemetry::{ExportConfig, Exporter, install};
    let (url, got) = otlp_receiver().await;
    let mut cfg = ExportConfig::new(Some(url), "tillmesh-test");
    cfg.flush_ms = 100;
    // The process's exporter and subscriber, for as long as the test binary runs.
    let exporter: &'static Exporter = Box::leak(Box::new(Exporter::start(&cfg).unwrap()));
    install("warn", false, std::io::stderr, Some(exporter)).expect("the only subscriber");

    let cloud = TestCloud::start().await;
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &cloud, &[1, 2]).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace}-{caller}-01").parse().unwrap(),
    );
    let mut c = tills[0].client();
    c.http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let c = c.login("E001", "1111").await;
    let sale = c.sell(&[(&demo_barcode(2), 1)], None).await.unwrap();
    assert!(sale["txn_id"].is_string(), "{sale}");

    // Wait for all three parts of the trace.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let (finalize, apply, upload, ingest) = loop {
        exporter.flush();
        let spans: Vec<Got> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.trace == trace)
            .cloned()
            .collect();
        let find = |name: &str, node: &str| {
            spans
                .iter()
                .find(|g| g.name == name && g.node == node)
                .cloned()
        };
        let upload = spans.iter().find(|g| g.name == "uplink upload").cloned();
        if let (Some(f), Some(a), Some(u), Some(i)) = (
            find("POST /api/v1/transactions/{id}/finalize", "S001/T1"),
            find("mesh apply", "S001/T2"),
            upload,
            find("cloud ingest", "cloud"),
        ) {
            break (f, a, u, i);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the trace never had all its parts; spans of it: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The till's request continues the cashier's caller; the peer and the leader's upload
    // continue the request that made the sale (its event carries that request's span), and
    // HQ's ingest continues the upload.
    assert_eq!(finalize.parent, caller, "{finalize:?}");
    assert_eq!(apply.parent, finalize.span, "{apply:?} {finalize:?}");
    assert_eq!(upload.parent, finalize.span, "{upload:?} {finalize:?}");
    assert!(
        ["S001/T1", "S001/T2"].contains(&upload.node.as_str()),
        "{upload:?}"
    );
    assert_eq!(ingest.parent, upload.span, "{ingest:?} {upload:?}");
    // The other requests of the sale are in the same trace, on the selling till.
    let names: std::collections::BTreeSet<String> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|g| g.trace == trace && g.node == "S001/T1")
        .map(|g| g.name.clone())
        .collect();
    for n in [
        "POST /api/v1/transactions",
        "POST /api/v1/transactions/{id}/items",
        "POST /api/v1/transactions/{id}/payments",
    ] {
        assert!(names.contains(n), "{n} missing from {names:?}");
    }
    for t in tills {
        t.stop().await;
    }
}

/// Issue 24: HQ asks a store for a support bundle; the store's leader hears it in the answer
/// to its next till report, makes its own bundle (secrets masked) and uploads it; HQ hands
/// it to the admin. Only a registered store, only an admin, and nothing before it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_collects_a_support_bundle_from_a_store_through_its_leader() {
    use std::io::Read;
    let cloud = TestCloud::start().await;
    let pki = Pki::new("S001");
    let tills = start_store(&pki, &cloud, &[1, 2]).await;
    let mut admin = support::Client::new(cloud.handle.addr);
    admin
        .get("/api/v1/admin/stores/S001/bundle")
        .await
        .expect_error(401, "missing_credential");
    admin.token = Some(cloud.admin_token.clone());
    admin
        .get("/api/v1/admin/stores/S001/bundle")
        .await
        .expect_error(404, "no_bundle");
    admin
        .post("/api/v1/admin/stores/S999/bundle", serde_json::json!({}))
        .await
        .expect_error(404, "unknown_store");
    // A store may not upload a bundle nobody asked for.
    let stray = reqwest::Client::new()
        .post(format!("{}/api/v1/sync/bundle?terminal=1", cloud.url()))
        .bearer_auth(&cloud.store_token)
        .header("content-type", "application/zstd")
        .body(vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status().as_u16(), 409);
    admin
        .post("/api/v1/admin/stores/S001/bundle", serde_json::json!({}))
        .await
        .expect(202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let zst = loop {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/admin/stores/S001/bundle", cloud.url()))
            .bearer_auth(&cloud.admin_token)
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 200 {
            assert_eq!(r.headers()["content-type"], "application/zstd");
            break r.bytes().await.unwrap();
        }
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "bundle_pending", "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader never sent its bundle"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut tar = Vec::new();
    ruzstd::decoding::StreamingDecoder::new(&zst[..])
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    let mut files = std::collections::BTreeMap::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut text = String::new();
        e.read_to_string(&mut text).unwrap();
        files.insert(name, text);
    }
    let status: serde_json::Value = serde_json::from_str(&files["support/status.json"]).unwrap();
    assert_eq!(status["store_id"], "S001");
    let config = &files["support/config.toml"];
    assert!(
        !config.contains(&cloud.store_token),
        "the store credential shows: {config}"
    );
    for pin in ["1111", "9999"] {
        assert!(!config.contains(pin), "a PIN shows in the bundle: {config}");
    }
    for t in tills {
        t.stop().await;
    }
}
