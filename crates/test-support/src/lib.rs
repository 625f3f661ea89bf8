//! What the tests and benchmarks of every crate share: the repository's root, the
//! PostgreSQL server CI starts, a JSON client for the till and cloud APIs, and small
//! environment helpers. Not linked into any production binary (dev-dependency only).

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-support sits two levels below the root")
        .to_path_buf()
}

/// The variable `name` parsed, or `default` when unset or unparsable (bench sizes).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The PostgreSQL server for tests, if any. With `TILLMESH_REQUIRE_PG=1` (CI) a missing server
/// fails the test instead of skipping it.
pub fn pg_url() -> Option<String> {
    match std::env::var("TILLMESH_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("TILLMESH_REQUIRE_PG").as_deref() == Ok("1") {
                panic!(
                    "TILLMESH_REQUIRE_PG=1 but TILLMESH_PG_URL is not set (run scripts/pg-up.sh)"
                );
            }
            eprintln!("skipping the PostgreSQL variant: set TILLMESH_PG_URL (scripts/pg-up.sh)");
            None
        }
    }
}

/// Creates an empty database on the server and returns its URL.
pub async fn fresh_pg_database(url: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL server answers");
    tokio::spawn(conn);
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).unwrap();
    let name = format!("tillmesh_test_{}", hex::encode(r));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    format!("{base}/{name}")
}

/// A small JSON client for the till API.
#[derive(Clone, Debug)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

/// An answer: status and JSON body (or `Value::String` for non-JSON bodies).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// Asserts a status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self.body
    }

    /// Asserts an error status and code.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        assert_eq!(self.body["error"], code, "unexpected error: {}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message"
        );
        self.body
    }
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
            token: None,
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, reqwest::Error> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None)
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body))
            .await
            .expect("request")
    }

    /// Logs in and keeps the token.
    pub async fn login(mut self, employee_id: &str, pin: &str) -> Client {
        let b = self
            .post(
                "/api/v1/auth/login",
                json!({"employee_id": employee_id, "pin": pin}),
            )
            .await
            .expect(200);
        self.token = Some(b["token"].as_str().unwrap().to_string());
        self
    }

    /// Rings up `(barcode, qty)` lines, pays cash with `tendered` (or exactly), finalises.
    pub async fn sell(
        &self,
        lines: &[(&str, u32)],
        tendered: Option<i64>,
    ) -> Result<Value, reqwest::Error> {
        use reqwest::Method;
        let t = self
            .send(Method::POST, "/api/v1/transactions", None)
            .await?
            .expect(201);
        let id = t["txn_id"].as_str().unwrap().to_string();
        for (code, q) in lines {
            self.send(
                Method::POST,
                &format!("/api/v1/transactions/{id}/items"),
                Some(json!({"barcode": code, "quantity": q})),
            )
            .await?
            .expect(200);
        }
        let t = self
            .send(
                Method::POST,
                &format!("/api/v1/transactions/{id}/checkout"),
                None,
            )
            .await?
            .expect(200);
        let due = t["totals"]["total"].as_i64().unwrap();
        self.send(
            Method::POST,
            &format!("/api/v1/transactions/{id}/payments"),
            Some(json!({"method": "cash", "tendered": tendered.unwrap_or(due)})),
        )
        .await?
        .expect(200);
        let done = self
            .send(
                Method::POST,
                &format!("/api/v1/transactions/{id}/finalize"),
                None,
            )
            .await?;
        Ok(done.expect(200))
    }
}

/// Whether the tests run as root (network namespaces need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
