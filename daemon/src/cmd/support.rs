//! `tillmesh support-bundle`: fetches a running till's support bundle (a manager signs in)
//! and writes it to a new file.

use super::vision::TillLogin;
use std::path::PathBuf;

pub(crate) fn run(till: TillLogin, out: PathBuf) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!("{} exists; choose a new file", out.display());
    }
    // One crypto provider in the process (ring), as reqwest's client needs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let http = reqwest::Client::new();
        let token = till.login(&http).await?;
        let r = http
            .get(format!("http://{}/api/v1/support/bundle", till.addr))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach a till at {}: {e}", till.addr))?;
        let status = r.status();
        if !status.is_success() {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            anyhow::bail!(
                "the till refused the bundle ({status}): {}",
                body["message"].as_str().unwrap_or("?")
            );
        }
        let bytes = r.bytes().await?;
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&out)
            .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        println!("wrote {} ({} bytes)", out.display(), bytes.len());
        Ok(())
    })
}
