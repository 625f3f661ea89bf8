//! How the uplink reaches the cloud: one request type, and HTTP(S) with reqwest on a till
//! (the simulator plugs the cloud's router in process instead).

use crate::Settings;
use std::time::Duration;
use tillmesh_cloud_proto::BINARY_CONTENT_TYPE;

/// One request to the cloud: a path under the cloud's URL (with its query), the store's
/// credential, and a body (binary, gzip'd) for uploads.
#[derive(Clone, Debug)]
pub struct CloudRequest {
    /// Path and query, from `/api/...`.
    pub path: String,
    /// Bearer credential.
    pub token: String,
    /// POST without a body (when no batch is given).
    pub post: bool,
    /// POST this binary, gzip'd batch (GET when `None` and not `post`).
    pub batch_gzip: Option<Vec<u8>>,
    /// POST this JSON body (when no batch is given).
    pub json: Option<Vec<u8>>,
    /// POST this support bundle (tar, zstd; when neither a batch nor JSON is given).
    pub bundle: Option<Vec<u8>>,
}

/// A future answering `(status, body)`, or why the cloud could not be reached.
pub type CloudAnswer<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(u16, Vec<u8>), String>> + Send + 'a>,
>;

/// How the uplink reaches the cloud: HTTP (reqwest) on a till; the cloud's own router in
/// process under the simulator.
pub trait CloudHttp: Send + Sync + std::fmt::Debug {
    /// Sends one request.
    fn call(&self, req: CloudRequest) -> CloudAnswer<'_>;
}

/// The cloud over HTTP(S).
#[derive(Debug)]
pub struct ReqwestCloud {
    url: String,
    http: reqwest::Client,
}

impl ReqwestCloud {
    /// A client for `cfg.url` (trusting `cfg.ca_cert` when set), with its timeouts.
    pub fn new(cfg: &Settings) -> Result<Self, String> {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms));
        if let Some(ca) = &cfg.ca_cert {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read cloud.ca_cert {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("cloud.ca_cert {}: {}", ca.display(), error_chain(&e)))?;
            http = http.add_root_certificate(cert);
        }
        Ok(Self {
            url: cfg.url.clone(),
            http: http.build().map_err(|e| error_chain(&e))?,
        })
    }
}

impl CloudHttp for ReqwestCloud {
    fn call(&self, req: CloudRequest) -> CloudAnswer<'_> {
        Box::pin(async move {
            let url = format!("{}{}", self.url, req.path);
            let r = match req.batch_gzip {
                Some(body) => self
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, BINARY_CONTENT_TYPE)
                    .header(reqwest::header::CONTENT_ENCODING, "gzip")
                    .body(body),
                None if req.json.is_some() => self
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(req.json.unwrap_or_default()),
                None if req.bundle.is_some() => self
                    .http
                    .post(url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        tillmesh_cloud_proto::tills::BUNDLE_CONTENT_TYPE,
                    )
                    .body(req.bundle.unwrap_or_default()),
                None if req.post => self.http.post(url),
                None => self.http.get(url),
            };
            let resp = r
                .bearer_auth(&req.token)
                .send()
                .await
                .map_err(|e| error_chain(&e))?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| error_chain(&e))?;
            Ok((status, body.to_vec()))
        })
    }
}

/// An error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
