//! The checkout: catalog lookup, baskets, payments (cash and QR), finalize, voids, refunds
//! and receipts.

use super::*;

/// Catalog query: by barcode or by SKU.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// Barcode (EAN-13, UPC-A or EAN-8).
    pub barcode: Option<String>,
    /// SKU.
    pub sku: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/catalog/items", params(LookupQuery),
    responses((status = 200, body = ItemView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn lookup(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<LookupQuery>,
) -> ApiResult<ItemView> {
    match (q.barcode, q.sku) {
        (Some(b), _) => Ok(Json(till.lookup(&b)?)),
        (None, Some(s)) => Ok(Json(till.item(&s)?)),
        (None, None) => Err(ApiError::bad_request(
            "missing_query",
            "give ?barcode= or ?sku=",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/transactions", responses((status = 201, body = TxnView)), security(("bearer" = [])))]
pub(super) async fn create_txn(
    State(till): State<AppState>,
    auth: Auth,
) -> Result<(StatusCode, Json<TxnView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(till.create_txn(&auth.session).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/transactions/{id}", responses((status = 200, body = TxnView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn get_txn(
    State(till): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.get_txn(&id).await?))
}

/// Add an item by barcode.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemRequest {
    /// Barcode scanned.
    pub barcode: String,
    /// Units (default 1). Not with `weight_g`.
    pub quantity: Option<u32>,
    /// Net weight in grams, for an item sold by weight (typed, or from the scale): each
    /// weighing is a line of its own, priced at the item's price per kilogram.
    pub weight_g: Option<i64>,
    /// A deliberate rescan of the barcode just added (the cashier saw the first): never
    /// refused as a scanner's double read.
    #[serde(default)]
    pub rescan: bool,
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/items", request_body = AddItemRequest,
    responses((status = 200, body = TxnView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn add_item(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<AddItemRequest>,
) -> ApiResult<TxnView> {
    if req.quantity.is_some() && req.weight_g.is_some() {
        return Err(TillError::unprocessable(
            "bad_request",
            "give a quantity or a weight, not both",
        )
        .into());
    }
    Ok(Json(
        till.add_to_sale(
            &auth.session,
            &id,
            &req.barcode,
            req.quantity.unwrap_or(1),
            req.weight_g,
            req.rescan,
        )
        .await?,
    ))
}

/// Change a line's quantity.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityRequest {
    /// New quantity.
    pub quantity: i64,
}

#[utoipa::path(patch, path = "/api/v1/transactions/{id}/items/{line}", request_body = QuantityRequest,
    responses((status = 200, body = TxnView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn set_quantity(
    State(till): State<AppState>,
    auth: Auth,
    Path((id, line)): Path<(String, String)>,
    Body(req): Body<QuantityRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.set_quantity(&auth.session, &id, line_no(&line)?, req.quantity)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/transactions/{id}/items/{line}", responses((status = 200, body = TxnView)), security(("bearer" = [])))]
pub(super) async fn remove_line(
    State(till): State<AppState>,
    auth: Auth,
    Path((id, line)): Path<(String, String)>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.remove_line(&auth.session, &id, line_no(&line)?)
            .await?,
    ))
}

/// Attach a loyalty customer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRef {
    /// Customer id.
    pub customer_id: String,
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/customer", request_body = CustomerRef,
    responses((status = 200, body = TxnView), (status = 404, body = ErrorBody, description = "no such sale"),
        (status = 422, body = ErrorBody, description = "`unknown_customer`: register the customer first")),
    security(("bearer" = [])))]
pub(super) async fn attach_customer(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<CustomerRef>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.attach_customer(&auth.session, &id, &req.customer_id)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/transactions/open", responses((status = 200, body = Vec<TxnView>, description = "The till's open sales, held or not, oldest first")), security(("bearer" = [])))]
pub(super) async fn open_txns(State(till): State<AppState>, _auth: Auth) -> Json<Vec<TxnView>> {
    Json(till.open_txns())
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/hold", responses((status = 200, body = TxnView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn hold(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.hold(&auth.session, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/recall", responses((status = 200, body = TxnView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn recall(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.recall(&auth.session, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/checkout", responses((status = 200, body = TxnView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn checkout(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.checkout(&auth.session, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/reopen", responses((status = 200, body = TxnView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn reopen(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.reopen(&auth.session, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/payments", request_body = PaymentRequest,
    responses((status = 200, body = TxnView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn add_payment(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<PaymentRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(till.add_payment(&auth.session, &id, &req).await?))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/finalize",
    responses((status = 200, body = TxnView, description = "durable on disk"), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn finalize(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<TxnView> {
    Ok(Json(till.finalize(&auth.session, &id).await?))
}

/// Void or refund request; `approval` carries a manager's PIN on a cashier's session.
#[derive(Debug, Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Manager approval.
    pub approval: Option<Approval>,
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/void", request_body = ReasonRequest,
    responses((status = 200, body = TxnView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn void(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.void(&auth.session, &id, &req.reason, req.approval.as_ref())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/refund", request_body = ReasonRequest,
    responses((status = 200, body = TxnView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn request_refund(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.request_refund(&auth.session, &id, &req.reason).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/refund/approve", request_body = ReasonRequest,
    responses((status = 200, body = TxnView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn approve_refund(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<ReasonRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.approve_refund(&auth.session, &id, req.approval.as_ref())
            .await?,
    ))
}

/// Units of one line to return.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineRequest {
    /// The sale's line.
    pub line_no: u32,
    /// Units to return.
    pub quantity: u32,
}

/// A return of part of a paid sale; `approval` carries a manager's PIN on a cashier's
/// session.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    /// Lines and units returned (each line at most once).
    pub lines: Vec<ReturnLineRequest>,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Manager approval.
    pub approval: Option<Approval>,
    /// Where the money goes: `cash` (default) or `store_credit` (the sale's customer's).
    #[serde(default)]
    pub refund_to: RefundTo,
}

/// Where a return's money goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundTo {
    /// Handed back in cash.
    #[default]
    Cash,
    /// Put on the sale's customer's store credit.
    StoreCredit,
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/return", request_body = ReturnRequest,
    responses((status = 200, body = TxnView, description = "returned: `returned_lines` and `returned` say what was handed back so far"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not_paid"),
        (status = 422, body = ErrorBody, description = "bad_return: an unknown line, more units than are left, or nothing; no_customer: refunded to store credit, but the sale names no customer")),
    security(("bearer" = [])))]
pub(super) async fn return_items(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<ReturnRequest>,
) -> ApiResult<TxnView> {
    let lines: Vec<(u32, u32)> = req.lines.iter().map(|l| (l.line_no, l.quantity)).collect();
    Ok(Json(
        till.return_items(
            &auth.session,
            &id,
            &lines,
            &req.reason,
            req.approval.as_ref(),
            req.refund_to == RefundTo::StoreCredit,
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/payments/{id}", responses((status = 200, body = tillmesh_pos::payment::Payment)), security(("bearer" = [])))]
pub(super) async fn payment_status(
    State(till): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<tillmesh_pos::payment::Payment> {
    Ok(Json(till.payment_status(&id)?))
}

#[utoipa::path(get, path = "/api/v1/payments/{id}/qr.svg",
    responses((status = 200, content_type = "image/svg+xml", description = "The QR code the customer scans"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn payment_qr(
    State(till): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = till.payment_status(&id)?;
    let pending = matches!(p.status, tillmesh_pos::payment::PaymentStatus::Pending);
    let Some(payload) = p.qr_payload.filter(|_| pending) else {
        return Err(ApiError::conflict(
            "no_qr",
            format!("payment {id} is not a QR payment waiting for the customer"),
        ));
    };
    let code = qrcode::QrCode::new(payload.as_bytes()).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "qr_failed",
            format!("the QR code could not be drawn: {e}"),
        )
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .build();
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/payments/{id}/cancel", responses((status = 200, body = tillmesh_pos::payment::Payment)), security(("bearer" = [])))]
pub(super) async fn cancel_payment(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<tillmesh_pos::payment::Payment> {
    Ok(Json(till.cancel_payment(&auth.session, &id).await?))
}

/// Receipt options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReceiptQuery {
    /// `json` (default) or `text`.
    pub format: Option<String>,
    /// Mark as a reprint (audited).
    #[serde(default)]
    pub reprint: bool,
}

#[utoipa::path(get, path = "/api/v1/receipts/{id}", params(ReceiptQuery),
    responses((status = 200, body = tillmesh_pos::receipt::Receipt)), security(("bearer" = [])))]
pub(super) async fn receipt(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ReceiptQuery>,
) -> Result<Response, ApiError> {
    let r = till.receipt(&auth.session, &id, q.reprint).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(r).into_response()),
        Some("text") => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            r.to_text(),
        )
            .into_response()),
        Some(f) => Err(ApiError::bad_request(
            "bad_format",
            format!("format {f:?} is not json or text"),
        )),
    }
}
