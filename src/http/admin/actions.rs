//! Actions on one order from the list: ship, retry, reconcile (also all due orders).

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
    Extension,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::http::{
    admin_auth::Admin, admin_order, csrf::CsrfToken, form::FormOrDefault, id_path::IdPath,
};
use crate::{
    db,
    error::{AppError, AppResult},
    jobs::reconciler,
    orders::{
        checkout, fulfilment, lost_escrow, sync, Action, Applied, Order, OrderError, OrderStatus,
    },
    state::AppState,
};

use super::flash::{answer, Notice};

/// What reads of DHMAD from the back office write on the timeline ("… (back office)").
const SOURCE: &str = "back office";

fn parse_id(id: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| AppError::NotFound)
}

/// The order of a path `{id}`; not found for anything else.
async fn load(s: &AppState, id: &str) -> AppResult<Order> {
    db::orders::get(&s.pool, parse_id(id)?)
        .await?
        .ok_or(AppError::NotFound)
}

/// The merchant shipped a quick (or standard) order: the deliver call is queued. Refused, the
/// order's page says why.
pub async fn ship(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let id = parse_id(&id)?;
    let result = fulfilment::mark_shipped(&s, id).await;
    let outcome = match &result {
        Ok(true) => "deliver queued".to_owned(),
        Ok(false) => "a deliver was queued already: nothing new".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    if !matches!(result, Err(OrderError::NotFound)) {
        admin.record(&s, "ship", Some(id), &outcome).await?;
    }
    let notice = match result {
        Ok(true) => Notice::Shipped,
        Ok(false) => Notice::ShippedAlready,
        Err(e) => return admin_order::refused(&s, id, csrf, e).await,
    };
    Ok(answer(&headers, "/admin", notice, &[], Some(id)).into_response())
}

/// Retries what is stuck: the checkout of an order whose escrow creation failed (or is in
/// doubt), or the `deliver` of a paid instant order.
pub async fn retry(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let order = load(&s, &id).await?;
    let order_id = order.id;
    if order.allows(Action::RetryDeliver) {
        // Recorded whatever came of it, a failure too (as ship and retry_checkout are).
        let result = fulfilment::retry_deliver(&s, order_id).await;
        let outcome = match &result {
            Ok(true) => "deliver set to run now".to_owned(),
            Ok(false) => "deliver running now, left to its worker".to_owned(),
            Err(e) => format!("failed: {e}"),
        };
        admin
            .record(&s, "retry_deliver", Some(order_id), &outcome)
            .await?;
        let notice = match result {
            Ok(true) => Notice::DeliverRetried,
            Ok(false) => Notice::JobRunning,
            Err(e) => return admin_order::refused(&s, order_id, csrf, e).await,
        };
        return Ok(answer(&headers, "/admin", notice, &[], Some(order_id)).into_response());
    }
    // Only a checkout that failed or is in doubt: `resume` would otherwise open a payment page
    // for a buyer who has one, or make an escrow for an order still in line.
    if !order.allows(Action::RetryCheckout) {
        let why = format!(
            "There is nothing to retry (the order is {}).",
            order.status.merchant_label().to_lowercase()
        );
        let detail = format!("refused: {why}");
        admin
            .record(&s, "retry_checkout", Some(order_id), &detail)
            .await?;
        return admin_order::refused(&s, order_id, csrf, OrderError::not_allowed(why)).await;
    }
    let result = checkout::resume(&s, order).await;
    let outcome = match &result {
        Ok(_) => "escrow and session ready".to_owned(),
        Err(e) => format!("failed: {e}"),
    };
    admin
        .record(&s, "retry_checkout", Some(order_id), &outcome)
        .await?;
    if let Err(e) = result {
        return admin_order::refused(&s, order_id, csrf, e).await;
    }
    let notice = Notice::CheckoutRetried;
    Ok(answer(&headers, "/admin", notice, &[], Some(order_id)).into_response())
}

/// Reads the open orders due a look from DHMAD now, whatever their last news, pass after pass
/// (a pass takes a batch), starting no read once one DHMAD call's timeout has passed, each read
/// tried as for a user waiting: the merchant gets the answer within the request's deadline. It
/// says what it did: all done, more left, or stopped to leave DHMAD's rate limit to buyers.
pub async fn reconcile(
    admin: Admin,
    State(s): State<AppState>,
    headers: HeaderMap,
) -> AppResult<Redirect> {
    let before = db::admin_consoles::last_event_id(&s.pool).await?;
    let started = tokio::time::Instant::now();
    let until = started + s.config.dhmad_timeout;
    // Background work, as the job's passes: it spends only what buyers leave.
    let state = s.for_background().while_a_user_waits();
    let mut report = reconciler::Report::default();
    let more = loop {
        // Due: every open order not looked at since the click (a pass's own reads are not due
        // again).
        let quiet = started.elapsed();
        let pass = match reconciler::run_once_until(&state, quiet, Some(until)).await {
            Ok(pass) => pass,
            Err(e) => {
                // The passes may have read, cancelled or queued things before it failed: the
                // trail says they ran.
                let detail =
                    format!("failed: {e:#} (what it did before is in the orders' timelines)");
                admin.record(&s, "reconcile", None, &detail).await?;
                return Err(e.into());
            }
        };
        report = report.then(pass);
        // Orders whose read failed are still due: the next pass would read them again.
        if !pass.more_pending() || pass.failed > 0 || tokio::time::Instant::now() >= until {
            break pass.more_pending();
        }
    };
    let changed = db::admin_consoles::changed_since(&s.pool, before, "reconciler").await?;
    let changed = usize::try_from(changed).unwrap_or(0);
    tracing::info!(?report, changed, "manual reconciliation");
    let detail = format!(
        "checked {}, changed {changed}, failed {}, flagged {}, creations resolved {}, \
         duplicates cancelled {}, delivers requeued {}{}",
        report.checked,
        report.failed,
        report.flagged,
        report.creations_resolved,
        report.duplicates_cancelled,
        report.delivers_requeued,
        if report.yielded {
            " (stopped early: DHMAD's rate limit)"
        } else if more {
            " (not finished: more orders are due)"
        } else {
            ""
        }
    );
    admin.record(&s, "reconcile", None, &detail).await?;
    let counts = [
        ("checked", report.checked),
        ("changed", changed),
        ("failed", report.failed),
        ("flagged", report.flagged),
        ("resolved", report.creations_resolved),
    ];
    let notice = if report.yielded {
        Notice::ReconciledHeld
    } else if more {
        Notice::ReconciledInPart
    } else {
        Notice::Reconciled
    };
    Ok(answer(&headers, "/admin", notice, &counts, None))
}

/// Whether the order carries no flag now.
async fn flag_gone(s: &AppState, order_id: Uuid) -> AppResult<bool> {
    let now = db::orders::get(&s.pool, order_id).await?;
    Ok(now.is_some_and(|o| o.attention.is_none()))
}

/// What the merchant's page showed when they clicked "Reconcile".
#[derive(Deserialize, Default)]
pub struct Shown {
    /// The order's flag as shown (empty: none). A flag about money is lifted only if it is
    /// still this one.
    #[serde(default)]
    flag: Option<String>,
}

/// `POST /admin/orders/{id}/reconcile`: reads this order's escrow from DHMAD now and applies
/// it (an interrupted checkout is looked up in DHMAD's list instead). A flag for the merchant
/// is lifted once DHMAD answers about the escrow again (one about money: when it is the flag
/// the form says the merchant was shown), and set when DHMAD no longer knows it.
pub async fn reconcile_order(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    FormOrDefault(input): FormOrDefault<Shown>,
) -> AppResult<Redirect> {
    let order = load(&s, &id).await?;
    let order_id = order.id;
    let back = format!("/admin/orders/{order_id}");
    let (notice, detail) = if order.status == OrderStatus::NeedsReconciliation {
        match lost_escrow::reconcile_creation(&s, &order).await {
            Ok(()) => (Notice::CreationChecked, "creation looked up".to_owned()),
            Err(e @ OrderError::NotAllowed(_)) => (Notice::CreationPending, format!("{e}")),
            Err(e) => (failed(&e), format!("failed: {e}")),
        }
    } else {
        let seen = input.flag.as_deref().filter(|f| !f.is_empty());
        match sync::reconcile_for_merchant(&s, &order, seen, SOURCE).await {
            // A flag for the merchant is lifted by the click (one about money) or as the escrow
            // is applied (one about an escrow DHMAD did not know): the merchant is told so, not
            // "nothing new".
            Ok(applied) => match applied {
                Applied::Transitioned { from, to, .. } => (
                    Notice::OrderChanged,
                    format!("{} → {to}", from.as_deref().unwrap_or("unknown")),
                ),
                _ if order.attention.is_some() && flag_gone(&s, order_id).await? => {
                    (Notice::FlagLifted, "unchanged; flag lifted".to_owned())
                }
                _ if order.attention.is_some() && order.attention.as_deref() != seen => (
                    Notice::FlagUnseen,
                    "unchanged; flag not shown, kept".to_owned(),
                ),
                _ => (Notice::OrderSame, "unchanged".to_owned()),
            },
            Err(OrderError::EscrowUnknown(why)) => {
                (Notice::OrderFlagged, format!("flagged: {why}"))
            }
            Err(e) => (failed(&e), format!("failed: {e}")),
        }
    };
    admin
        .record(&s, "reconcile_order", Some(order_id), &detail)
        .await?;
    Ok(answer(&headers, &back, notice, &[], Some(order_id)))
}

/// What a look at DHMAD that failed tells the merchant: the budget held it back (nothing was
/// asked), or DHMAD failed.
fn failed(e: &OrderError) -> Notice {
    match e {
        OrderError::Busy { .. } => Notice::OrderBusy,
        _ => Notice::OrderFailed,
    }
}
