//! Test and benchmark support: a cloud on loopback (SQLite in a temporary directory, or a
//! fresh database on the PostgreSQL server named by `TILLMESH_PG_URL`), an HTTP client, and
//! a generator of real till events (sales, voids, refunds, stock changes).
#![allow(dead_code)]

use tillmesh_cloud::auth::Role;
use tillmesh_cloud::config::{AuthConfig, CloudConfig, DatabaseConfig, KeyConfig, StoreSeed};
use tillmesh_cloud::{CloudHandle, now_ms};
use tillmesh_cloud_proto::{Batch, StoreEvent};
use tillmesh_crdt::ReplicaId;
use tillmesh_pos::cart::{Line, Totals};
use tillmesh_pos::event::{Event, EventBody, Sale};
use tillmesh_pos::payment::{Method, Payment, PaymentStatus};
use tillmesh_pos::state::Replica;
use tillmesh_pos::transaction::Status;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0001";

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub use tillmesh_test_support::{fresh_pg_database, pg_url};

/// The dashboard password of the test admin `ops`.
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// Its hash, made once per test binary.
pub fn admin_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| tillmesh_cloud::auth::hash_password(ADMIN_PASSWORD).unwrap())
}

pub fn config(database: DatabaseConfig) -> CloudConfig {
    CloudConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database,
        auth: AuthConfig {
            keys: vec![KeyConfig {
                id: "k1".into(),
                secret: SECRET.into(),
            }],
            store_token_days: 90,
            admins: vec![tillmesh_cloud::config::AdminAccount {
                user: "ops".into(),
                password_hash: admin_hash().into(),
            }],
            admin_valid_after_ms: 0,
            master_key_seed: Some("42".repeat(32)),
        },
        tls: None,
        stores: vec![
            StoreSeed {
                id: "S001".into(),
                name: "Riverside".into(),
                utc_offset_minutes: 420,
            },
            StoreSeed {
                id: "S002".into(),
                name: "Hilltop".into(),
                utc_offset_minutes: 420,
            },
        ],
        master_seed: None,
        projection_interval_ms: 50,
    }
}

/// A running cloud and a client.
pub struct Env {
    pub handle: CloudHandle,
    pub base: String,
    pub http: reqwest::Client,
    pub admin: String,
    /// The database URL (PostgreSQL).
    pub pg_url: Option<String>,
    _dir: tempfile::TempDir,
}

impl Env {
    /// Starts a cloud; `None` when the backend is not available here.
    pub async fn start(backend: Backend) -> Option<Env> {
        Self::start_with(backend, 50).await
    }

    /// Starts a cloud with the given projection interval (0: no background projector).
    pub async fn start_with(backend: Backend, projection_interval_ms: u64) -> Option<Env> {
        let dir = tempfile::tempdir().unwrap();
        let mut url = None;
        let database = match backend {
            Backend::Sqlite => DatabaseConfig::Sqlite {
                path: dir.path().join("cloud.db"),
            },
            Backend::Postgres => {
                let u = fresh_pg_database(&pg_url()?).await;
                url = Some(u.clone());
                DatabaseConfig::Postgres {
                    url: u,
                    pool_size: 16,
                }
            }
        };
        let mut cfg = config(database);
        cfg.projection_interval_ms = projection_interval_ms;
        let handle = tillmesh_cloud::start(cfg).await.unwrap();
        let base = format!("http://{}", handle.addr);
        let (admin, _) = handle
            .cloud
            .keys
            .issue("hq", Role::Admin, now_ms(), 3_600_000);
        Some(Env {
            handle,
            base,
            http: reqwest::Client::new(),
            admin,
            pg_url: url,
            _dir: dir,
        })
    }

    /// The temporary directory (the SQLite file is `cloud.db` in it).
    pub fn dir_path(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A store credential.
    pub fn token(&self, store: &str) -> String {
        self.handle
            .cloud
            .keys
            .issue(store, Role::Store, now_ms(), 3_600_000)
            .0
    }

    /// POSTs a batch as JSON; returns status and body.
    pub async fn upload(&self, token: &str, batch: &Batch) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/sync/upload", self.base))
            .bearer_auth(token)
            .json(batch)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// POSTs a batch in the binary encoding.
    pub async fn upload_binary(&self, token: &str, batch: &Batch) -> (u16, serde_json::Value) {
        self.raw_upload(
            token,
            tillmesh_cloud_proto::BINARY_CONTENT_TYPE,
            tillmesh_cloud_proto::encode_batch(batch).unwrap(),
        )
        .await
    }

    pub async fn raw_upload(
        &self,
        token: &str,
        ctype: &str,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/sync/upload", self.base))
            .bearer_auth(token)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Events stored for a store, from the fleet report.
    pub async fn events_of(&self, store: &str) -> u64 {
        let (_, f) = self.get(&self.admin, "/api/v1/reports/fleet").await;
        f["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["store_id"] == store)
            .map_or(0, |s| s["events"].as_u64().unwrap())
    }

    pub async fn stop(self) {
        self.handle.stop().await;
    }
}

/// Sends only the head of an upload announcing `len` body bytes and reads the answer (a
/// client must not have to push megabytes to learn they are too many).
pub async fn announce_upload(env: &Env, token: &str, len: usize) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(env.handle.addr)
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/sync/upload HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if n == 0 || (text.contains("\r\n\r\n") && text.trim_end().ends_with('}')) {
            let status = text[9..12].parse().unwrap();
            let body = text.split_once("\r\n\r\n").unwrap().1;
            return (status, serde_json::from_str(body).unwrap());
        }
    }
}

/// 2026-11-20 00:00 local time at UTC+7.
pub const DAY0_MS: u64 = 1_795_107_600_000;

/// Tills of one store making real events.
pub struct Shop {
    pub store: String,
    pub tills: Vec<Replica>,
    pub next_txn: u64,
}

impl Shop {
    pub fn new(store: &str, terminals: &[u32]) -> Self {
        Shop {
            store: store.into(),
            tills: terminals
                .iter()
                .map(|t| Replica::new(ReplicaId::for_terminal(*t, 1)))
                .collect(),
            next_txn: 0,
        }
    }

    /// A paid sale of `lines` = (sku, quantity, unit price), paid by one payment.
    pub fn sale(
        &mut self,
        till: usize,
        paid_ms: u64,
        lines: &[(&str, u32, i64)],
        qr_provider: Option<&str>,
    ) -> Event {
        let sale = self.sale_of(till, paid_ms, lines, qr_provider);
        self.tills[till].record_sale(sale, paid_ms).remove(0)
    }

    /// The sale [`Shop::sale`] records, not recorded.
    pub fn sale_of(
        &mut self,
        till: usize,
        paid_ms: u64,
        lines: &[(&str, u32, i64)],
        qr_provider: Option<&str>,
    ) -> Sale {
        self.next_txn += 1;
        let r = &self.tills[till];
        let txn_id = format!("T{}-{}", r.id().terminal(), self.next_txn);
        let lines: Vec<Line> = lines
            .iter()
            .enumerate()
            .map(|(i, (sku, q, unit))| Line {
                line_no: i as u32 + 1,
                sku: sku.to_string(),
                barcode: String::new(),
                name: sku.to_string(),
                category: "General".into(),
                quantity: *q,
                unit_price: *unit,
                tax_rate_bp: 0,
                gross: unit * i64::from(*q),
                discount: 0,
                promotion: None,
                tax: 0,
                total: unit * i64::from(*q),
            })
            .collect();
        let total: i64 = lines.iter().map(|l| l.total).sum();
        let items: u32 = lines.iter().map(|l| l.quantity).sum();
        let payment = Payment {
            payment_id: format!("{txn_id}-P1"),
            method: if qr_provider.is_some() {
                Method::Qr
            } else {
                Method::Cash
            },
            amount: total,
            tendered: total,
            change: 0,
            provider: qr_provider.map(str::to_owned),
            provider_ref: None,
            qr_payload: None,
            expires_at_ms: None,
            status: PaymentStatus::Captured,
        };
        Sale {
            txn_id,
            terminal: r.id(),
            cashier: "E001".into(),
            created_ms: paid_ms - 30_000,
            paid_ms,
            lines,
            totals: Totals {
                subtotal: total,
                discount: 0,
                tax: 0,
                total,
                items,
            },
            payments: vec![payment],
            customer_id: None,
            points_earned: 0,
            weights: Vec::new(),
        }
    }

    /// A sale of one unit of `sku` at `price`, paid whole from stored-value `account` by
    /// `method`; no event (an empty list) when this till holds too few rights.
    pub fn stored_value_sale(
        &mut self,
        till: usize,
        paid_ms: u64,
        price: i64,
        method: Method,
        account: &str,
    ) -> Vec<Event> {
        let mut sale = self.sale_of(till, paid_ms, &[("SKU00001", 1, price)], None);
        sale.payments[0].method = method;
        sale.payments[0].provider_ref = Some(account.to_string());
        self.tills[till]
            .try_record_sale(sale, paid_ms)
            .unwrap_or_default()
    }

    /// Voids a sale (or refunds it).
    pub fn reverse(&mut self, till: usize, txn_id: &str, refund: i64, at_ms: u64) -> Event {
        let id = txn_id.to_owned();
        self.tills[till].set_status(
            txn_id,
            if refund > 0 {
                Status::Refunded
            } else {
                Status::Void
            },
            move |status| {
                if refund > 0 {
                    EventBody::RefundRecorded {
                        txn_id: id,
                        amount: refund,
                        by: "E001".into(),
                        approved_by: "M001".into(),
                        reason: "test".into(),
                        status,
                    }
                } else {
                    EventBody::TransactionVoided {
                        txn_id: id,
                        by: "E001".into(),
                        approved_by: "M001".into(),
                        reason: "test".into(),
                        status,
                    }
                }
            },
            at_ms,
        )
    }

    /// Receives stock.
    pub fn receive(&mut self, till: usize, sku: &str, qty: i64, at_ms: u64) -> Event {
        self.tills[till].adjust(
            sku,
            qty,
            tillmesh_pos::inventory::Reason::Receiving,
            Some("Supplier".into()),
            None,
            "M001",
            at_ms,
        )
    }

    /// A batch of events from this store.
    pub fn batch(&self, term: u64, leader: u64, events: &[Event]) -> Batch {
        Batch {
            term,
            leader,
            master_version: 0,
            backlog: 0,
            tills: self.tills.iter().map(|r| r.id().terminal()).collect(),
            events: events
                .iter()
                .map(|e| StoreEvent {
                    store: self.store.clone(),
                    event: e.clone(),
                })
                .collect(),
            sealing: Default::default(),
        }
    }
}
