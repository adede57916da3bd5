//! Checkouts past DHMAD's rate limit wait in line instead of failing: the order is saved, the
//! buyer waits on a page that refreshes itself (`GET /orders/{id}/checkout`), and a worker on
//! any instance makes the order's DHMAD calls as the shared budget frees up, its clients in
//! turn (`db::checkout_queue`). A checkout never jumps the line (`Claimant::NewCheckout`).

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    checkout,
    sessions::{live_session, next_buyer_action, Party},
    CheckoutStarted, Order, OrderError, OrderResult, OrderStatus,
};
use crate::budget;
use crate::db::{self, budget::Claimant};
use crate::state::AppState;

/// How soon a queued checkout whose escrow another request is creating is looked at again.
const IN_FLIGHT_RECHECK: Duration = Duration::from_secs(2);

/// A new order's calls: create the escrow, open the payment (or contract) session.
pub const CALLS_PER_CHECKOUT: u32 = 2;

/// How long a worker holds a queued checkout before another may take it over (it is making
/// at most two calls, each bounded by the client's timeout).
pub(crate) fn lease(state: &AppState) -> Duration {
    state.config.dhmad_timeout * 3 + Duration::from_secs(5)
}

/// The calls a checkout of this order makes before its buyer can be sent to DHMAD: none while
/// its next page (the contract to sign, else the payment) is open, or while another request
/// creates its escrow; one, the look at DHMAD before a refusal, when it can only be refused (a
/// payment under review, a contract the shop has not signed); else two (create the escrow, or
/// read it again, then open a session). Taken ahead, they keep the checkout in its turn.
pub async fn calls_needed(state: &AppState, order: &Order) -> OrderResult<u32> {
    // Another request is making them: this one is told to wait, and calls nothing.
    if checkout::creation_in_flight(state, order) {
        return Ok(0);
    }
    if order.escrow_id.is_none() || order.status != OrderStatus::AwaitingPayment {
        return Ok(CALLS_PER_CHECKOUT);
    }
    let Some(action) = next_buyer_action(order) else {
        return Ok(1);
    };
    let live = live_session(&state.pool, order, &action, Party::Buyer).await?;
    Ok(if live.is_some() {
        0
    } else {
        CALLS_PER_CHECKOUT
    })
}

/// Where a queued checkout stands.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Place {
    pub order_id: Uuid,
    /// Checkouts ahead of this one.
    pub ahead: i64,
    /// About how long until its turn, in whole seconds (at least 1).
    pub wait_secs: u64,
}

/// The order's place in line, or `None` if it is not waiting.
pub async fn place(state: &AppState, order_id: Uuid) -> OrderResult<Option<Place>> {
    let Some(ahead) = db::checkout_queue::ahead_of(&state.pool, order_id).await? else {
        return Ok(None);
    };
    let window = state.config.dhmad_budget.reuse_after();
    let frees_at = db::budget::frees_at(&state.pool, window).await?;
    let calls = CALLS_PER_CHECKOUT as usize;
    let ahead_calls = usize::try_from(ahead).unwrap_or(0) * calls;
    let now = OffsetDateTime::now_utc();
    let wait = budget::expected_wait(&frees_at, ahead_calls, calls, window, now);
    Ok(Some(Place {
        order_id,
        ahead,
        wait_secs: wait.as_secs().max(1),
    }))
}

/// Puts the order in line for the current client (it keeps its place if already there) and
/// wakes this instance's worker.
pub async fn enqueue(state: &AppState, order_id: Uuid) -> OrderResult<Place> {
    let client = super::client::current();
    db::checkout_queue::enqueue(&state.pool, order_id, client.as_deref()).await?;
    joined(state, order_id).await
}

/// The order was written in line (`db::orders::insert_open`): wakes this instance's worker and
/// says where it stands.
pub async fn joined(state: &AppState, order_id: Uuid) -> OrderResult<Place> {
    state.checkout_queue.notify_one();
    tracing::info!(order.ref = %crate::orders::log_ref(order_id), "checkout queued for DHMAD's call budget");
    Ok(place(state, order_id).await?.unwrap_or(Place {
        order_id,
        ahead: 0,
        wait_secs: 1,
    }))
}

/// What one turn of the worker did.
#[derive(Debug)]
pub enum Turn {
    /// Nobody is waiting.
    Idle,
    /// A checkout is being served (on its own task); take the next at once.
    Serving,
    /// The budget is spent: try again after this.
    Wait(Duration),
}

/// Takes the next waiting checkout if the budget has its calls, and serves it on a task of
/// its own in `tasks` (so a slow DHMAD does not hold the line, and shutdown waits for it).
pub async fn serve_next(
    state: &AppState,
    tasks: &tokio_util::task::TaskTracker,
) -> OrderResult<Turn> {
    let pool = &state.pool;
    let Some(order_id) = db::checkout_queue::claim_next(pool, lease(state)).await? else {
        return Ok(Turn::Idle);
    };
    let Some(order) = db::orders::get(pool, order_id).await? else {
        db::checkout_queue::remove(pool, order_id).await?;
        return Ok(Turn::Serving);
    };
    let calls = calls_needed(state, &order).await?;
    let limits = state.config.dhmad_budget;
    let Some(taken) = budget::take(pool, limits, calls, Claimant::Interactive).await? else {
        db::checkout_queue::release(pool, order_id).await?;
        // Until all of its calls are free: a late call's row frees later than its twin.
        let ahead = i32::try_from(calls.saturating_sub(1)).unwrap_or(i32::MAX);
        let wait = db::budget::next_free_in(pool, limits.reuse_after(), ahead).await?;
        return Ok(Turn::Wait(wait.max(Duration::from_millis(50))));
    };
    let taker = taken.taker;
    let prepaid = state.spending_as(Claimant::Interactive, taken);
    tasks.spawn(async move {
        let served = serve(&prepaid, order, taker).await;
        prepaid.give_back_unspent().await;
        if let Err(e) = served {
            tracing::warn!(order.ref = %crate::orders::log_ref(order_id), error = %e, cause = e.cause(), "queued checkout failed");
        }
    });
    Ok(Turn::Serving)
}

/// Makes a queued order's calls, with the budget rows `taker` took for them. It leaves the
/// line once served, or once it cannot be (the order keeps the reason, and its page says what
/// to do); a spent budget puts it back.
async fn serve(state: &AppState, order: Order, taker: Uuid) -> OrderResult<CheckoutStarted> {
    let id = order.id;
    match checkout::resume(state, order).await {
        Err(OrderError::Busy { retry_after }) => {
            // The budget holds every call back for as long as DHMAD said (`budget.rs`); the
            // order waits as long too, so that with no budget kept (`DHMAD_RATE_LIMIT=0`) it
            // is not sent again every turn while DHMAD's window is spent. Bounded (`busy_for`):
            // a parked order keeps the line, and a line holds back every background job (and
            // new checkouts) until it is served.
            db::checkout_queue::release_after(&state.pool, id, retry_after).await?;
            tracing::info!(order.ref = %crate::orders::log_ref(id), ?retry_after, "queued checkout waits again");
            Err(OrderError::Busy { retry_after })
        }
        // Another request's creation of its escrow may still be making its calls: one whose
        // worker's lease ran out (it stopped, or DHMAD was slow) is in flight for a while yet.
        // The order keeps its place, and is served once that creation's answer is in or its
        // time is up (then looked up at DHMAD, by its title). Removed, its buyer's waiting page
        // sent them to the order to click "Pay" again.
        Err(OrderError::InProgress) => {
            db::checkout_queue::release_after(&state.pool, id, IN_FLIGHT_RECHECK).await?;
            tracing::info!(order.ref = %crate::orders::log_ref(id), "queued checkout waits for a creation in flight");
            Err(OrderError::InProgress)
        }
        // The database failed for a while (a pool or lock timeout in the very burst that
        // queued it): an order that has not moved on is still `new`, which nothing but this
        // line serves, so it keeps its place and the next turn tries again. (A lasting error
        // leaves the line, so that one order cannot hold it up.)
        Err(OrderError::Database(e)) if db::is_transient(&e) => {
            let order = db::orders::get(&state.pool, id).await?;
            if order.is_some_and(|o| o.status == OrderStatus::New) {
                // Still `new`: no call was sent, so its rows go back to the budget. Kept, a
                // row locked for a while burned two calls a turn, and the line held back
                // every background job meanwhile.
                if let Err(e) = db::budget::give_back(&state.pool, taker).await {
                    tracing::warn!(order.ref = %crate::orders::log_ref(id), error = %e, "could not give the turn's calls back");
                }
                db::checkout_queue::release(&state.pool, id).await?;
                tracing::warn!(order.ref = %crate::orders::log_ref(id), error = %e, "queued checkout keeps its place after a database failure");
            } else {
                db::checkout_queue::remove(&state.pool, id).await?;
            }
            Err(OrderError::Database(e))
        }
        other => {
            db::checkout_queue::remove(&state.pool, id).await?;
            if let Err(e) = &other {
                // A lasting failure before the first DHMAD call leaves the order `new`: it says
                // why, for the merchant, and the reconciler does not put it back in line.
                let why = format!(
                    "the checkout could not start: {}",
                    e.cause().unwrap_or_else(|| e.to_string())
                );
                db::orders::set_failure_reason_if_new(&state.pool, id, Some(&why)).await?;
            }
            other
        }
    }
}

/// Where the buyer of a checkout should be now.
#[derive(Debug)]
pub enum Progress {
    /// Still in line, or its calls are being made.
    Waiting(Place),
    /// DHMAD's page is open: this URL.
    OnDhmad(String),
    /// Not waiting and no page open (paid, failed, cancelled…): the order's own page says.
    Elsewhere,
}

/// What the waiting page shows or where it sends the buyer.
pub async fn progress(state: &AppState, order_id: Uuid) -> OrderResult<Progress> {
    if let Some(place) = place(state, order_id).await? {
        return Ok(Progress::Waiting(place));
    }
    let order = db::orders::get(&state.pool, order_id)
        .await?
        .ok_or(OrderError::NotFound)?;
    // Its escrow is being made (by a double click's first request, say): seconds away, then
    // the page below opens, or the order's own page says what went wrong.
    if order.status == OrderStatus::CreatingEscrow {
        return Ok(Progress::Waiting(Place {
            order_id,
            ahead: 0,
            wait_secs: 2,
        }));
    }
    // The contract comes first in standard mode, then the payment.
    let Some(action) = next_buyer_action(&order) else {
        return Ok(Progress::Elsewhere);
    };
    // A payment page only if the buyer may be using it alone: else the order's page, whose
    // "Pay" asks DHMAD about the other first (`sessions::live_pay_page`).
    let live = match action {
        dhmad::CheckoutAction::AcceptPay => {
            super::sessions::live_pay_page(&state.pool, &order).await?
        }
        _ => live_session(&state.pool, &order, &action, Party::Buyer).await?,
    };
    Ok(live.map_or(Progress::Elsewhere, |s| Progress::OnDhmad(s.url)))
}

/// The buyer's "pay" from the order page: like a checkout, it waits in line when DHMAD's
/// budget is spent rather than failing.
pub async fn resume_or_queue(state: &AppState, order: Order) -> OrderResult<checkout::Started> {
    let id = order.id;
    // An order that has made no DHMAD call yet is the line's to serve, in its turn: resumed
    // here, a form posted for it would take the budget ahead of the checkouts waiting.
    if order.status == OrderStatus::New {
        // Back in line after the line gave up on it, it no longer says so. Cleared first: an
        // order `new` with no reason and out of line is one the reconciler puts back.
        if order.checkout_gave_up() {
            db::orders::set_failure_reason_if_new(&state.pool, id, None).await?;
        }
        return Ok(checkout::Started::Queued(enqueue(state, id).await?));
    }
    match checkout::resume(state, order).await {
        Ok(started) => Ok(checkout::Started::Ready(started)),
        Err(OrderError::Busy { .. }) => Ok(checkout::Started::Queued(enqueue(state, id).await?)),
        Err(e) => Err(e),
    }
}
