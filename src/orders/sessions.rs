//! DHMAD checkout sessions for an order: reuse a pending one that stays open long enough,
//! else open a new one (sessions are cheap and single-use; escrows are not).

use dhmad::{CheckoutAction, CreateSession};
use time::OffsetDateTime;

use super::checkout::SAVED;
use crate::app::AppState;
use crate::db::{self, orders::Order, sessions::Session};
use crate::error::{AppError, AppResult};

/// A session is reused only if it stays open at least this long: time for the buyer to pay.
pub const MIN_SESSION_LIFE: time::Duration = time::Duration::minutes(2);

/// The order's pending session of `action` that stays open long enough for the buyer to pay.
pub async fn live_session(
    state: &AppState,
    order: &Order,
    action: &CheckoutAction,
) -> AppResult<Option<Session>> {
    let open_until = OffsetDateTime::now_utc() + MIN_SESSION_LIFE;
    Ok(db::sessions::live_for_order(&state.pool, order.id, action.as_str(), open_until).await?)
}

/// A pending session of `action` for the order that stays open long enough, or a new one.
pub async fn ensure_session(
    state: &AppState,
    order: &Order,
    action: CheckoutAction,
) -> AppResult<Session> {
    let escrow_id = order
        .escrow_id
        .as_deref()
        .ok_or_else(|| AppError::Conflict("This order has no escrow yet.".into()))?;
    if let Some(s) = live_session(state, order, &action).await? {
        return Ok(s);
    }
    let req = CreateSession::new(
        action.clone(),
        &order.buyer_email,
        state.config.callback_url(),
    )
    .metadata("order_id", order.id.to_string());
    match state.dhmad.create_session(escrow_id, &req).await {
        Ok(c) => {
            let new = db::sessions::NewSession {
                session_id: &c.session_id,
                order_id: order.id,
                escrow_id,
                action: action.as_str(),
                url: &c.url,
                expires_at: c.expires_at,
            };
            let mut tx = state.pool.begin().await?;
            db::sessions::insert(&mut *tx, &new).await?;
            db::orders::set_failure_reason(&mut *tx, order.id, None).await?;
            let detail = format!("Checkout session opened ({action})");
            db::events::add(&mut *tx, order.id, "session_opened", &detail).await?;
            tx.commit().await?;
            Ok(db::sessions::get(&state.pool, &c.session_id)
                .await?
                .ok_or(AppError::NotFound)?)
        }
        Err(err) => {
            let reason = format!("could not open a {action} session: {err}");
            tracing::warn!(order_id = %order.id, reason, "session creation failed");
            db::orders::set_failure_reason(&state.pool, order.id, Some(&reason)).await?;
            Err(match err {
                dhmad::Error::BusinessRule { api, .. } => AppError::Refused {
                    status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    message: api
                        .user_message
                        .unwrap_or_else(|| "The payment provider refused this step.".into()),
                },
                e if e.is_transient() => {
                    AppError::Unavailable(format!("The payment provider is not answering. {SAVED}"))
                }
                _ => AppError::Upstream(format!("The payment provider reported an error. {SAVED}")),
            })
        }
    }
}
