//! The till's JSON request bodies: a real till (SQLite on a temporary disk, committing on the
//! caller's thread as the simulator's tills do) behind its real HTTP router, signed in as a
//! cashier and as an admin, is sent each input as the body of one of its JSON endpoints. Any
//! answer is fine except a 5xx or a panic: bad input gets a 4xx and changes nothing.
#![no_main]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex, OnceLock};
use tower::ServiceExt;

mod guard;

/// Who calls an endpoint.
#[derive(Clone, Copy)]
enum As {
    Nobody,
    Cashier,
    Admin,
}

/// The endpoints that take a JSON body; `{open}` is a transaction kept open, `{paid}` a paid
/// one.
const ENDPOINTS: &[(&str, As)] = &[
    ("/api/v1/auth/login", As::Nobody),
    ("/api/v1/transactions", As::Cashier),
    ("/api/v1/transactions/{open}/items", As::Cashier),
    ("/api/v1/transactions/{open}/customer", As::Cashier),
    ("/api/v1/transactions/{open}/payments", As::Cashier),
    ("/api/v1/transactions/{open}/checkout", As::Cashier),
    ("/api/v1/transactions/{paid}/return", As::Admin),
    ("/api/v1/transactions/{paid}/refund", As::Admin),
    ("/api/v1/transactions/{paid}/void", As::Admin),
    ("/api/v1/inventory/adjust", As::Admin),
    ("/api/v1/inventory/receive", As::Admin),
    ("/api/v1/inventory/count", As::Admin),
    ("/api/v1/prices/override", As::Admin),
    ("/api/v1/cash/shift/open", As::Cashier),
    ("/api/v1/cash/pay-in", As::Cashier),
    ("/api/v1/cash/pay-out", As::Cashier),
    ("/api/v1/cash/shift/close", As::Cashier),
    ("/api/v1/offline-override", As::Admin),
    ("/api/v1/security/revocations", As::Admin),
    ("/api/v1/customers", As::Cashier),
    ("/api/v1/enrolment/approve", As::Admin),
    ("/api/v1/enrolment/redeem", As::Nobody),
];

struct Harness {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    /// Tokens, renewed when an input signs the same employee in again (which ends their
    /// older session).
    cashier: Mutex<String>,
    admin: Mutex<String>,
    open: String,
    paid: String,
    _dir: tempfile::TempDir,
}

fn call(h: &Harness, path: &str, who: As, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post(path).header("content-type", "application/json");
    match who {
        As::Nobody => {}
        As::Cashier => req = req.header("authorization", format!("Bearer {}", lock(&h.cashier))),
        As::Admin => req = req.header("authorization", format!("Bearer {}", lock(&h.admin))),
    }
    let mut req = req.body(Body::from(body)).expect("a request");
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            9,
        ))));
    h.rt.block_on(async {
        let res = h
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("the router answers");
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    })
}

fn lock(m: &Mutex<String>) -> String {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Signs the harness's cashier and admin in (again).
fn sign_in(h: &Harness) {
    let login = |id: &str, pin: &str| {
        let body = serde_json::json!({"employee_id": id, "pin": pin});
        let (s, v) = call(h, "/api/v1/auth/login", As::Nobody, body.to_string().into());
        assert_eq!(s, StatusCode::OK, "sign-in: {v}");
        v["token"].as_str().expect("a token").to_string()
    };
    let cashier = login("E001", "1111");
    let admin = login("A001", "0000");
    *h.cashier.lock().unwrap_or_else(|p| p.into_inner()) = cashier;
    *h.admin.lock().unwrap_or_else(|p| p.into_inner()) = admin;
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut text = std::fs::read_to_string(repo.join("configs/terminal.example.toml"))
            .expect("the example config");
        text = text.replace(
            "\"catalog.example.json\"",
            &format!(
                "{:?}",
                repo.join("configs/catalog.example.json")
                    .display()
                    .to_string()
            ),
        );
        let path = dir.path().join("till.toml");
        std::fs::write(&path, text).expect("config written");
        let mut cfg = tillmesh::config::TerminalConfig::load(&path).expect("the config loads");
        cfg.terminal.data_dir = dir.path().join("data");
        cfg.terminal.simulated = Some(tillmesh::config::Simulated { incarnation: 1 });
        cfg.security.demo = true;
        cfg.vision = None;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let till = rt.block_on(async {
            tillmesh::till::Till::open(
                cfg,
                Arc::new(tillmesh::clock::SystemClock),
                Arc::new(tillmesh::metrics::Metrics::default()),
                Arc::new(tillmesh::links::Standalone),
            )
            .expect("the till opens")
        });
        let mut h = Harness {
            router: tillmesh::api::router(Arc::new(till)),
            rt,
            cashier: Mutex::default(),
            admin: Mutex::default(),
            open: String::new(),
            paid: String::new(),
            _dir: dir,
        };
        sign_in(&h);
        let txn = |h: &Harness| {
            let (_, v) = call(h, "/api/v1/transactions", As::Cashier, b"{}".to_vec());
            v["txn_id"].as_str().unwrap_or("T0").to_string()
        };
        h.paid = txn(&h);
        let item = serde_json::json!({"barcode": "8931815908309", "quantity": 1});
        call(
            &h,
            &format!("/api/v1/transactions/{}/items", h.paid),
            As::Cashier,
            item.to_string().into(),
        );
        let (_, t) = call(
            &h,
            &format!("/api/v1/transactions/{}/checkout", h.paid),
            As::Cashier,
            b"{}".to_vec(),
        );
        let due = t["totals"]["total"].as_i64().unwrap_or(0);
        let pay = serde_json::json!({"method": "cash", "tendered": due});
        call(
            &h,
            &format!("/api/v1/transactions/{}/payments", h.paid),
            As::Cashier,
            pay.to_string().into(),
        );
        call(
            &h,
            &format!("/api/v1/transactions/{}/finalize", h.paid),
            As::Cashier,
            b"{}".to_vec(),
        );
        h.open = txn(&h);
        h
    })
}

fuzz_target!(init: guard::tolerate_caught_automerge_panics(), |data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let h = harness();
    let (path, who) = ENDPOINTS[usize::from(pick) % ENDPOINTS.len()];
    let path = path.replace("{open}", &h.open).replace("{paid}", &h.paid);
    let (status, answer) = call(h, &path, who, body.to_vec());
    if matches!(who, As::Nobody) && status == StatusCode::OK {
        sign_in(h);
    }
    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{path} answered {status}: {answer}"
    );
    if status.is_client_error() {
        assert!(
            answer["error"].is_string() && answer["message"].is_string(),
            "{path} answered {status} without a JSON error: {answer}"
        );
    }
});
