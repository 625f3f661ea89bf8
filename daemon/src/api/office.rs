//! The back office on the till: reports, stock (adjust, receive, count, movements), price
//! overrides, the offline-limit override and customers.

use super::*;

/// Report date.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DateQuery {
    /// Local date `YYYY-MM-DD` (default today).
    pub date: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/reports/end-of-day", params(DateQuery),
    responses((status = 200, body = tillmesh_pos::report::EndOfDay)), security(("bearer" = [])))]
pub(super) async fn end_of_day(
    State(till): State<AppState>,
    _auth: Auth,
    Query(q): Query<DateQuery>,
) -> ApiResult<tillmesh_pos::report::EndOfDay> {
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
