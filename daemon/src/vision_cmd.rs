//! `tillmesh vision`: recognise photos and enrol SKUs through a running till's API, and
//! evaluate a model on a held-out set on this machine.

use clap::Subcommand;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What `tillmesh vision` does.
#[derive(Debug, Subcommand)]
pub enum VisionCommand {
    /// Recognise the product in each photo with a running till.
    Recognize {
        /// JPEG or PNG photos.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        till: TillLogin,
    },
    /// Enrol a catalog SKU from photos (a manager's login): every till of the store gets it.
    Enroll {
        /// The SKU.
        #[arg(long)]
        sku: String,
        /// JPEG or PNG photos of it (a few, from different angles).
        #[arg(required = true)]
        photos: Vec<PathBuf>,
        #[command(flatten)]
        till: TillLogin,
    },
    /// Top-1/top-5 on known SKUs, top-1 on newly enrolled ones, false accepts on unknown
    /// products and latency, on a set laid out as `scripts/vision_data.py --eval-set` writes.
    Eval {
        /// The held-out set.
        #[arg(long)]
        data: PathBuf,
        /// The model card.
        #[arg(long, default_value = "models/products.json")]
        card: PathBuf,
        /// Abstention threshold (the card's by default).
        #[arg(long)]
        threshold: Option<f32>,
    },
}

/// Which till, as whom.
#[derive(Debug, clap::Args)]
pub struct TillLogin {
    /// The till's HTTP address.
    #[arg(long, default_value = "127.0.0.1:7300")]
    addr: SocketAddr,
    /// Employee id.
    #[arg(long, default_value = "E001")]
    employee: String,
    /// PIN (or TILLMESH_PIN).
    #[arg(long, env = "TILLMESH_PIN", hide_env_values = true)]
    pin: String,
}

impl TillLogin {
    async fn login(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        let r = http
            .post(format!("http://{}/api/v1/auth/login", self.addr))
            .json(&serde_json::json!({"employee_id": self.employee, "pin": self.pin}))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach a till at {}: {e}", self.addr))?;
        let (ok, body) = (
            r.status().is_success(),
            r.json::<serde_json::Value>().await?,
        );
        if !ok {
            anyhow::bail!("login refused: {}", body["message"].as_str().unwrap_or("?"));
        }
        Ok(body["token"].as_str().unwrap_or_default().to_string())
    }
}

async fn post_image(
    http: &reqwest::Client,
    url: String,
    token: &str,
    path: &PathBuf,
) -> anyhow::Result<serde_json::Value> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let r = http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await?;
    let ok = r.status().is_success();
    let body: serde_json::Value = r.json().await?;
    if !ok {
        anyhow::bail!(
            "{}: {}",
            path.display(),
            body["message"].as_str().unwrap_or("refused")
        );
    }
    Ok(body)
}

/// Runs a `tillmesh vision` command.
pub fn run(cmd: VisionCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    match cmd {
        VisionCommand::Recognize { images, till } => rt.block_on(async {
            let token = till.login(&http).await?;
            for p in &images {
                let url = format!("http://{}/api/v1/vision/recognize", till.addr);
                let r = post_image(&http, url, &token, p).await?;
                let top: Vec<String> = r["proposals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        format!(
                            "{} {} ({:.2})",
                            p["sku"].as_str().unwrap_or("?"),
                            p["name"].as_str().unwrap_or(""),
                            p["score"].as_f64().unwrap_or(0.0)
                        )
                    })
                    .collect();
                match r["sku"].as_str() {
                    Some(sku) => println!("{}: {sku}  [{}]", p.display(), top.join("; ")),
                    None => println!("{}: not sure  [{}]", p.display(), top.join("; ")),
                }
            }
            Ok(())
        }),
        VisionCommand::Enroll { sku, photos, till } => rt.block_on(async {
            let token = till.login(&http).await?;
            let mut refs = 0;
            for p in &photos {
                let url = format!("http://{}/api/v1/vision/skus/{sku}/photos", till.addr);
                refs = post_image(&http, url, &token, p).await?["references"]
                    .as_u64()
                    .unwrap_or(0);
            }
            println!(
                "{sku}: {} photos enrolled; the store holds {refs}",
                photos.len()
            );
            Ok(())
        }),
        VisionCommand::Eval {
            data,
            card,
            threshold,
        } => {
            let t = std::time::Instant::now();
            let m = tillmesh_vision::Embedder::load(&card)?;
            let load = t.elapsed();
            let r = tillmesh_vision::eval::evaluate(&m, &data, threshold)?;
            println!(
                "model {} (loaded in {:.2} s)",
                card.display(),
                load.as_secs_f64()
            );
            println!(
                "known SKUs: top-1 {:.2}%  top-5 {:.2}%  abstained {:.2}%  ({} photos)",
                100.0 * r.known_top1,
                100.0 * r.known_top5,
                100.0 * r.known_abstained,
                r.queries.0
            );
            println!(
                "new SKUs (enrolled from <= {} photos): top-1 {:.2}%  ({} photos)",
                r.new_enrol_photos,
                100.0 * r.new_top1,
                r.queries.1
            );
            println!(
                "unknown products: false accepts {:.2}%  ({} photos, threshold {:.3})",
                100.0 * r.false_accept,
                r.queries.2,
                r.threshold
            );
            println!(
                "latency per photo (decode, resize, model; one thread): p50 {:.2} ms  p99 {:.2} ms",
                r.latency_ms.0, r.latency_ms.1
            );
            Ok(())
        }
    }
}
