//! The back office's page of one order (`GET /admin/orders/{id}`): everything the buyer sees
//! plus the escrow as DHMAD last described it, the full timeline, the sessions opened, the
//! outbox jobs, the audit trail, and the merchant's actions the state machine allows now. The
//! merchant's steps on DHMAD (cancel and refund, answer a cancellation, open a dispute) go
//! through DHMAD's hosted page, which sends the merchant back here.

use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    Extension,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    admin_auth::Admin, csrf::CsrfToken, form::Form, id_path::IdPath, order_page::fmt_time, render,
};
use crate::http::query::Query;
use crate::{
    db,
    error::{AppError, AppResult},
    orders::{
        actions::{self, CancelOutcome},
        sessions::{self, Party},
        snapshot::PAID_BY_GUEST,
        Action, Order, OrderError,
    },
    state::AppState,
};

struct Line {
    at: String,
    kind: String,
    detail: String,
}

struct ActionView {
    path: &'static str,
    label: &'static str,
    decision: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "admin_order.html")]
struct AdminOrderPage {
    order: Order,
    product_name: String,
    status_label: &'static str,
    error: Option<String>,
    actions: Vec<ActionView>,
    /// Steps valid now that need the shop's DHMAD account, which is not set.
    no_seller_account: bool,
    timeline: Vec<Line>,
    sessions: Vec<Line>,
    jobs: Vec<Line>,
    calls: Vec<Line>,
    audit: Vec<Line>,
    /// The flash an action left, and the order's inbox events (`admin_consoles`).
    extras: super::admin_consoles::OrderExtras,
    csrf: String,
}

/// The order's open `deliver` job, if any, and whether it has failed (waiting out its backoff).
#[derive(Clone, Copy)]
struct DeliverJob {
    open: bool,
    failing: bool,
}

/// The merchant's actions valid now, as forms posting to this page's routes. A deliver already
/// queued is not offered again (as on the list): a second click would queue nothing; but an
/// instant order's that failed and waits out its backoff can be run now ("Retry deliver", as
/// from the outbox page: `fulfilment::retry_deliver` makes it due). A guest
/// paid outside DHMAD's wallet (`guest_paid`) gets no refund from DHMAD (§4.2): the buttons
/// that would promise one say so instead. Without the shop's DHMAD account (`seller`), the
/// steps taken on DHMAD's page as the shop are left out (each would be refused), and the
/// second value says whether any was.
fn merchant_actions(
    o: &Order,
    deliver: DeliverJob,
    buyer_page_open: bool,
    guest_paid: bool,
    seller: bool,
) -> (Vec<ActionView>, bool) {
    let mut out = Vec::new();
    let mut left_out = false;
    let mut add = |action: Action, path: &'static str, decision: Option<&'static str>| {
        let queued = match action {
            Action::Ship => deliver.open,
            Action::RetryDeliver => deliver.open && !deliver.failing,
            _ => false,
        };
        // An instant order's cancel waits for the buyer's page to close (`merchant_cancel`).
        let waits = action == Action::MerchantCancel && buyer_page_open;
        if o.allows(action) && !seller && action.on_the_shops_dhmad_page() {
            left_out = true;
            return;
        }
        if o.allows(action) && !queued && !waits {
            let label = match (decision, action) {
                (Some("accept"), _) if guest_paid => {
                    "Accept the cancellation (a guest paid: DHMAD refunds nothing, refund them yourself)"
                }
                (Some("accept"), _) => "Accept the cancellation (refund)",
                (Some(_), _) => "Reject the cancellation",
                (None, Action::CancelAndRefund) if guest_paid => {
                    "Cancel (a guest paid: DHMAD refunds nothing, refund them yourself)"
                }
                (None, _) => action.label(),
            };
            out.push(ActionView {
                path,
                label,
                decision,
            });
        }
    };
    add(Action::MerchantSign, "sign", None);
    add(Action::SubmitProof, "proof", None);
    add(Action::Ship, "ship", None);
    add(Action::RetryDeliver, "retry", None);
    add(Action::RetryCheckout, "retry", None);
    add(Action::AnswerCancellation, "cancellation", Some("accept"));
    add(Action::AnswerCancellation, "cancellation", Some("reject"));
    add(Action::MerchantCancel, "cancel", None);
    add(Action::CancelAndRefund, "cancel", None);
    add(Action::Dispute, "dispute", None);
    (out, left_out)
}

async fn render_page(
    s: &AppState,
    order: Order,
    csrf: String,
    error: Option<String>,
    flash: Option<super::admin::Flash>,
) -> AppResult<Html<String>> {
    let id = order.id;
    let product_name = db::products::get(&s.pool, &order.sku)
        .await?
        .map_or_else(|| order.sku.clone(), |p| p.name);
    let events = db::events::list(&s.pool, id).await?;
    let guest_paid = events.iter().any(|e| e.kind == PAID_BY_GUEST);
    let timeline = events
        .into_iter()
        .map(|e| Line {
            at: fmt_time(e.created_at),
            kind: e.kind,
            detail: e.detail,
        })
        .collect();
    let pages = db::sessions::list_for_order(&s.pool, id).await?;
    let buyer_page_open =
        sessions::buyer_payment_page_open(&order, &pages, time::OffsetDateTime::now_utc());
    let sessions = pages
        .into_iter()
        .map(|x| Line {
            at: fmt_time(x.created_at),
            kind: format!(
                "{} ({})",
                x.action,
                if x.for_merchant { "merchant" } else { "buyer" }
            ),
            detail: format!("{}: {}", x.session_id, x.status),
        })
        .collect();
    let jobs = db::outbox::list_for_order(&s.pool, id).await?;
    let open_deliver = jobs
        .iter()
        .find(|j| j.kind == crate::orders::fulfilment::DELIVER && j.done_at.is_none());
    let deliver = DeliverJob {
        open: open_deliver.is_some(),
        failing: open_deliver.is_some_and(|j| j.last_error.is_some()),
    };
    let jobs = jobs
        .into_iter()
        .map(|j| Line {
            at: fmt_time(j.run_after),
            kind: j.kind,
            detail: format!(
                "{} attempt(s), {}{}",
                j.attempts,
                match (j.done_at, j.gave_up_at) {
                    (_, Some(_)) => "gave up",
                    (Some(_), None) => "done",
                    (None, None) => "pending",
                },
                j.last_error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        })
        .collect();
    let calls = db::calls::for_order(&s.pool, id)
        .await?
        .into_iter()
        .map(|c| Line {
            at: fmt_time(c.at),
            kind: format!("{} {}", c.method, c.endpoint),
            detail: format!(
                "{} in {} ms",
                c.status
                    .map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
                c.duration_ms
            ),
        })
        .collect();
    let audit = db::admin::audit_for_order(&s.pool, id)
        .await?
        .into_iter()
        .map(|a| Line {
            at: fmt_time(a.at),
            kind: a.action,
            detail: format!("{} from {} {}", a.actor, a.client_addr, a.detail),
        })
        .collect();
    let seller = s.config.seller_email.is_some();
    let (actions, no_seller_account) =
        merchant_actions(&order, deliver, buyer_page_open, guest_paid, seller);
    render(&AdminOrderPage {
        status_label: order.status.merchant_label(),
        actions,
        no_seller_account,
        order,
        product_name,
        error,
        timeline,
        sessions,
        jobs,
        calls,
        audit,
        extras: super::admin_consoles::order_extras(s, id, flash).await?,
        csrf,
    })
}

async fn load(s: &AppState, id: &str) -> AppResult<Order> {
    let id = Uuid::parse_str(id).map_err(|_| AppError::NotFound)?;
    db::orders::get(&s.pool, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// `GET /admin/from-dhmad/{session_id}`: where the callback sends the merchant back from a
/// step on DHMAD's page (`http::callback`); the order's page, for a signed-in merchant.
pub async fn from_dhmad(
    _: Admin,
    State(s): State<AppState>,
    IdPath(session_id): IdPath,
) -> AppResult<Redirect> {
    if !super::callback::could_be_a_session_id(&session_id) {
        return Err(AppError::NotFound);
    }
    let session = db::sessions::get(&s.pool, &session_id)
        .await?
        .filter(|x| x.for_merchant)
        .ok_or(AppError::NotFound)?;
    Ok(Redirect::to(&format!("/admin/orders/{}", session.order_id)))
}

pub async fn page(
    _: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Query(flash): Query<super::admin::FlashQuery>,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Html<String>> {
    let order = load(&s, &id).await?;
    render_page(&s, order, csrf.0, None, flash.flash()).await
}

/// Records the action, then answers: DHMAD's page, this page again, or this page with the
/// refusal shown (no redirect).
async fn finish(
    s: &AppState,
    admin: &Admin,
    order_id: Uuid,
    what: &str,
    csrf: CsrfToken,
    result: Result<Option<String>, OrderError>,
) -> AppResult<Response> {
    let outcome = match &result {
        Ok(Some(_)) => "sent to DHMAD's page".to_owned(),
        Ok(None) => "done".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    admin.record(s, what, Some(order_id), &outcome).await?;
    match result {
        Ok(Some(url)) => Ok(Redirect::to(&url).into_response()),
        Ok(None) => Ok(Redirect::to(&format!("/admin/orders/{order_id}")).into_response()),
        Err(e) => refused(s, order_id, csrf, e).await,
    }
}

/// A refused or failed step: the order's page with the reason on top, where the merchant can
/// act on it (DHMAD's own words, and for a failure its detail, which a buyer never reads); any
/// other error as usual.
pub(super) async fn refused(
    s: &AppState,
    order_id: Uuid,
    csrf: CsrfToken,
    e: OrderError,
) -> AppResult<Response> {
    let (status, text) = match &e {
        OrderError::Refused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        OrderError::EscrowUnknown(_) => (StatusCode::BAD_GATEWAY, e.to_string()),
        OrderError::NotAllowed(_) | OrderError::InProgress => (StatusCode::CONFLICT, e.to_string()),
        // As the error pages would answer them (`AppError`): 503 for a try-again, 502 else.
        OrderError::DhmadUnavailable { message, cause } => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{message} (DHMAD: {cause})"),
        ),
        OrderError::DhmadFailed { message, cause } => (
            StatusCode::BAD_GATEWAY,
            format!("{message} (DHMAD: {cause})"),
        ),
        _ => return Err(e.into()),
    };
    let order = db::orders::get(&s.pool, order_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let page = render_page(s, order, csrf.0, Some(text), None).await?;
    Ok((status, page).into_response())
}

/// Before payment: cancelled through the API. After: cancel and refund on DHMAD's page.
pub async fn cancel(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let order = load(&s, &id).await?;
    let result = actions::merchant_cancel(&s, order.id)
        .await
        .map(|out| match out {
            CancelOutcome::Cancelled => None,
            CancelOutcome::OnDhmad(url) => Some(url),
        });
    finish(&s, &admin, order.id, "cancel", csrf, result).await
}

#[derive(Deserialize)]
pub struct Decision {
    #[serde(default)]
    decision: String,
}

/// The answer to the buyer's cancellation request (`decision=accept|reject`), on DHMAD's page.
pub async fn cancellation(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
    Form(input): Form<Decision>,
) -> AppResult<Response> {
    let accept = match input.decision.as_str() {
        "accept" => true,
        "reject" => false,
        _ => {
            return Err(AppError::BadRequest(
                "decision must be accept or reject".into(),
            ))
        }
    };
    let order = load(&s, &id).await?;
    let result = actions::answer_cancellation(&s, order.id, accept)
        .await
        .map(Some);
    let what = if accept {
        "accept_cancellation"
    } else {
        "reject_cancellation"
    };
    finish(&s, &admin, order.id, what, csrf, result).await
}

/// Signs the contract on DHMAD's page, when DHMAD could not auto-sign it.
pub async fn sign(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let order = load(&s, &id).await?;
    let result = actions::hosted_step(&s, order.id, Action::MerchantSign)
        .await
        .map(Some);
    finish(&s, &admin, order.id, "sign", csrf, result).await
}

/// Uploads the proof of purchase on DHMAD's page (proof escrows).
pub async fn proof(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let order = load(&s, &id).await?;
    let result = actions::hosted_step(&s, order.id, Action::SubmitProof)
        .await
        .map(Some);
    finish(&s, &admin, order.id, "submit_proof", csrf, result).await
}

/// Opens a dispute on DHMAD's page, as the merchant.
pub async fn dispute(
    admin: Admin,
    State(s): State<AppState>,
    IdPath(id): IdPath,
    Extension(csrf): Extension<CsrfToken>,
) -> AppResult<Response> {
    let order = load(&s, &id).await?;
    let result = actions::dispute(&s, order.id, Party::Merchant)
        .await
        .map(Some);
    finish(&s, &admin, order.id, "dispute", csrf, result).await
}
