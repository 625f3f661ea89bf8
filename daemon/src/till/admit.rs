//! Admitting a new till in the store: a manager sees the tills waiting to join (found over
//! mDNS), confirms one's code with their PIN, and this till does the rest. It reads the
//! waiting till's signing request, checks that the request's key is the one whose code the
//! manager confirmed (so a rogue till cannot take another's approval), asks HQ, which holds
//! the store CA, to issue a terminal id and sign the request, and hands the waiting till
//! HQ's grant, the store's details, the cloud's address and this till's mesh port.

use super::*;
use std::net::SocketAddr;
use tillmesh_cloud_proto::EnrolmentGrant;

/// Longest wait for the waiting till or HQ.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Largest answer read from a waiting till or HQ.
const ANSWER_BYTES_MAX: usize = 64 * 1024;

/// A till waiting to join, as a manager sees it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WaitingTill {
    /// The code its screen shows.
    pub code: String,
    /// Its HTTP address.
    pub address: String,
    /// The store it is configured for (none: any).
    pub store_id: Option<String>,
}

/// A manager's approval of a waiting till.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmitRequest {
    /// The code the waiting till's screen shows (`ABCD-EFGH`).
    pub code: String,
    /// Its HTTP address, when mDNS did not find it (`10.0.0.23:7300`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub address: Option<SocketAddr>,
    /// The approving manager.
    pub employee_id: String,
    /// Their PIN.
    pub pin: String,
}

/// A till admitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdmittedTill {
    /// The terminal id HQ issued it.
    pub terminal: u64,
    /// Its code.
    pub code: String,
    /// Its HTTP address.
    pub address: String,
    /// Who approved.
    pub approved_by: String,
}

fn normal_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// Reads a JSON answer of at most [`ANSWER_BYTES_MAX`].
async fn answer(r: reqwest::Response) -> Result<(u16, serde_json::Value), String> {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.map_err(|e| e.to_string())?;
    if bytes.len() > ANSWER_BYTES_MAX {
        return Err("the answer is too large".into());
    }
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}

impl Till {
    /// Tills waiting to join this store that mDNS found (a manager's view).
    pub fn waiting_tills(&self, s: &Session) -> Result<Vec<WaitingTill>, TillError> {
        if !s.role.allows(Permission::AdmitTill) {
            return Err(TillError::forbidden(
                "manager_only",
                "only a manager sees the tills waiting to join",
            ));
        }
        Ok(self
            .links
            .joining()
            .into_iter()
            .map(|j| WaitingTill {
                code: j.code,
                address: j.http.to_string(),
                store_id: j.store,
            })
            .collect())
    }

    /// Admits the waiting till whose code a manager confirmed with their PIN (audited).
    pub async fn admit_till(
        &self,
        s: &Session,
        req: &AdmitRequest,
    ) -> Result<AdmittedTill, TillError> {
        let code = normal_code(&req.code);
        self.audited(&s.employee_id, "enrolment.admit", &code, async {
            let asker = format!("session:{}", s.employee_id);
            let manager = self.verify_pin(&req.employee_id, &req.pin, &asker).await?;
            if !manager.role.allows(Permission::AdmitTill) {
                return Err(TillError::forbidden(
                    "approval_refused",
                    format!("{} is not allowed to admit a till", manager.employee_id),
                ));
            }
            let address = match req.address {
                Some(a) => a,
                None => self
                    .links
                    .joining()
                    .into_iter()
                    .find(|j| j.code == code)
                    .map(|j| j.http)
                    .ok_or_else(|| {
                        TillError::not_found(
                            "no_waiting_till",
                            format!("no till waiting with code {code} was found on this network: give its address (its screen shows it)"),
                        )
                    })?,
            };
            let approved_by = format!("{} on T{}", manager.employee_id, self.cfg.terminal.id);
            let terminal = self.enrol_at(address, &code, &approved_by).await?;
            info!(terminal, %code, %address, approved_by = %approved_by, "admitted a new till");
            Ok(AdmittedTill {
                terminal,
                code: code.clone(),
                address: address.to_string(),
                approved_by,
            })
        })
        .await
    }

    /// Reads the request at `address`, has HQ sign it, hands over the grant.
    async fn enrol_at(
        &self,
        address: SocketAddr,
        code: &str,
        approved_by: &str,
    ) -> Result<u64, TillError> {
        let Some(cloud) = &self.cfg.cloud else {
            return Err(TillError::conflict(
                "no_cloud",
                "this till has no [cloud]: HQ signs new tills' certificates; admit it with a join token",
            ));
        };
        let waiting_down = |e: String| {
            TillError::unavailable(
                "waiting_till_unreachable",
                format!("the waiting till at {address} does not answer: {e}"),
            )
        };
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| TillError::unavailable("no_http", e.to_string()))?;
        let r = http
            .get(format!("http://{address}/api/v1/enrolment/request"))
            .send()
            .await
            .map_err(|e| waiting_down(tillmesh_uplink::error_chain(&e)))?;
        let (status, v) = answer(r).await.map_err(waiting_down)?;
        let request: crate::enrol::RequestView = (status == 200)
            .then(|| serde_json::from_value(v).ok())
            .flatten()
            .ok_or_else(|| waiting_down(format!("no signing request ({status})")))?;
        let ours = &self.cfg.store.store_id;
        if !request.store_id.trim().is_empty()
            && tillmesh_pos::seal::store_label(&request.store_id)
                != tillmesh_pos::seal::store_label(ours)
        {
            return Err(TillError::conflict(
                "other_store",
                format!(
                    "the till at {address} is configured for store {}",
                    request.store_id
                ),
            ));
        }
        let key_code = tillmesh_pki::Request::parse(&request.csr)
            .map_err(|e| TillError::unprocessable("bad_request", e))?
            .code();
        if key_code != code {
            return Err(TillError::conflict(
                "code_mismatch",
                format!("the till at {address} shows another code: check the code on its screen"),
            ));
        }
        let grant = self.ask_hq(cloud, &request.csr, code, approved_by).await?;
        let ca_pem = match &cloud.ca_cert {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                TillError::unavailable("no_cloud_ca", format!("{}: {e}", p.display()))
            })?),
            None => None,
        };
        let body = crate::enrol::GrantBody {
            grant: grant.clone(),
            store: Some(self.cfg.store.clone()),
            cloud: Some(crate::enrol::CloudHint {
                url: cloud.url.clone(),
                allow_plain_http: cloud.allow_plain_http,
                ca_pem,
            }),
            mesh_port: self.links.mesh_addr().map(|a| a.port()),
            peers: Vec::new(),
        };
        let r = http
            .post(format!("http://{address}/api/v1/enrolment/grant"))
            .json(&body)
            .send()
            .await
            .map_err(|e| waiting_down(tillmesh_uplink::error_chain(&e)))?;
        let (status, v) = answer(r).await.map_err(waiting_down)?;
        if status != 200 {
            return Err(TillError::conflict(
                "grant_refused",
                format!(
                    "the waiting till refused its grant ({status}): {}",
                    v["message"].as_str().unwrap_or("")
                ),
            ));
        }
        Ok(grant.terminal)
    }

    /// Asks HQ to issue a terminal id and sign `csr`.
    async fn ask_hq(
        &self,
        cloud: &crate::config::CloudSection,
        csr: &str,
        code: &str,
        approved_by: &str,
    ) -> Result<EnrolmentGrant, TillError> {
        let token = self
            .links
            .store_raft()
            .and_then(|r| r.state().credential.map(|(t, _)| t))
            .unwrap_or_else(|| cloud.token.clone());
        let settings = cloud.uplink(&self.cfg.store.store_id);
        let mut http = reqwest::Client::builder().timeout(CALL_TIMEOUT);
        if let Some(ca) = &settings.ca_cert {
            let pem = std::fs::read(ca)
                .map_err(|e| TillError::unavailable("no_cloud_ca", e.to_string()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| TillError::unavailable("no_cloud_ca", e.to_string()))?;
            http = http.add_root_certificate(cert);
        }
        let http = http
            .build()
            .map_err(|e| TillError::unavailable("no_http", e.to_string()))?;
        let hq_down = |e: String| {
            TillError::unavailable(
                "cloud_unreachable",
                format!(
                    "HQ does not answer ({e}): admit the till with a join token (tillmesh store token)"
                ),
            )
        };
        let r = http
            .post(format!("{}/api/v1/sync/enrolments", settings.url))
            .bearer_auth(token)
            .json(&serde_json::json!({"csr": csr, "code": code, "approved_by": approved_by}))
            .send()
            .await
            .map_err(|e| hq_down(tillmesh_uplink::error_chain(&e)))?;
        let (status, v) = answer(r).await.map_err(hq_down)?;
        if status != 200 {
            return Err(TillError::conflict(
                "hq_refused",
                format!(
                    "HQ refused to enrol the till ({status} {}): {}",
                    v["error"].as_str().unwrap_or(""),
                    v["message"].as_str().unwrap_or("")
                ),
            ));
        }
        serde_json::from_value(v).map_err(|e| {
            TillError::unavailable(
                "cloud_unreachable",
                format!("HQ's grant does not read: {e}"),
            )
        })
    }
}

/// The Raft setting prefix recording which machine redeemed a join token
/// (`enrol.token.<token id>` = machine id).
pub const REDEEMED_PREFIX: &str = "enrol.token.";

/// A waiting till redeeming a join token at the store (`POST /api/v1/enrolment/redeem`),
/// before it uses the token: the store records the first machine to redeem it, so a token
/// admits one till, once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redemption {
    /// The token's id (hex).
    pub token_id: String,
    /// The token's certificate (PEM).
    pub cert: String,
    /// The redeeming machine's id (32 hex digits, kept in its data folder).
    pub machine: String,
    /// ECDSA P-256 (`r || s`, hex) by the token's key of [`redemption_message`].
    pub sig: String,
}

/// The bytes a redeeming till signs with the token's key.
pub fn redemption_message(store_id: &str, token_id: &str, machine: &str) -> Vec<u8> {
    let mut m = b"tillmesh token redemption v1\0".to_vec();
    for part in [store_id, token_id, machine] {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m
}

/// One redemption at a time on this till (the leader), so that two machines redeeming one
/// token at once cannot both read it unused.
static REDEEMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn is_hex(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Till {
    /// Records that `r.machine` redeemed a join token (on the leader; idempotent for the
    /// same machine); refuses a token another machine redeemed.
    pub async fn redeem_token(&self, r: &Redemption) -> Result<(), TillError> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let bad = |m: &str| TillError::unprocessable("bad_redemption", m.to_string());
        if !is_hex(&r.token_id, 64) || r.machine.len() != 32 || !is_hex(&r.machine, 32) {
            return Err(bad(
                "token_id is hex (at most 64 digits), machine 32 hex digits",
            ));
        }
        let Some(m) = &self.cfg.mesh else {
            return Err(TillError::conflict(
                "no_mesh",
                "this till has no store mesh",
            ));
        };
        let ca = std::fs::read(&m.ca_cert).map_err(|e| {
            TillError::unavailable("no_ca", format!("cannot read the store CA: {e}"))
        })?;
        let ca = CertificateDer::from_pem_slice(&ca)
            .map_err(|e| TillError::unavailable("no_ca", e.to_string()))?;
        let cert = CertificateDer::from_pem_slice(r.cert.as_bytes())
            .map_err(|_| bad("the certificate does not read"))?;
        let (label, terminal) =
            tillmesh_pos::seal::check_issued(ca.as_ref(), cert.as_ref()).map_err(|e| bad(&e))?;
        let store = &self.cfg.store.store_id;
        if label != tillmesh_pos::seal::store_label(store) {
            return Err(bad("the token is another store's"));
        }
        let point = tillmesh_pos::seal::cert_public_key(cert.as_ref()).map_err(|e| bad(&e))?;
        let sig = hex::decode(&r.sig).map_err(|_| bad("sig is not hex"))?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(&redemption_message(store, &r.token_id, &r.machine), &sig)
            .map_err(|_| bad("the signature is not the token key's"))?;
        let raft = self.links.store_raft().ok_or_else(|| {
            TillError::unavailable("no_raft", "the store's Raft group is not running yet")
        })?;
        let _one = REDEEMING.lock().await;
        if raft.leader().await != Some(raft.id) {
            return Err(TillError::conflict(
                "not_leader",
                "this till does not lead the store: redeem at the leader",
            ));
        }
        let key = format!("{REDEEMED_PREFIX}{}", r.token_id);
        match raft.state().settings.get(&key) {
            Some(m) if *m == r.machine => return Ok(()),
            Some(_) => {
                return Err(TillError::conflict(
                    "token_used",
                    format!(
                        "this join token for T{terminal} was used by another till: ask for a new one"
                    ),
                ));
            }
            None => {}
        }
        raft.propose(tillmesh_consensus::Command::Setting {
            key,
            value: r.machine.clone(),
        })
        .await
        .map_err(|e| match e {
            tillmesh_consensus::node::ConsensusError::NotLeader { .. } => TillError::conflict(
                "not_leader",
                "this till does not lead the store: redeem at the leader",
            ),
            other => TillError::unavailable("raft", other.to_string()),
        })?;
        info!(terminal, token = %r.token_id, "a join token was redeemed");
        Ok(())
    }
}
