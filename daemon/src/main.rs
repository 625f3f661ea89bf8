//! The `tillmesh` command line: `terminal` runs a till (`terminal enroll` issues its
//! certificate), `store init` creates a store CA, `dev store` runs a store of tills and a
//! cloud on loopback,
//! `status` asks a running till how it is, `audit verify` checks a till's audit chain,
//! `cloud` runs the HQ sync endpoint and `hq` administers it (stores, credentials, master
//! data, fleet).

mod dev;
mod vision_cmd;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tillmesh::config::TerminalConfig;

#[derive(Subcommand)]
enum DevAction {
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
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Product recognition: recognise photos, enrol SKUs (through a till), evaluate a model.
    Vision {
        #[command(subcommand)]
        command: vision_cmd::VisionCommand,
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
enum HqAction {
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
enum TerminalAction {
    /// Issue a till certificate signed by the store CA.
    Enroll {
        /// Folder with store-ca.pem and store-ca.key (from `store init`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Terminal id of the till.
        #[arg(long)]
        terminal_id: u64,
        /// Folder to write till-<id>.pem, till-<id>.key and a copy of store-ca.pem into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreAction {
    /// Create a store CA (keep store-ca.key with the store manager or HQ, not on tills).
    Init {
        /// Store id.
        #[arg(long)]
        store_id: String,
        /// Folder to write store-ca.pem, store-ca.key and store.id into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation's faults make tills log warnings by the hundred: keep them out of its output.
    let default = if matches!(cli.command, Command::Sim { .. }) {
        "off"
    } else {
        "info,openraft=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tillmesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(config: &std::path::Path, data_dir: Option<PathBuf>) -> anyhow::Result<TerminalConfig> {
    let mut cfg = TerminalConfig::load(config)?;
    if let Some(d) = data_dir {
        cfg.terminal.data_dir = d;
    }
    Ok(cfg)
}

/// `tillmesh sim`: one run (summary, report), or many seeds (a line each, `jobs` at once);
/// fails when an invariant does, naming each failing seed, what failed, and the command that
/// reproduces it. A seed whose run errs counts as failed; the batch goes on.
fn sim(
    scenario: Option<PathBuf>,
    seed: u64,
    seeds: Option<u64>,
    fuzz: bool,
    report: Option<PathBuf>,
    jobs: usize,
) -> anyhow::Result<()> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tillmesh::sim;
    let fixed = match (&scenario, fuzz) {
        (Some(p), false) => Some(sim::scenario::Scenario::load(p)?),
        (None, true) => None,
        (Some(_), true) => anyhow::bail!("give a scenario file or --fuzz, not both"),
        (None, false) => anyhow::bail!("give a scenario file (simulations/*.toml) or --fuzz"),
    };
    let count = seeds.unwrap_or(1);
    if count == 0 || count > 1_000_000 {
        anyhow::bail!("--seeds must be 1 to 1000000");
    }
    if !(1..=64).contains(&jobs) {
        anyhow::bail!("--jobs must be 1 to 64");
    }
    let reproduce = |s: u64| match &scenario {
        Some(p) => format!("tillmesh sim {} --seed {s}", p.display()),
        None => format!("tillmesh sim --fuzz --seed {s}"),
    };
    let scenario_of = |s: u64| match &fixed {
        Some(f) => f.clone(),
        None => sim::fuzz_scenario(s),
    };
    if count == 1 {
        let opts = sim::Options {
            seed,
            progress: true,
            reproduce: reproduce(seed),
        };
        let wall = std::time::Instant::now();
        let r = sim::run(&scenario_of(seed), &opts)?;
        let wall = wall.elapsed().as_secs_f64();
        let simulated = r.timeline.last().map_or(0.0, |t| t.t_s);
        print!("{}", r.summary());
        println!(
            "  {simulated:.0} simulated seconds in {wall:.1} s ({:.0}:1)",
            simulated / wall.max(1e-9)
        );
        if let Some(dir) = &report {
            r.write(dir)?;
            println!("  report: {}", dir.join("report.json").display());
        }
        if !r.pass {
            anyhow::bail!("invariants failed; reproduce with: {}", reproduce(seed));
        }
        return Ok(());
    }
    let end = seed.saturating_add(count);
    let next = AtomicU64::new(seed);
    // (seed, what failed) of every failing seed.
    let failed: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    let worker = || {
        loop {
            let s = next.fetch_add(1, Ordering::Relaxed);
            if s >= end {
                return;
            }
            let opts = sim::Options {
                seed: s,
                progress: false,
                reproduce: reproduce(s),
            };
            let wall = std::time::Instant::now();
            let outcome = sim::run(&scenario_of(s), &opts).and_then(|r| {
                if let Some(dir) = &report {
                    r.write(&dir.join(format!("seed-{s}")))?;
                }
                Ok(r)
            });
            let wall = wall.elapsed().as_secs_f64();
            let why = match &outcome {
                Ok(r) if r.pass => {
                    let simulated = r.timeline.last().map_or(0.0, |t| t.t_s);
                    println!(
                        "{} seed {s}: pass ({simulated:.0} s simulated in {wall:.1} s)",
                        r.scenario
                    );
                    continue;
                }
                Ok(r) => r
                    .verdicts
                    .iter()
                    .filter(|v| !v.pass)
                    .map(|v| format!("{}: {}", v.name, v.detail))
                    .collect::<Vec<_>>()
                    .join("; "),
                Err(e) => format!("the run failed: {e:#}"),
            };
            println!("seed {s}: FAIL ({why}); reproduce: {}", reproduce(s));
            failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((s, why));
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(count as usize) {
            scope.spawn(worker);
        }
    });
    let mut failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    failed.sort();
    let mins = started.elapsed().as_secs_f64() / 60.0;
    println!(
        "{count} seeds, {} failed, {:.1} seeds per minute ({jobs} at once)",
        failed.len(),
        count as f64 / mins.max(1e-9)
    );
    if failed.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = failed.iter().map(|(s, _)| reproduce(*s)).collect();
        anyhow::bail!("invariants failed; reproduce with: {}", list.join(" ; "))
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Vision { command } => vision_cmd::run(command),
        Command::Sim {
            scenario,
            seed,
            seeds,
            fuzz,
            report,
            jobs,
        } => sim(scenario, seed, seeds, fuzz, report, jobs),
        Command::Terminal {
            action:
                Some(TerminalAction::Enroll {
                    ca_dir,
                    terminal_id,
                    out,
                }),
            ..
        } => {
            let read = |name: &str| {
                let p = ca_dir.join(name);
                std::fs::read_to_string(&p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
            };
            let ca = tillmesh_mesh::identity::Pem {
                cert: read("store-ca.pem")?,
                key: read("store-ca.key")?,
            };
            let store_id = read("store.id")?.trim().to_string();
            if !(1..=65_535).contains(&terminal_id) {
                anyhow::bail!("terminal id must be between 1 and 65535");
            }
            let till = tillmesh_mesh::identity::enroll(&ca, &store_id, terminal_id)?;
            std::fs::create_dir_all(&out)?;
            write_new(
                &out.join(format!("till-{terminal_id}.pem")),
                &till.cert,
                false,
            )?;
            write_new(
                &out.join(format!("till-{terminal_id}.key")),
                &till.key,
                true,
            )?;
            std::fs::write(out.join("store-ca.pem"), &ca.cert)?;
            println!(
                "enrolled terminal {terminal_id} of store {store_id}: {}",
                out.join(format!("till-{terminal_id}.pem")).display()
            );
            Ok(())
        }
        Command::Store {
            action: StoreAction::Init { store_id, out },
        } => {
            if store_id.trim().is_empty() || store_id.len() > 32 {
                anyhow::bail!("store id must be 1 to 32 characters");
            }
            let ca = tillmesh_mesh::identity::create_store_ca(&store_id)?;
            std::fs::create_dir_all(&out)?;
            write_new(&out.join("store-ca.key"), &ca.key, true)?;
            write_new(&out.join("store-ca.pem"), &ca.cert, false)?;
            std::fs::write(out.join("store.id"), format!("{store_id}\n"))?;
            println!(
                "store {store_id} CA written to {} (keep store-ca.key off the tills)",
                out.display()
            );
            Ok(())
        }
        Command::Terminal {
            action: None,
            config,
            listen,
            data_dir,
            terminal_id,
            mesh_listen,
            peers,
        } => {
            let mut cfg = load(&config, data_dir)?;
            if let Some(l) = listen {
                cfg.terminal.listen = l;
            }
            if let Some(t) = terminal_id {
                cfg.terminal.id = t;
            }
            if let Some(m) = &mut cfg.mesh {
                if let Some(l) = mesh_listen {
                    m.listen = l;
                }
                m.peers.extend(peers);
            } else if mesh_listen.is_some() || !peers.is_empty() {
                anyhow::bail!(
                    "--mesh-listen and --peer need a [mesh] section in {}",
                    config.display()
                );
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(tillmesh::run(cfg, async {
                let _ = tokio::signal::ctrl_c().await;
            }))
        }
        Command::Dev {
            action:
                DevAction::Store {
                    config,
                    cloud_config,
                    no_cloud,
                    dir,
                    tills,
                },
        } => dev::run(dev::DevStore {
            config,
            cloud: (!no_cloud).then_some(cloud_config),
            dir,
            tills,
        }),
        Command::Status { addr } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let body = rt.block_on(http_get(addr, "/api/v1/status"))?;
            let s: serde_json::Value = serde_json::from_str(&body)?;
            println!(
                "store {}  terminal {}  now {}",
                s["store_id"].as_str().unwrap_or("?"),
                s["terminal_id"],
                s["now"].as_str().unwrap_or("?")
            );
            // Replica ids are terminal << 32 | incarnation; origin 0 is master data.
            let vv: Vec<String> = s["version_vector"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| Some((e[0].as_u64()?, e[1].as_u64()?)))
                .map(|(o, n)| match o {
                    0 => format!("master:{n}"),
                    o if o >> 32 == 0 => format!("T{o}:{n}"),
                    o => format!("T{}.{:08x}:{n}", o >> 32, o as u32),
                })
                .collect();
            println!(
                "events held: {} ({} compacted)  by origin: {}",
                s["events"],
                s["events_compacted"],
                vv.join(" ")
            );
            println!(
                "open transactions: {}  sessions: {}  write queue: {}",
                s["drafts_open"], s["sessions_active"], s["write_queue"]
            );
            println!(
                "catalog: {} items, master data v{}",
                s["catalog_items"], s["master_version"]
            );
            let c = &s["cloud"];
            if c.is_null() {
                println!("cloud: not configured");
            } else {
                println!(
                    "cloud: {}{}  last reached {}  backlog {} events{}{}",
                    if c["online"] == true {
                        "online"
                    } else {
                        "offline"
                    },
                    if c["uploading"] == true {
                        " (this till uploads)"
                    } else {
                        ""
                    },
                    c["last_ok"].as_str().unwrap_or("never"),
                    c["backlog"],
                    c["last_error"]
                        .as_str()
                        .map(|e| format!("  last error: {e}"))
                        .unwrap_or_default(),
                    if c["sales_refused"] == true {
                        "  NEW SALES REFUSED (offline limit; a manager can override)"
                    } else {
                        ""
                    },
                );
            }
            match s["raft"].as_object() {
                Some(r) => println!(
                    "raft: leader {}  term {}  voters {}",
                    r["leader"]
                        .as_u64()
                        .map_or("none yet".into(), |l| format!("T{l}")),
                    r["term"],
                    r["voters"]
                ),
                None => println!("raft: off (no mesh)"),
            }
            let peers = s["peers"].as_array().cloned().unwrap_or_default();
            if peers.is_empty() {
                println!("mesh: no peers");
            }
            for p in peers {
                println!(
                    "peer T{}  {}  out {}  in {}  lag {} events  sent {}  received {}{}",
                    p["terminal"],
                    p["addr"].as_str().unwrap_or("?"),
                    p["outbound"].as_str().unwrap_or("?"),
                    if p["inbound"] == true {
                        "connected"
                    } else {
                        "-"
                    },
                    p["lag_events"],
                    p["events_sent"],
                    p["events_received"],
                    p["last_error"]
                        .as_str()
                        .map(|e| format!("  last error: {e}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Cloud { config, listen } => {
            let mut cfg = tillmesh_cloud::config::CloudConfig::load(&config)?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let h = tillmesh_cloud::start(cfg).await?;
                println!(
                    "cloud listening on http://{} (dashboard at /, API at /openapi.json)",
                    h.addr
                );
                let _ = tokio::signal::ctrl_c().await;
                h.stop().await;
                Ok(())
            })
        }
        Command::Hq { config, action } => {
            let cfg = tillmesh_cloud::config::CloudConfig::load(&config)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(hq(cfg, action))
        }
        Command::Audit {
            command: AuditCommand::Verify { config, data_dir },
        } => {
            let cfg = load(&config, data_dir)?;
            let path = cfg.db_path();
            if !path.exists() {
                anyhow::bail!("no till database at {}", path.display());
            }
            let store = tillmesh_store::Store::open(&path)?;
            let entries = store.read(|r| r.audit_all())?;
            let (n, head) = tillmesh_pos::audit::verify(&entries)?;
            println!("audit chain ok: {n} entries, head {head}");
            Ok(())
        }
    }
}

/// `tillmesh hq ...`: works on the database directly, so it needs no running cloud.
async fn hq(cfg: tillmesh_cloud::config::CloudConfig, action: HqAction) -> anyhow::Result<()> {
    use tillmesh_cloud::ledger::StoreInfo;
    use tillmesh_cloud::master::{CashierInput, EditInput, MasterRef, validate};
    use tillmesh_cloud_proto::MasterBody;
    use tillmesh_pos::pricing::{PriceScope, ScheduledPrice};
    let ledger = tillmesh_cloud::open_ledger(&cfg.database).await?;
    let cloud = tillmesh_cloud::Cloud::new(&cfg, ledger.clone())?;
    // The configured stores exist for `hq` as they do for a running cloud.
    cloud.seed(&cfg).await?;
    let apply = |edit: EditInput| async {
        let edit = validate(edit).map_err(anyhow::Error::msg)?;
        let v = ledger.master_apply(vec![edit]).await?;
        println!("master data now at version {v}");
        anyhow::Ok(())
    };
    let edit = |store: Option<String>| EditInput {
        store,
        put: None,
        cashier: None,
        delete: None,
    };
    match action {
        HqAction::AddStore {
            id,
            name,
            utc_offset_minutes,
        } => {
            tillmesh_cloud::check_store_id(&id).map_err(anyhow::Error::msg)?;
            if !(-720..=840).contains(&utc_offset_minutes) {
                anyhow::bail!("--utc-offset-minutes must be between -720 and 840");
            }
            let old = ledger.store(&id).await?;
            ledger
                .put_store(StoreInfo {
                    store_id: id.clone(),
                    name,
                    utc_offset_minutes,
                    enabled: old.as_ref().is_none_or(|s| s.enabled),
                    tokens_valid_after_ms: old.map_or(0, |s| s.tokens_valid_after_ms),
                })
                .await?;
            println!("store {id} registered");
        }
        HqAction::Stores => {
            for s in ledger.stores().await? {
                println!(
                    "{}\t{}\tUTC{:+}min\t{}",
                    s.store_id,
                    s.name,
                    s.utc_offset_minutes,
                    if s.enabled { "enabled" } else { "disabled" }
                );
            }
        }
        HqAction::Token {
            store,
            admin,
            days,
            revoke_older,
        } => {
            if store.is_none() && !admin {
                anyhow::bail!("give --store ID or --admin");
            }
            if days.is_some_and(|d| !(1..=400).contains(&d)) {
                anyhow::bail!("--days must be 1 to 400");
            }
            let (token, claims) = cloud
                .issue(store.as_deref(), days.map(|d| u64::from(d) * 86_400_000))
                .await?;
            if revoke_older && let Some(id) = &store {
                let mut s = ledger
                    .store(id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("store {id} is not registered"))?;
                s.tokens_valid_after_ms = claims.iat_ms;
                ledger.put_store(s).await?;
                eprintln!("older credentials of store {id} are revoked");
            }
            println!("{token}");
        }
        HqAction::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let edits = tillmesh_cloud::master::import(&text).map_err(anyhow::Error::msg)?;
            let n = edits.len();
            let v = ledger.master_apply(edits).await?;
            println!("imported {n} records; master data now at version {v}");
        }
        HqAction::Price {
            sku,
            price,
            store,
            from_ms,
        } => {
            let scope = if store.is_some() {
                PriceScope::Store
            } else {
                PriceScope::Chain
            };
            apply(EditInput {
                put: Some(MasterBody::Price(ScheduledPrice {
                    sku,
                    price,
                    effective_from_ms: from_ms.unwrap_or_else(tillmesh_cloud::now_ms),
                    scope,
                })),
                ..edit(store)
            })
            .await?;
        }
        HqAction::Cashier {
            employee_id,
            name,
            role,
            pin,
            store,
        } => {
            apply(EditInput {
                cashier: Some(CashierInput {
                    employee_id,
                    name,
                    role,
                    pin,
                }),
                ..edit(store)
            })
            .await?;
        }
        HqAction::Delete { kind, key, store } => {
            apply(EditInput {
                delete: Some(MasterRef { kind, key }),
                ..edit(store)
            })
            .await?;
        }
        HqAction::Master { since, store } => {
            let current = ledger.master_version().await?;
            let limit = tillmesh_cloud_proto::MASTER_CHANGES_MAX;
            let rows = ledger.master_since(store.as_deref(), since, limit).await?;
            let changes = tillmesh_cloud::master::changes(rows, current, limit)?;
            println!("{}", serde_json::to_string_pretty(&changes)?);
        }
        HqAction::Fleet => {
            let now = tillmesh_cloud::now_ms();
            println!("store\tleader\tterm\ttills\tlast upload\tbacklog\tevents");
            for f in ledger.fleet().await? {
                let last = if f.last_upload_ms == 0 {
                    "never".to_string()
                } else {
                    format!("{} s ago", now.saturating_sub(f.last_upload_ms) / 1000)
                };
                println!(
                    "{}\t{}\t{}\t{}\t{last}\t{}\t{}",
                    f.store_id,
                    f.leader,
                    f.term,
                    f.tills_seen.len(),
                    f.backlog,
                    f.events
                );
            }
        }
    }
    Ok(())
}

/// Writes a file that must not exist yet (keys are never overwritten by accident).
fn write_new(path: &std::path::Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = secret;
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// A minimal HTTP/1.1 GET over a plain TCP socket (the CLI talks to a till on the LAN).
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| anyhow::anyhow!("till at {addr} did not answer within 5 s"))?
    .map_err(|e| anyhow::anyhow!("cannot reach a till at {addr}: {e}"))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed answer from {addr}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!(
            "till at {addr} answered: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_string())
}
