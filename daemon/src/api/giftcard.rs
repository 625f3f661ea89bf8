//! Gift card endpoints: activation and top-up (online only), balance enquiry. Redemption is a
//! sale's payment (`POST /api/v1/transactions/{id}/payments` with `method = gift_card`).

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
