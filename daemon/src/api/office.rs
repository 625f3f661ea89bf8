//! The back office on the till: reports, the cash drawer, stock (adjust, receive, count,
//! movements), price overrides, the offline-limit override and customers.

use super::*;

/// Report date.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DateQuery {
    /// Local date `YYYY-MM-DD` (default today).
    pub date: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/reports/end-of-day", params(DateQuery),
    responses((status = 200, body = DayReport)), security(("bearer" = [])))]
pub(super) async fn end_of_day(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<DateQuery>,
) -> ApiResult<DayReport> {
    Ok(Json(till.end_of_day(q.date.as_deref()).await?))
}

#[utoipa::path(get, path = "/api/v1/reports/cashiers", params(DateQuery),
    responses((status = 200, body = Vec<tillmesh_pos::report::CashierPerformance>)), security(("bearer" = [])))]
pub(super) async fn cashier_report(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<DateQuery>,
) -> ApiResult<Vec<tillmesh_pos::report::CashierPerformance>> {
    Ok(Json(till.cashier_report(q.date.as_deref()).await?))
}

/// Inventory snapshot options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InventoryQuery {
    /// Only SKUs at or below their low-stock threshold.
    #[serde(default)]
    pub low_only: bool,
}

#[utoipa::path(get, path = "/api/v1/reports/inventory", params(InventoryQuery),
    responses((status = 200, body = Vec<tillmesh_pos::report::StockLine>)), security(("bearer" = [])))]
pub(super) async fn inventory_report(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<InventoryQuery>,
) -> Json<Vec<tillmesh_pos::report::StockLine>> {
    Json(till.inventory_report(q.low_only))
}

#[utoipa::path(post, path = "/api/v1/inventory/adjust", request_body = AdjustRequest,
    responses((status = 200, body = ItemView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn adjust(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<AdjustRequest>,
) -> ApiResult<ItemView> {
    Ok(Json(till.adjust(&auth.session, &req).await?))
}

#[utoipa::path(post, path = "/api/v1/inventory/receive", request_body = ReceiveRequest,
    responses((status = 200, body = Vec<ItemView>), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn receive(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<ReceiveRequest>,
) -> ApiResult<Vec<ItemView>> {
    Ok(Json(till.receive(&auth.session, &req).await?))
}

#[utoipa::path(post, path = "/api/v1/inventory/count", request_body = CountRequest,
    responses((status = 200, body = Vec<tillmesh_pos::inventory::CountOutcome>)), security(("bearer" = [])))]
pub(super) async fn count(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<CountRequest>,
) -> ApiResult<Vec<tillmesh_pos::inventory::CountOutcome>> {
    Ok(Json(till.count(&auth.session, &req).await?))
}

#[utoipa::path(get, path = "/api/v1/inventory/{sku}/movements",
    responses((status = 200, body = Vec<tillmesh_store::StockMovement>)), security(("bearer" = [])))]
pub(super) async fn movements(
    State(till): State<AppState>,
    _auth: Auth,
    Path(sku): Path<String>,
) -> ApiResult<Vec<tillmesh_store::StockMovement>> {
    Ok(Json(till.movements(&sku).await?))
}

#[utoipa::path(post, path = "/api/v1/prices/override", request_body = PriceOverrideRequest,
    responses((status = 200, body = ItemView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn override_price(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<PriceOverrideRequest>,
) -> ApiResult<ItemView> {
    Ok(Json(till.override_price(&auth.session, &req).await?))
}

/// A manager's approval to sell past the offline limit.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct OverrideRequest {
    /// A manager's id and PIN, when the session's own role cannot approve.
    #[serde(default)]
    pub approval: Option<crate::till::Approval>,
}

#[utoipa::path(post, path = "/api/v1/offline-override", request_body = OverrideRequest,
    responses((status = 200, body = Option<crate::till::CloudView>), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "no cloud link configured")),
    security(("bearer" = [])))]
pub(super) async fn offline_override(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<OverrideRequest>,
) -> ApiResult<Option<crate::till::CloudView>> {
    Ok(Json(
        till.offline_override(&auth.session, req.approval.as_ref())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/security/revocations", request_body = tillmesh_mesh::revocation::SignedRevocations,
    responses((status = 200, body = crate::till::RevocationsView), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "this till does not lead the store (`not_leader` names the one that does)"),
        (status = 422, body = ErrorBody, description = "not signed by the store CA, or for another store")),
    security(("bearer" = [])))]
pub(super) async fn publish_revocations(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<tillmesh_mesh::revocation::SignedRevocations>,
) -> ApiResult<crate::till::RevocationsView> {
    Ok(Json(till.publish_revocations(&auth.session, &req).await?))
}

#[utoipa::path(put, path = "/api/v1/customers/{id}", request_body = CustomerPatch,
    responses((status = 200, body = CustomerView), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn upsert_customer(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<CustomerPatch>,
) -> ApiResult<CustomerView> {
    Ok(Json(till.upsert_customer(&auth.session, &id, &req).await?))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", responses((status = 200, body = CustomerView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn get_customer(
    State(till): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<CustomerView> {
    Ok(Json(till.customer(&id)?))
}

/// Opening a shift.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenShiftRequest {
    /// Cash counted into the drawer at the start (minor units).
    pub float: i64,
}

/// A pay-in or pay-out.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashMovementRequest {
    /// Amount (minor units, positive).
    pub amount: i64,
    /// Why (1 to 200 bytes).
    pub reason: String,
    /// A manager's PIN when a cashier asks.
    pub approval: Option<Approval>,
}

/// A no-sale drawer open.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoSaleRequest {
    /// Why the drawer was opened.
    pub reason: String,
}

/// Closing a shift.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseShiftRequest {
    /// Cash counted in the drawer (minor units).
    pub counted: i64,
    /// A manager's PIN when a cashier closes.
    pub approval: Option<Approval>,
}

#[utoipa::path(get, path = "/api/v1/cash/drawer",
    responses((status = 200, body = DrawerView)), security(("bearer" = [])))]
pub(super) async fn drawer(State(till): State<AppState>, _auth: Auth) -> ApiResult<DrawerView> {
    Ok(Json(till.drawer().await?))
}

#[utoipa::path(post, path = "/api/v1/cash/shift/open", request_body = OpenShiftRequest,
    responses((status = 200, body = DrawerView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn open_shift(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<OpenShiftRequest>,
) -> ApiResult<DrawerView> {
    Ok(Json(till.open_shift(&auth.session, req.float).await?))
}

async fn movement(
    till: &AppState,
    auth: &Auth,
    kind: tillmesh_pos::cash::MovementKind,
    req: CashMovementRequest,
) -> ApiResult<DrawerView> {
    Ok(Json(
        till.cash_movement(
            &auth.session,
            kind,
            req.amount,
            &req.reason,
            req.approval.as_ref(),
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/cash/pay-in", request_body = CashMovementRequest,
    responses((status = 200, body = DrawerView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn pay_in(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<CashMovementRequest>,
) -> ApiResult<DrawerView> {
    movement(&till, &auth, tillmesh_pos::cash::MovementKind::PayIn, req).await
}

#[utoipa::path(post, path = "/api/v1/cash/pay-out", request_body = CashMovementRequest,
    responses((status = 200, body = DrawerView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn pay_out(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<CashMovementRequest>,
) -> ApiResult<DrawerView> {
    movement(&till, &auth, tillmesh_pos::cash::MovementKind::PayOut, req).await
}

#[utoipa::path(post, path = "/api/v1/cash/no-sale", request_body = NoSaleRequest,
    responses((status = 200, body = DrawerView), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn no_sale(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<NoSaleRequest>,
) -> ApiResult<DrawerView> {
    Ok(Json(till.no_sale(&auth.session, &req.reason).await?))
}

#[utoipa::path(post, path = "/api/v1/cash/shift/close", request_body = CloseShiftRequest,
    responses((status = 200, body = ClosedShift), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn close_shift(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<CloseShiftRequest>,
) -> ApiResult<ClosedShift> {
    Ok(Json(
        till.close_shift(&auth.session, req.counted, req.approval.as_ref())
            .await?,
    ))
}

/// History query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Local date `YYYY-MM-DD` (default today).
    pub date: Option<String>,
    /// Part of a receipt number or a cashier id.
    pub q: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/transactions", params(HistoryQuery),
    responses((status = 200, body = Vec<SaleSummary>), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn history(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Vec<SaleSummary>> {
    Ok(Json(till.history(q.date.as_deref(), q.q.as_deref()).await?))
}

/// Product search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of a product's name, SKU or barcode.
    pub q: String,
}

#[utoipa::path(get, path = "/api/v1/catalog/search", params(SearchQuery),
    responses((status = 200, body = Vec<ItemView>)), security(("bearer" = [])))]
pub(super) async fn search(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<SearchQuery>,
) -> Json<Vec<ItemView>> {
    Json(till.search(&q.q))
}

#[utoipa::path(get, path = "/api/v1/catalog/favourites",
    responses((status = 200, body = Vec<ItemView>)), security(("bearer" = [])))]
pub(super) async fn favourites(State(till): State<AppState>, _auth: Auth) -> Json<Vec<ItemView>> {
    Json(till.favourites())
}

#[utoipa::path(get, path = "/api/v1/categories",
    responses((status = 200, body = Vec<tillmesh_cloud_proto::Category>, description = "HQ's product categories, in id order (empty until HQ sends some)")), security(("bearer" = [])))]
pub(super) async fn categories(
    State(till): State<AppState>,
    _auth: Auth,
) -> Json<Vec<tillmesh_cloud_proto::Category>> {
    Json(till.categories())
}

/// Customer lookup.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhoneQuery {
    /// Phone number or at least 4 of its digits.
    pub phone: String,
}

#[utoipa::path(get, path = "/api/v1/customers", params(PhoneQuery),
    responses((status = 200, body = Vec<CustomerView>), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn customers_by_phone(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<PhoneQuery>,
) -> ApiResult<Vec<CustomerView>> {
    Ok(Json(till.customers_by_phone(&q.phone)?))
}

/// Declining a refund request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclineRequest {
    /// Why.
    pub reason: String,
    /// A manager's PIN when a cashier asks.
    pub approval: Option<Approval>,
}

#[utoipa::path(post, path = "/api/v1/transactions/{id}/refund/decline", request_body = DeclineRequest,
    responses((status = 200, body = TxnView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn decline_refund(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<DeclineRequest>,
) -> ApiResult<TxnView> {
    Ok(Json(
        till.decline_refund(&auth.session, &id, &req.reason, req.approval.as_ref())
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/cashiers",
    responses((status = 200, body = Vec<CashierView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn cashiers(
    State(till): State<AppState>,
    auth: Auth,
) -> ApiResult<Vec<CashierView>> {
    Ok(Json(till.cashiers(&auth.session).await?))
}

#[utoipa::path(post, path = "/api/v1/cashiers/{id}/unlock",
    responses((status = 200, body = CashierView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn unlock(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<CashierView> {
    Ok(Json(till.unlock(&auth.session, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/enrolment/waiting",
    responses((status = 200, body = Vec<crate::till::WaitingTill>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn waiting_tills(
    State(till): State<AppState>,
    auth: Auth,
) -> ApiResult<Vec<crate::till::WaitingTill>> {
    Ok(Json(till.waiting_tills(&auth.session)?))
}

#[utoipa::path(post, path = "/api/v1/enrolment/approve", request_body = crate::till::AdmitRequest,
    responses((status = 200, body = crate::till::AdmittedTill),
        (status = 403, body = ErrorBody, description = "the PIN is not a manager's"),
        (status = 404, body = ErrorBody, description = "no till waiting with that code was found"),
        (status = 409, body = ErrorBody, description = "the code is not the waiting till's, HQ refused, or this till has no cloud"),
        (status = 503, body = ErrorBody, description = "the waiting till or HQ does not answer")),
    security(("bearer" = [])))]
pub(super) async fn approve_till(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<crate::till::AdmitRequest>,
) -> ApiResult<crate::till::AdmittedTill> {
    Ok(Json(till.admit_till(&auth.session, &req).await?))
}

#[utoipa::path(post, path = "/api/v1/enrolment/redeem", request_body = crate::till::Redemption,
    responses((status = 204, description = "the token is this machine's"),
        (status = 409, body = ErrorBody, description = "`token_used`: another till redeemed it; `not_leader`: redeem at the leader"),
        (status = 422, body = ErrorBody, description = "not a token of this store, or not signed by its key")))]
pub(super) async fn redeem_token(
    State(till): State<AppState>,
    Body(req): Body<crate::till::Redemption>,
) -> Result<StatusCode, ApiError> {
    till.redeem_token(&req).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/payments/late",
    responses((status = 200, body = Vec<crate::till::LateCapture>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn late_captures(
    State(till): State<AppState>,
    auth: Auth,
) -> ApiResult<Vec<crate::till::LateCapture>> {
    Ok(Json(till.late_captures_for(&auth.session)?))
}

#[utoipa::path(post, path = "/api/v1/payments/late/{id}/refund",
    params(("id" = String, Path, description = "The late-captured payment")),
    responses((status = 200, body = crate::till::LateCapture, description = "refunded through the provider (a retry answers the same refund)"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`qr_not_configured` or `no_provider_ref`"),
        (status = 422, body = ErrorBody, description = "`provider_refused`"),
        (status = 503, body = ErrorBody, description = "`provider_unreachable`: try again")),
    security(("bearer" = [])))]
pub(super) async fn refund_late_capture(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<crate::till::LateCapture> {
    Ok(Json(till.refund_late_capture(&auth.session, &id).await?))
}

/// MoMo's payment notification (IPN): no session; its HMAC signature under the store's
/// secret key is the authentication. Answered 204 once recorded (a duplicate too).
#[utoipa::path(post, path = "/api/v1/payments/notify/momo",
    request_body = tillmesh_pay::momo::Notification,
    responses((status = 204, description = "recorded (a duplicate changes nothing)"),
        (status = 401, body = ErrorBody, description = "the signature does not match"),
        (status = 404, body = ErrorBody, description = "not an order of this store"),
        (status = 409, body = ErrorBody, description = "`qr_not_configured`")))]
pub(super) async fn momo_notification(
    State(till): State<AppState>,
    Body(n): Body<tillmesh_pay::momo::Notification>,
) -> Result<StatusCode, ApiError> {
    till.momo_notification(&n).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// VNPay's payment notification (IPN: a GET with the signed `vnp_*` parameters; the
/// customer's return carries the same): no session, its HMAC-SHA512 checksum under the
/// store's secret is the authentication. Answers VNPay's `RspCode` (`00` recorded, a
/// duplicate too); a bad checksum or another store's order is a 4xx naming the problem,
/// with `RspCode` `97` or `01`.
#[utoipa::path(get, path = "/api/v1/payments/notify/vnpay",
    params(("vnp_TxnRef" = Option<String>, Query, description = "Our order id; with the other vnp_* parameters VNPay signs")),
    responses((status = 200, body = VnpayAnswer, description = "recorded (a duplicate changes nothing)"),
        (status = 401, body = VnpayAnswer, description = "the checksum does not match (`RspCode` 97)"),
        (status = 404, body = VnpayAnswer, description = "not an order of this store (`RspCode` 01)"),
        (status = 409, body = VnpayAnswer, description = "`qr_not_configured`")))]
pub(super) async fn vnpay_notification(
    State(till): State<AppState>,
    Query(params): Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    if params.len() > 64 || params.values().any(|v| v.len() > 512) {
        return vnpay_answer(
            StatusCode::BAD_REQUEST,
            "99",
            "bad_request",
            "too many or too long parameters",
        );
    }
    match till.vnpay_notification(&params).await {
        Ok(()) => vnpay_answer(StatusCode::OK, "00", "ok", "Confirm Success"),
        Err(e) => {
            let e = ApiError::from(e);
            let rsp = match e.status {
                StatusCode::UNAUTHORIZED => "97",
                StatusCode::NOT_FOUND => "01",
                _ => "99",
            };
            vnpay_answer(e.status, rsp, e.code, &e.message)
        }
    }
}

/// What the till answers VNPay: its `RspCode` and `Message`, with this API's error code.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VnpayAnswer {
    /// VNPay's answer code: `00` confirmed, `01` order not found, `97` bad checksum, `99`
    /// other.
    #[serde(rename = "RspCode")]
    pub rsp_code: String,
    /// Words.
    #[serde(rename = "Message")]
    pub message: String,
    /// This API's error code (`ok` when recorded).
    pub error: String,
}

fn vnpay_answer(status: StatusCode, rsp: &str, error: &str, message: &str) -> Response {
    (
        status,
        Json(VnpayAnswer {
            rsp_code: rsp.into(),
            message: message.into(),
            error: error.into(),
        }),
    )
        .into_response()
}

#[utoipa::path(post, path = "/api/v1/sync/now",
    responses((status = 202, body = crate::till::SyncView, description = "the store's leader is syncing: it pulls master data and uploads what it holds now"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not a manager"),
        (status = 409, body = ErrorBody, description = "this till has no store or cloud link (`no_cloud`)"),
        (status = 503, body = ErrorBody, description = "no leader, or it could not be reached (`no_sync`, `no_raft`)")),
    security(("bearer" = [])))]
pub(super) async fn sync_now(
    State(till): State<AppState>,
    auth: Auth,
) -> Result<(StatusCode, Json<crate::till::SyncView>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(till.sync_now(&auth.session).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/support/bundle",
    responses((status = 200, content_type = "application/zstd",
            description = "A tar archive, zstd-compressed: status, metrics, the config with secrets masked, quarantine, late QR captures, the audit chain's head and the recent log lines"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not a manager")),
    security(("bearer" = [])))]
pub(super) async fn support_bundle(
    State(till): State<AppState>,
    auth: Auth,
) -> Result<Response, ApiError> {
    let bytes = till.support_bundle(&auth.session).await?;
    let c = till.config();
    let name = format!(
        "attachment; filename=\"tillmesh-{}-T{}-{}.tar.zst\"",
        c.store.store_id,
        c.terminal.id,
        till.now_ms() / 1000
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                crate::support::CONTENT_TYPE.to_string(),
            ),
            (header::CONTENT_DISPOSITION, name),
        ],
        bytes,
    )
        .into_response())
}
