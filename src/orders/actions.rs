//! What the buyer and the merchant can do to an order after checkout, each step through DHMAD
//! (`docs/dhmad-api.md` §3.11, §4): cancel before payment (API), and the steps that happen on
//! DHMAD's hosted page (ask to cancel, cancel and refund, answer a request, open a dispute).
//! The order's state machine says when each is allowed; DHMAD's own business-rule refusals come
//! back as `OrderError::Refused` with its `user_message`.

use dhmad::CheckoutAction;
use uuid::Uuid;

use super::{
    lost_escrow, payment_review,
    sessions::{buyer_payment_page_open, ensure_session, live_session, OpeningClaim, Party},
    sync, Action, Cancellation, Order, OrderError, OrderResult, OrderStatus,
};
use crate::db::{self, sessions::Session};
use crate::state::AppState;

fn refused(order: &Order, action: Action) -> OrderError {
    OrderError::not_allowed(format!(
        "{} is not possible now (the order is {}).",
        action.label(),
        order.status.label().to_lowercase()
    ))
}

async fn load(state: &AppState, order_id: Uuid) -> OrderResult<Order> {
    db::orders::get(&state.pool, order_id)
        .await?
        .ok_or(OrderError::NotFound)
}

/// Cancels an unpaid order: at DHMAD when it has an escrow (`POST /escrows/:id/cancel`, which
/// either party may call while pending), locally when none was ever created.
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order_id), by = ?by))]
pub async fn cancel_unpaid(state: &AppState, order_id: Uuid, by: Party) -> OrderResult<Order> {
    let call_order = order_id;
    super::call_log::for_order(
        call_order,
        Box::pin(async move {
            let mut order = load(state, order_id).await?;
            let action = match by {
                Party::Buyer => Action::Cancel,
                Party::Merchant => Action::MerchantCancel,
            };
            if !order.allows(action) {
                return Err(refused(&order, action));
            }
            // An escrow may exist although the answer was lost: look before cancelling locally.
            if order.status == OrderStatus::NeedsReconciliation {
                match by {
                    Party::Buyer => {
                        lost_escrow::reconcile_creation_for_buyer(state, &order).await?;
                    }
                    Party::Merchant => lost_escrow::reconcile_creation(state, &order).await?,
                }
                order = load(state, order_id).await?;
            }
            let who = match by {
                Party::Buyer => "the buyer",
                Party::Merchant => "the shop",
            };
            let Some(escrow_id) = order.escrow_id.clone() else {
                let reason = format!("Cancelled by {who} before payment");
                let mut conn = state.pool.acquire().await?;
                let mut tx = db::tx::begin(&mut conn).await?;
                // Only while no escrow can exist: a creation claimed meanwhile goes on.
                let without_escrow = [OrderStatus::New, OrderStatus::EscrowFailed];
                let cancelled = OrderStatus::Cancelled;
                if !db::orders::record_failure(
                    &mut *tx,
                    order.id,
                    &without_escrow,
                    cancelled,
                    &reason,
                    None,
                )
                .await?
                {
                    // The escrow's creation was claimed meanwhile: cancel that one instead,
                    // once it exists, rather than leave it behind a cancelled order.
                    drop(tx);
                    let now = load(state, order_id).await?;
                    return Err(refused(&now, action));
                }
                db::events::add(
                    &mut *tx,
                    order.id,
                    "cancelled",
                    &reason,
                    Some("Order cancelled"),
                )
                .await?;
                tx.commit().await?;
                return load(state, order_id).await;
            };
            // A guest may have sent a proof of payment and closed the tab before coming back:
            // a cancel would make DHMAD reject a proof of money already sent, and a guest's
            // refund is not automatic (§4.2). Asked as the abandoned-order job asks.
            if payment_review::known(state, &order).await? {
                // Or a wallet payment whose webhook is late: learn which before saying.
                let read = sync::refresh_order(state, &order, "read before a cancel").await;
                if let Err(unknown @ OrderError::EscrowUnknown(_)) = read {
                    return Err(unknown);
                }
                let now = load(state, order_id).await?;
                if now.status != OrderStatus::AwaitingPayment {
                    return Err(refused(&now, action));
                }
                return Err(OrderError::not_allowed(
                    "DHMAD is confirming a payment for this order (a proof of payment, or a \
                     payment whose news has not come): it can be cancelled once that ends.",
                ));
            }
            match state.dhmad.cancel_escrow(&escrow_id).await {
                Ok(res) => {
                    let detail =
                        format!("Cancelled by {who} before payment (DHMAD escrow {escrow_id})");
                    let mut conn = state.pool.acquire().await?;
                    let mut tx = db::tx::begin(&mut conn).await?;
                    db::events::add(
                        &mut *tx,
                        order.id,
                        "cancelled",
                        &detail,
                        Some("Order cancelled"),
                    )
                    .await?;
                    tx.commit().await?;
                    sync::apply_in_tx(state, &res.escrow, "cancelled through the API").await?;
                    load(state, order_id).await
                }
                Err(e) => {
                    // DHMAD refused (paid meanwhile?): learn what it says before telling the user,
                    // and say so when it no longer knows the escrow (the merchant's to look at).
                    let read = sync::refresh_order(state, &order, "read after a refused cancel");
                    if let Err(unknown @ OrderError::EscrowUnknown(_)) = read.await {
                        return Err(unknown);
                    }
                    // Cancelled already (a second click, the other party) or paid meanwhile:
                    // the order's page says so, where a 502 said "try again".
                    let now = load(state, order_id).await?;
                    if now.status == OrderStatus::Cancelled {
                        return Ok(now);
                    }
                    if !now.allows(action) {
                        return Err(refused(&now, action));
                    }
                    Err(OrderError::from_dhmad(e, "could not cancel the escrow"))
                }
            }
        }),
    )
    .await
}

/// The DHMAD page where `party` performs `action` on the order: the hosted step's URL.
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order_id), action = ?action))]
pub async fn hosted_step(state: &AppState, order_id: Uuid, action: Action) -> OrderResult<String> {
    let order = load(state, order_id).await?;
    if !order.allows(action) {
        return Err(refused(&order, action));
    }
    let (dhmad_action, party) = match action {
        Action::RequestCancellation => {
            let (page, buyer) = (CheckoutAction::RequestCancellation, Party::Buyer);
            return match step_page(state, order.clone(), action, page, buyer).await {
                Ok(s) => Ok(s.url),
                Err(e) => Err(cancellation_known_at_dhmad(state, &order, e).await),
            };
        }
        Action::CancelAndRefund => (CheckoutAction::CancelEscrow, Party::Merchant),
        Action::ConfirmReceipt => (CheckoutAction::Complete, Party::Buyer),
        Action::Sign => (CheckoutAction::SignContract, Party::Buyer),
        Action::MerchantSign => (CheckoutAction::SignContract, Party::Merchant),
        Action::SubmitProof => (CheckoutAction::SubmitProof, Party::Merchant),
        Action::ReviewProof => (CheckoutAction::ReviewProof, Party::Buyer),
        other => return Err(refused(&order, other)),
    };
    // A refusal that says the order is behind DHMAD (a signature made on its page, its news
    // lost) is read back by `sessions::failed`.
    Ok(step_page(state, order, action, dhmad_action, party)
        .await?
        .url)
}

/// The page of a step on DHMAD's site, `action` being allowed on `order`. A page is single-use
/// (`docs/dhmad-api.md` §2.7), and one stored as open may have been used, its return and its
/// news lost: handed out again, it says "already used". So DHMAD is asked about a stored page
/// first; a used one's outcome is learned as on the return, and the order as it then is says
/// whether the step is still to do, on a new page. DHMAD not answering, the stored page is
/// handed out. (Payment pages have their own rule: `sessions::live_pay_page`.)
pub(super) async fn step_page(
    state: &AppState,
    mut order: Order,
    action: Action,
    page: CheckoutAction,
    party: Party,
) -> OrderResult<Session> {
    if let Some(stored) = live_session(&state.pool, &order, &page, party).await? {
        // At most one look per page per interval, as on the return, and no longer than one
        // call's timeout: DHMAD slow, the stored page is handed out as before.
        let read = if sync::may_look_at_page(state, &stored.session_id).await? {
            let look = sync::read_page(state, order.id, &stored.session_id);
            match tokio::time::timeout(state.config.dhmad_timeout, look).await {
                Ok(read) => read?,
                Err(_) => None,
            }
        } else {
            None
        };
        if let Some(s) = read.filter(|s| s.status != dhmad::SessionStatus::Pending) {
            let finished = (s.status == dhmad::SessionStatus::Completed).then_some(s.completed_at);
            let source = "a page used on DHMAD, read before opening another";
            // Not recorded (the order's row locked, say): the page stays pending, for the
            // sweeper to ask about once it ends, and is not handed out again, used as it is.
            if !sync::learn_from_page(state, &order, &stored, finished, source).await? {
                return Err(OrderError::not_allowed(
                    "What was done on DHMAD's page could not be recorded just now. Please try \
                     again in a moment.",
                ));
            }
            order = load(state, order.id).await?;
            if !order.allows(action) {
                return Err(OrderError::not_allowed(format!(
                    "{} is not possible now: its page on DHMAD was used or closed, and the \
                     order has moved on (it is now {}).",
                    action.label(),
                    order.status.label().to_lowercase()
                )));
            }
        }
    }
    ensure_session(state, &order, page, party).await
}

/// Opens a dispute on DHMAD's page, for the buyer or the merchant.
pub async fn dispute(state: &AppState, order_id: Uuid, party: Party) -> OrderResult<String> {
    let order = load(state, order_id).await?;
    if !order.allows(Action::Dispute) {
        return Err(refused(&order, Action::Dispute));
    }
    Ok(step_page(
        state,
        order,
        Action::Dispute,
        CheckoutAction::Dispute,
        party,
    )
    .await?
    .url)
}

/// The merchant's answer to the buyer's pending cancellation request, on DHMAD's page.
pub async fn answer_cancellation(
    state: &AppState,
    order_id: Uuid,
    accept: bool,
) -> OrderResult<String> {
    let order = load(state, order_id).await?;
    if !order.allows(Action::AnswerCancellation) {
        return Err(refused(&order, Action::AnswerCancellation));
    }
    let action = if accept {
        CheckoutAction::AcceptCancellation
    } else {
        CheckoutAction::RejectCancellation
    };
    let step = Action::AnswerCancellation;
    match step_page(state, order.clone(), step, action, Party::Merchant).await {
        Ok(s) => Ok(s.url),
        Err(e) => Err(cancellation_known_at_dhmad(state, &order, e).await),
    }
}

/// DHMAD refused a cancellation step because the request was made, or answered, already: on
/// its page, with both the callback and the event lost (the user closed the tab, DHMAD's four
/// tries failed). The refusal is the news: the request is recorded, or its answer, which the
/// escrow tells (still held: refused; cancelled: accepted). The refusal is still shown.
async fn cancellation_known_at_dhmad(state: &AppState, order: &Order, e: OrderError) -> OrderError {
    let OrderError::Refused {
        code: Some(code), ..
    } = &e
    else {
        return e;
    };
    let done = match code {
        dhmad::ErrorCode::CancellationAlreadyRequested => Some(Cancellation::Requested),
        dhmad::ErrorCode::NoPendingCancellation => {
            match sync::refresh_order(state, order, "read after DHMAD found no pending request")
                .await
            {
                Ok(applied) => match applied.order().map(|o| o.status) {
                    Some(OrderStatus::Paid | OrderStatus::Delivered) => {
                        Some(Cancellation::Rejected)
                    }
                    Some(OrderStatus::Cancelled) => Some(Cancellation::Accepted),
                    _ => None,
                },
                Err(read) => {
                    tracing::warn!(order.ref = %crate::orders::log_ref(order.id), error = %read, "could not read the escrow after a refused answer");
                    None
                }
            }
        }
        _ => None,
    };
    if let Some(done) = done {
        if let Err(err) = sync::cancellation_done(state, order.id, done).await {
            tracing::warn!(order.ref = %crate::orders::log_ref(order.id), error = %err, "could not record the cancellation DHMAD knows of");
        }
    }
    e
}

/// The buyer's "cancel": before payment it cancels; after, it asks the shop (DHMAD page).
pub enum CancelOutcome {
    Cancelled,
    OnDhmad(String),
}

pub async fn buyer_cancel(state: &AppState, order_id: Uuid) -> OrderResult<CancelOutcome> {
    let order = load(state, order_id).await?;
    if order.allows(Action::RequestCancellation) {
        return hosted_step(state, order_id, Action::RequestCancellation)
            .await
            .map(CancelOutcome::OnDhmad);
    }
    cancel_unpaid(state, order_id, Party::Buyer)
        .await
        .map(|_| CancelOutcome::Cancelled)
}

/// An order nobody paid within the grace period (`jobs::abandoned`): cancelled at DHMAD,
/// unless its buyer finished the payment page without coming back (a guest's proof under
/// review): cancelling would make DHMAD reject a proof of money already sent, with no
/// automatic refund for a guest. `None` when the order was kept for that reason, or because it
/// is no longer abandoned: the buyer came back and opened a payment page while DHMAD was asked.
pub async fn cancel_abandoned(
    state: &AppState,
    order_id: Uuid,
    grace: time::Duration,
) -> OrderResult<Option<Order>> {
    let order = load(state, order_id).await?;
    if payment_review::known(state, &order).await? {
        return Ok(None);
    }
    // The buyer's payment page is not opened while the escrow is cancelled (a page being opened
    // now keeps the order), and the order is asked again under that claim: the look at DHMAD
    // took a while, and the buyer may have come back meanwhile.
    let pay = CheckoutAction::AcceptPay;
    let Some(claim) = OpeningClaim::take(state, order_id, &pay, Party::Buyer).await? else {
        return Ok(None);
    };
    let still = db::orders::list_abandoned(&state.pool, grace, 1, Some(order_id)).await?;
    let cancelled = if still.is_empty() {
        Ok(None)
    } else {
        cancel_unpaid(state, order_id, Party::Merchant)
            .await
            .map(Some)
    };
    claim.release().await;
    cancelled
}

/// The merchant's "cancel": before payment through the API; after, cancel and refund on
/// DHMAD's page.
pub async fn merchant_cancel(state: &AppState, order_id: Uuid) -> OrderResult<CancelOutcome> {
    let order = load(state, order_id).await?;
    if order.allows(Action::CancelAndRefund) {
        return hosted_step(state, order_id, Action::CancelAndRefund)
            .await
            .map(CancelOutcome::OnDhmad);
    }
    if !order.is_instant() {
        return cancel_unpaid(state, order_id, Party::Merchant)
            .await
            .map(|_| CancelOutcome::Cancelled);
    }
    // A guest pays outside DHMAD's wallet, then sends a proof on the payment page: cancelled
    // while that page is open, DHMAD would reject a proof of money already sent, which nobody
    // refunds a guest automatically (§4.2). So not while the buyer's page is open, or being
    // opened (its claim is held meanwhile), as the abandoned-order job waits.
    let pay = CheckoutAction::AcceptPay;
    let page_open = || {
        OrderError::not_allowed(
            "The buyer's payment page is open, and a guest may be paying outside DHMAD's \
             wallet: cancel once it has expired (DHMAD's pages last 30 minutes), and five \
             minutes more for DHMAD's clock.",
        )
    };
    let Some(claim) = OpeningClaim::take(state, order_id, &pay, Party::Buyer).await? else {
        return Err(OrderError::not_allowed(
            "A payment page is being opened for this order, or it is being cancelled already: \
             try again in a moment.",
        ));
    };
    let cancelled = match db::sessions::list_for_order(&state.pool, order_id).await {
        Ok(pages) if buyer_payment_page_open(&order, &pages, time::OffsetDateTime::now_utc()) => {
            Err(page_open())
        }
        Ok(_) => cancel_unpaid(state, order_id, Party::Merchant).await,
        Err(e) => Err(e.into()),
    };
    claim.release().await;
    cancelled.map(|_| CancelOutcome::Cancelled)
}
