//! Checkout: record the intent, create the escrow, open a payment session.
//!
//! DHMAD has no idempotency keys, so `POST /escrows` is never resent blindly: the order is
//! written first, the create call is claimed (`creating_escrow`) so only one request makes it,
//! and a timeout leaves the order `needs_reconciliation` until someone looks at DHMAD's list.

use dhmad::{CheckoutAction, CreateEscrow, Currency, EscrowMode};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{sessions::ensure_session, sync, OrderStatus};
use crate::app::AppState;
use crate::db::{self, orders::Order};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckoutStarted {
    pub order_id: Uuid,
    pub session_id: String,
    pub checkout_url: String,
}

/// Normalises and sanity-checks an e-mail address (DHMAD does the real verification).
pub fn validate_email(raw: &str) -> AppResult<String> {
    let email = raw.trim().to_lowercase();
    let bad = || AppError::BadRequest(format!("{:?} is not a valid e-mail address", raw.trim()));
    if email.is_empty() {
        return Err(AppError::BadRequest("an e-mail address is required".into()));
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let ok = email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && !domain.contains('@');
    ok.then_some(email.clone()).ok_or_else(bad)
}

/// Starts (or resumes) the buyer's checkout for `sku`.
pub async fn start(state: &AppState, sku: &str, email: &str) -> AppResult<CheckoutStarted> {
    let sku = sku.trim();
    if sku.is_empty() {
        return Err(AppError::BadRequest("a product (sku) is required".into()));
    }
    let email = validate_email(email)?;
    let product = db::products::get_active(&state.pool, sku)
        .await?
        .ok_or_else(|| AppError::BadRequest(format!("unknown product {sku:?}")))?;
    let order = open_order(state, &product, &email).await?;
    let order = match sync::recheck_before_reuse(state, order).await? {
        o if o.status().is_settled() => open_order(state, &product, &email).await?,
        o if matches!(
            o.status(),
            OrderStatus::Paid | OrderStatus::Delivered | OrderStatus::Disputed
        ) =>
        {
            return Err(AppError::Conflict(format!(
                "You have already paid for this: see your order at /orders/{}",
                o.id
            )))
        }
        o => o,
    };
    resume(state, order).await
}

/// The buyer's open order for this product, or a new one. A repeated checkout thus continues
/// the same order (and escrow) instead of opening a second one.
async fn open_order(state: &AppState, p: &db::products::Product, email: &str) -> AppResult<Order> {
    for _ in 0..3 {
        if let Some(o) = db::orders::find_open(&state.pool, &p.sku, email).await? {
            return Ok(o);
        }
        let new = db::orders::NewOrder {
            sku: &p.sku,
            mode: &p.mode,
            buyer_email: email,
            amount: p.price,
            currency: &p.currency,
        };
        if let Some(o) = db::orders::insert_open(&state.pool, &new).await? {
            db::events::add(
                &state.pool,
                o.id,
                "order_created",
                &format!("Order for {} created", p.name),
            )
            .await?;
            return Ok(o);
        }
    }
    Err(AppError::Conflict(
        "Your order changed while we were opening it. Please try again.".into(),
    ))
}

/// Brings an open order to a live payment session: creates the escrow if it has none yet and
/// reuses a pending session that is still open.
pub async fn resume(state: &AppState, order: Order) -> AppResult<CheckoutStarted> {
    let order = ensure_escrow(state, order).await?;
    let session = ensure_session(state, &order, CheckoutAction::AcceptPay).await?;
    Ok(CheckoutStarted {
        order_id: order.id,
        session_id: session.session_id,
        checkout_url: session.url,
    })
}

async fn ensure_escrow(state: &AppState, mut order: Order) -> AppResult<Order> {
    for _ in 0..3 {
        match order.status() {
            OrderStatus::AwaitingPayment => return Ok(order),
            OrderStatus::New | OrderStatus::EscrowFailed => {
                if db::orders::claim_creation(&state.pool, order.id).await? {
                    return create_escrow(state, &order).await;
                }
            }
            OrderStatus::NeedsReconciliation => sync::reconcile_creation(state, &order).await?,
            OrderStatus::CreatingEscrow => {
                let abandoned = order
                    .escrow_attempted_at
                    .is_some_and(|t| OffsetDateTime::now_utc() - t > in_flight_limit(state));
                if !abandoned {
                    return Err(AppError::Conflict(
                        "Your checkout is being prepared. Please try again in a few seconds."
                            .into(),
                    ));
                }
                let reason = "escrow creation was interrupted; checking DHMAD";
                db::orders::mark_unknown_if_in_flight(&state.pool, order.id, reason).await?;
            }
            other => {
                return Err(AppError::Conflict(format!(
                    "This order is no longer awaiting payment ({}).",
                    other.label()
                )))
            }
        }
        order = db::orders::get(&state.pool, order.id)
            .await?
            .ok_or(AppError::NotFound)?;
    }
    Err(AppError::Unavailable(
        "We could not start your checkout. Please try again.".into(),
    ))
}

/// After this long a `creating_escrow` order cannot still be waiting for its answer.
pub fn in_flight_limit(state: &AppState) -> time::Duration {
    time::Duration::try_from(state.config.dhmad_timeout * 2).unwrap_or(time::Duration::MINUTE)
        + time::Duration::SECOND
}

/// The escrow's title carries the order id, so an escrow whose creation answer was lost can
/// be recognised later in DHMAD's list.
pub fn escrow_title(product_name: &str, order_id: Uuid) -> String {
    format!("{product_name} · order {order_id}")
}

async fn create_escrow(state: &AppState, order: &Order) -> AppResult<Order> {
    let product = db::products::get(&state.pool, &order.sku)
        .await?
        .ok_or(AppError::NotFound)?;
    let mode = EscrowMode::from(order.mode.as_str());
    // The merchant sells as its associated DHMAD user: no sellerEmail (instant requires that).
    let mut req = CreateEscrow::new(
        escrow_title(&product.name, order.id),
        order.amount,
        &order.buyer_email,
    )
    .mode(mode.clone())
    .currency(Currency::from(order.currency.as_str()));
    if mode != EscrowMode::Instant {
        req =
            req.estimated_delivery_days(product.estimated_delivery_days.unwrap_or(5).max(1) as u32);
    }
    match state.dhmad.create_escrow(&req).await {
        Ok(created) => {
            let e = created.escrow;
            let at = e.updated_at.or(e.created_at);
            db::orders::record_escrow(&state.pool, order.id, &e.id, e.status.as_str(), at).await?;
            db::events::add(
                &state.pool,
                order.id,
                "escrow_created",
                &format!("DHMAD escrow {} created", e.id),
            )
            .await?;
            db::orders::get(&state.pool, order.id)
                .await?
                .ok_or(AppError::NotFound)
        }
        Err(err) => {
            let (status, reason, app_err) = classify_create_error(err);
            tracing::warn!(order_id = %order.id, reason, "escrow creation failed");
            db::orders::record_failure(&state.pool, order.id, status, &reason).await?;
            db::events::add(&state.pool, order.id, "escrow_failed", &reason).await?;
            Err(app_err)
        }
    }
}

pub(crate) const SAVED: &str = "Your order is saved; please try again in a moment.";

/// What a failed `POST /escrows` means for the order (safe to retry, or unknown) and the user.
fn classify_create_error(err: dhmad::Error) -> (OrderStatus, String, AppError) {
    use dhmad::Error as E;
    let reason = format!("escrow creation failed: {err}");
    let failed = OrderStatus::EscrowFailed;
    match err {
        // No answer, or an answer we could not read: the escrow may exist.
        E::Timeout | E::Decode { .. } => (
            OrderStatus::NeedsReconciliation,
            format!("{reason} (outcome unknown; checking DHMAD before any retry)"),
            AppError::Unavailable(format!(
                "The payment provider did not answer in time. {SAVED}"
            )),
        ),
        E::Transport(_) | E::RateLimited { .. } => (
            failed,
            reason,
            AppError::Unavailable(format!(
                "The payment provider is unreachable or busy. {SAVED}"
            )),
        ),
        E::BusinessRule { ref api, .. } | E::Validation(ref api) => {
            let message = api
                .user_message
                .clone()
                .unwrap_or_else(|| "The payment provider refused this order.".into());
            (
                failed,
                reason,
                AppError::Refused {
                    status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    message,
                },
            )
        }
        _ => (
            failed,
            reason,
            AppError::Upstream(format!("The payment provider reported an error. {SAVED}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            validate_email("  Buyer@Example.TN ").unwrap(),
            "buyer@example.tn"
        );
        for bad in ["", "nope", "a@b", "a@@b.tn", "a b@c.tn", "@x.tn", "a@.tn"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_timeout_leaves_the_outcome_unknown() {
        let (s, _, e) = classify_create_error(dhmad::Error::Timeout);
        assert_eq!(s, OrderStatus::NeedsReconciliation);
        assert_eq!(e.status(), 503);
        let api = dhmad::ApiError::parse(500, b"{}");
        let (s, _, e) = classify_create_error(dhmad::Error::Server(api));
        assert_eq!(s, OrderStatus::EscrowFailed);
        assert_eq!(e.status(), 502);
    }
}
