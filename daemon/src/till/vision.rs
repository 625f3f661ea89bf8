//! Product recognition on the till: frames and enrolment photos go through the model off
//! the async executor's core threads (`spawn_blocking`, at most `vision.concurrency` at
//! once, a bounded queue behind them), and the gallery is the replicated state's
//! references (`VisionEnrolled` events), rebuilt and recalibrated when the till's events
//! change: the abstention threshold comes from the store's own gallery
//! ([`Gallery::calibrate`]), the card's only while too few products are enrolled. A frame
//! is first scanned for a barcode; one the catalog knows answers at once, without the model.

use super::{Session, Till, TillError};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tillmesh_crdt::VersionVector;
use tillmesh_pos::cashier::Permission;
use tillmesh_vision::{Embedder, Gallery, StoreCalibration, VisionError};

/// A gallery and its calibration, as of one version vector.
type Calibrated = (Arc<Gallery>, Option<StoreCalibration>);

/// Frames waiting for a model slot at most; more are refused as busy.
const QUEUE_MAX: usize = 8;

/// The loaded model, its slots, and the gallery built from the replicated state.
pub struct Vision {
    embedder: Arc<Embedder>,
    slots: Arc<tokio::sync::Semaphore>,
    waiting: AtomicUsize,
    top_k: usize,
    gallery: Mutex<Option<(VersionVector, Calibrated)>>,
}

impl std::fmt::Debug for Vision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vision")
            .field("model", &self.embedder)
            .finish()
    }
}

impl Vision {
    /// Loads the model the card names; a model that does not match its card is refused.
    pub fn load(cfg: &crate::config::VisionSection) -> Result<Vision, VisionError> {
        Ok(Vision {
            embedder: Arc::new(Embedder::load(&cfg.card)?),
            slots: Arc::new(tokio::sync::Semaphore::new(cfg.concurrency)),
            waiting: AtomicUsize::new(0),
            top_k: cfg.top_k,
            gallery: Mutex::new(None),
        })
    }
}

/// One proposal, with the product's name.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ProposalView {
    /// SKU.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Cosine similarity to the SKU's references, -1 to 1.
    pub score: f32,
}

/// What recognising a frame answers.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RecognitionView {
    /// `accepted` (the first proposal is the product) or `not_sure`.
    pub decision: &'static str,
    /// The accepted SKU.
    pub sku: Option<String>,
    /// The best proposals, best first.
    pub proposals: Vec<ProposalView>,
    /// The abstention threshold.
    pub threshold: f32,
    /// Where the threshold comes from: `store` (calibrated on this store's gallery) or
    /// `card` (the model's, while too few products are enrolled to calibrate).
    pub threshold_from: &'static str,
    /// What answered: `barcode` (a barcode in the frame the catalog knows; no model run)
    /// or `model`.
    pub source: &'static str,
    /// The barcode read in the frame, if any.
    pub barcode: Option<String>,
    /// SKUs enrolled in the store's gallery.
    pub gallery_skus: usize,
}

/// What enrolling a photo answers.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EnrolView {
    /// SKU.
    pub sku: String,
    /// Reference photos the store now holds for it.
    pub references: usize,
}

fn internal(msg: String) -> TillError {
    TillError::Internal(msg)
}

impl Till {
    fn vision(&self) -> Result<&Arc<Vision>, TillError> {
        self.vision.as_ref().ok_or_else(|| {
            TillError::unavailable(
                "vision_off",
                "product recognition is not configured on this till ([vision] card)",
            )
        })
    }

    /// Decodes `bytes` and scans the frame for a barcode; unless `known` (asked of the
    /// catalog) takes the code, embeds the frame. On blocking threads, holding a model slot.
    async fn scan_or_embed(
        &self,
        bytes: axum::body::Bytes,
        known: impl Fn(&str) -> bool,
    ) -> Result<(Option<String>, Option<Vec<f32>>), TillError> {
        let (v, permit) = self.slot().await?;
        let (img, code) = tokio::task::spawn_blocking(move || {
            let img = tillmesh_vision::frame::decode(&bytes)?;
            let code = tillmesh_vision::barcode::scan(&img).map(|c| c.text);
            Ok::<_, VisionError>((img, code))
        })
        .await
        .map_err(|e| internal(format!("recognition task: {e}")))??;
        if code.as_deref().is_some_and(&known) {
            return Ok((code, None));
        }
        let model = v.embedder.clone();
        let e = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            model.embed_rgb(&img)
        })
        .await
        .map_err(|e| internal(format!("recognition task: {e}")))??;
        Ok((code, Some(e)))
    }

    /// A model slot (waiting for one, bounded).
    async fn slot(&self) -> Result<(Arc<Vision>, tokio::sync::OwnedSemaphorePermit), TillError> {
        let v = self.vision()?.clone();
        if v.waiting.fetch_add(1, Ordering::SeqCst) >= QUEUE_MAX {
            v.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(TillError::unavailable(
                "vision_busy",
                "too many frames are waiting for recognition; try again",
            ));
        }
        let permit = v.slots.clone().acquire_owned().await;
        v.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = permit.map_err(|_| internal("vision slots closed".into()))?;
        Ok((v, permit))
    }

    /// Embeds `bytes` on a blocking thread, waiting for a model slot (bounded).
    async fn embed(&self, bytes: axum::body::Bytes) -> Result<Vec<f32>, TillError> {
        let (v, permit) = self.slot().await?;
        let model = v.embedder.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            model.embed_image(&bytes)
        })
        .await
        .map_err(|e| internal(format!("recognition task: {e}")))?
        .map_err(TillError::from)
    }

    /// The store's gallery as of the till's current events, and its calibration.
    fn gallery(&self) -> Result<Calibrated, TillError> {
        let v = self.vision()?;
        let vv = self.version_vector();
        let mut cache = v.gallery.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, g)) = cache.as_ref()
            && *at == vv
        {
            return Ok(g.clone());
        }
        let dim = v.embedder.card().output.dim;
        let mut g = Gallery::new(dim);
        {
            let core = self.core();
            for (sku, refs) in core.replica.state().vision.iter() {
                for r in refs {
                    // References of another model's size (after a model change) are skipped.
                    if r.len() == dim {
                        let _ = g.add(sku, r.clone());
                    }
                }
            }
        }
        let c = g.calibrate(tillmesh_vision::gallery::CALIBRATION_AIM);
        let g = (Arc::new(g), c);
        *cache = Some((vv, g.clone()));
        Ok(g)
    }

    /// Recognises the product in a camera frame: a barcode the catalog knows answers
    /// exactly; otherwise the best proposals, and the SKU when the best clears the store's
    /// threshold (otherwise "not sure").
    pub async fn recognize(
        &self,
        bytes: axum::body::Bytes,
        k: Option<usize>,
    ) -> Result<RecognitionView, TillError> {
        let v = self.vision()?.clone();
        let k = k.unwrap_or(v.top_k);
        if !(1..=tillmesh_vision::gallery::TOP_K_MAX).contains(&k) {
            return Err(TillError::unprocessable(
                "bad_k",
                format!(
                    "k (proposals) must be 1 to {}",
                    tillmesh_vision::gallery::TOP_K_MAX
                ),
            ));
        }
        let known = |code: &str| self.core().catalog.lookup(code).is_ok();
        let (code, e) = self.scan_or_embed(bytes, known).await.inspect_err(|e| {
            if matches!(
                e,
                TillError::Internal(_) | TillError::Vision(VisionError::Model { .. })
            ) {
                self.metrics.vision_errors.inc();
            }
        })?;
        let (g, cal) = self.gallery()?;
        let (threshold, threshold_from) = match &cal {
            Some(c) => (c.threshold, "store"),
            None => (v.embedder.card().threshold, "card"),
        };
        self.metrics.vision_frames.inc();
        let Some(e) = e else {
            self.metrics.vision_barcodes.inc();
            let core = self.core();
            let item = core.catalog.lookup(code.as_deref().unwrap_or_default())?;
            return Ok(RecognitionView {
                decision: "accepted",
                sku: Some(item.sku.clone()),
                proposals: vec![ProposalView {
                    sku: item.sku.clone(),
                    name: item.name.clone(),
                    score: 1.0,
                }],
                threshold,
                threshold_from,
                source: "barcode",
                barcode: code,
                gallery_skus: g.len(),
            });
        };
        let r = g.recognize(&e, k, threshold).map_err(TillError::from)?;
        let proposals = {
            let core = self.core();
            r.proposals
                .into_iter()
                .map(|p| ProposalView {
                    name: core
                        .catalog
                        .get(&p.sku)
                        .map(|i| i.name.clone())
                        .unwrap_or_default(),
                    sku: p.sku,
                    score: p.score,
                })
                .collect()
        };
        Ok(RecognitionView {
            decision: if r.accepted.is_some() {
                "accepted"
            } else {
                "not_sure"
            },
            sku: r.accepted,
            proposals,
            threshold,
            threshold_from,
            source: "model",
            barcode: code,
            gallery_skus: g.len(),
        })
    }

    /// Enrols one photo of a catalog SKU (a manager's session): the reference is a durable
    /// event every till of the store receives.
    pub async fn enroll(
        &self,
        s: &Session,
        sku: &str,
        bytes: axum::body::Bytes,
    ) -> Result<EnrolView, TillError> {
        tillmesh_pos::vision::check(sku, &[0.0])
            .map_err(|m| TillError::unprocessable("bad_sku", m))?;
        self.core().catalog.get(sku)?;
        let approver = self.approve(s, Permission::AdjustStock, None).await?;
        let e = self.embed(bytes).await?;
        self.audited(&s.employee_id, "vision.enroll", sku, async {
            let now = self.now();
            let rx = {
                let (mut core, slot) = self.core_for_write()?;
                let ev = core.replica.enroll_vision(sku, e, &s.employee_id, now);
                let rec = super::audit_rec(
                    now,
                    &s.employee_id,
                    "vision.enroll",
                    sku,
                    "ok",
                    format!("approved by {approver}"),
                );
                self.submit(
                    slot,
                    tillmesh_store::WriteBatch {
                        events: vec![ev],
                        audit: vec![rec],
                        ..Default::default()
                    },
                )?
            };
            self.durable(rx).await?;
            Ok(())
        })
        .await?;
        Ok(EnrolView {
            sku: sku.to_string(),
            references: self.core().replica.state().vision.count(sku),
        })
    }
}
