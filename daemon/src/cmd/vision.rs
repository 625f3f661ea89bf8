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
    /// products, the barcode path and latency, on sets laid out as `scripts/vision_data.py
    /// --eval-set` writes (`scripts/ood_shelf.py` and `scripts/ood_counter.py` write sets
    /// from sources that share no code with the training generator), one report per set.
    /// The threshold is calibrated on each set's gallery, the way a till does.
    Eval {
        /// The held-out sets (one report each).
        #[arg(long, required = true, num_args = 1..)]
        data: Vec<PathBuf>,
        /// The model card.
        #[arg(long, default_value = "models/products.json")]
        card: PathBuf,
        /// Abstention threshold (by default calibrated on the set's gallery, as a till does).
        #[arg(long, conflicts_with_all = ["calibrate", "card_threshold"])]
        threshold: Option<f32>,
        /// Use the card's threshold instead of the store calibration.
        #[arg(long)]
        card_threshold: bool,
        /// Calibrate the threshold first on photos of never-enrolled products in this folder
        /// (`scripts/vision_data.py --calibration-set DIR`), then evaluate with it.
        #[arg(long)]
        calibrate: Option<PathBuf>,
        /// The false-accept rate the calibration aims for.
        #[arg(long, default_value_t = 0.01, requires = "calibrate")]
        max_false_accept: f64,
        /// Write the calibrated threshold and the metrics into the card.
        #[arg(long, requires = "calibrate")]
        write_card: bool,
    },
    /// Latency per frame on one thread: the model alone, and decode + crop + model; p50/p99
    /// as one JSON line (`scripts/bench_vision.sh` sets it against ONNX Runtime).
    Bench {
        /// The model card.
        #[arg(long, default_value = "models/products.json")]
        card: PathBuf,
        /// A JPEG or PNG frame.
        #[arg(long, default_value = "models/eval/known/query/V0000/0.jpg")]
        image: PathBuf,
        /// Frames timed (after 10 warm-up frames).
        #[arg(long, default_value_t = 200)]
        frames: usize,
    },
}

/// Records a calibrated threshold, and what the evaluation measured with it, in the card.
fn write_threshold(
    card: &std::path::Path,
    r: &tillmesh_vision::eval::Report,
    c: &tillmesh_vision::eval::Calibration,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(card)?;
    let mut v: serde_json::Value = serde_json::from_str(&text)?;
    v["threshold"] = serde_json::json!(c.threshold);
    v["calibration"] = serde_json::json!(c);
    v["metrics"] = serde_json::json!({
        "known_top1": r.known_top1, "known_top5": r.known_top5,
        "known_abstained": r.known_abstained, "new_top1": r.new_top1,
        "new_enrol_photos": r.new_enrol_photos, "false_accept": r.false_accept,
        "threshold": r.threshold, "queries": r.queries,
    });
    std::fs::write(card, serde_json::to_string_pretty(&v)? + "\n")?;
    Ok(())
}

/// p50 and p99 of `ms`, sorted in place.
fn percentiles(ms: &mut [f64]) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q| tillmesh_vision::eval::percentile(ms, q);
    (at(0.5), at(0.99))
}

/// Which till, as whom.
#[derive(Debug, clap::Args)]
pub struct TillLogin {
    /// The till's HTTP address.
    #[arg(long, default_value = "127.0.0.1:7300")]
    pub(crate) addr: SocketAddr,
    /// Employee id.
    #[arg(long, default_value = "E001")]
    employee: String,
    /// PIN (or TILLMESH_PIN).
    #[arg(long, env = "TILLMESH_PIN", hide_env_values = true)]
    pin: String,
}

impl TillLogin {
    pub(crate) async fn login(&self, http: &reqwest::Client) -> anyhow::Result<String> {
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
        VisionCommand::Bench {
            card,
            image,
            frames,
        } => {
            if !(1..=100_000).contains(&frames) {
                anyhow::bail!("--frames must be 1 to 100000");
            }
            let m = tillmesh_vision::Embedder::load(&card)?;
            let bytes =
                std::fs::read(&image).map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
            let img = tillmesh_vision::frame::decode(&bytes)?;
            let input = tillmesh_vision::frame::tensor(&img, &m.card().input, m.card().crop);
            let (mut model, mut full) = (Vec::new(), Vec::new());
            for i in 0..frames + 10 {
                let t = std::time::Instant::now();
                m.embed_tensor(input.clone())?;
                let a = t.elapsed().as_secs_f64() * 1000.0;
                let t = std::time::Instant::now();
                m.embed_image(&bytes)?;
                let b = t.elapsed().as_secs_f64() * 1000.0;
                if i >= 10 {
                    model.push(a);
                    full.push(b);
                }
            }
            let (m50, m99) = percentiles(&mut model);
            let (f50, f99) = percentiles(&mut full);
            println!(
                "{}",
                serde_json::json!({
                    "model": m.card().name, "frames": frames,
                    "model_ms": {"p50": m50, "p99": m99},
                    "frame_ms": {"p50": f50, "p99": f99},
                })
            );
            Ok(())
        }
        VisionCommand::Eval {
            data,
            card,
            threshold,
            card_threshold,
            calibrate,
            max_false_accept,
            write_card,
        } => {
            if calibrate.is_some() && data.len() != 1 {
                anyhow::bail!("--calibrate evaluates one set: give one --data");
            }
            let t = std::time::Instant::now();
            let m = tillmesh_vision::Embedder::load(&card)?;
            let load = t.elapsed();
            println!(
                "model {} (loaded in {:.2} s)",
                card.display(),
                load.as_secs_f64()
            );
            let mut threshold = threshold.or(card_threshold.then_some(m.card().threshold));
            let mut calibration = None;
            if let Some(cal) = &calibrate {
                let c = tillmesh_vision::eval::calibrate(&m, &data[0], cal, max_false_accept)?;
                println!(
                    "calibrated on {} photos of never-enrolled products: threshold {:.4} for <= {:.1}% false accepts",
                    c.photos,
                    c.threshold,
                    100.0 * c.max_false_accept
                );
                threshold = Some(c.threshold);
                calibration = Some(c);
            }
            for set in &data {
                let r = tillmesh_vision::eval::evaluate(&m, set, threshold)?;
                print_report(set, &r);
                if let (true, Some(c)) = (write_card, &calibration) {
                    write_threshold(&card, &r, c)?;
                    println!("wrote the threshold and metrics into {}", card.display());
                }
            }
            Ok(())
        }
    }
}

/// One set's report, for a person.
fn print_report(set: &std::path::Path, r: &tillmesh_vision::eval::Report) {
    println!("== {}: {} SKUs enrolled", set.display(), r.skus);
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
        "unknown products: false accepts {:.2}%  ({} photos, threshold {:.3} from the {})",
        100.0 * r.false_accept,
        r.queries.2,
        r.threshold,
        r.threshold_from
    );
    println!(
        "known and new SKUs accepted as the wrong SKU: {:.2}%",
        100.0 * r.wrong_accepted
    );
    if let Some(c) = &r.store {
        println!(
            "store calibration: threshold {:.3} from {} references of {} SKUs; expected not sure {:.1}%",
            c.threshold,
            c.references,
            c.skus,
            100.0 * c.expected_abstain
        );
    }
    if let Some(b) = &r.barcodes {
        println!(
            "barcode path: answered {} of {} query photos showing a barcode ({:.1}%), {} wrong; scan p50 {:.1} ms  p99 {:.1} ms",
            b.answered,
            b.shown,
            100.0 * b.rate,
            b.wrong,
            b.scan_ms.0,
            b.scan_ms.1
        );
    }
    println!(
        "latency per photo (decode, resize, model; one thread): p50 {:.2} ms  p99 {:.2} ms",
        r.latency_ms.0, r.latency_ms.1
    );
}
