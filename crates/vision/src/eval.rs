//! Accuracy and latency of a model on a held-out set laid out as
//! `known/{ref,query}/<sku>/*`, `new/{ref,query}/<sku>/*` (SKUs enrolled from their few
//! `ref` photos only) and `unknown/*` (products never enrolled). `scripts/vision_data.py
//! --eval-set DIR` writes one from the training generator; `scripts/ood_shelf.py` and
//! `scripts/ood_counter.py` write sets from sources that share no code with it. A set may
//! carry `barcodes.json` (`{"codes": {code: sku}, "shown": [photo, ...]}`): then every query
//! photo is also scanned for a barcode, and the barcode path is measured apart.

use crate::gallery::StoreCalibration;
use crate::{Embedder, Gallery, VisionError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Most photos an evaluation reads.
pub const PHOTOS_MAX: usize = 100_000;

/// What an evaluation measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Known SKUs: queries whose best proposal is right.
    pub known_top1: f64,
    /// Known SKUs: queries with the right SKU among the first five.
    pub known_top5: f64,
    /// Known SKU queries refused as not sure.
    pub known_abstained: f64,
    /// Known and new SKU queries accepted as the wrong SKU: the till would have rung up
    /// the wrong product. The one error worse than "not sure".
    pub wrong_accepted: f64,
    /// Newly enrolled SKUs: queries whose best proposal is right.
    pub new_top1: f64,
    /// Most photos any new SKU was enrolled from.
    pub new_enrol_photos: usize,
    /// Unknown products accepted as some SKU.
    pub false_accept: f64,
    /// The threshold used.
    pub threshold: f32,
    /// Where it came from: `store` (calibrated on the gallery, as a till does), `card`
    /// (the gallery was too small), or `given`.
    pub threshold_from: &'static str,
    /// The store calibration, when the gallery allowed one.
    pub store: Option<StoreCalibration>,
    /// The barcode path, when the set lists its barcodes.
    pub barcodes: Option<BarcodeReport>,
    /// SKUs in the gallery.
    pub skus: usize,
    /// Query photos (known, new, unknown).
    pub queries: (usize, usize, usize),
    /// Embedding latency per photo (decode + resize + model), ms: p50 and p99.
    pub latency_ms: (f64, f64),
}

/// How the barcode path did on a set's query photos (known and new SKUs).
#[derive(Clone, Debug, Serialize)]
pub struct BarcodeReport {
    /// Query photos that show a barcode (as the set lists them).
    pub shown: usize,
    /// Photos a decoded barcode answered with the right SKU.
    pub answered: usize,
    /// Photos a decoded barcode answered with a wrong SKU.
    pub wrong: usize,
    /// `answered / shown`.
    pub rate: f64,
    /// Scan time per photo (the turns included), ms: p50 and p99.
    pub scan_ms: (f64, f64),
}

/// A set's `barcodes.json`.
#[derive(serde::Deserialize)]
struct BarcodeList {
    codes: BTreeMap<String, String>,
    shown: Vec<String>,
}

fn files(dir: &Path) -> Result<Vec<PathBuf>, VisionError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| VisionError::Full(format!("cannot read {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    Ok(out)
}

/// `(sku, photo)` pairs under `dir/<sku>/`.
fn labelled(dir: &Path) -> Result<Vec<(String, PathBuf)>, VisionError> {
    let mut out = Vec::new();
    for d in files(dir)?.into_iter().filter(|p| p.is_dir()) {
        let sku = d
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for f in files(&d)?.into_iter().filter(|p| p.is_file()) {
            out.push((sku.clone(), f));
        }
    }
    Ok(out)
}

/// The `q` quantile (0 to 1) of ascending `sorted` values, nearest rank; 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn read_photo(p: &Path) -> Result<Vec<u8>, VisionError> {
    std::fs::read(p).map_err(|e| VisionError::Full(format!("cannot read {}: {e}", p.display())))
}

/// Scans every query photo of a set that lists its barcodes.
fn barcode_path(dir: &Path) -> Result<Option<BarcodeReport>, VisionError> {
    let Ok(text) = std::fs::read_to_string(dir.join("barcodes.json")) else {
        return Ok(None);
    };
    let list: BarcodeList = serde_json::from_str(&text)
        .map_err(|e| VisionError::Full(format!("barcodes.json: {e}")))?;
    let (mut answered, mut wrong, mut times) = (0, 0, Vec::new());
    for sub in ["known/query", "new/query"] {
        for (sku, p) in labelled(&dir.join(sub))? {
            let img = crate::frame::decode(&read_photo(&p)?)?;
            let t = Instant::now();
            let code = crate::barcode::scan(&img);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            match code.and_then(|c| list.codes.get(&c.text)) {
                Some(s) if *s == sku => answered += 1,
                Some(_) => wrong += 1,
                None => {}
            }
        }
    }
    let shown = list.shown.len();
    times.sort_by(f64::total_cmp);
    Ok(Some(BarcodeReport {
        scan_ms: (percentile(&times, 0.5), percentile(&times, 0.99)),
        shown,
        answered,
        wrong,
        rate: if shown == 0 {
            0.0
        } else {
            answered as f64 / shown as f64
        },
    }))
}

/// What a calibration found.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// The lowest threshold at which at most `max_false_accept` of the calibration photos
    /// are accepted.
    pub threshold: f32,
    /// Calibration photos (products never enrolled).
    pub photos: usize,
    /// The false-accept rate aimed for.
    pub max_false_accept: f64,
}

/// Embeds every photo directly in `dir` (sorted), at most [`PHOTOS_MAX`].
fn embed_all(model: &Embedder, dir: &Path) -> Result<Vec<Vec<f32>>, VisionError> {
    let photos: Vec<PathBuf> = files(dir)?.into_iter().filter(|p| p.is_file()).collect();
    if photos.len() > PHOTOS_MAX {
        return Err(VisionError::Full(format!("more than {PHOTOS_MAX} photos")));
    }
    photos
        .iter()
        .map(|p| model.embed_image(&read_photo(p)?))
        .collect()
}

/// Calibrates the abstention threshold: with the gallery enrolled from the evaluation set's
/// reference photos (`dir/known/ref`, `dir/new/ref`), the threshold at which at most
/// `max_false_accept` of the never-enrolled products photographed in `unknown` are
/// accepted. Calibrate on products that are not in the evaluation set's `unknown/`, or
/// the false-accept rate measured afterwards means nothing.
pub fn calibrate(
    model: &Embedder,
    dir: &Path,
    unknown: &Path,
    max_false_accept: f64,
) -> Result<Calibration, VisionError> {
    if !(0.0..1.0).contains(&max_false_accept) {
        return Err(VisionError::Full(
            "the false-accept rate aimed for must be at least 0 and below 1".into(),
        ));
    }
    let mut g = Gallery::new(model.card().output.dim);
    for sub in ["known/ref", "new/ref"] {
        for (sku, p) in labelled(&dir.join(sub))? {
            g.add(&sku, model.embed_image(&read_photo(&p)?)?)?;
        }
    }
    let mut best: Vec<f32> = embed_all(model, unknown)?
        .iter()
        .map(|e| {
            g.recognize(e, 1, f32::INFINITY)
                .map(|r| r.proposals.first().map_or(-1.0, |p| p.score))
        })
        .collect::<Result<_, _>>()?;
    if best.is_empty() {
        return Err(VisionError::Full(format!(
            "no photos in {}",
            unknown.display()
        )));
    }
    best.sort_by(|a, b| b.total_cmp(a));
    // At most `allowed` photos may score at or above the threshold: just above the next.
    let allowed = (max_false_accept * best.len() as f64).floor() as usize;
    let threshold = best.get(allowed).map_or(-1.0, |s| s + 1e-6);
    Ok(Calibration {
        threshold,
        photos: best.len(),
        max_false_accept,
    })
}

/// Evaluates `model` on the set in `dir`, with `threshold` if given, else the way a till
/// does: calibrated on the gallery the set enrols ([`Gallery::calibrate`] at
/// [`crate::gallery::CALIBRATION_AIM`]), or the card's while the gallery is too small.
pub fn evaluate(
    model: &Embedder,
    dir: &Path,
    threshold: Option<f32>,
) -> Result<Report, VisionError> {
    let mut times = Vec::new();
    let mut count = 0;
    let mut embed = |p: &Path| -> Result<Vec<f32>, VisionError> {
        count += 1;
        if count > PHOTOS_MAX {
            return Err(VisionError::Full(format!("more than {PHOTOS_MAX} photos")));
        }
        let bytes = read_photo(p)?;
        let t = Instant::now();
        let e = model.embed_image(&bytes)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        Ok(e)
    };
    let mut g = Gallery::new(model.card().output.dim);
    let mut enrol = std::collections::BTreeMap::<String, usize>::new();
    for (sku, p) in labelled(&dir.join("known/ref"))? {
        g.add(&sku, embed(&p)?)?;
    }
    for (sku, p) in labelled(&dir.join("new/ref"))? {
        g.add(&sku, embed(&p)?)?;
        *enrol.entry(sku).or_default() += 1;
    }
    let store = g.calibrate(crate::gallery::CALIBRATION_AIM);
    let (threshold, threshold_from) = match (threshold, &store) {
        (Some(t), _) => (t, "given"),
        (None, Some(c)) => (c.threshold, "store"),
        (None, None) => (model.card().threshold, "card"),
    };
    let barcodes = barcode_path(dir)?;
    let mut known = (0, 0, 0, 0);
    let mut wrong = 0;
    for (sku, p) in labelled(&dir.join("known/query"))? {
        let r = g.recognize(&embed(&p)?, 5, threshold)?;
        known.0 += 1;
        known.1 += usize::from(r.proposals.first().is_some_and(|b| b.sku == sku));
        known.2 += usize::from(r.proposals.iter().any(|b| b.sku == sku));
        known.3 += usize::from(r.accepted.is_none());
        wrong += usize::from(r.accepted.as_ref().is_some_and(|s| *s != sku));
    }
    let mut new = (0, 0);
    for (sku, p) in labelled(&dir.join("new/query"))? {
        let r = g.recognize(&embed(&p)?, 1, threshold)?;
        new.0 += 1;
        new.1 += usize::from(r.proposals.first().is_some_and(|b| b.sku == sku));
        wrong += usize::from(r.accepted.as_ref().is_some_and(|s| *s != sku));
    }
    let mut unknown = (0, 0);
    for p in files(&dir.join("unknown"))?
        .into_iter()
        .filter(|p| p.is_file())
    {
        let r = g.recognize(&embed(&p)?, 1, threshold)?;
        unknown.0 += 1;
        unknown.1 += usize::from(r.accepted.is_some());
    }
    times.sort_by(f64::total_cmp);
    let rate = |a: usize, n: usize| if n == 0 { 0.0 } else { a as f64 / n as f64 };
    Ok(Report {
        known_top1: rate(known.1, known.0),
        known_top5: rate(known.2, known.0),
        known_abstained: rate(known.3, known.0),
        wrong_accepted: rate(wrong, known.0 + new.0),
        new_top1: rate(new.1, new.0),
        new_enrol_photos: enrol.values().copied().max().unwrap_or(0),
        false_accept: rate(unknown.1, unknown.0),
        threshold,
        threshold_from,
        store,
        barcodes,
        skus: g.len(),
        queries: (known.0, new.0, unknown.0),
        latency_ms: (percentile(&times, 0.5), percentile(&times, 0.99)),
    })
}
