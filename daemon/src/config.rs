//! Terminal configuration: one serde struct per section with defaults, loaded from TOML, then
//! command-line overrides, then `validate()`.

mod raft;

use raft::{default_raft_election_max, default_raft_election_min, default_raft_heartbeat};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tillmesh_pos::cashier::Role;
use tillmesh_pos::receipt::StoreInfo;

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML for this schema.
    #[error("config {0} is invalid: {1}")]
    Parse(PathBuf, String),
    /// A value is out of range.
    #[error("config value {0} is invalid: {1}")]
    Invalid(&'static str, String),
}

/// Environment variables that override the terminal config: `TILLMESH_<SECTION>__<KEY>`
/// (e.g. `TILLMESH_TERMINAL__LISTEN=0.0.0.0:7300`, `TILLMESH_MESH__PEERS='["10.0.0.2:7400"]'`).
pub const ENV_PREFIX: &str = "TILLMESH_";

/// The whole terminal config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalConfig {
    /// The store this till belongs to.
    pub store: StoreInfo,
    /// This till.
    pub terminal: TerminalSection,
    /// Checkout rules.
    #[serde(default)]
    pub checkout: CheckoutSection,
    /// Login rules.
    #[serde(default)]
    pub security: SecuritySection,
    /// Where master data comes from on first start.
    pub catalog: CatalogSection,
    /// Simulated QR provider.
    #[serde(default)]
    pub payments: PaymentsSection,
    /// Staff accounts created on first start (PINs are hashed before they are stored).
    #[serde(default)]
    pub staff: Vec<StaffSeed>,
    /// The store mesh (absent: this till runs alone).
    #[serde(default)]
    pub mesh: Option<MeshSection>,
    /// The cloud sync endpoint (needs `[mesh]`: the store's Raft leader uploads).
    #[serde(default)]
    pub cloud: Option<CloudSection>,
    /// Product recognition: the model card (none: recognition is off).
    #[serde(default)]
    pub vision: Option<VisionSection>,
    /// The config as loaded (the file with the environment's overrides), for support
    /// bundles, which mask its secrets; empty when not loaded from a file.
    #[serde(skip)]
    pub source: String,
}

/// `[vision]`: the product-recognition model and its limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisionSection {
    /// The model card (the ONNX file is named inside it, relative to the card).
    pub card: PathBuf,
    /// Proposals answered per frame (1 to 20).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Frames recognised at once; more wait (bounded, then refused as busy).
    #[serde(default = "default_vision_slots")]
    pub concurrency: usize,
}

fn default_top_k() -> usize {
    5
}

fn default_vision_slots() -> usize {
    2
}

/// `[cloud]`: the store's link to HQ, used by whichever till leads the store's Raft group.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSection {
    /// Base URL of the cloud endpoint (`https://hq.example:8700`). `http://` only to a
    /// loopback address (the store credential would travel in clear), unless
    /// `allow_plain_http` says the network is an isolated test network.
    pub url: String,
    /// Allow `http://` to a non-loopback host: only for an isolated test network.
    #[serde(default)]
    pub allow_plain_http: bool,
    /// The store's credential (`tillmesh hq token --store ID`).
    pub token: String,
    /// A CA certificate (PEM) to trust for the cloud's TLS, besides none (plain HTTP on
    /// loopback) ; absent: the cloud must be plain HTTP or use a certificate this CA signed.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Most events per upload batch (the cloud takes at most 5,000).
    #[serde(default = "default_upload_events")]
    pub batch_events_max: usize,
    /// Most encoded bytes per upload batch, before compression (the cloud takes 8 MiB).
    #[serde(default = "default_upload_bytes")]
    pub batch_bytes_max: usize,
    /// How long new events wait for company before a batch leaves, ms.
    #[serde(default = "default_linger")]
    pub linger_ms: u64,
    /// With nothing to send, the leader checks the link this often (an empty batch), ms.
    #[serde(default = "default_cloud_heartbeat")]
    pub heartbeat_ms: u64,
    /// One request's time limit, ms.
    #[serde(default = "default_cloud_timeout")]
    pub timeout_ms: u64,
    /// First retry delay after a failure, ms (doubles, with jitter).
    #[serde(default = "default_backoff_min")]
    pub backoff_min_ms: u64,
    /// Longest retry delay, ms.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// How often the leader pulls master data, ms (also on reconnect and when told).
    #[serde(default = "default_master_pull")]
    pub master_pull_ms: u64,
    /// A store out of touch with the cloud this long refuses new sales until a manager
    /// overrides, ms (0 = never refuse).
    #[serde(default = "default_offline_limit")]
    pub offline_limit_ms: u64,
    /// How long a manager's override of the offline limit lasts, ms.
    #[serde(default = "default_override")]
    pub override_ms: u64,
    /// The leader renews the store's credential once it expires within this, ms (30 days).
    #[serde(default = "default_renew_before")]
    pub credential_renew_before_ms: u64,
    /// The leader reports every till's link, lag and version to HQ this often, ms (0: never).
    #[serde(default = "default_tills_report")]
    pub tills_report_ms: u64,
}

fn default_tills_report() -> u64 {
    tillmesh_cloud_proto::tills::TILLS_REPORT_MS
}

impl CloudSection {
    /// The uplink's settings for store `store_id`.
    pub fn uplink(&self, store_id: &str) -> tillmesh_uplink::Settings {
        tillmesh_uplink::Settings {
            store_id: store_id.to_string(),
            url: self.url.clone(),
            token: self.token.clone(),
            ca_cert: self.ca_cert.clone(),
            batch_events_max: self.batch_events_max,
            batch_bytes_max: self.batch_bytes_max,
            linger_ms: self.linger_ms,
            heartbeat_ms: self.heartbeat_ms,
            timeout_ms: self.timeout_ms,
            backoff_min_ms: self.backoff_min_ms,
            backoff_max_ms: self.backoff_max_ms,
            master_pull_ms: self.master_pull_ms,
            renew_before_ms: self.credential_renew_before_ms,
            tills_report_ms: self.tills_report_ms,
        }
    }
}

impl CloudSection {
    /// A cloud at `url` with this credential and the defaults for the rest.
    pub fn new(url: String, token: String) -> Self {
        Self {
            url,
            token,
            allow_plain_http: false,
            ca_cert: None,
            batch_events_max: default_upload_events(),
            batch_bytes_max: default_upload_bytes(),
            linger_ms: default_linger(),
            heartbeat_ms: default_cloud_heartbeat(),
            timeout_ms: default_cloud_timeout(),
            backoff_min_ms: default_backoff_min(),
            backoff_max_ms: default_backoff_max(),
            master_pull_ms: default_master_pull(),
            offline_limit_ms: default_offline_limit(),
            override_ms: default_override(),
            credential_renew_before_ms: default_renew_before(),
            tills_report_ms: default_tills_report(),
        }
    }
}

fn default_upload_events() -> usize {
    2_000
}

fn default_upload_bytes() -> usize {
    2 << 20
}

fn default_linger() -> u64 {
    200
}

fn default_cloud_heartbeat() -> u64 {
    2_000
}

fn default_cloud_timeout() -> u64 {
    3_000
}

fn default_backoff_min() -> u64 {
    1_000
}

fn default_backoff_max() -> u64 {
    300_000
}

fn default_disk_free_min_mb() -> u64 {
    64
}

fn default_startup_check_max_mb() -> u64 {
    256
}

fn default_renew_before() -> u64 {
    30 * 86_400_000
}

fn default_master_pull() -> u64 {
    900_000
}

fn default_offline_limit() -> u64 {
    86_400_000
}

fn default_override() -> u64 {
    8 * 3_600_000
}

/// `[mesh]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSection {
    /// UDP address of the QUIC endpoint.
    #[serde(default = "default_mesh_listen")]
    pub listen: SocketAddr,
    /// The store CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// This till's certificate (PEM), from `tillmesh terminal enroll`.
    pub cert: PathBuf,
    /// This till's private key (PEM).
    pub key: PathBuf,
    /// Peers to dial without discovery (`host:port`).
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
    /// Discover peers with mDNS.
    #[serde(default = "yes")]
    pub mdns: bool,
    /// `all`, `loopback`, or a comma-separated list of interface names.
    #[serde(default = "default_interfaces")]
    pub mdns_interfaces: String,
    /// Disable UDP segmentation offload (fails on some loopback/container setups).
    #[serde(default)]
    pub disable_gso: bool,
    /// Anti-entropy period.
    #[serde(default = "default_anti_entropy")]
    pub anti_entropy_ms: u64,
    /// Most events per sync batch.
    #[serde(default = "default_batch")]
    pub batch_events_max: usize,
    /// How long a till listens for peers before applying the Raft bootstrap rule, ms.
    #[serde(default = "default_raft_window")]
    pub raft_discovery_window_ms: u64,
    /// A voter unreachable this long is removed from the store's Raft group, ms.
    #[serde(default = "default_raft_remove")]
    pub raft_remove_after_ms: u64,
    /// The Raft leader's heartbeat, ms.
    #[serde(default = "default_raft_heartbeat")]
    pub raft_heartbeat_ms: u64,
    /// Raft election timeout, lower bound, ms.
    #[serde(default = "default_raft_election_min")]
    pub raft_election_min_ms: u64,
    /// Raft election timeout, upper bound, ms; also the leader lease, during which a
    /// follower that heard from the leader votes for no one else.
    #[serde(default = "default_raft_election_max")]
    pub raft_election_max_ms: u64,
    /// Campaign only after a majority of voters granted a pre-vote (so a till that lost
    /// touch with a healthy leader does not depose it); `false`: openraft's own timer.
    #[serde(default = "yes")]
    pub raft_pre_vote: bool,
    /// How many tills the store has (0: unknown). When set, the Raft group is founded only
    /// by a majority of them, so a LAN split at boot cannot found two groups.
    #[serde(default)]
    pub store_tills: usize,
    /// How often the leader looks for events to compact (acknowledged by the cloud and held
    /// by every member) and every till applies the store's compaction point, ms (0: never).
    #[serde(default = "default_compact_interval")]
    pub compact_interval_ms: u64,
    /// Statuses of sales still PAID after this long leave memory (the database keeps
    /// them), ms.
    #[serde(default = "default_compact_keep")]
    pub compact_keep_ms: u64,
    /// Sales records whose events were compacted are kept on the till this many days after
    /// payment (the cloud keeps every sale); 0 keeps them forever.
    #[serde(default = "default_retention_days")]
    pub sales_retention_days: u64,
    /// A till with no certificate yet waits to be enrolled instead of refusing to start: it
    /// shows a code and takes a join token (`tillmesh store token`), then writes its
    /// certificate, key and the store CA to the paths above and joins (see
    /// ARCHITECTURE.md "Enrolment"). Its terminal id comes from the token.
    #[serde(default)]
    pub enrol: bool,
}

fn default_compact_interval() -> u64 {
    600_000
}

fn default_compact_keep() -> u64 {
    86_400_000
}

fn default_retention_days() -> u64 {
    90
}

impl MeshSection {
    /// A mesh of tills on one host (demo, tests, benches): static peers instead of mDNS, GSO
    /// off (it fails on some loopback set-ups), a 1 s discovery window (every till on the host
    /// is up at once), the file's defaults for the rest.
    pub fn loopback(listen: SocketAddr, ca_cert: PathBuf, cert: PathBuf, key: PathBuf) -> Self {
        Self {
            listen,
            ca_cert,
            cert,
            key,
            peers: Vec::new(),
            mdns: false,
            mdns_interfaces: "loopback".into(),
            disable_gso: true,
            anti_entropy_ms: default_anti_entropy(),
            batch_events_max: default_batch(),
            raft_discovery_window_ms: 1_000,
            raft_remove_after_ms: default_raft_remove(),
            raft_heartbeat_ms: default_raft_heartbeat(),
            raft_election_min_ms: default_raft_election_min(),
            raft_election_max_ms: default_raft_election_max(),
            raft_pre_vote: true,
            store_tills: 0,
            compact_interval_ms: default_compact_interval(),
            compact_keep_ms: default_compact_keep(),
            sales_retention_days: default_retention_days(),
            enrol: false,
        }
    }
}

fn default_raft_window() -> u64 {
    3_000
}

fn default_raft_remove() -> u64 {
    300_000
}

fn default_mesh_listen() -> SocketAddr {
    "0.0.0.0:7400".parse().expect("literal address")
}

fn default_interfaces() -> String {
    "all".into()
}

fn default_anti_entropy() -> u64 {
    2000
}

fn default_batch() -> usize {
    256
}

fn yes() -> bool {
    true
}

/// `[terminal]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalSection {
    /// Numeric terminal id, unique in the store (1..=65535).
    pub id: u64,
    /// HTTP listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory for the database.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// MiB kept free on the database's disk: below it, sales and other writes answer 507
    /// `disk_full` (nothing changed) until space is freed (0 turns the guard off).
    #[serde(default = "default_disk_free_min_mb")]
    pub disk_free_min_mb: u64,
    /// MiB up to which the database is checked (`PRAGMA quick_check`, every page read) before
    /// the till opens; a bigger one (months of sales) is checked right after start instead, and
    /// damage found then stops the till, whose next start checks first and rebuilds.
    #[serde(default = "default_startup_check_max_mb")]
    pub startup_check_max_mb: u64,
    /// Set by the simulator only (never read from a file): the database commits on the
    /// caller's thread and the incarnation is the simulator's, so a seed replays exactly.
    #[serde(skip)]
    pub simulated: Option<Simulated>,
}

/// What the simulator fixes for a till.
#[derive(Clone, Debug)]
pub struct Simulated {
    /// The database incarnation (non-zero).
    pub incarnation: u32,
}

/// `[checkout]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckoutSection {
    /// Duplicate-scan guard window: the same barcode again within it is taken for a
    /// scanner's double read and refused, unless the request says it is a deliberate rescan
    /// (the UI does once it has shown the first).
    pub scan_guard_ms: u64,
    /// Most change a cash payment may give (minor units): cash received beyond what is due
    /// by more than this is refused as a mistyped amount or a scan into the amount field.
    pub cash_change_max: i64,
    /// Loyalty: one point per this many minor units of the total (0 disables points).
    pub points_per_minor: i64,
    /// Most open (unpaid) transactions on the till.
    pub drafts_max: usize,
    /// Offset of store local time from UTC, for day boundaries in reports.
    pub utc_offset_minutes: i32,
    /// SKUs on the cashier's favourites grid, in order (at most 48).
    pub favourites: Vec<String>,
}

impl Default for CheckoutSection {
    fn default() -> Self {
        Self {
            scan_guard_ms: 400,
            cash_change_max: 1_000_000,
            points_per_minor: 100,
            drafts_max: 64,
            utc_offset_minutes: 0,
            favourites: Vec::new(),
        }
    }
}

/// `[security]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// Wrong PINs in a row before an account locks.
    pub lock_attempts_max: u32,
    /// How long a locked account stays locked.
    pub lock_ms: u64,
    /// Session lifetime.
    pub session_ttl_ms: u64,
    /// Most concurrent sessions on the till.
    pub sessions_max: usize,
    /// Demo mode: the accounts seeded from `[[staff]]`'s clear-text PINs may sign in.
    /// Off by default (`tillmesh terminal --demo` and `dev store` turn it on).
    pub demo: bool,
    /// HQ's master-data public key (64 hex digits, `tillmesh hq master-key` prints it):
    /// when set, this till applies only master data HQ signed for its store, whichever till
    /// proposes it. Unset, master data is applied as the leader brings it.
    pub hq_master_key: Option<String>,
}

impl Default for SecuritySection {
    fn default() -> Self {
        Self {
            lock_attempts_max: 3,
            lock_ms: 15 * 60_000,
            session_ttl_ms: 8 * 3_600_000,
            sessions_max: 32,
            demo: false,
            hq_master_key: None,
        }
    }
}

/// `[catalog]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSection {
    /// JSON master data file (items, prices, promotions), relative to the config file.
    pub path: PathBuf,
}

/// `[payments]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsSection {
    /// No longer used (release 0.1.0's built-in simulated provider): accepted so a config
    /// written for 0.1.0 still starts; the sandbox provider (`tillmesh pay-sandbox`) has its
    /// own settings.
    pub qr_approve_after_ms: Option<u64>,
    /// No longer used; see `qr_approve_after_ms`.
    pub qr_fail_suffix: Option<i64>,
    /// The QR payment provider (MoMo's merchant API, or the sandbox that speaks it); without
    /// it the till takes no QR payments.
    pub qr: Option<tillmesh_pay::ProviderConfig>,
    /// A pending QR payment expires at the till this long after it was created, whatever
    /// the provider says (a later capture is recorded for refund), ms.
    pub qr_timeout_ms: u64,
    /// Operations that need HQ or the payment provider (QR payments, gift card
    /// activation) are refused unless the store reached the cloud within this long, ms.
    pub online_within_ms: u64,
}

impl Default for PaymentsSection {
    fn default() -> Self {
        Self {
            qr_approve_after_ms: None,
            qr_fail_suffix: None,
            qr: None,
            online_within_ms: 60_000,
            qr_timeout_ms: 60_000,
        }
    }
}

/// `[[staff]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffSeed {
    /// Employee id.
    pub employee_id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Initial PIN (hashed on first start).
    pub pin: String,
}

/// Whether a URL's host is a loopback address (`localhost`, 127.0.0.0/8, `[::1]`).
fn loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        u.host_str().is_some_and(|h| {
            h.eq_ignore_ascii_case("localhost")
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
    })
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:7300".parse().expect("literal address")
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data/till")
}

impl TerminalConfig {
    /// Loads and validates a config file; relative paths in it are resolved against the
    /// file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        let (text, vars) = tillmesh_cloud::config::with_env_overrides(
            &text,
            ENV_PREFIX,
            &[tillmesh_cloud::config::CLOUD_ENV_PREFIX],
            std::env::vars(),
        )
        .map_err(|e| ConfigError::Parse(path.into(), e))?;
        let mut cfg: TerminalConfig = toml::from_str(&text).map_err(|e| {
            ConfigError::Parse(
                path.into(),
                format!("{}{}", e.message(), tillmesh_cloud::config::env_note(&vars)),
            )
        })?;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        cfg.source = text;
        Ok(cfg)
    }

    /// Makes the config's relative paths relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let cfg = self;
        if cfg.catalog.path.is_relative() {
            cfg.catalog.path = base.join(&cfg.catalog.path);
        }
        if let Some(v) = &mut cfg.vision
            && v.card.is_relative()
        {
            v.card = base.join(&v.card);
        }
        if let Some(m) = &mut cfg.mesh {
            for p in [&mut m.ca_cert, &mut m.cert, &mut m.key] {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        if let Some(p) = cfg.cloud.as_mut().and_then(|c| c.ca_cert.as_mut())
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }

    /// Checks ranges and consistency: the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some((key, why)) => Err(ConfigError::Invalid(key, why)),
            None => Ok(()),
        }
    }

    /// Every range and consistency problem: `(key, why)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(v) = &self.vision
            && (!(1..=20).contains(&v.top_k) || !(1..=16).contains(&v.concurrency))
        {
            out.push((
                "vision",
                "top_k must be 1 to 20 and concurrency 1 to 16".into(),
            ));
        }
        if !(1..=65_535).contains(&self.terminal.id) {
            out.push(("terminal.id", "must be between 1 and 65535".into()));
        }
        // A till that enrols itself learns its store at enrolment.
        if self.store.store_id.trim().is_empty() && !self.mesh.as_ref().is_some_and(|m| m.enrol) {
            out.push((
                "store.store_id",
                "must not be empty (unless [mesh] enrol = true: the till learns it when enrolled)"
                    .into(),
            ));
        }
        if self.store.currency_decimals > 4 {
            out.push(("store.currency_decimals", "at most 4".into()));
        }
        if self.checkout.favourites.len() > 48 {
            out.push(("checkout.favourites", "at most 48 SKUs".into()));
        }
        if let Some(q) = &self.payments.qr {
            for why in q.problems() {
                out.push(("payments.qr", why));
            }
        }
        if self.checkout.cash_change_max <= 0 {
            out.push(("checkout.cash_change_max", "must be positive".into()));
        }
        if self.checkout.scan_guard_ms > 60_000 {
            out.push(("checkout.scan_guard_ms", "at most 60000".into()));
        }
        if self.checkout.points_per_minor < 0 {
            out.push(("checkout.points_per_minor", "must not be negative".into()));
        }
        if self.checkout.drafts_max == 0 || self.security.sessions_max == 0 {
            out.push((
                "checkout.drafts_max/security.sessions_max",
                "must be positive".into(),
            ));
        }
        if self.security.lock_attempts_max == 0 {
            out.push(("security.lock_attempts_max", "must be positive".into()));
        }
        if let Some(m) = &self.mesh {
            if m.batch_events_max == 0 || m.batch_events_max > 512 {
                out.push(("mesh.batch_events_max", "between 1 and 512".into()));
            }
            if m.anti_entropy_ms < 100 {
                out.push(("mesh.anti_entropy_ms", "at least 100".into()));
            }
            if m.raft_heartbeat_ms < 10 || m.raft_heartbeat_ms * 2 > m.raft_election_min_ms {
                out.push((
                    "mesh.raft_heartbeat_ms",
                    "at least 10 and at most half of raft_election_min_ms".into(),
                ));
            }
            if m.raft_election_min_ms >= m.raft_election_max_ms || m.raft_election_max_ms > 60_000 {
                out.push((
                    "mesh.raft_election_max_ms",
                    "more than raft_election_min_ms and at most 60000".into(),
                ));
            }
            if m.compact_interval_ms != 0 && m.compact_interval_ms < 100 {
                out.push(("mesh.compact_interval_ms", "0 (off) or at least 100".into()));
            }
            if m.sales_retention_days > 36_500 {
                out.push((
                    "mesh.sales_retention_days",
                    "at most 36500 (0 keeps every record)".into(),
                ));
            }
        }
        if let Some(c) = &self.cloud {
            if self.mesh.is_none() {
                out.push((
                    "cloud",
                    "needs [mesh]: the store's Raft leader is the one that uploads".into(),
                ));
            }
            if !(c.url.starts_with("http://") || c.url.starts_with("https://")) {
                out.push(("cloud.url", "must start with http:// or https://".into()));
            }
            if c.url.starts_with("http://") && !c.allow_plain_http && !loopback_url(&c.url) {
                out.push(("cloud.url", "http:// sends the store's credential in clear: use https://, or http:// to a loopback address".into()));
            }
            if c.batch_events_max == 0
                || c.batch_events_max > tillmesh_cloud_proto::BATCH_EVENTS_MAX
            {
                out.push((
                    "cloud.batch_events_max",
                    format!("between 1 and {}", tillmesh_cloud_proto::BATCH_EVENTS_MAX),
                ));
            }
            if c.batch_bytes_max < 64 << 10
                || c.batch_bytes_max > tillmesh_cloud_proto::BATCH_BYTES_MAX / 2
            {
                out.push((
                    "cloud.batch_bytes_max",
                    format!(
                        "between 65536 and {}",
                        tillmesh_cloud_proto::BATCH_BYTES_MAX / 2
                    ),
                ));
            }
            if c.backoff_min_ms == 0 || c.backoff_min_ms > c.backoff_max_ms {
                out.push((
                    "cloud.backoff_min_ms",
                    "positive and at most backoff_max_ms".into(),
                ));
            }
            if c.timeout_ms < 100 || c.heartbeat_ms < 100 || c.master_pull_ms < 1_000 {
                out.push((
                    "cloud.timeout_ms/heartbeat_ms/master_pull_ms",
                    "at least 100, 100 and 1000".into(),
                ));
            }
        }
        for s in &self.staff {
            if let Err(e) = tillmesh_pos::cashier::check_pin_format(&s.pin) {
                out.push(("staff.pin", format!("{}: {e}", s.employee_id)));
            }
        }
        out
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.terminal.data_dir.join("till.db")
    }
}

#[cfg(test)]
mod tests {
    use super::loopback_url;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8700",
            "http://localhost:1",
            "http://[::1]:8700/x",
        ] {
            assert!(loopback_url(ok), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:8700",
            "http://hq.example",
            "http://127.0.0.1.evil.example",
            "nonsense",
        ] {
            assert!(!loopback_url(bad), "{bad}");
        }
    }
}
