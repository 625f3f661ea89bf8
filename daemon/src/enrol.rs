//! Enrolment at first boot, by join token: a till configured with `[mesh] enrol = true` and
//! no certificate yet does not refuse to start. It waits on its HTTP address, showing a
//! short code on its screen, for a join token (`tillmesh store token`, made where the store
//! CA key is, printed as text and as a QR code). The token carries the certificate and key
//! the CA issued for one terminal id, the store CA and, optionally, peers to dial. The till
//! checks it (the store's CA issued the certificate, for this store, for the token's
//! terminal; the key matches; not expired), writes the three files to its configured paths,
//! remembers its terminal id in its data directory, and starts as that till: it joins the
//! mesh and the Raft group and syncs. See ARCHITECTURE.md "Enrolment" for what a token is
//! worth to a thief.

use crate::clock::Clock;
use crate::config::TerminalConfig;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// What a join token's text starts with.
pub const TOKEN_PREFIX: &str = "tillmesh-join:";
/// Longest token text accepted (a token is about 1.5 KB).
pub const TOKEN_CHARS_MAX: usize = 8_192;
/// Largest token once inflated.
const TOKEN_BYTES_MAX: u64 = 16_384;
/// Most peers a token names.
const PEERS_MAX: usize = 64;

/// A one-time join token: the identity the store CA issued for one terminal id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// Store id.
    pub store_id: String,
    /// The terminal id the certificate names.
    pub terminal: u64,
    /// The token's id (random, hex): logged and kept by the till it enrolled.
    pub id: String,
    /// Not valid after this (ms since the epoch).
    pub expires_ms: u64,
    /// The store CA's certificate (PEM).
    pub ca: String,
    /// The till's certificate (PEM).
    pub cert: String,
    /// The till's private key (PEM).
    pub key: String,
    /// Peers to dial (for a store without mDNS on its LAN).
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
}

impl JoinToken {
    /// The token as text: the prefix, then base64url of its deflated JSON.
    pub fn encode(&self) -> anyhow::Result<String> {
        use std::io::Write;
        let json = serde_json::to_vec(self)?;
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&json)?;
        let bytes = z.finish()?;
        Ok(format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// Reads a token's text (as typed, pasted or scanned: whitespace is ignored).
    pub fn decode(text: &str) -> Result<JoinToken, String> {
        use std::io::Read;
        if text.len() > TOKEN_CHARS_MAX {
            return Err(format!(
                "a join token is at most {TOKEN_CHARS_MAX} characters"
            ));
        }
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let body = text
            .strip_prefix(TOKEN_PREFIX)
            .ok_or_else(|| format!("a join token starts with {TOKEN_PREFIX}"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| "the join token is damaged (not base64url)".to_string())?;
        let mut json = Vec::new();
        flate2::read::DeflateDecoder::new(bytes.as_slice())
            .take(TOKEN_BYTES_MAX)
            .read_to_end(&mut json)
            .map_err(|_| "the join token is damaged (does not inflate)".to_string())?;
        let t: JoinToken =
            serde_json::from_slice(&json).map_err(|e| format!("the join token is damaged: {e}"))?;
        if t.peers.len() > PEERS_MAX {
            return Err(format!("a join token names at most {PEERS_MAX} peers"));
        }
        Ok(t)
    }

    /// Checks the token for a till of `store_id` at `now_ms`: not expired, for this store,
    /// its certificate issued by its store CA for its terminal, and its key the certificate's.
    pub fn check(&self, store_id: &str, now_ms: u64) -> Result<(), String> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        if self.store_id != store_id {
            return Err(format!(
                "the token is for store {}, this till is configured for {store_id}",
                self.store_id
            ));
        }
        if now_ms > self.expires_ms {
            return Err(format!(
                "the token expired at {}",
                crate::clock::rfc3339(self.expires_ms)
            ));
        }
        let der = |pem: &str, what: &str| {
            CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| format!("the token's {what} does not read: {e}"))
        };
        let (ca, cert) = (der(&self.ca, "store CA")?, der(&self.cert, "certificate")?);
        let (label, terminal) = tillmesh_pos::seal::check_issued(ca.as_ref(), cert.as_ref())?;
        if label != tillmesh_pos::seal::store_label(store_id) || terminal != self.terminal {
            return Err(format!(
                "the token's certificate is for T{terminal} of {label}, not T{} of {store_id}",
                self.terminal
            ));
        }
        let id = tillmesh_mesh::identity::TillIdentity::from_pem(
            store_id,
            &self.ca,
            &tillmesh_mesh::identity::Pem {
                cert: self.cert.clone(),
                key: self.key.clone(),
            },
        )
        .map_err(|e| e.to_string())?;
        id.server_config()
            .map_err(|e| format!("the token's key is not its certificate's: {e}"))?;
        Ok(())
    }
}

/// What an enrolled till keeps of its token in its data directory.
#[derive(Debug, Serialize, Deserialize)]
struct Enrolled {
    terminal: u64,
    token: String,
    at_ms: u64,
}

fn enrolled_path(cfg: &TerminalConfig) -> PathBuf {
    cfg.terminal.data_dir.join("enrolled.json")
}

/// Whether the till waits for a join token: `[mesh] enrol` and no certificate yet.
pub fn waiting(cfg: &TerminalConfig) -> bool {
    cfg.mesh.as_ref().is_some_and(waiting_for)
}

/// [`waiting`] for a `[mesh]` section.
pub fn waiting_for(m: &crate::config::MeshSection) -> bool {
    m.enrol && !m.cert.exists()
}

/// A till enrolled by a token runs as the terminal the token named.
pub fn adopt(mut cfg: TerminalConfig) -> anyhow::Result<TerminalConfig> {
    if cfg.mesh.as_ref().is_some_and(|m| m.enrol) {
        match std::fs::read_to_string(enrolled_path(&cfg)) {
            Ok(text) => {
                let e: Enrolled = serde_json::from_str(&text)?;
                cfg.terminal.id = e.terminal;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("{}: {e}", enrolled_path(&cfg).display()),
        }
    }
    Ok(cfg)
}

struct Waiting {
    cfg: TerminalConfig,
    code: String,
    done: Mutex<Option<tokio::sync::oneshot::Sender<JoinToken>>>,
}

/// Serves the waiting screen and the token endpoint on the till's HTTP address until a
/// valid token arrives (its identity is then written and the config to start with
/// answered) or `shutdown` (`None`).
pub async fn wait(
    cfg: TerminalConfig,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> anyhow::Result<Option<TerminalConfig>> {
    let code = code();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let state = Arc::new(Waiting {
        cfg: cfg.clone(),
        code: code.clone(),
        done: Mutex::new(Some(tx)),
    });
    let app = Router::new()
        .route("/", get(page))
        .route("/health", get(|| async { "waiting to join" }))
        .route("/enrol", post(form))
        .route("/api/v1/enrolment", get(view))
        .route("/api/v1/enrolment/token", post(token))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(cfg.terminal.listen).await?;
    let addr = listener.local_addr()?;
    info!(%addr, code = %code, store = %cfg.store.store_id, "no certificate yet: waiting for a join token");
    crate::systemd::ready();
    let pings = crate::systemd::spawn_watchdog_always();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let token = tokio::select! {
        t = rx => t.ok(),
        () = shutdown => None,
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    if let Some(p) = pings {
        p.abort();
    }
    let Some(token) = token else {
        return Ok(None);
    };
    let mut cfg = cfg;
    cfg.terminal.id = token.terminal;
    if let Some(m) = cfg.mesh.as_mut() {
        for p in &token.peers {
            if !m.peers.contains(p) {
                m.peers.push(*p);
            }
        }
    }
    info!(terminal = token.terminal, token = %token.id, "enrolled by a join token");
    Ok(Some(cfg))
}

/// A short code for the screen: six characters without look-alikes.
fn code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0_u8; 6];
    getrandom::fill(&mut b).expect("the OS random source is available");
    let c: String = b
        .iter()
        .map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &c[..3], &c[3..])
}

/// Checks a token and writes the identity it carries; the first valid token wins.
fn admit(w: &Waiting, text: &str) -> Result<JoinToken, (StatusCode, &'static str, String)> {
    let unprocessable = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, "bad_token", m);
    let t = JoinToken::decode(text).map_err(unprocessable)?;
    t.check(&w.cfg.store.store_id, crate::clock::SystemClock.now_ms())
        .map_err(unprocessable)?;
    let mut done = w.done.lock().unwrap_or_else(|p| p.into_inner());
    let Some(tx) = done.take() else {
        return Err((
            StatusCode::CONFLICT,
            "already_enrolled",
            "this till is enrolled already; it is starting".into(),
        ));
    };
    if let Err(e) = write_identity(&w.cfg, &t) {
        *done = Some(tx);
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot_write",
            format!("the identity could not be written: {e}"),
        ));
    }
    let _ = tx.send(t.clone());
    Ok(t)
}

/// Writes the CA, certificate and key to the configured paths (the key readable by the
/// till's user only), then the enrolment record.
fn write_identity(cfg: &TerminalConfig, t: &JoinToken) -> anyhow::Result<()> {
    let m = cfg
        .mesh
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no [mesh] section"))?;
    let write = |path: &Path, text: &str, secret: bool| -> anyhow::Result<()> {
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
    };
    write(&m.ca_cert, &t.ca, false)?;
    write(&m.key, &t.key, true)?;
    std::fs::create_dir_all(&cfg.terminal.data_dir)?;
    let record = Enrolled {
        terminal: t.terminal,
        token: t.id.clone(),
        at_ms: crate::clock::SystemClock.now_ms(),
    };
    write(
        &enrolled_path(cfg),
        &serde_json::to_string_pretty(&record)?,
        false,
    )?;
    // The certificate last: its presence is what ends waiting at the next start.
    write(&m.cert, &t.cert, false)?;
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
    state: &'static str,
    store_id: String,
    code: String,
}

async fn view(State(w): State<Arc<Waiting>>) -> Json<View> {
    Json(View {
        state: "waiting",
        store_id: w.cfg.store.store_id.clone(),
        code: w.code.clone(),
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
    match admit(&w, &body.token) {
        Ok(t) => {
            Json(serde_json::json!({"state": "joining", "terminal": t.terminal})).into_response()
        }
        Err((status, code, message)) => {
            warn!(code, %message, "refused a join token");
            error(status, code, message)
        }
    }
}

fn html(body: String) -> Response {
    let mut r = Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>tillmesh: waiting to join</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:3em auto}}.code{{font-size:3em;letter-spacing:.1em}}\
         textarea{{width:100%;height:8em}}</style></head><body>{body}</body></html>"
    ))
    .into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn page(State(w): State<Arc<Waiting>>) -> Response {
    html(format!(
        "<h1>This till is waiting to join store {}</h1>\
         <p>Its code: <span class=code id=code>{}</span></p>\
         <form method=post action=/enrol><label for=token>Scan or type its join token \
         (<code>tillmesh store token</code>):</label><textarea id=token name=token autofocus></textarea>\
         <button type=submit>Join</button></form>",
        escape(&w.cfg.store.store_id),
        escape(&w.code)
    ))
}

#[derive(Debug, Deserialize)]
struct FormBody {
    token: String,
}

async fn form(
    State(w): State<Arc<Waiting>>,
    body: Result<Form<FormBody>, axum::extract::rejection::FormRejection>,
) -> Response {
    let text = body.map(|Form(f)| f.token).unwrap_or_default();
    match admit(&w, &text) {
        Ok(t) => html(format!(
            "<h1>Joining store {} as till {}</h1><p>The till is starting; this page will be the till's in a moment.</p>",
            escape(&t.store_id),
            t.terminal
        )),
        Err((status, _, message)) => {
            let mut r = html(format!(
                "<h1>That token was not accepted</h1><p id=why>{}</p><p><a href=/>Try again</a></p>",
                escape(&message)
            ));
            *r.status_mut() = status;
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(ca: &tillmesh_mesh::identity::Pem, store: &str, t: u64, expires_ms: u64) -> JoinToken {
        let till = tillmesh_mesh::identity::enroll(ca, store, t).unwrap();
        JoinToken {
            store_id: store.into(),
            terminal: t,
            id: "00ff".into(),
            expires_ms,
            ca: ca.cert.clone(),
            cert: till.cert,
            key: till.key,
            peers: vec!["127.0.0.1:7400".parse().unwrap()],
        }
    }

    #[test]
    fn a_token_round_trips_as_text_and_checks() {
        let ca = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
        let t = token(&ca, "S001", 3, u64::MAX);
        let text = t.encode().unwrap();
        assert!(text.len() < 2_500, "{} characters", text.len());
        // Scanners and pasting add line breaks and spaces.
        let broken = format!(" {}\n{} \n", &text[..40], &text[40..]);
        assert_eq!(JoinToken::decode(&broken).unwrap(), t);
        assert_eq!(t.check("S001", 1_000), Ok(()));
    }

    #[test]
    fn expired_foreign_mismatched_or_damaged_tokens_are_refused() {
        let ca = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
        let other = tillmesh_mesh::identity::create_store_ca("S001").unwrap();
        let t = token(&ca, "S001", 3, 5_000);
        assert!(t.check("S001", 5_001).unwrap_err().contains("expired"));
        assert!(t.check("S002", 1_000).unwrap_err().contains("S002"));
        let mut wrong_ca = t.clone();
        wrong_ca.ca = other.cert.clone();
        assert!(wrong_ca.check("S001", 1_000).unwrap_err().contains("CA"));
        let mut wrong_terminal = t.clone();
        wrong_terminal.terminal = 4;
        assert!(wrong_terminal.check("S001", 1_000).is_err());
        let mut wrong_key = t.clone();
        wrong_key.key = token(&ca, "S001", 3, 5_000).key;
        assert!(wrong_key.check("S001", 1_000).unwrap_err().contains("key"));
        for bad in [
            "",
            "tillmesh-join:",
            "tillmesh-join:!!!",
            "hello",
            &"x".repeat(9_000),
        ] {
            assert!(JoinToken::decode(bad).is_err(), "{bad:.20}");
        }
    }
}
