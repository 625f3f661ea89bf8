//! HQ reconciles a payment provider's statement (the CSV its merchant portal exports, see
//! `crate::reconcile`) against one store's QR payments over a range of days.

use super::*;
use crate::reconcile::{Reconciliation, parse_statement, reconcile};

/// Most QR payments one reconciliation reads from the ledger.
pub const RECONCILE_PAYMENTS_MAX: i64 = 500_000;

#[utoipa::path(post, path = "/api/v1/admin/reconciliation", params(RangeQuery),
    request_body(content = String, content_type = "text/csv",
        description = "header `reference,amount,status[,provider_ref,paid_at]`; status captured, refunded or failed"),
    responses((status = 200, body = Reconciliation), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn reconcile_statement(
    State(cloud): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Bytes,
) -> Result<Json<Reconciliation>, ApiError> {
    credential(&cloud, &headers, Role::Admin)?;
    let r = range(&query(q)?)?;
    let Some(store) = r.store.as_deref() else {
        return Err(bad(
            "missing_store",
            "reconcile one store: give ?store=S001",
        ));
    };
    let text = std::str::from_utf8(&body)
        .map_err(|_| unprocessable("bad_statement", "the statement is not UTF-8 text"))?;
    let (captured, other) = parse_statement(text).map_err(|m| unprocessable("bad_statement", m))?;
    cloud.catch_up().await?;
    let ledger = cloud
        .ledger
        .qr_payments(store, r.from, r.to, RECONCILE_PAYMENTS_MAX)
        .await?;
    let out = reconcile(&ledger, &captured, other);
    tracing::info!(
        store,
        matched = out.matched,
        exceptions = out.exceptions.len(),
        "reconciled a provider statement"
    );
    Ok(Json(out))
}
