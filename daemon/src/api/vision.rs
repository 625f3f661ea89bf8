//! Product recognition: a camera frame in, proposals out; a manager enrols reference
//! photos.

use super::*;

/// An image upload as bytes; a body over the limit or unreadable is a JSON error.
pub(super) fn image_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "image_too_large",
                format!(
                    "the image is larger than {} bytes",
                    tillmesh_vision::frame::MAX_BYTES
                ),
            )
        } else {
            ApiError::bad_request("bad_body", e.body_text())
        }
    })
}

/// `?k=`: how many proposals.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RecognizeQuery {
    /// Proposals answered (1 to 20; the till's `vision.top_k` by default).
    k: Option<usize>,
}

#[utoipa::path(post, path = "/api/v1/vision/recognize",
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "A camera frame, JPEG or PNG"),
    params(RecognizeQuery),
    responses((status = 200, body = RecognitionView), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn recognize(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<RecognizeQuery>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<RecognitionView> {
    Ok(Json(till.recognize(image_body(body)?, q.k).await?))
}

#[utoipa::path(post, path = "/api/v1/vision/skus/{sku}/photos",
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "A photo of the product, JPEG or PNG"),
    params(("sku" = String, Path, description = "Catalog SKU")),
    responses((status = 200, body = EnrolView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn enroll(
    State(till): State<AppState>,
    auth: Auth,
    Path(sku): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<EnrolView> {
    Ok(Json(
        till.enroll(&auth.session, &sku, image_body(body)?).await?,
    ))
}
