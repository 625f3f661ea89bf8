//! The command line's shape: clap's types for every subcommand and its arguments.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum DevAction {
    /// Run a whole store on loopback: a cloud (SQLite) and N tills in one process, meshed
    /// over QUIC with mutual TLS (a store CA and till certificates are created on first
    /// run); the tills form their Raft group and the leader uploads. Ctrl-C stops it all.
    Store {
        /// Terminal config used as the template for every till.
        #[arg(long, default_value = "configs/terminal.example.toml")]
        config: PathBuf,
        /// Cloud config (its database is kept under --dir).
        #[arg(long, default_value = "configs/cloud.example.toml")]
        cloud_config: PathBuf,
        /// Run the tills without a cloud.
        #[arg(long)]
        no_cloud: bool,
        /// Folder for the PKI and the databases.
        #[arg(long, default_value = "data/dev-store")]
        dir: PathBuf,
        /// Number of tills (HTTP on 7301.., mesh on 7401..).
        #[arg(long, default_value_t = 3)]
        tills: u16,
    },
}

#[derive(Parser)]
#[command(name = "tillmesh", version, about = "Offline-first point-of-sale mesh")]
pub(crate) struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub(crate) log_json: bool,
    /// Export traces over OTLP/HTTP to this collector (`http://host:4318`); a till, the
    /// cloud and a dev store export, other commands do not. Off by default; OpenTelemetry's
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` turns it on too.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Fetch a running till's support bundle (a manager signs in): status, metrics, config
    /// with secrets masked, quarantine, the audit chain's head, recent logs; a .tar.zst.
    SupportBundle {
        #[command(flatten)]
        till: crate::cmd::vision::TillLogin,
        /// The file to write (must not exist).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Product recognition: recognise photos, enrol SKUs (through a till), evaluate a model.
    Vision {
        #[command(subcommand)]
        command: crate::cmd::vision::VisionCommand,
    },
    /// Run a till (or `terminal enroll` to issue its certificate).
    #[command(args_conflicts_with_subcommands = true)]
    Terminal {
        #[command(subcommand)]
        action: Option<TerminalAction>,
        /// Terminal config file.
        #[arg(long, default_value = "configs/terminal.example.toml")]
        config: PathBuf,
        /// HTTP listen address (overrides the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Terminal id (overrides the config).
        #[arg(long)]
        terminal_id: Option<u64>,
        /// Mesh QUIC address (overrides the config).
        #[arg(long)]
        mesh_listen: Option<SocketAddr>,
        /// A peer's mesh address to dial (repeatable; adds to the config's list).
        #[arg(long = "peer")]
        peers: Vec<SocketAddr>,
        /// Demo mode: the accounts seeded from the config's clear-text PINs may sign in.
        #[arg(long)]
        demo: bool,
    },
    /// Store identity.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Development tools.
    Dev {
        #[command(subcommand)]
        action: DevAction,
    },
    /// Simulate a store under faults, deterministically: check every invariant and report.
    Sim {
        /// Scenario file (simulations/*.toml); with --fuzz, random schedules instead.
        scenario: Option<PathBuf>,
        /// Seed (the first one with --seeds).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Run this many seeds, from --seed on.
        #[arg(long)]
        seeds: Option<u64>,
        /// Draw random fault schedules.
        #[arg(long)]
        fuzz: bool,
        /// Write report.json and report.svg here (one run), or one folder per seed.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Seeds run at once (threads, each seed on its own simulated runtime), 1 to 64.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
    },
    /// Run the sandbox QR payment provider (MoMo's and VNPay's merchant APIs) for tests and demos: it
    /// captures each payment by itself; amounts ending in 13 are declined, in 14 wait until
    /// `POST /sandbox/orders/{orderId}/pay`, in 15 get slow answers.
    PaySandbox {
        /// Listen address (port 0: any free port); the address is printed on stdout.
        #[arg(long, default_value = "127.0.0.1:7390")]
        listen: SocketAddr,
        /// A payment is captured this long after it was created, ms.
        #[arg(long, default_value_t = 2_000)]
        capture_after_ms: u64,
        /// How late the slow amounts' answers are, ms.
        #[arg(long, default_value_t = 15_000)]
        slow_ms: u64,
        /// How many times each payment's end is notified.
        #[arg(long, default_value_t = 2)]
        notify_copies: u32,
        /// The merchant's partner code.
        #[arg(long, default_value = "TILLMESHSANDBOX")]
        partner_code: String,
        /// The merchant's access key.
        #[arg(long, default_value = "sandbox-access")]
        access_key: String,
        /// The environment variable holding the merchant's secret key (the sandbox's own
        /// default key when it is unset).
        #[arg(long, default_value = "TILLMESH_PAY_SECRET")]
        secret_key_env: String,
        /// Exit when standard input closes (the process that started it has gone).
        #[arg(long)]
        exit_with_stdin: bool,
    },
    /// Print a running till's status.
    Status {
        /// The till's address.
        #[arg(long, default_value = "127.0.0.1:7300")]
        addr: SocketAddr,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run the cloud sync endpoint (HQ): store uploads, master data, reports, dashboard.
    Cloud {
        /// Cloud config file.
        #[arg(long, default_value = "configs/cloud.example.toml")]
        config: PathBuf,
        /// Listen address (overrides the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Configuration files.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// HQ administration, on the cloud's database: stores, credentials, master data, fleet.
    Hq {
        /// Cloud config file (names the database and the signing keys).
        #[arg(long, default_value = "configs/cloud.example.toml")]
        config: PathBuf,
        #[command(subcommand)]
        action: HqAction,
    },
}

#[derive(Subcommand)]
pub(crate) enum HqAction {
    /// Register a store, or update its name and UTC offset.
    AddStore {
        /// Store id.
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Local time offset from UTC in minutes (reports bucket days by it).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        utc_offset_minutes: i32,
        /// The store CA's certificate (PEM, `pki/ca.pem`): pinned once, the cloud then
        /// checks every uploaded event's seal against the store's tills' keys.
        #[arg(long, conflicts_with = "ca_dir")]
        ca_cert: Option<std::path::PathBuf>,
        /// Hand HQ the store's CA folder (`tillmesh store init`'s, with its key): HQ pins the
        /// CA, signs the certificates of tills a manager admits in the store and issues the
        /// store's terminal ids from then on (the folder is marked and issues none).
        #[arg(long)]
        ca_dir: Option<std::path::PathBuf>,
    },
    /// A one-time join token for a new till of a store whose CA HQ holds (for a store that
    /// is offline or has no till yet): the next terminal id, printed as text and QR code.
    JoinToken {
        /// Store id.
        #[arg(long)]
        store: String,
        /// How long the token stays valid (`30m`, `24h`, `7d`; at most 30 days).
        #[arg(long, default_value = "24h")]
        valid_for: String,
        /// A peer the new till dials (a till's mesh address), when its LAN has no mDNS.
        #[arg(long)]
        peer: Vec<std::net::SocketAddr>,
        /// A till's HTTP address where the new till redeems the token, without mDNS.
        #[arg(long)]
        http_peer: Vec<std::net::SocketAddr>,
        /// The cloud's URL as the store reaches it, for a till whose config has no
        /// `[cloud]` (the package's).
        #[arg(long)]
        cloud_url: Option<String>,
        /// The cloud is plain HTTP on an isolated network (test networks only).
        #[arg(long, requires = "cloud_url")]
        cloud_plain_http: bool,
    },
    /// List the registered stores.
    Stores,
    /// Issue a credential: for a store (`--store S001`) or for HQ admin (`--admin`).
    Token {
        /// Store id.
        #[arg(long, conflicts_with = "admin")]
        store: Option<String>,
        /// An admin credential (reports, master data).
        #[arg(long)]
        admin: bool,
        /// Lifetime in days (store default from the config; admin default 1).
        #[arg(long)]
        days: Option<u32>,
        /// Refuse every older credential of this store.
        #[arg(long, requires = "store")]
        revoke_older: bool,
    },
    /// Re-admit a store whose uploads are fenced by a term (it lost every `raft.db`, or a
    /// forged batch carried a term the cloud refuses): forgets its highest term and leader.
    ResetTerm {
        /// Store id.
        #[arg(long)]
        store: String,
    },
    /// Print an argon2id hash of a dashboard password read from standard input, for
    /// `[[auth.admins]]` in the cloud config.
    HashPassword,
    /// Print HQ's master-data public key (from `auth.master_key_seed`), for the tills'
    /// `security.hq_master_key`.
    MasterKey,
    /// Migrate the cloud's database to this build's schema and exit (run it once before
    /// starting a new version's instances behind a load balancer; a running older instance
    /// keeps working on a schema one version ahead only if the release notes say so).
    Migrate,
    /// Import a catalog file: items, scheduled chain prices, promotions.
    Import {
        /// The file (as configs/catalog.example.json).
        file: PathBuf,
    },
    /// Set a price from an instant on: chain-wide, or one store's with --store.
    Price {
        /// SKU.
        #[arg(long)]
        sku: String,
        /// Price in minor units.
        #[arg(long)]
        price: i64,
        /// One store.
        #[arg(long)]
        store: Option<String>,
        /// Effective from (ms since the epoch); default now.
        #[arg(long)]
        from_ms: Option<u64>,
    },
    /// Add or replace a cashier account (the PIN is hashed; only the hash leaves HQ).
    Cashier {
        /// Employee id.
        #[arg(long)]
        employee_id: String,
        /// Name.
        #[arg(long)]
        name: String,
        /// cashier, manager or admin.
        #[arg(long, default_value = "cashier")]
        role: String,
        /// 4 to 6 digits.
        #[arg(long)]
        pin: String,
        /// Only this store (default: every store).
        #[arg(long)]
        store: Option<String>,
    },
    /// Delete a master-data record.
    Delete {
        /// item, price, promotion or cashier.
        #[arg(long)]
        kind: String,
        /// Key (SKU; `<sku>@<from_ms>` for a price; id; employee id).
        #[arg(long)]
        key: String,
        /// The store the record belongs to, for store records.
        #[arg(long)]
        store: Option<String>,
    },
    /// Print master-data changes since a version.
    Master {
        /// Version.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Only what one store sees.
        #[arg(long)]
        store: Option<String>,
    },
    /// Print the fleet status of every store.
    Fleet,
}

#[derive(Subcommand)]
pub(crate) enum TerminalAction {
    /// Issue a till certificate signed by the store CA.
    Enroll {
        /// Folder with store-ca.pem and store-ca.key (from `store init`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Terminal id of the till; without it, the next id never issued in this store.
        #[arg(long)]
        terminal_id: Option<u64>,
        /// Issue again an id issued before: a till that lost its disk re-enrols under its
        /// old terminal id (revoke the old certificate if the old disk may still exist).
        #[arg(long)]
        again: bool,
        /// Folder to write till-<id>.pem, till-<id>.key and a copy of store-ca.pem into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum StoreAction {
    /// Create a store CA (keep store-ca.key with the store manager or HQ, not on tills).
    Init {
        /// Store id.
        #[arg(long)]
        store_id: String,
        /// Folder to write store-ca.pem, store-ca.key and store.id into.
        #[arg(long)]
        out: PathBuf,
    },
    /// A one-time join token for a new till (or one that lost its disk, with --again): a
    /// certificate and key for its terminal id from the store CA, printed as text and as a
    /// QR code, to type or scan on a till waiting to join (`[mesh] enrol = true`).
    Token {
        /// Folder with store-ca.pem, store-ca.key and store.id (from `store init`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Terminal id; without it, the next id never issued in this store.
        #[arg(long)]
        terminal_id: Option<u64>,
        /// Issue again an id issued before (a till that lost its disk).
        #[arg(long)]
        again: bool,
        /// How long the token stays valid (`30m`, `24h`, `7d`; at most 30 days).
        #[arg(long, default_value = "24h")]
        valid_for: String,
        /// A peer the new till dials (`host:port` of a till's mesh address), when its LAN
        /// has no mDNS; repeat for several.
        #[arg(long)]
        peer: Vec<std::net::SocketAddr>,
        /// A till's HTTP address (`host:port`), where the new till redeems the token so the
        /// store refuses it a second time, when its LAN has no mDNS; repeat for several.
        #[arg(long)]
        http_peer: Vec<std::net::SocketAddr>,
    },
    /// Revoke a till's certificates (every one issued to the terminal until now): adds it to
    /// the store's revocation list in the CA folder, signs the list with the store CA and
    /// prints it as JSON for `POST /api/v1/security/revocations` on the store's leader (an
    /// admin). The terminal enrolled again afterwards is admitted with its new certificate.
    Revoke {
        /// Folder with store-ca.pem, store-ca.key and store.id (from `store init`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The terminal to revoke.
        #[arg(long)]
        terminal_id: u64,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConfigAction {
    /// Check a terminal or cloud config (with the environment's overrides) and print every
    /// problem at once: unknown keys, wrong types, values out of range, missing files.
    Check {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify the hash chain of a till's audit log.
    Verify {
        /// Terminal config file (its data dir holds the database).
        #[arg(long, default_value = "configs/terminal.example.toml")]
        config: PathBuf,
        /// Data directory (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}
