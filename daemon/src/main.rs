//! The `tillmesh` command line: `terminal` runs a till, `status` asks a running till how it
//! is, `audit verify` checks a till's audit chain.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tillmesh::config::TerminalConfig;

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
    /// Run a till.
    Terminal {
        /// Terminal config file.
        #[arg(long, default_value = "configs/terminal.example.toml")]
        config: PathBuf,
        /// Listen address (overrides the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Terminal {
            config,
            listen,
            data_dir,
        } => {
            let mut cfg = load(&config, data_dir)?;
            if let Some(l) = listen {
                cfg.terminal.listen = l;
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(tillmesh::run(cfg, None, async {
                let _ = tokio::signal::ctrl_c().await;
            }))
        }
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
            println!(
                "events held: {}  version vector: {}",
                s["events"], s["version_vector"]
            );
            println!(
                "open transactions: {}  sessions: {}  write queue: {}",
                s["drafts_open"], s["sessions_active"], s["write_queue"]
            );
            println!(
                "catalog: {} items, master data v{}",
                s["catalog_items"], s["master_version"]
            );
            println!(
                "peers: {}  cloud: {}",
                s["peers"],
                s["cloud"].as_str().unwrap_or("?")
            );
            Ok(())
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
