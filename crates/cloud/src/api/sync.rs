//! The stores' side: a batch upload checked, decoded and ingested exactly once, master-data
//! pulls, and the watermarks a new leader resumes from.

use super::*;

/// Checks a batch against the credential's store and turns its events into ledger rows.
/// From batch format [`tillmesh_cloud_proto::BATCH_VERSION_QUARANTINE`] on, an event that
/// fails the validator is one the store quarantined: it is kept under
/// [`tillmesh_cloud_proto::QUARANTINED_KIND`] (held, so the origin's watermark passes it;
/// never projected) instead of refusing the batch.
pub fn prepare(store: &str, batch: &Batch, version: u16) -> Result<Vec<Row>, ApiError> {
    if batch.events.len() > BATCH_EVENTS_MAX {
        return Err(too_large(format!(
            "the batch holds {} events; at most {BATCH_EVENTS_MAX} per batch",
            batch.events.len()
        )));
    }
    if batch.term == 0 || batch.leader == 0 {
        return Err(unprocessable(
            "invalid_batch",
            "a batch needs the uploader's Raft term and leader id (both at least 1)",
        ));
    }
    if batch.tills.len() > 1_024 {
        return Err(unprocessable(
            "invalid_batch",
            "at most 1024 tills per store",
        ));
    }
    let mut rows = Vec::with_capacity(batch.events.len());
    for (i, se) in batch.events.iter().enumerate() {
        if se.store != store {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_store",
                format!(
                    "event {i} belongs to store {:?} but the credential is for store {store}; nothing in this batch was stored",
                    se.store
                ),
            ));
        }
        let e = &se.event;
        let quarantined = match e.check() {
            Ok(()) => false,
            // Its id must still hold together: it is stored under it.
            Err(_)
                if version >= tillmesh_cloud_proto::BATCH_VERSION_QUARANTINE
                    && e.seq > 0
                    && e.hlc.replica == e.origin =>
            {
                true
            }
            Err(m) => {
                return Err(unprocessable(
                    "invalid_event",
                    format!(
                        "event {i} ({}/{}): {m}; nothing in this batch was stored",
                        e.origin, e.seq
                    ),
                ));
            }
        };
        let body = tillmesh_pos::codec::encode(&e.body)
            .map_err(|m| unprocessable("invalid_event", format!("event {i}: {m}")))?;
        rows.push(Row {
            origin: e.origin.0,
            seq: e.seq,
            kind: if quarantined {
                tillmesh_cloud_proto::QUARANTINED_KIND.to_string()
            } else {
                e.body.kind().to_string()
            },
            hlc_ms: e.hlc.wall_ms,
            body,
        });
    }
    Ok(rows)
}

/// Checks a batch for a store whose CA is pinned (`hq add-store --ca-cert`). Its key records
/// are checked against the CA and kept, and so is a newer revocation list. A format 3
/// batch must be sealed by its leader's key, and a leader whose certificate the store
/// revoked is refused (403). An event whose seal does not check (forged, or unsealed where
/// its origin seals; a JSON batch carries no seals) is left out of the batch and never
/// stored, so the genuine event at its id can still come. Answers how many were left out.
/// A store with no CA pinned is not checked, but its key records are kept as they come
/// (each is checked when read, once a CA is pinned): a till sends its records once, so a
/// CA pinned later still finds them.
pub(super) async fn check_seals(
    cloud: &Cloud,
    store: &str,
    batch: &mut Batch,
    version: u16,
) -> Result<u64, ApiError> {
    let held = cloud.ledger.seal_keys(store).await?;
    let Some(ca) = &held.ca else {
        let room = tillmesh_pos::seal::KEYS_MAX.saturating_sub(held.records.len());
        let mut keep: Vec<_> = std::mem::take(&mut batch.sealing.keys);
        keep.retain(|r| !held.records.contains(r));
        keep.truncate(room);
        if !keep.is_empty() {
            cloud.ledger.put_seal_keys(store, None, keep, None).await?;
        }
        return Ok(0);
    };
    let mut ring = tillmesh_pos::seal::Keyring::new(store, ca).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad_store_ca",
            format!("the store CA pinned for {store} does not parse: {e}"),
        )
    })?;
    for r in &held.records {
        let _ = ring.admit(r);
    }
    let mut fresh = Vec::new();
    for r in std::mem::take(&mut batch.sealing.keys) {
        match ring.admit(&r) {
            Ok(true) => fresh.push(r),
            Ok(false) => {}
            Err(e) => tracing::warn!(store, origin = r.origin, cause = %e, "refused a key record"),
        }
    }
    let mut revoked = held
        .revocations
        .and_then(|s| s.verify(ca, store).ok())
        .unwrap_or_default();
    let mut newer = None;
    if let Some(signed) = batch.sealing.revocations.take() {
        match signed.verify(ca, store) {
            Ok(list) if list.issued_ms > revoked.issued_ms => {
                let json = serde_json::to_string(&signed).unwrap_or_default();
                newer = Some((list.issued_ms, json));
                revoked = list;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(store, cause = %e, "refused a revocation list"),
        }
    }
    if !fresh.is_empty() || newer.is_some() {
        cloud
            .ledger
            .put_seal_keys(store, None, fresh, newer)
            .await?;
    }
    if version >= tillmesh_cloud_proto::BATCH_VERSION_SEALS {
        let message = tillmesh_cloud_proto::batch_message(store, batch);
        let leader = batch.leader;
        let issued_s = batch
            .sealing
            .seal
            .as_deref()
            .ok_or_else(|| "the batch carries no seal".to_string())
            .and_then(|sig| ring.check_terminal(leader, &message, sig))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "unsealed_batch",
                    format!("{e}: a batch must be sealed by its leader T{leader}; nothing in it was stored"),
                )
            })?;
        if tillmesh_pos::revocation::covers(&revoked.revoked, leader, issued_s) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "revoked_till",
                format!(
                    "the store revoked T{leader}'s certificate; nothing in this batch was stored"
                ),
            ));
        }
    }
    let before = batch.events.len();
    batch.events.retain(|se| match ring.check(&se.event) {
        Ok(_) => true,
        Err(why) => {
            tracing::warn!(store, reason = %why, "refused an uploaded event: its seal does not check");
            false
        }
    });
    let refused = (before - batch.events.len()) as u64;
    if refused > 0 {
        cloud
            .metrics
            .seal_refused
            .get_or_create(&crate::metrics::StoreLabel {
                store: store.to_string(),
            })
            .inc_by(refused);
    }
    Ok(refused)
}

#[utoipa::path(post, path = "/api/v1/sync/upload",
    request_body(content = String, description = "a Batch, as JSON or as application/x-tillmesh-batch (bincode)"),
    responses((status = 200, body = IngestAck, description = "durable"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "stale_term or term_conflict"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn upload(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestAck>, ApiError> {
    let result = upload_inner(&cloud, &headers, body).await;
    match &result {
        Ok(_) => cloud.metrics.batch("accepted"),
        Err(e) => cloud.metrics.batch(e.code),
    }
    result
}

#[utoipa::path(post, path = "/api/v1/sync/tills",
    request_body = tillmesh_cloud_proto::TillsReport,
    responses((status = 204, description = "kept for HQ's fleet view"),
        (status = 200, body = tillmesh_cloud_proto::TillsAnswer, description = "kept; and HQ asks the store to sync now"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "stale_term: a later leader reported"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
/// The store leader's report of every till (link, lag, last seen, version), every few
/// seconds: shown per till in the fleet report and the dashboard.
pub(super) async fn report_tills(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    JsonBody(report): JsonBody<tillmesh_cloud_proto::TillsReport>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let claims = store_credential(&cloud, &headers)?;
    known_store(&cloud, &claims).await?;
    report
        .check()
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_report", m))?;
    let term = report.term;
    cloud.note_tills(&claims.sub, report).map_err(|held| {
        ApiError::new(
            StatusCode::CONFLICT,
            "stale_term",
            format!("a leader of term {held} reported; this report is of term {term}"),
        )
    })?;
    let answer = tillmesh_cloud_proto::TillsAnswer {
        sync_now: cloud.take_sync(&claims.sub),
        support_bundle: cloud.take_bundle_request(&claims.sub),
    };
    if answer.sync_now || answer.support_bundle {
        tracing::info!(store = %claims.sub, sync_now = answer.sync_now, support_bundle = answer.support_bundle, "asked the store's leader");
        return Ok(Json(answer).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/sync/bundle",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "a support bundle: a tar archive, zstd-compressed, at most 16 MiB (sent as application/zstd or application/octet-stream)"),
    params(("terminal" = u64, Query, description = "the till that made it")),
    responses((status = 204, description = "kept for HQ"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not_asked: HQ asked this store for no bundle"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
/// The leader's support bundle, which HQ asked for in the answer to a till report.
pub(super) async fn upload_bundle(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<BundleQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    use tillmesh_cloud_proto::tills::{BUNDLE_BYTES_MAX, BUNDLE_CONTENT_TYPE};
    let claims = store_credential(&cloud, &headers)?;
    known_store(&cloud, &claims).await?;
    let q = query(q)?;
    if i64::try_from(q.terminal).is_err() {
        return Err(bad(
            "bad_terminal",
            format!("terminal must be 0 to {}", i64::MAX),
        ));
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(ctype.starts_with(BUNDLE_CONTENT_TYPE) || ctype.starts_with("application/octet-stream")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the bundle as {BUNDLE_CONTENT_TYPE} or application/octet-stream"),
        ));
    }
    let bytes = axum::body::to_bytes(body, BUNDLE_BYTES_MAX)
        .await
        .map_err(|_| too_large(format!("at most {BUNDLE_BYTES_MAX} bytes per bundle")))?;
    // A zstd frame starts with its magic number.
    if !bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(bad("malformed_bundle", "the bundle is not zstd-compressed"));
    }
    if !cloud.keep_bundle(&claims.sub, q.terminal, bytes.to_vec()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_asked",
            "HQ asked this store for no support bundle",
        ));
    }
    tracing::info!(store = %claims.sub, terminal = q.terminal, bytes = bytes.len(), "support bundle received");
    Ok(StatusCode::NO_CONTENT)
}

/// Who made an uploaded bundle.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BundleQuery {
    /// The till that made it.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub terminal: u64,
}

/// Inflates a gzip body, refusing one that inflates past the batch limit.
pub(super) fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ApiError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(BATCH_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            bad(
                "malformed_batch",
                format!("the gzip body does not inflate: {e}"),
            )
        })?;
    if out.len() > BATCH_BYTES_MAX {
        return Err(too_large(format!(
            "the batch inflates past {BATCH_BYTES_MAX} bytes"
        )));
    }
    Ok(out)
}

pub(super) async fn upload_inner(
    cloud: &Cloud,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<IngestAck>, ApiError> {
    let claims = store_credential(cloud, headers)?;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > BATCH_BYTES_MAX
    {
        return Err(too_large(format!(
            "the batch is {len} bytes; at most {BATCH_BYTES_MAX} per batch"
        )));
    }
    let bytes = axum::body::to_bytes(body, BATCH_BYTES_MAX)
        .await
        .map_err(|_| too_large(format!("at most {BATCH_BYTES_MAX} bytes per batch")))?;
    let t0 = std::time::Instant::now();
    let bytes = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None | Some("identity") => bytes.to_vec(),
        Some("gzip") => gunzip(&bytes)?,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("content encoding {other:?} is not accepted; send gzip or none"),
            ));
        }
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (mut batch, version): (Batch, u16) = if ctype.starts_with(BINARY_CONTENT_TYPE) {
        tillmesh_cloud_proto::decode_batch_versioned(&bytes).map_err(|e| match e {
            tillmesh_cloud_proto::BatchError::Version { .. } => bad(
                "unsupported_version",
                format!("{e}; nothing in this batch was stored"),
            ),
            e => bad(
                "malformed_batch",
                format!("the binary batch does not decode: {e}"),
            ),
        })?
    } else if ctype.starts_with("application/json") {
        // JSON batches keep format 1's rule: every event must pass the validator.
        let b = serde_json::from_slice(&bytes).map_err(|e| {
            bad(
                "malformed_batch",
                format!("the JSON batch does not parse: {e}"),
            )
        })?;
        (b, 1)
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the batch as application/json or {BINARY_CONTENT_TYPE}"),
        ));
    };
    let refused = check_seals(cloud, &claims.sub, &mut batch, version).await?;
    let rows = prepare(&claims.sub, &batch, version)?;
    // Open until the ledger answers: HQ's part of each traced event's trace.
    let _spans = ingest_spans(&claims.sub, &batch);
    let n = rows.len();
    let outcome = cloud
        .ledger
        .ingest(IngestRequest {
            store: claims.sub.clone(),
            credential_issued_ms: claims.iat_ms,
            term: batch.term,
            leader: batch.leader,
            backlog: batch.backlog,
            tills: std::mem::take(&mut batch.tills),
            received_ms: now_ms(),
            rows,
        })
        .await
        .inspect_err(|e| {
            if matches!(e, LedgerError::Revoked(_)) {
                cloud.note_refused(&claims.sub);
            }
        })?;
    let master_version = outcome.master_version;
    cloud
        .metrics
        .batch_latency
        .observe(t0.elapsed().as_secs_f64());
    let label = crate::metrics::StoreLabel {
        store: claims.sub.clone(),
    };
    cloud
        .metrics
        .events_received
        .get_or_create(&label)
        .inc_by(outcome.accepted);
    cloud
        .metrics
        .events_duplicate
        .get_or_create(&label)
        .inc_by(outcome.duplicate);
    cloud
        .metrics
        .accepted(&claims.sub, &batch, outcome.accepted > 0, now_ms());
    if outcome.accepted > 0 {
        cloud.kick();
    }
    tracing::debug!(store = %claims.sub, events = n, refused, accepted = outcome.accepted, term = batch.term, "batch stored");
    Ok(Json(IngestAck {
        accepted: outcome.accepted,
        duplicate: outcome.duplicate,
        watermarks: outcome.watermarks,
        term: outcome.term,
        master_version,
        master_stale: master_version > batch.master_version,
    }))
}

/// A span per event of `batch` that carries a trace context, in that trace.
fn ingest_spans(store: &str, batch: &Batch) -> Vec<tracing::Span> {
    batch
        .events
        .iter()
        .filter_map(|se| {
            let cx = se.event.trace?;
            let span = tracing::info_span!(
                target: "tillmesh_trace",
                "cloud.ingest",
                otel.name = "cloud ingest",
                otel.kind = "consumer",
                tillmesh.node = "cloud",
                tillmesh.store = %store,
                tillmesh.leader = batch.leader,
                tillmesh.event = %format_args!("{}/{}", se.event.origin, se.event.seq),
                tillmesh.kind = se.event.body.kind(),
            );
            if span.is_disabled() {
                return None;
            }
            crate::telemetry::continue_from(&span, &cx);
            Some(span)
        })
        .collect()
}

/// `since` and `limit` of a master-data pull.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SinceQuery {
    /// Version the caller has (0 for everything).
    #[serde(default)]
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub since: u64,
    /// Most changes to return (at most 2000).
    #[serde(default)]
    #[param(minimum = 1, maximum = 2000)]
    pub limit: Option<usize>,
    /// Admin only: one store's view.
    #[serde(default)]
    pub store: Option<String>,
    /// `ext` for the second stream (categories and customers); absent for the first.
    #[serde(default)]
    #[param(pattern = "^ext$")]
    pub stream: Option<String>,
}

pub(super) fn query<T: DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| bad("bad_query", e.body_text()))
}

pub(super) async fn master_changes(
    cloud: &Cloud,
    store: Option<&str>,
    q: &SinceQuery,
) -> Result<MasterChanges, ApiError> {
    let limit = q.limit.unwrap_or(MASTER_CHANGES_MAX);
    if !(1..=MASTER_CHANGES_MAX).contains(&limit) {
        return Err(bad(
            "bad_limit",
            format!("limit must be 1 to {MASTER_CHANGES_MAX}"),
        ));
    }
    // Versions are signed 64-bit in both ledgers (and int64 in the schema): a larger `since`
    // would wrap to a negative one there and page from the start.
    if i64::try_from(q.since).is_err() {
        return Err(bad("bad_since", format!("since must be 0 to {}", i64::MAX)));
    }
    let ext = match q.stream.as_deref() {
        None => false,
        Some(tillmesh_cloud_proto::records::EXT_STREAM) => true,
        Some(other) => {
            return Err(bad(
                "bad_stream",
                format!(
                    "unknown stream {other:?}: leave it out, or `{}`",
                    tillmesh_cloud_proto::records::EXT_STREAM
                ),
            ));
        }
    };
    let current = cloud.ledger.master_version_of(ext).await?;
    let rows = cloud
        .ledger
        .master_since(store, q.since, limit, ext)
        .await?;
    let mut page = crate::master::changes(rows, current, limit)?;
    if ext {
        page.stream = Some(tillmesh_cloud_proto::records::EXT_STREAM.to_owned());
    }
    if let Some(store) = store
        && !page.changes.is_empty()
    {
        // A page of the second stream is signed under another name, so that it never
        // passes for a page of the first.
        let name = if ext {
            tillmesh_cloud_proto::records::ext_signing_name(store)
        } else {
            store.to_owned()
        };
        page.signature = cloud
            .sign_master(&name, q.since, &page)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
    }
    Ok(page)
}

#[utoipa::path(get, path = "/api/v1/sync/master", params(SinceQuery),
    responses((status = 200, description = "MasterChanges: records created, updated or deleted since `since`"), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn sync_master(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SinceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MasterChanges>, ApiError> {
    let claims = store_credential(&cloud, &headers)?;
    let q = query(q)?;
    if q.store.is_some() {
        return Err(bad(
            "bad_query",
            "a store credential pulls its own store's data; drop `store`",
        ));
    }
    known_store(&cloud, &claims).await?;
    Ok(Json(master_changes(&cloud, Some(&claims.sub), &q).await?))
}

pub(super) async fn known_store(cloud: &Cloud, claims: &Claims) -> Result<(), ApiError> {
    match cloud.ledger.store(&claims.sub).await? {
        Some(s) if s.enabled && claims.iat_ms >= s.tokens_valid_after_ms => Ok(()),
        Some(s) if s.enabled => {
            cloud.note_refused(&claims.sub);
            Err(LedgerError::Revoked(claims.sub.clone()).into())
        }
        _ => Err(LedgerError::UnknownStore(claims.sub.clone()).into()),
    }
}

#[utoipa::path(get, path = "/api/v1/sync/watermarks",
    responses((status = 200, body = [tillmesh_cloud_proto::Watermark]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn sync_watermarks(
    State(cloud): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<tillmesh_cloud_proto::Watermark>>, ApiError> {
    let claims = store_credential(&cloud, &headers)?;
    known_store(&cloud, &claims).await?;
    Ok(Json(cloud.ledger.watermarks(&claims.sub).await?))
}

/// A store's renewed credential.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenewedCredential {
    /// The new bearer credential (same store, a full lifetime from now).
    pub token: String,
    /// When it expires (ms since the epoch).
    pub expires_ms: u64,
}

/// A store trades its valid credential for a fresh one, before it expires: tills renew it on
/// their own (no one copies a new token onto every till every 90 days). A revoked or expired
/// credential cannot renew itself.
#[utoipa::path(post, path = "/api/v1/sync/credential",
    responses((status = 200, body = RenewedCredential), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn renew_credential(
    State(cloud): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<RenewedCredential>, ApiError> {
    let claims = store_credential(&cloud, &headers)?;
    known_store(&cloud, &claims).await?;
    let (token, fresh) = cloud.issue(Some(&claims.sub), None).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            e.to_string(),
        )
    })?;
    tracing::info!(store = %claims.sub, "store credential renewed");
    Ok(Json(RenewedCredential {
        token,
        expires_ms: fresh.exp.saturating_mul(1000),
    }))
}
