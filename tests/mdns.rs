//! Real mDNS across network namespaces: three tills, each in its own namespace on a Linux
//! bridge (the bridge lives in a fourth namespace, so the host's network is never touched),
//! with no peer list at all, discover each other over multicast, connect over QUIC with
//! mutual TLS, and converge.
//!
//! Needs root (`ip netns`). Without root the test says so and passes as skipped, unless
//! `TILLMESH_REQUIRE_NETNS=1` (set by `.ci/run`, which runs as root) turns the skip into a
//! failure.

mod support;

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{Pki, demo_barcode, is_root};

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces for one run; removed on drop.
struct Net {
    hub: String,
    nodes: Vec<String>,
}

impl Net {
    fn up(n: usize) -> Result<Net, String> {
        let tag = std::process::id() % 100_000;
        let net = Net {
            hub: format!("tmh{tag}"),
            nodes: (1..=n).map(|i| format!("tm{tag}n{i}")).collect(),
        };
        ip(&["netns", "add", &net.hub])?;
        ip(&["-n", &net.hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &net.hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &net.hub, "link", "set", "br0", "up"])?;
        for (i, ns) in net.nodes.iter().enumerate() {
            let peer = format!("v{tag}p{i}");
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &peer, "netns",
                &net.hub,
            ])?;
            ip(&["-n", &net.hub, "link", "set", &peer, "master", "br0"])?;
            ip(&["-n", &net.hub, "link", "set", &peer, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.78.0.{}/24", i + 1),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", ns, "link", "set", "eth0", "multicast", "on", "up"])?;
        }
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(std::iter::once(&self.hub)) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Calls a till's API inside its namespace with curl.
fn api(
    ns: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Option<Value> {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "-m",
        "10",
        "-X",
        method,
        &format!("http://127.0.0.1:7300{path}"),
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "-d", &b.to_string()]);
    }
    let out = cmd.output().ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn sell(ns: &str, barcode: &str) -> String {
    let login = api(
        ns,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"employee_id": "E001", "pin": "1111"})),
    )
    .expect("login");
    let token = login["token"].as_str().expect("token").to_string();
    let t = Some(token.as_str());
    let txn = api(ns, "POST", "/api/v1/transactions", t, None).expect("create");
    let id = txn["txn_id"].as_str().unwrap().to_string();
    api(
        ns,
        "POST",
        &format!("/api/v1/transactions/{id}/items"),
        t,
        Some(json!({"barcode": barcode})),
    )
    .expect("item");
    let c = api(
        ns,
        "POST",
        &format!("/api/v1/transactions/{id}/checkout"),
        t,
        None,
    )
    .expect("checkout");
    let total = c["totals"]["total"].as_i64().unwrap();
    api(
        ns,
        "POST",
        &format!("/api/v1/transactions/{id}/payments"),
        t,
        Some(json!({"method": "cash", "tendered": total})),
    )
    .expect("pay");
    let done = api(
        ns,
        "POST",
        &format!("/api/v1/transactions/{id}/finalize"),
        t,
        None,
    )
    .expect("finalize");
    assert_eq!(done["status"], "PAID", "{done}");
    id
}

#[test]
fn three_tills_in_three_namespaces_discover_each_other_over_mdns_and_converge() {
    if !is_root() {
        assert!(
            std::env::var("TILLMESH_REQUIRE_NETNS").is_err(),
            "TILLMESH_REQUIRE_NETNS is set but the test is not running as root"
        );
        eprintln!(
            "SKIPPED: the mDNS network-namespace test needs root (ip netns); set TILLMESH_REQUIRE_NETNS=1 to make this a failure"
        );
        return;
    }
    let net =
        Net::up(3).expect("network namespaces (are iproute2 and veth/bridge support available?)");
    let pki = Pki::new("S001");
    let work = tempfile::tempdir().unwrap();
    let template = support::example_config_text();
    let mut procs = Procs(Vec::new());
    for (i, ns) in net.nodes.iter().enumerate() {
        let t = i as u64 + 1;
        let (ca, cert, key) = pki.enroll(t);
        let cfg = format!(
            "{template}\n[mesh]\nlisten = \"10.78.0.{t}:7400\"\nca_cert = {ca:?}\ncert = {cert:?}\nkey = {key:?}\nmdns = true\nmdns_interfaces = \"eth0\"\nanti_entropy_ms = 500\n"
        )
        .replace("id = 1                      # unique", &format!("id = {t}                      # unique"));
        let path = work.path().join(format!("till-{t}.toml"));
        std::fs::write(&path, cfg).unwrap();
        let log = std::fs::File::create(work.path().join(format!("till-{t}.log"))).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_tillmesh"),
                "terminal",
                "--demo",
                "--config",
            ])
            .arg(&path)
            .arg("--data-dir")
            .arg(work.path().join(format!("data-{t}")))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn a till in its namespace");
        procs.0.push(child);
    }
    for ns in &net.nodes {
        let mut up = false;
        for _ in 0..300 {
            if api(ns, "GET", "/health", None, None).is_some() {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            up,
            "till in {ns} did not start; logs in {}",
            work.path().display()
        );
    }
    let ids: Vec<String> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, ns)| sell(ns, &demo_barcode(i)))
        .collect();

    // Converged: every till lists both others as peers (found by mDNS: there is no peer list),
    // holds the same events, and has every sale.
    let mut last = Vec::new();
    for _ in 0..300 {
        let statuses: Vec<Value> = net
            .nodes
            .iter()
            .filter_map(|ns| api(ns, "GET", "/api/v1/status", None, None))
            .collect();
        let done = statuses.len() == 3
            && statuses.iter().all(|s| {
                s["peers"]
                    .as_array()
                    .is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["outbound"] == "connected"))
            })
            && statuses
                .windows(2)
                .all(|w| w[0]["version_vector"] == w[1]["version_vector"])
            && statuses[0]["version_vector"]
                .as_array()
                .is_some_and(|v| v.len() == 4);
        last = statuses;
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        last.len() == 3
            && last
                .windows(2)
                .all(|w| w[0]["version_vector"] == w[1]["version_vector"])
            && last[0]["version_vector"]
                .as_array()
                .is_some_and(|v| v.len() == 4),
        "tills did not converge over mDNS: {last:#?}\nlog of till 1:\n{}",
        std::fs::read_to_string(work.path().join("till-1.log")).unwrap_or_default()
    );
    for ns in &net.nodes {
        let login = api(
            ns,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"employee_id": "E002", "pin": "2222"})),
        )
        .unwrap();
        let token = login["token"].as_str().unwrap().to_string();
        for id in &ids {
            let t = api(
                ns,
                "GET",
                &format!("/api/v1/transactions/{id}"),
                Some(&token),
                None,
            )
            .unwrap();
            assert_eq!(t["status"], "PAID", "{ns} lacks {id}");
        }
    }
    drop(procs);
    drop(net);
}
