//! Enrolment at first boot: a till configured with `[mesh] enrol = true` and no certificate
//! yet does not refuse to start. It makes its key (which never leaves it) and a signing
//! request, shows the key's code on its screen, advertises itself over mDNS as waiting to
//! join, and waits on its HTTP address to be admitted, one of two ways:
//!
//! - **Approval in the store**: a manager confirms the code, with their PIN, on any
//!   enrolled till (`till::admit`). That till reads this one's signing request, checks the
//!   code is the request key's, asks HQ (which holds the store CA) to sign it, and hands
//!   this till the grant: its terminal id, its certificate, the store CA, HQ's signature,
//!   the store's details, the cloud's address and a peer to dial (`POST
//!   /api/v1/enrolment/grant`).
//! - **A join token** (`tillmesh store token`, made where the CA key is, for stores that
//!   are offline or have no till yet), typed or scanned (`POST /api/v1/enrolment/token`).
//!
//! Either way the till checks what it got (see [`check_grant`] and [`JoinToken::check`]),
//! writes its identity (key 0600, certificate last) and what it learned (`enrolled.json`),
//! and starts as that terminal: it joins the mesh and the Raft group and syncs. See
//! ARCHITECTURE.md "Enrolment" for what a token or a rogue grant can and cannot do.

mod page;
mod token;

pub use token::{JoinToken, TOKEN_CHARS_MAX, TOKEN_PREFIX};

use crate::clock::Clock;
use crate::config::TerminalConfig;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tillmesh_cloud_proto::EnrolmentGrant;
use tillmesh_pos::receipt::StoreInfo;
use tracing::{info, warn};

/// Most peers a grant or token names.
const PEERS_MAX: usize = 64;

/// Where a newly enrolled till finds the cloud (its credential comes through the store's
/// Raft group).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudHint {
    /// The cloud's base URL.
    pub url: String,
    /// `http://` to a non-loopback host (isolated test networks only).
    #[serde(default)]
    pub allow_plain_http: bool,
    /// The CA (PEM) that signs the cloud's TLS certificate, when it is a private one.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

/// What an enrolled till keeps of its enrolment in its data directory.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Enrolled {
    terminal: u64,
    /// `token` or `approval`.
    #[serde(default)]
    via: String,
    /// The join token's id (token enrolments).
    #[serde(default)]
    token: String,
    #[serde(default)]
    store_id: String,
    /// The store's details, from an approval.
    #[serde(default)]
    store: Option<StoreInfo>,
    #[serde(default)]
    cloud: Option<CloudHint>,
    #[serde(default)]
    peers: Vec<SocketAddr>,
    at_ms: u64,
}

fn enrolled_path(cfg: &TerminalConfig) -> PathBuf {
    cfg.terminal.data_dir.join("enrolled.json")
}

fn cloud_ca_path(cfg: &TerminalConfig) -> PathBuf {
    cfg.terminal.data_dir.join("cloud-ca.pem")
}

/// Whether the till waits to be enrolled: `[mesh] enrol` and no certificate yet.
pub fn waiting(cfg: &TerminalConfig) -> bool {
    cfg.mesh.as_ref().is_some_and(waiting_for)
}

/// [`waiting`] for a `[mesh]` section.
pub fn waiting_for(m: &crate::config::MeshSection) -> bool {
    m.enrol && !m.cert.exists()
}

/// An enrolled till runs as what its enrolment said: its terminal id, and (where its
/// config leaves them out) its store, the cloud's address and a peer to dial.
pub fn adopt(mut cfg: TerminalConfig) -> anyhow::Result<TerminalConfig> {
    if !cfg.mesh.as_ref().is_some_and(|m| m.enrol) {
        return Ok(cfg);
    }
    let e: Enrolled = match std::fs::read_to_string(enrolled_path(&cfg)) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", enrolled_path(&cfg).display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if cfg.store.store_id.trim().is_empty() {
                anyhow::bail!(
                    "this till has a certificate but no {} and no store.store_id: enrol it again (remove {})",
                    enrolled_path(&cfg).display(),
                    cfg.mesh
                        .as_ref()
                        .map_or_else(String::new, |m| m.cert.display().to_string())
                );
            }
            return Ok(cfg);
        }
        Err(e) => anyhow::bail!("{}: {e}", enrolled_path(&cfg).display()),
    };
    cfg.terminal.id = e.terminal;
    if cfg.store.store_id.trim().is_empty() {
        match e.store {
            Some(s) => cfg.store = s,
            None => cfg.store.store_id = e.store_id,
        }
    }
    if cfg.cloud.is_none()
        && let Some(c) = e.cloud
    {
        let ca = c.ca_pem.is_some().then(|| cloud_ca_path(&cfg));
        cfg.cloud = Some(serde_json::from_value(serde_json::json!({
            "url": c.url,
            "allow_plain_http": c.allow_plain_http,
            "token": "",
            "ca_cert": ca,
        }))?);
    }
    if let Some(m) = cfg.mesh.as_mut() {
        for p in e.peers {
            if !m.peers.contains(&p) {
                m.peers.push(p);
            }
        }
    }
    Ok(cfg)
}

/// A waiting till: its config, its key and signing request, and where it stands.
struct Waiting {
    cfg: TerminalConfig,
    code: String,
    key_pem: String,
    /// The public key (uncompressed point) a granted certificate must bind.
    key_point: Vec<u8>,
    csr: String,
    /// `Some` while waiting; taken by the first admission.
    done: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// Once admitted: `(store, terminal)`.
    joined: Mutex<Option<(String, u64)>>,
}

/// Serves the waiting screen and the enrolment endpoints on the till's HTTP address until
/// the till is admitted (its identity then written: `true`) or `shutdown` (`false`).
pub async fn wait(
    cfg: TerminalConfig,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> anyhow::Result<bool> {
    let (key, csr) = tillmesh_pki::request()?;
    let code = tillmesh_pki::key_code(&key);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let state = Arc::new(Waiting {
        cfg: cfg.clone(),
        code: code.clone(),
        key_pem: key.serialize_pem(),
        key_point: key.public_key_raw().to_vec(),
        csr,
        done: Mutex::new(Some(tx)),
        joined: Mutex::new(None),
    });
    let app = Router::new()
        .route("/", get(page::page))
        .route("/enrol.js", get(page::script))
        .route("/health", get(|| async { "waiting to join" }))
        .route("/enrol", post(page::form))
        .route("/api/v1/enrolment", get(view))
        .route("/api/v1/enrolment/request", get(request))
        .route("/api/v1/enrolment/token", post(token))
        .route("/api/v1/enrolment/grant", post(grant))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(cfg.terminal.listen).await?;
    let addr = listener.local_addr()?;
    let store = Some(cfg.store.store_id.as_str()).filter(|s| !s.trim().is_empty());
    info!(%addr, code = %code, store = store.unwrap_or("(any)"), "no certificate yet: waiting to be enrolled");
    let advert = match cfg.mesh.as_ref().filter(|m| m.mdns) {
        Some(m) => {
            match tillmesh_mesh::discovery::advertise_joining(
                &code,
                addr.port(),
                store,
                &crate::interfaces(&m.mdns_interfaces),
            ) {
                Ok(d) => Some(d),
                Err(e) => {
                    warn!(cause = %e, "cannot advertise over mDNS: approve this till by its address");
                    None
                }
            }
        }
        None => None,
    };
    crate::systemd::ready();
    let pings = crate::systemd::spawn_watchdog_always();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .await
    });
    let admitted = tokio::select! {
        t = rx => t.is_ok(),
        () = shutdown => false,
    };
    if admitted {
        // The screen's script (it polls every second) sees "joining" before the server goes.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    if let Some(d) = advert {
        d.stop();
    }
    if let Some(p) = pings {
        p.abort();
    }
    Ok(admitted)
}

type Refusal = (StatusCode, &'static str, String);

/// Checks a grant a till of the store brought for this till: for its configured store
/// (if any), its certificate issued by the grant's CA for the grant's terminal and on this
/// till's own key, and, when the till is configured with HQ's key, signed by HQ.
fn check_grant(w: &Waiting, g: &EnrolmentGrant, store: Option<&StoreInfo>) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    use tillmesh_pos::seal::store_label;
    let configured = w.cfg.store.store_id.trim();
    if !configured.is_empty() && store_label(configured) != store_label(&g.store_id) {
        return Err(format!(
            "the grant is for store {}, this till is configured for {configured}",
            g.store_id
        ));
    }
    if store.is_some_and(|s| s.store_id != g.store_id) {
        return Err("the store details are another store's".into());
    }
    if !(1..=65_535).contains(&g.terminal) {
        return Err("the terminal id must be 1 to 65535".into());
    }
    let der = |pem: &str, what: &str| {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("the grant's {what} does not read: {e}"))
    };
    let (ca, cert) = (der(&g.ca, "store CA")?, der(&g.cert, "certificate")?);
    let (label, terminal) = tillmesh_pos::seal::check_issued(ca.as_ref(), cert.as_ref())?;
    if label != store_label(&g.store_id) || terminal != g.terminal {
        return Err(format!(
            "the certificate is for T{terminal} of {label}, not T{} of {}",
            g.terminal, g.store_id
        ));
    }
    if tillmesh_pos::seal::cert_public_key(cert.as_ref())? != w.key_point {
        return Err("the certificate is not for this till's key".into());
    }
    if let Some(hq) = &w.cfg.security.hq_master_key {
        let key = hex::decode(hq.trim()).map_err(|_| "security.hq_master_key is not hex")?;
        let sig =
            g.sig.as_deref().and_then(|s| hex::decode(s).ok()).ok_or(
                "the grant is not signed by HQ, and this till only takes grants HQ signed",
            )?;
        let msg = tillmesh_cloud_proto::enrolment_message(&g.store_id, g.terminal, &g.cert, &g.ca);
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(&msg, &sig)
            .map_err(|_| "HQ's signature of the grant does not check")?;
    }
    Ok(())
}

fn already_enrolled() -> Refusal {
    (
        StatusCode::CONFLICT,
        "already_enrolled",
        "this till is enrolled already; it is starting".into(),
    )
}

/// Takes the first admission: `Err` when the till was admitted already.
fn take_done(w: &Waiting) -> Result<tokio::sync::oneshot::Sender<()>, Refusal> {
    w.done
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(already_enrolled)
}

/// Writes an identity and its record, or gives the admission back.
fn finish(
    w: &Waiting,
    tx: tokio::sync::oneshot::Sender<()>,
    ca: &str,
    cert: &str,
    key: &str,
    record: &Enrolled,
    cloud_ca: Option<&str>,
) -> Result<(), Refusal> {
    let written = (|| -> anyhow::Result<()> {
        if let Some(pem) = cloud_ca {
            write_file(&cloud_ca_path(&w.cfg), pem, false)?;
        }
        write_identity(&w.cfg, ca, cert, key, record)
    })();
    if let Err(e) = written {
        *w.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot_write",
            format!("the identity could not be written: {e}"),
        ));
    }
    *w.joined.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((record.store_id.clone(), record.terminal));
    let _ = tx.send(());
    Ok(())
}

/// Checks a join token and writes the identity it carries; the first admission wins.
async fn admit_token(w: &Waiting, text: &str) -> Result<JoinToken, Refusal> {
    let unprocessable = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, "bad_token", m);
    let t = JoinToken::decode(text).map_err(unprocessable)?;
    let configured = w.cfg.store.store_id.trim();
    let store = if configured.is_empty() {
        t.store_id.as_str()
    } else {
        configured
    };
    t.check(store, crate::clock::SystemClock.now_ms())
        .map_err(unprocessable)?;
    // Admitted already: say so before redeeming anything.
    if w.done.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
        return Err(already_enrolled());
    }
    let redeemed = redeem(w, &t).await?;
    let tx = take_done(w)?;
    let record = Enrolled {
        terminal: t.terminal,
        via: "token".into(),
        token: t.id.clone(),
        store_id: t.store_id.clone(),
        peers: t.peers.clone(),
        cloud: t.cloud.clone(),
        at_ms: crate::clock::SystemClock.now_ms(),
        ..Default::default()
    };
    let cloud_ca = t.cloud.as_ref().and_then(|c| c.ca_pem.as_deref());
    finish(w, tx, &t.ca, &t.cert, &t.key, &record, cloud_ca)?;
    if redeemed {
        info!(terminal = t.terminal, token = %t.id, "enrolled by a join token, redeemed at the store");
    } else {
        warn!(terminal = t.terminal, token = %t.id, "enrolled by a join token that no till of the store could record (none found): the token's single use is not enforced");
    }
    Ok(t)
}

/// Rounds of trying the store's tills while none leads (an election, a till starting).
const REDEEM_ROUNDS: usize = 10;

/// This machine's id (32 hex digits, made once, kept in the data folder): a till retrying
/// a redemption after a crash is the same machine.
fn machine_id(cfg: &TerminalConfig) -> anyhow::Result<String> {
    let path = cfg.terminal.data_dir.join("machine-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if id.trim().len() == 32 => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("{}: {e}", path.display()),
    }
    let mut b = [0_u8; 16];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no OS random source: {e}"))?;
    let id = hex::encode(b);
    write_file(&path, &id, false)?;
    Ok(id)
}

/// Redeems the token at the store before using it: the leader records this machine as the
/// token's one user, and refuses it if another machine redeemed it. The store's tills come
/// from mDNS and the token's `http_peers`. `Ok(false)`: no till of the store was found (its
/// first till, or a LAN without mDNS and a token without HTTP peers).
async fn redeem(w: &Waiting, t: &JoinToken) -> Result<bool, Refusal> {
    use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
    let internal = |m: String| (StatusCode::INTERNAL_SERVER_ERROR, "cannot_redeem", m);
    let machine = machine_id(&w.cfg).map_err(|e| internal(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(t.key.as_bytes())
        .map_err(|e| internal(format!("the token's key does not read: {e}")))?;
    let rng = ring::rand::SystemRandom::new();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        key.secret_der(),
        &rng,
    )
    .map_err(|e| internal(format!("the token's key cannot sign: {e}")))?;
    let msg = crate::till::redemption_message(&t.store_id, &t.id, &machine);
    let sig = pair
        .sign(&rng, &msg)
        .map_err(|e| internal(format!("cannot sign: {e}")))?;
    let body = crate::till::Redemption {
        token_id: t.id.clone(),
        cert: t.cert.clone(),
        machine,
        sig: hex::encode(sig.as_ref()),
    };
    let mut tills = t.http_peers.clone();
    if let Some(m) = w.cfg.mesh.as_ref().filter(|m| m.mdns) {
        let (store, interfaces) = (t.store_id.clone(), crate::interfaces(&m.mdns_interfaces));
        let found = tokio::task::spawn_blocking(move || {
            tillmesh_mesh::discovery::store_http_addresses(
                &store,
                &interfaces,
                std::time::Duration::from_secs(3),
            )
        })
        .await
        .map_err(|e| internal(e.to_string()))?;
        match found {
            Ok(found) => {
                for a in found {
                    if !tills.contains(&a) {
                        tills.push(a);
                    }
                }
            }
            Err(e) => warn!(cause = %e, "cannot browse for the store's tills over mDNS"),
        }
    }
    if tills.is_empty() {
        return Ok(false);
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| internal(e.to_string()))?;
    let mut last = String::new();
    for _ in 0..REDEEM_ROUNDS {
        for a in &tills {
            let r = http
                .post(format!("http://{a}/api/v1/enrolment/redeem"))
                .json(&body)
                .send()
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{a}: {e}");
                    continue;
                }
            };
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            match (status, v["error"].as_str()) {
                (204, _) => return Ok(true),
                (409, Some("token_used")) => {
                    return Err((
                        StatusCode::CONFLICT,
                        "token_used",
                        v["message"]
                            .as_str()
                            .unwrap_or("another till used this token")
                            .to_string(),
                    ));
                }
                (422, _) => {
                    return Err((
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "bad_token",
                        format!(
                            "the store refused the token: {}",
                            v["message"].as_str().unwrap_or("")
                        ),
                    ));
                }
                _ => last = format!("{a}: {status} {}", v["message"].as_str().unwrap_or("")),
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Err((
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        format!(
            "the store's tills could not record the token (last: {last}): try again in a moment"
        ),
    ))
}

/// Writes `text` to `path` whole or not at all (`secret`: readable by the till's user only).
fn write_file(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Writes the CA, the key (readable by the till's user only) and the enrolment record,
/// then the certificate, whose presence ends waiting at the next start.
fn write_identity(
    cfg: &TerminalConfig,
    ca: &str,
    cert: &str,
    key: &str,
    record: &Enrolled,
) -> anyhow::Result<()> {
    let m = cfg
        .mesh
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no [mesh] section"))?;
    write_file(&m.ca_cert, ca, false)?;
    write_file(&m.key, key, true)?;
    std::fs::create_dir_all(&cfg.terminal.data_dir)?;
    write_file(
        &enrolled_path(cfg),
        &serde_json::to_string_pretty(record)?,
        false,
    )?;
    write_file(&m.cert, cert, false)?;
    Ok(())
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}

/// What the waiting till shows of itself.
#[derive(Debug, Serialize)]
struct View {
    /// `waiting` or `joining`.
    state: &'static str,
    store_id: String,
    code: String,
    terminal: Option<u64>,
}

async fn view(State(w): State<Arc<Waiting>>) -> Json<View> {
    let joined = w.joined.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Json(match joined {
        Some((store_id, terminal)) => View {
            state: "joining",
            store_id,
            code: w.code.clone(),
            terminal: Some(terminal),
        },
        None => View {
            state: "waiting",
            store_id: w.cfg.store.store_id.clone(),
            code: w.code.clone(),
            terminal: None,
        },
    })
}

/// This till's signing request, for the till a manager approves it on.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestView {
    /// The code the screen shows (of the request's key).
    pub code: String,
    /// The store it is configured for ("" for any).
    pub store_id: String,
    /// The certificate signing request (PEM).
    pub csr: String,
}

async fn request(State(w): State<Arc<Waiting>>) -> Json<RequestView> {
    Json(RequestView {
        code: w.code.clone(),
        store_id: w.cfg.store.store_id.clone(),
        csr: w.csr.clone(),
    })
}

/// `POST /api/v1/enrolment/token` body.
#[derive(Debug, Deserialize)]
struct TokenBody {
    token: String,
}

async fn token(
    State(w): State<Arc<Waiting>>,
    body: Result<Json<TokenBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "send {\"token\": \"tillmesh-join:...\"}".into(),
        );
    };
    match admit_token(&w, &body.token).await {
        Ok(t) => {
            Json(serde_json::json!({"state": "joining", "terminal": t.terminal})).into_response()
        }
        Err((status, code, message)) => {
            warn!(code, %message, "refused a join token");
            error(status, code, message)
        }
    }
}

/// What an enrolled till hands a waiting one it approved (`POST /api/v1/enrolment/grant`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// HQ's grant.
    pub grant: EnrolmentGrant,
    /// The store's details (name, address, currency, ...).
    #[serde(default)]
    pub store: Option<StoreInfo>,
    /// Where the cloud is.
    #[serde(default)]
    pub cloud: Option<CloudHint>,
    /// The approving till's mesh port (dialed at the address the grant came from).
    #[serde(default)]
    pub mesh_port: Option<u16>,
    /// Further peers to dial.
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
}

async fn grant(
    State(w): State<Arc<Waiting>>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    body: Result<Json<GrantBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "send {\"grant\": {...}} as an enrolled till of the store does".into(),
        );
    };
    if body.peers.len() > PEERS_MAX {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_grant",
            format!("a grant names at most {PEERS_MAX} peers"),
        );
    }
    if let Err(m) = check_grant(&w, &body.grant, body.store.as_ref()) {
        warn!(%from, cause = %m, "refused an enrolment grant");
        return error(StatusCode::UNPROCESSABLE_ENTITY, "bad_grant", m);
    }
    let tx = match take_done(&w) {
        Ok(tx) => tx,
        Err((s, c, m)) => return error(s, c, m),
    };
    let g = &body.grant;
    let mut peers = body.peers.clone();
    if let Some(port) = body.mesh_port {
        peers.insert(0, SocketAddr::new(from.ip(), port));
    }
    let record = Enrolled {
        terminal: g.terminal,
        via: "approval".into(),
        store_id: g.store_id.clone(),
        store: body.store.clone(),
        cloud: body.cloud.clone(),
        peers,
        at_ms: crate::clock::SystemClock.now_ms(),
        ..Default::default()
    };
    let cloud_ca = body.cloud.as_ref().and_then(|c| c.ca_pem.as_deref());
    if let Err((s, c, m)) = finish(&w, tx, &g.ca, &g.cert, &w.key_pem, &record, cloud_ca) {
        return error(s, c, m);
    }
    info!(terminal = g.terminal, store = %g.store_id, approver = %from, "enrolled by approval in the store");
    Json(serde_json::json!({"state": "joining", "terminal": g.terminal})).into_response()
}
