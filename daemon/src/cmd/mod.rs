//! One module per subcommand; `run` sends a parsed command to it. The small ones (running a
//! till or the cloud, verifying an audit chain) are here.

mod config;
pub(crate) mod dev;
mod hq;
mod pki;
mod sim;
mod status;
mod support;
pub(crate) mod vision;

use crate::cli::{AuditCommand, Command, DevAction, StoreAction, TerminalAction};
use std::path::PathBuf;
use tillmesh::config::TerminalConfig;

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Vision { command } => vision::run(command),
        Command::SupportBundle { till, out } => support::run(till, out),
        Command::Sim {
            scenario,
            seed,
            seeds,
            fuzz,
            report,
            jobs,
        } => sim::run(scenario, seed, seeds, fuzz, report, jobs),
        Command::Terminal {
            action:
                Some(TerminalAction::Enroll {
                    ca_dir,
                    terminal_id,
                    again,
                    out,
                }),
            ..
        } => pki::enroll(&ca_dir, terminal_id, again, &out).map(|_| ()),
        Command::Store {
            action: StoreAction::Init { store_id, out },
        } => pki::init(&store_id, &out),
        Command::Store {
            action:
                StoreAction::Revoke {
                    ca_dir,
                    terminal_id,
                },
        } => pki::revoke(&ca_dir, terminal_id),
        Command::Store {
            action:
                StoreAction::Token {
                    ca_dir,
                    terminal_id,
                    again,
                    valid_for,
                    peer,
                    http_peer,
                },
        } => pki::token(
            &ca_dir,
            terminal_id,
            again,
            pki::duration_ms(&valid_for)?,
            peer,
            http_peer,
        ),
        Command::Terminal {
            action: None,
            config,
            listen,
            data_dir,
            terminal_id,
            mesh_listen,
            peers,
            demo,
        } => {
            let mut cfg = load(&config, data_dir)?;
            cfg.security.demo |= demo;
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
            // A till process purges freed pages at once (see `purge_at_once`) and hands back
            // start-up's code once it is done; the simulator and the cloud keep the
            // allocator's delay and their code.
            tillmesh::memory::purge_at_once();
            tillmesh::memory::page_out_code_after_start();
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(tillmesh::run(cfg, shutdown_signal()))
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
        Command::Status { addr } => status::run(addr),
        Command::PaySandbox {
            listen,
            capture_after_ms,
            slow_ms,
            notify_copies,
            partner_code,
            access_key,
            secret_key_env,
            exit_with_stdin,
        } => {
            let mut cfg = tillmesh_pay::sandbox::SandboxConfig {
                capture_after_ms,
                slow_ms,
                notify_copies,
                partner_code,
                access_key,
                ..Default::default()
            };
            if let Ok(k) = std::env::var(&secret_key_env) {
                cfg.secret_key = k;
            }
            if exit_with_stdin {
                std::thread::spawn(|| {
                    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                    std::process::exit(0);
                });
            }
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let l = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
                println!("pay sandbox listening on http://{}", l.local_addr()?);
                tillmesh_pay::sandbox::serve(l, cfg).await?;
                Ok(())
            })
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
                tillmesh::systemd::ready();
                shutdown_signal().await;
                tillmesh::systemd::stopping();
                h.stop().await;
                Ok(())
            })
        }
        Command::Config {
            action: crate::cli::ConfigAction::Check { config },
        } => config::check(&config),
        Command::Hq { config, action } => {
            let cfg = tillmesh_cloud::config::CloudConfig::load(&config)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(hq::run(cfg, action))
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

fn load(config: &std::path::Path, data_dir: Option<PathBuf>) -> anyhow::Result<TerminalConfig> {
    let mut cfg = TerminalConfig::load(config)?;
    if let Some(d) = data_dir {
        cfg.terminal.data_dir = d;
    }
    Ok(cfg)
}

/// Writes a file that must not exist yet (keys are never overwritten by accident).
pub(crate) fn write_new(path: &std::path::Path, text: &str, secret: bool) -> anyhow::Result<()> {
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

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (a service manager's stop, a rolling upgrade):
/// either is a planned stop (a leading till hands its leadership over first).
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
