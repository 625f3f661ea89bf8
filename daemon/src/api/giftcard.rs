//! Stored-value endpoints: gift card activation and top-up (online only), coupons and store
//! credit (a manager's, allowed offline), balance enquiries. Redemption is a sale's payment
//! (`POST /api/v1/transactions/{id}/payments` with `method` `gift_card`, `coupon` or
//! `store_credit`).

use super::*;

#[utoipa::path(post, path = "/api/v1/giftcards", request_body = ActivateRequest,
    responses((status = 201, body = GiftCardView),
        (status = 400, body = ErrorBody, description = "`bad_card`: the code is malformed"),
        (status = 409, body = ErrorBody, description = "`card_exists`"),
        (status = 422, body = ErrorBody, description = "`wrong_amount`"),
        (status = 503, body = ErrorBody, description = "`store_offline`: activation needs the store online")),
    security(("bearer" = [])))]
pub(super) async fn activate_gift_card(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<ActivateRequest>,
) -> Result<(StatusCode, Json<GiftCardView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(till.activate_gift_card(&auth.session, &req).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/giftcards/{card}/top-up", request_body = TopUpRequest,
    params(("card" = String, Path, description = "The card's code")),
    responses((status = 200, body = GiftCardView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`wrong_amount`"),
        (status = 503, body = ErrorBody, description = "`store_offline`: a top-up needs the store online")),
    security(("bearer" = [])))]
pub(super) async fn top_up_gift_card(
    State(till): State<AppState>,
    auth: Auth,
    Path(card): Path<String>,
    Body(req): Body<TopUpRequest>,
) -> ApiResult<GiftCardView> {
    Ok(Json(
        till.top_up_gift_card(&auth.session, &card, &req).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/giftcards/{card}",
    params(("card" = String, Path, description = "The card's code")),
    responses((status = 200, body = GiftCardView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn gift_card(
    State(till): State<AppState>,
    _auth: Auth,
    Path(card): Path<String>,
) -> ApiResult<GiftCardView> {
    Ok(Json(till.gift_card(&card)?))
}

#[utoipa::path(post, path = "/api/v1/coupons", request_body = CouponRequest,
    responses((status = 201, body = AccountView),
        (status = 400, body = ErrorBody, description = "`bad_card`: the code is malformed"),
        (status = 403, body = ErrorBody, description = "a manager's approval is needed"),
        (status = 409, body = ErrorBody, description = "`card_exists`: the code is taken"),
        (status = 422, body = ErrorBody, description = "`wrong_amount`")),
    security(("bearer" = [])))]
pub(super) async fn issue_coupon(
    State(till): State<AppState>,
    auth: Auth,
    Body(req): Body<CouponRequest>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(till.issue_coupon(&auth.session, &req).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/coupons/{code}",
    params(("code" = String, Path, description = "The coupon's code")),
    responses((status = 200, body = AccountView, description = "its value left: 0 once used"),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn coupon(
    State(till): State<AppState>,
    _auth: Auth,
    Path(code): Path<String>,
) -> ApiResult<AccountView> {
    Ok(Json(till.coupon(&code)?))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/credit",
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn store_credit(
    State(till): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<AccountView> {
    Ok(Json(till.store_credit(&id)?))
}

#[utoipa::path(post, path = "/api/v1/customers/{id}/credit", request_body = CreditRequest,
    params(("id" = String, Path, description = "Customer id")),
    responses((status = 200, body = AccountView),
        (status = 400, body = ErrorBody, description = "`bad_reason`"),
        (status = 403, body = ErrorBody, description = "a manager's approval is needed"),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`wrong_amount`")),
    security(("bearer" = [])))]
pub(super) async fn credit_customer(
    State(till): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<CreditRequest>,
) -> ApiResult<AccountView> {
    Ok(Json(till.credit_customer(&auth.session, &id, &req).await?))
}
