//! `tillmesh dev store`: a whole store on one machine for development and demos: a cloud
//! (SQLite) and N tills meshed over QUIC with mutual TLS on loopback, forming their Raft
//! group and uploading through the leader. Everything lives under one folder and stops on
//! Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tillmesh::config::{CloudSection, MeshSection, TerminalConfig};

/// What to start.
pub struct DevStore {
    /// Terminal config used as the template for every till.
    pub config: PathBuf,
    /// Cloud config (its database moves under `dir`); `None`: no cloud.
    pub cloud: Option<PathBuf>,
    /// Folder for the PKI, the tills' and the cloud's databases.
    pub dir: PathBuf,
    /// Number of tills.
    pub tills: u16,
}

/// The store CA under `pki`, created on first run.
fn store_ca(pki: &Path, store_id: &str) -> anyhow::Result<tillmesh_mesh::identity::Pem> {
    if !pki.join("store-ca.key").exists() {
        std::fs::create_dir_all(pki)?;
        let ca = tillmesh_mesh::identity::create_store_ca(store_id)?;
        crate::cmd::write_new(&pki.join("store-ca.key"), &ca.key, true)?;
        crate::cmd::write_new(&pki.join("store-ca.pem"), &ca.cert, false)?;
    }
    Ok(tillmesh_mesh::identity::Pem {
        cert: std::fs::read_to_string(pki.join("store-ca.pem"))?,
        key: std::fs::read_to_string(pki.join("store-ca.key"))?,
    })
}

/// The dev store's HQ master-data seed (hex), made once and kept beside its PKI.
fn dev_master_seed(pki: &Path) -> anyhow::Result<String> {
    let path = pki.join("hq-master.seed");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().to_owned());
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let hex = hex::encode(seed);
    std::fs::create_dir_all(pki)?;
    crate::cmd::write_new(&path, &hex, true)?;
    Ok(hex)
}

/// Till `t`'s config: HTTP on 7300+t, mesh on 7400+t, static peers, the cloud if any.
fn till_config(
    template: &TerminalConfig,
    dir: &Path,
    ca: &tillmesh_mesh::identity::Pem,
    t: u64,
    tills: u64,
    cloud: Option<&CloudSection>,
    hq_master_key: Option<&str>,
) -> anyhow::Result<TerminalConfig> {
    let pki = dir.join("pki");
    let cert = pki.join(format!("till-{t}.pem"));
    let key = pki.join(format!("till-{t}.key"));
    if !cert.exists() {
        let till = tillmesh_mesh::identity::enroll(ca, &template.store.store_id, t)?;
        crate::cmd::write_new(&cert, &till.cert, false)?;
        crate::cmd::write_new(&key, &till.key, true)?;
    }
    let mut cfg = template.clone();
    // A demo store: the example's published PINs sign in.
    cfg.security.demo = true;
    cfg.terminal.id = t;
    cfg.terminal.listen = SocketAddr::from(([127, 0, 0, 1], 7300 + t as u16));
    cfg.terminal.data_dir = dir.join(format!("till-{t}"));
    let mut mesh = MeshSection::loopback(
        SocketAddr::from(([127, 0, 0, 1], 7400 + t as u16)),
        pki.join("store-ca.pem"),
        cert,
        key,
    );
    mesh.store_tills = tills as usize;
    mesh.peers = (1..=tills)
        .filter(|p| *p != t)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], 7400 + p as u16)))
        .collect();
    cfg.mesh = Some(mesh);
    cfg.cloud = cloud.cloned();
    if let Some(k) = hq_master_key {
        cfg.security.hq_master_key = Some(k.to_owned());
    }
    Ok(cfg)
}

/// Starts `tillmesh pay-sandbox` on a free loopback port: the process (it exits when its
/// standard input, held by the child handle, closes) and its URL.
fn pay_sandbox() -> anyhow::Result<(std::process::Child, String)> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "pay-sandbox",
            "--listen",
            "127.0.0.1:0",
            "--exit-with-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start the pay sandbox: {e}"))?;
    let mut line = String::new();
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("the pay sandbox has no stdout"))?;
    std::io::BufReader::new(out).read_line(&mut line)?;
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .ok_or_else(|| anyhow::anyhow!("the pay sandbox did not start: {line:?}"))?
        .to_string();
    Ok((child, url))
}

/// `[payments.qr]` for the sandbox at `url`, with its default merchant.
fn sandbox_qr(url: &str) -> anyhow::Result<tillmesh_pay::ProviderConfig> {
    Ok(toml::from_str(&format!(
        "provider = \"momo\"\nendpoint = \"{url}\"\npartner_code = \"TILLMESHSANDBOX\"\n\
         access_key = \"sandbox-access\"\nsecret_key = \"sandbox-secret\"\n"
    ))?)
}

/// Runs the store until Ctrl-C.
pub fn run(d: DevStore) -> anyhow::Result<()> {
    if !(1..=9).contains(&d.tills) {
        anyhow::bail!("--tills must be between 1 and 9");
    }
    let mut template = TerminalConfig::load(&d.config)?;
    let store_id = template.store.store_id.clone();
    // QR payments through the sandbox provider, a process of its own, unless the config
    // names a provider.
    let mut sandbox = None;
    if template.payments.qr.is_none() {
        let (child, url) = pay_sandbox()?;
        template.payments.qr = Some(sandbox_qr(&url)?);
        println!(
            "QR payments: the sandbox provider at {url} (captures after 2 s; amounts ending in 13 are declined)"
        );
        sandbox = Some(child);
    }
    let ca = store_ca(&d.dir.join("pki"), &store_id)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let mut cloud = None;
        let mut section = None;
        let mut hq_key = None;
        if let Some(path) = &d.cloud {
            let mut cfg = tillmesh_cloud::config::CloudConfig::load(path)?;
            cfg.database = tillmesh_cloud::config::DatabaseConfig::Sqlite {
                path: d.dir.join("cloud").join("cloud.db"),
            };
            std::fs::create_dir_all(d.dir.join("cloud"))?;
            if !cfg.stores.iter().any(|s| s.id == store_id) {
                cfg.stores.push(tillmesh_cloud::config::StoreSeed {
                    id: store_id.clone(),
                    name: template.store.name.clone(),
                    utc_offset_minutes: template.checkout.utc_offset_minutes,
                });
            }
            // HQ signs the store's master data; the tills trust only its key.
            if cfg.auth.master_key_seed.is_none() {
                cfg.auth.master_key_seed = Some(dev_master_seed(&d.dir.join("pki"))?);
            }
            let h = tillmesh_cloud::start(cfg).await?;
            hq_key = h.cloud.master_public_key();
            // HQ holds the store CA (`hq add-store --ca-dir`): it checks the tills' seals
            // against it and admits new tills a manager approves, from the next id on.
            h.cloud
                .hold_store_ca(&store_id, ca.clone(), u64::from(d.tills) + 1)
                .await
                .map_err(|e| anyhow::anyhow!("store CA: {e}"))?;
            let (token, _) = h.cloud.issue(Some(&store_id), None).await?;
            section = Some(CloudSection::new(format!("http://{}", h.addr), token));
            cloud = Some(h);
        }
        let mut nodes = Vec::new();
        for t in 1..=u64::from(d.tills) {
            let cfg = till_config(
                &template,
                &d.dir,
                &ca,
                t,
                d.tills.into(),
                section.as_ref(),
                hq_key.as_deref(),
            )?;
            nodes.push(tillmesh::start(cfg).await?);
        }
        for n in &nodes {
            println!(
                "till T{} of store {store_id}: http://{}  (tillmesh status --addr {})",
                n.till.config().terminal.id,
                n.http_addr,
                n.http_addr
            );
        }
        // The group forms within the discovery window and an election.
        let mut leader = None;
        for _ in 0..100 {
            if let Some(r) = nodes.first().and_then(|n| n.raft.as_ref()) {
                leader = r.leader().await;
            }
            if leader.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match leader {
            Some(l) => println!("Raft leader: T{l} (it uploads to the cloud)"),
            None => println!("Raft leader: not elected yet (see tillmesh status)"),
        }
        if let Some(h) = &cloud {
            let (admin, _) = h.cloud.issue(None, None).await?;
            println!(
                "cloud: http://{}  (dashboard at /: sign in as ops / tillmesh-dev-admin; API admin token: {admin})",
                h.addr
            );
        }
        println!("PINs:");
        for s in &template.staff {
            println!("  {} {} ({:?}): {}", s.employee_id, s.name, s.role, s.pin);
        }
        if cloud.is_some() {
            println!(
                "a new till joins when a manager admits it: start one from configs/terminal.package.toml with its own address and files (the TILLMESH_TERMINAL__LISTEN, TILLMESH_TERMINAL__DATA_DIR and TILLMESH_MESH__* variables), then Back office > New tills on any till"
            );
        }
        println!("press Ctrl-C to stop");
        crate::cmd::shutdown_signal().await;
        for n in nodes {
            n.stop().await?;
        }
        if let Some(h) = cloud {
            h.stop().await;
        }
        if let Some(mut c) = sandbox {
            let _ = c.kill();
            let _ = c.wait();
        }
        anyhow::Ok(())
    })
}
