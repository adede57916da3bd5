//! Fulfilment: what the shop does once DHMAD holds the buyer's money. This is the fork point
//! of the template: a shop replaces `issue_digital_good` with its own good, or queues its own
//! outbox job from `on_funded` for a hand-over with effects outside the database (the good is
//! computed before a transaction that may be retried; only the job runs once).

use std::time::Duration;

use dhmad::CheckoutAction;
use rand::Rng;
use uuid::Uuid;

use super::{notify, sessions, Action, Cancellation, Order, OrderError, OrderResult, OrderStatus};
use crate::db::{self, events::NewEvent, outbox::Job};
use crate::state::AppState;

mod deliver;
pub use deliver::run_deliver;

pub const DELIVER: &str = "deliver";
/// After this many failed deliver attempts the job is given up and shown in the back office.
const MAX_ATTEMPTS: i32 = 12;

/// What happens when DHMAD first holds (or has released) the buyer's money, whatever
/// transition got there: a `completed` may arrive before its `paid`. Instant orders get their
/// good at once (`code_to_issue`, kept by the same UPDATE as the news), with a line and an
/// e-mail, and a queued `deliver` while DHMAD still waits for it: all in the transaction that
/// applies the news, never one without the other.
pub fn on_funded(order: &Order, code_issued: bool, funded: &mut Funded) {
    if !order.is_instant() {
        return; // quick orders wait for the merchant to ship
    }
    if code_issued {
        funded.lines.push(NewEvent {
            kind: "fulfilled",
            detail: "Digital code issued".into(),
            public: Some("Your code is ready"),
        });
        funded.jobs.push(notify::GOOD);
    }
    if order.deliver_due() {
        funded.jobs.push(DELIVER);
    }
}

/// What a first move into "funded" writes, beyond the status itself: timeline lines and jobs,
/// written by the caller with its own (one statement each).
#[derive(Debug, Default)]
pub struct Funded {
    pub lines: Vec<NewEvent<'static>>,
    pub jobs: Vec<&'static str>,
}

/// The instant good to issue when `order` is funded now: a new code, unless it has one.
pub fn code_to_issue(order: &Order) -> Option<String> {
    (order.is_instant() && order.digital_code.is_none()).then(issue_digital_good)
}

/// A random redemption code such as `AIC-7KQ2-M9XD-4TZP` (no 0/O/1/I to misread).
pub fn issue_digital_good() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    let mut group = || {
        (0..4)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect::<String>()
    };
    format!("AIC-{}-{}-{}", group(), group(), group())
}

/// The merchant shipped a quick order: queue the DHMAD deliver call (or have the open one,
/// queued before the buyer rejected a delivery, carry this ship). `false` when one was queued
/// already for it (nothing new: the earlier click's deliver is on its way).
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order_id)))]
pub async fn mark_shipped(state: &AppState, order_id: Uuid) -> OrderResult<bool> {
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    let order = db::orders::lock(&mut *tx, order_id)
        .await?
        .ok_or(OrderError::NotFound)?;
    if !order.allows(Action::Ship) {
        return Err(OrderError::not_allowed(ship_refusal(&order)));
    }
    let mut queued = db::outbox::enqueue_after(&mut *tx, DELIVER, order.id).await?;
    if let (false, Some(changed)) = (queued, order.escrow_updated_at) {
        // The open deliver predates the escrow's last change, here a buyer's rejection (an
        // earlier ship whose answer was lost, still retrying): it would find the rejection made
        // since it was queued and close unsent (`Awaits::RejectedSince`). It now carries this
        // ship, made after it. Whether a rejection is recorded does not matter: a read that
        // brought the order back to paid records none (the event with the reason was lost).
        // (A double click finds it dated after the change already: nothing new.)
        queued = db::outbox::redate_open(&mut *tx, DELIVER, order.id, changed).await?
            // Or it closed between the two statements (its attempt found the rejection): this
            // ship gets a job of its own.
            || db::outbox::enqueue_after(&mut *tx, DELIVER, order.id).await?;
    }
    if queued {
        db::events::add(
            &mut *tx,
            order.id,
            "shipped",
            "Marked as shipped by the merchant",
            Some("The shop is shipping your order"),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(queued)
}

/// Why the merchant may not ship now, as the state machine's `Ship` rule has it.
fn ship_refusal(order: &Order) -> String {
    if order.status != OrderStatus::Paid || order.is_instant() {
        format!(
            "Only paid quick and standard orders can be shipped (this one is {}).",
            order.status.merchant_label().to_lowercase()
        )
    } else if order.dispute_open() {
        "A dispute is open with DHMAD: nothing is shipped until DHMAD has decided it.".into()
    } else if order.cancellation_pending() {
        "The buyer has asked to cancel: answer the request first.".into()
    } else if order.cancellation_request() == Some(Cancellation::Accepted) {
        "You accepted the buyer's cancellation: DHMAD is cancelling the escrow, so nothing is to be shipped.".into()
    } else {
        "DHMAD has not accepted the proof of purchase yet: submit it, or wait for the buyer's review.".into()
    }
}

/// Queues the `deliver` a paid instant order is owed and has none of (the reconciler's
/// repair), unless the merchant abandoned its last one. Under the order's lock, as the
/// merchant's abandon takes it: a re-queue that read the job before an abandon committed
/// would queue a deliver the merchant had just called off. Whether one was queued.
pub async fn requeue_deliver(state: &AppState, order_id: Uuid) -> OrderResult<bool> {
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    // As the list read it, still: a webhook may have moved it on since (delivered, disputed).
    let owed = db::orders::lock(&mut *tx, order_id)
        .await?
        .is_some_and(|o| o.allows(Action::RetryDeliver) && o.attention.is_none());
    if !owed {
        return Ok(false);
    }
    let queued = db::outbox::enqueue_unless_abandoned(&mut *tx, DELIVER, order_id).await?;
    tx.commit().await?;
    Ok(queued)
}

/// The merchant asks for the `deliver` DHMAD still waits for to run now (after attempts that
/// failed or gave up). `false` when one is running right now: it is left to finish.
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order_id)))]
pub async fn retry_deliver(state: &AppState, order_id: Uuid) -> OrderResult<bool> {
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    let order = db::orders::lock(&mut *tx, order_id)
        .await?
        .ok_or(OrderError::NotFound)?;
    if !order.allows(Action::RetryDeliver) {
        return Err(OrderError::not_allowed(format!(
            "Only paid instant orders wait for a deliver (this one is {}).",
            order.status.merchant_label()
        )));
    }
    // A deliver running right now is left to finish: what the merchant asks for is under way.
    let queued = db::outbox::run_now(&mut *tx, DELIVER, order.id).await?;
    if queued {
        db::events::add(
            &mut *tx,
            order.id,
            "deliver_retried",
            "Deliver retried by the merchant",
            None,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(queued)
}

/// The buyer confirms receipt of a delivered quick order: a `complete` session on DHMAD.
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order.id)))]
pub async fn confirm_receipt_url(state: &AppState, order: &Order) -> OrderResult<String> {
    if !order.allows(Action::ConfirmReceipt) {
        let delivered = order.status == OrderStatus::Delivered;
        let why = match order.cancellation_request() {
            // DHMAD refuses a `complete` while a cancellation waits (`CANCELLATION_PENDING`).
            Some(Cancellation::Requested) if delivered => {
                "You asked to cancel this order and the shop has not answered yet: you can \
                 confirm receipt once it has."
                    .to_owned()
            }
            Some(Cancellation::Accepted) if delivered => {
                "The shop accepted your cancellation: DHMAD is cancelling the order, so there \
                 is nothing to confirm."
                    .to_owned()
            }
            _ => format!(
                "There is nothing to confirm yet (the order is {}).",
                order.status.label()
            ),
        };
        return Err(OrderError::not_allowed(why));
    }
    let (page, buyer) = (CheckoutAction::Complete, sessions::Party::Buyer);
    let step = Action::ConfirmReceipt;
    Ok(
        super::actions::step_page(state, order.clone(), step, page, buyer)
            .await?
            .url,
    )
}

/// What became of one job attempt.
#[derive(Debug)]
pub enum JobOutcome {
    Done(String),
    Retry(String),
    /// Failed, and counted: the next try waits at least this long (or its backoff, if longer).
    RetryIn(Duration, String),
    GiveUp(String),
    /// Nothing was done and nothing is wrong (DHMAD's call budget is spent, or the order waits
    /// on a dispute): the attempt does not count; run again after this.
    Postpone(Duration),
}

/// A failed attempt: tried again later, or given up once the job has had its attempts.
pub fn backoff_give_up(job: &Job, error: String) -> JobOutcome {
    give_up_after(MAX_ATTEMPTS, job, error)
}

/// [`backoff_give_up`] for a job that may wait longer: after `max` attempts.
pub fn give_up_after(max: i32, job: &Job, error: String) -> JobOutcome {
    if job.attempts >= max {
        JobOutcome::GiveUp(error)
    } else {
        JobOutcome::Retry(error)
    }
}

/// Exponential backoff with jitter, from one second up to five minutes.
pub fn backoff(attempts: i32) -> Duration {
    let base =
        Duration::from_secs(1u64 << attempts.clamp(0, 9) as u32).min(Duration::from_secs(300));
    base / 2 + base.mul_f64(rand::random::<f64>() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_random_and_readable() {
        let a = issue_digital_good();
        assert_eq!(a.len(), "AIC-XXXX-XXXX-XXXX".len());
        assert_ne!(a, issue_digital_good());
        assert!(!a[4..].contains(['0', 'O', '1', 'I']));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_secs(2));
        assert!(backoff(20) <= Duration::from_secs(300));
        assert!(backoff(20) >= Duration::from_secs(150));
    }
}
