//! The cashier UI and the HQ dashboard in headless Chromium (Debian's chromium, driven by
//! Playwright's playwright-core from tests/e2e/): a real cloud and a real till (mesh, Raft
//! leader, uplink, the shipped recognition model) on loopback. A full sale by typed and
//! scanned barcodes with promotions and cash change; a sale through the camera (Chromium's
//! fake capture fed a product photo); a void refused for a cashier and approved by a manager's
//! PIN; the money defects of issue 18 (a scan on the cash screen, part payments undone and
//! cancelled, refused scans, rescans, hold and recall across reloads and logouts, 30 lines
//! at three screen sizes, the printed receipt, a refund from a looked-up receipt); a whole
//! shift (float, twenty sales in cash, QR and split, a hold, a pay-out, a return from the
//! history, the close, the end-of-day report) and every back-office screen; the
//! offline indicator switching when the cloud stops and comes back; a till waiting to join
//! showing its code and a manager admitting it from the till's back office; the dashboard
//! showing the store's sales after upload. Screenshots go to the folder the test prints.
//!
//! Skipped when Chromium, node or tests/e2e/node_modules are missing, unless
//! `TILLMESH_REQUIRE_BROWSER=1` (CI), which fails instead.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use support::{
    Client, Pki, TestCloud, TestTill, demo_barcode, mesh_config, repo, sellable_barcodes,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Browser {
    chromium: PathBuf,
    e2e: PathBuf,
    shots: PathBuf,
}

fn browser() -> Option<Browser> {
    let required = std::env::var("TILLMESH_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let e2e = repo().join("tests/e2e");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if !chromium.exists() {
        Some(format!("{} (apt-get install chromium)", chromium.display()))
    } else if !node_ok {
        Some("node".to_string())
    } else if !e2e.join("node_modules/playwright-core").exists() {
        Some("tests/e2e/node_modules (npm ci --prefix tests/e2e)".to_string())
    } else {
        None
    };
    if let Some(m) = missing {
        assert!(!required, "TILLMESH_REQUIRE_BROWSER=1 but {m} is missing");
        eprintln!("skipped: {m} is missing");
        return None;
    }
    let shots = repo().join("target/e2e-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots: {}", shots.display());
    Some(Browser {
        chromium,
        e2e,
        shots,
    })
}

impl Browser {
    fn command(&self, phase: &str, env: &[(&str, String)]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("node");
        c.arg(self.e2e.join("ui.mjs"))
            .arg(phase)
            .current_dir(&self.e2e)
            .env("SHOTS", &self.shots)
            .env("CHROMIUM", &self.chromium)
            .kill_on_drop(true);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Runs one phase to its end; panics with its output if it fails.
    async fn run(&self, phase: &str, env: &[(&str, String)]) {
        let out = tokio::time::timeout(Duration::from_secs(120), self.command(phase, env).output())
            .await
            .unwrap_or_else(|_| panic!("phase {phase} did not finish in 120 s"))
            .expect("node runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{text}");
        assert!(out.status.success(), "phase {phase} failed:\n{text}");
        assert!(text.contains(&format!("phase {phase}: ok")), "{text}");
    }
}

/// A one-frame Y4M video of a photo, for Chromium's fake camera.
fn y4m(photo: &Path, out: &Path) {
    let img = tillmesh_vision::frame::decode(&std::fs::read(photo).unwrap()).unwrap();
    let (w, h) = (img.width() & !1, img.height() & !1);
    let px = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]))
    };
    let mut data = format!("YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\nFRAME\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = px(x, y);
            data.push(
                (0.299 * r + 0.587 * g + 0.114 * b)
                    .round()
                    .clamp(0.0, 255.0) as u8,
            );
        }
    }
    let mut u = Vec::new();
    let mut v = Vec::new();
    for y in (0..h).step_by(2) {
        for x in (0..w).step_by(2) {
            let mut s = (0.0, 0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (r, g, b) = px(x + dx, y + dy);
                s = (s.0 + r / 4.0, s.1 + g / 4.0, s.2 + b / 4.0);
            }
            let (r, g, b) = s;
            u.push((128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b).round() as u8);
            v.push((128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b).round() as u8);
        }
    }
    data.extend(u);
    data.extend(v);
    std::fs::write(out, data).unwrap();
}

async fn upload(c: &Client, path: &str, photo: &Path) {
    let r = c
        .http
        .post(format!("{}{path}", c.base))
        .bearer_auth(c.token.as_deref().unwrap())
        .body(std::fs::read(photo).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Waits until the till reports the cloud has acknowledged everything.
async fn synced(c: &Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = c.get("/api/v1/status").await.body;
        if s["cloud"]["online"] == true && s["cloud"]["backlog"] == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never synced: {}",
            s["cloud"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn thousands(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cashier_ui_and_hq_dashboard_in_chromium() {
    let Some(b) = browser() else { return };
    let mut cloud = Some(TestCloud::start().await);
    let cloud_addr = cloud.as_ref().unwrap().handle.addr;
    let pki = Pki::new("S001");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = mesh_config(dir.path(), &pki, 1, 0);
    cfg.mesh.as_mut().unwrap().store_tills = 1;
    cfg.cloud = Some(cloud.as_ref().unwrap().section());
    // Offline after 2 s without the cloud, for QR payments (the offline phase checks it).
    cfg.payments.online_within_ms = 2_000;
    cfg.vision = Some(tillmesh::config::VisionSection {
        card: repo().join("models/products.json"),
        top_k: 5,
        concurrency: 1,
    });
    let till = TestTill::start_with(cfg, dir).await;
    let anon = till.client();
    synced(&anon).await;

    // The store photographs four look-alike products (three photos each).
    let manager = till.client().login("M001", "9999").await;
    let eval = repo().join("models/eval/known");
    for (i, product) in ["V0000", "V0001", "V0002", "V0003"].iter().enumerate() {
        for p in 0..3 {
            upload(
                &manager,
                &format!("/api/v1/vision/skus/SKU0000{}/photos", i + 1),
                &eval.join(format!("ref/{product}/{p}.jpg")),
            )
            .await;
        }
    }
    let expect_name = manager
        .get("/api/v1/catalog/items?sku=SKU00002")
        .await
        .expect(200)["name"]
        .as_str()
        .unwrap()
        .to_string();
    let video = b.shots.join("camera.y4m");
    y4m(&eval.join("query/V0001/0.jpg"), &video);

    let env = vec![
        ("TILL_URL", format!("http://{}", till.addr)),
        ("CLOUD_URL", format!("http://{cloud_addr}")),
        ("CHIPS", demo_barcode(1)),
        ("COLA", demo_barcode(0)),
        (
            "BARCODES",
            sellable_barcodes(40)
                .into_iter()
                .filter(|b| *b != demo_barcode(0) && *b != demo_barcode(1))
                .take(30)
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("VIDEO", video.display().to_string()),
        ("EXPECT_NAME", expect_name),
    ];
    b.run("sale", &env).await;
    // Items by weight: the stock of a weighed item counts grams.
    let bananas = "2000000000015";
    let stock = |v: Value| v["stock"].as_i64().unwrap();
    let before = stock(
        manager
            .get(&format!("/api/v1/catalog/items?barcode={bananas}"))
            .await
            .expect(200),
    );
    let mut env = env;
    env.push(("BANANAS", bananas.to_string()));
    b.run("weighed", &env).await;
    let after = stock(
        manager
            .get(&format!("/api/v1/catalog/items?barcode={bananas}"))
            .await
            .expect(200),
    );
    assert_eq!(
        before - after,
        1_734,
        "1.234 kg and 0.5 kg left the stock in grams"
    );
    b.run("camera", &env).await;
    b.run("void", &env).await;
    b.run("money", &env).await;
    b.run("shift", &env).await;

    // A new till waiting to join shows its code; a manager admits it from this till's
    // screen (HQ holds the store CA and issues terminal 2); the new till's screen says so.
    cloud
        .as_ref()
        .unwrap()
        .handle
        .cloud
        .hold_store_ca("S001", pki.ca().clone(), 2)
        .await
        .unwrap();
    let wdir = tempfile::tempdir().unwrap();
    let wcfg = support::package_like_config(wdir.path());
    let waddr = wcfg.terminal.listen;
    let (stop_waiting, waiter) = support::wait_in_background(wcfg.clone());
    let mut join_env = env.clone();
    join_env.push(("WAITING_URL", format!("http://{waddr}/")));
    join_env.push(("WAITING_ADDR", waddr.to_string()));
    join_env.push(("EXPECT_TERMINAL", "2".to_string()));
    b.run("join", &join_env).await;
    assert!(
        waiter.await.unwrap().unwrap(),
        "the waiting till was admitted"
    );
    drop(stop_waiting);
    let joined = tillmesh::enrol::adopt(wcfg).unwrap();
    assert_eq!(
        (joined.terminal.id, joined.store.store_id.as_str()),
        (2, "S001")
    );

    // Offline and back: the page stays open while the cloud stops and restarts.
    let mut child = b
        .command("offline", &env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut stopped = None;
    let drive = async {
        while let Some(line) = out.next_line().await.unwrap() {
            println!("{line}");
            seen.push(line.clone());
            if line == "online" {
                stopped = Some(cloud.take().expect("running").stop().await);
                stdin.write_all(b"stopped\n").await.unwrap();
            } else if line == "offline" {
                let dir = stopped.take().expect("stopped first");
                cloud = Some(TestCloud::start_in(dir, cloud_addr).await);
                stdin.write_all(b"started\n").await.unwrap();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(150), drive)
        .await
        .expect("offline phase finished in time");
    let status = child.wait().await.unwrap();
    assert!(
        status.success() && seen.iter().any(|l| l == "phase offline: ok"),
        "phase offline failed: {seen:?}"
    );

    // Everything reaches HQ; the dashboard shows today's net as the cloud's report has it.
    synced(&anon).await;
    let cloud = cloud.expect("running again");
    let mut admin = Client::new(cloud_addr);
    admin.token = Some(cloud.admin_token.clone());
    let (from, to) = (support::utc_day(-1), support::utc_day(1));
    let sales: Value = admin
        .get(&format!(
            "/api/v1/reports/sales?store=S001&from={from}&to={to}"
        ))
        .await
        .expect(200);
    let rows: Vec<&Value> = sales["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["period"] != "total")
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "every sale fell on the store's today: {sales}"
    );
    let net = rows[0]["net"].as_i64().unwrap();
    assert!(net > 0, "{sales}");
    env.push(("EXPECT_NET", thousands(net)));
    b.run("dashboard", &env).await;

    till.stop().await;
    cloud.stop().await;
}
