//! The `deliver` job: telling DHMAD the goods are handed over, never twice. After a failed
//! attempt the escrow is read first (its answer may have been lost), and a refusal means "no
//! longer paid" only if a read agrees.

use dhmad::EscrowStatus;

use super::{backoff_give_up, JobOutcome};
use crate::db::{self, outbox::Job};
use crate::orders::{
    call_log, error::busy_for, sync, Applied, Cancellation, Order, OrderError, OrderResult,
    OrderStatus,
};
use crate::state::AppState;

/// Why a `deliver` job sends nothing, if it does not: the order owes none (not paid, or an
/// instant order under a dispute), or a quick or standard one is held (`ship_held`: its line
/// tells the merchant why, a dispute included).
async fn not_to_send(state: &AppState, order: &Order) -> OrderResult<Option<JobOutcome>> {
    let nothing = || {
        JobOutcome::Done(format!(
            "nothing to deliver: order is {}",
            order.status.as_str()
        ))
    };
    // A dispute holds only what is still to ship; a delivered order is past it.
    let held_by_dispute = order.status == OrderStatus::Paid && order.dispute_open();
    if !order.deliver_due() && !held_by_dispute {
        return Ok(Some(nothing()));
    }
    if let Some((why, then)) = ship_held(order) {
        let line = format!("The delivery was not sent to DHMAD: {why}. {then}");
        db::events::add(&state.pool, order.id, "ship_held", &line, None).await?;
        return Ok(Some(JobOutcome::Done(format!("not sent: {why}"))));
    }
    Ok((!order.deliver_due()).then(nothing))
}

/// Sends `POST /escrows/:id/deliver` for a job. Deliver is never blindly resent: after a failed
/// attempt the escrow is read first, and a 400 means "no longer paid" only if a read agrees.
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(job.order_id), job.id = job.id, job.attempt = job.attempts))]
pub async fn run_deliver(state: &AppState, job: &Job) -> OrderResult<JobOutcome> {
    let call_order = job.order_id;
    call_log::for_order(
        call_order,
        Box::pin(async move {
            let Some(order) = db::orders::get(&state.pool, job.order_id).await? else {
                return Ok(JobOutcome::GiveUp("order not found".into()));
            };
            let Some(escrow_id) = order.escrow_id.clone() else {
                return Ok(JobOutcome::GiveUp("order has no escrow".into()));
            };
            if let Some(outcome) = not_to_send(state, &order).await? {
                return Ok(outcome);
            }
            if job.attempts > 1 {
                // An earlier attempt may have been applied, its answer lost: DHMAD took the
                // delivery, and the buyer may even have rejected it since (paid again). Sent
                // again, it would mark the goods delivered once more, against the buyer's
                // rejection, with nothing shipped: the merchant ships again once it is settled.
                match awaits_delivery_for(state, job, &escrow_id).await? {
                    // The read may have told of a dispute (its ticket): asked again on the order
                    // as the read left it.
                    Awaits::Yes => {
                        let order = db::orders::get(&state.pool, order.id)
                            .await?
                            .ok_or(OrderError::NotFound)?;
                        if let Some(outcome) = not_to_send(state, &order).await? {
                            return Ok(outcome);
                        }
                    }
                    Awaits::MovedOn => {
                        return Ok(JobOutcome::Done("escrow already moved on".into()))
                    }
                    Awaits::NotYet(status) => {
                        return Ok(backoff_give_up(
                            job,
                            format!(
                                "DHMAD's read says the escrow is {status}: deliver not sent yet"
                            ),
                        ))
                    }
                    Awaits::Behind(status) => {
                        return Ok(backoff_give_up(
                            job,
                            format!(
                                "DHMAD's read (escrow {status}) is older than what the shop \
                                 knows: deliver not sent yet"
                            ),
                        ))
                    }
                    Awaits::RejectedSince => {
                        let line = "DHMAD took the delivery and the buyer rejected it since: \
                                    not sent again. Ship again once it is settled";
                        db::events::add(&state.pool, order.id, "ship_held", line, None).await?;
                        return Ok(JobOutcome::Done("delivered and rejected since".into()));
                    }
                    // Not sent blind: the read comes first, at the next attempt.
                    Awaits::Unknown(e) => {
                        return Ok(match busy_for(&e) {
                            Some(wait) => JobOutcome::Postpone(wait),
                            None => backoff_give_up(
                                job,
                                format!("escrow unreadable, deliver not sent again: {e}"),
                            ),
                        })
                    }
                }
            }
            // Shutdown has begun: the process may end before DHMAD's answer is recorded (the
            // jobs' drain covers a call in flight, not one started late), and a deliver whose
            // answer is lost costs a read and the lease's wait. The next instance sends it.
            if state.stopping() {
                return Ok(JobOutcome::Postpone(std::time::Duration::ZERO));
            }
            match state.dhmad.deliver_escrow(&escrow_id).await {
                Ok(res) => {
                    sync::apply_in_tx(state, &res.escrow, "deliver accepted by DHMAD").await?;
                    Ok(JobOutcome::Done(format!(
                        "delivered: escrow is {}",
                        res.escrow.status
                    )))
                }
                Err(dhmad::Error::Conflict(api))
                    if api.code == Some(dhmad::ErrorCode::ProofNotAccepted) =>
                {
                    learn_proof_refusal(state, &order, &escrow_id).await?;
                    Ok(JobOutcome::Done("DHMAD: proof not accepted yet".into()))
                }
                // As after a read (`sync::refresh_order`): asking again will not help. The
                // order is flagged for the merchant, and no new deliver is queued until the
                // flag is cleared (`db::orders::list_missing_deliver`).
                Err(e @ (dhmad::Error::NotFound(_) | dhmad::Error::Forbidden(_))) => {
                    let why = format!("DHMAD does not know escrow {escrow_id} ({e})");
                    crate::orders::snapshot::flag(&state.pool, order.id, &why).await?;
                    Ok(JobOutcome::GiveUp(why))
                }
                Err(e) if busy_for(&e).is_some() => {
                    Ok(JobOutcome::Postpone(busy_for(&e).unwrap_or_default()))
                }
                Err(e) => {
                    let refused = matches!(
                        e,
                        dhmad::Error::BusinessRule { .. } | dhmad::Error::Validation(_)
                    );
                    if refused && moved_on(state, &escrow_id).await? {
                        Ok(JobOutcome::Done("escrow no longer paid".into()))
                    } else {
                        Ok(backoff_give_up(job, format!("deliver failed: {e}")))
                    }
                }
            }
        }),
    )
    .await
}

/// DHMAD refused a deliver with 409 PROOF_NOT_ACCEPTED: our copy of the proof gate was ahead
/// of DHMAD's, and nothing is to be retried until the proof is accepted. DHMAD's view is
/// learned, and the merchant ships again from there. The refusal says our copy is wrong, so
/// DHMAD's phase is kept even where a gate could not go back to it by events (a snapshot keeps
/// it out); unless news changed the phase since the job read it (an acceptance's event between
/// DHMAD's answer and now), under the order's lock.
async fn learn_proof_refusal(state: &AppState, order: &Order, escrow_id: &str) -> OrderResult<()> {
    let read = read_escrow(state, escrow_id).await?;
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    let now = db::orders::lock(&mut *tx, order.id).await?;
    let unchanged = now.is_some_and(|o| o.proof_phase == order.proof_phase);
    let phase = read
        .now()
        .and_then(|e| e.proof_info.as_ref()?.phase.as_ref())
        .filter(|_| unchanged);
    if let Some(phase) = phase {
        let facts = db::orders::EscrowFacts {
            proof_phase: Some(phase.as_str()),
            ..Default::default()
        };
        db::orders::set_escrow_facts(&mut *tx, order.id, &facts).await?;
    }
    let line = "DHMAD refused the delivery: the proof of purchase is not accepted yet (409)";
    db::events::add(&mut *tx, order.id, "ship_refused", line, None).await?;
    tx.commit().await?;
    Ok(())
}

/// Why the merchant's "ship" (the `deliver` of a quick or standard order) may not go to DHMAD
/// now, though it was queued when it could: the buyer has asked to cancel since, and the shop
/// answers that first, or has accepted, as the state machine has the button wait
/// (`Action::Ship`). A dead job run again from the outbox page is held the same way. (The proof
/// gate is left to DHMAD, which refuses with 409 while its copy is behind ours.) An instant
/// order's deliver is the shop's own hand-over, due with the payment. Returns why, and what
/// the merchant does next.
fn ship_held(order: &Order) -> Option<(&'static str, &'static str)> {
    if order.is_instant() {
        return None;
    }
    // A ticket DHMAD's read named while the status stays `paid` (`Order::dispute_open`).
    if order.dispute_open() {
        return Some((
            "a dispute is open with DHMAD",
            "Ship once DHMAD has decided it",
        ));
    }
    match order.cancellation_request() {
        Some(Cancellation::Requested) => Some((
            "the buyer's cancellation request waits for the shop's answer",
            "Ship again once it is settled",
        )),
        Some(Cancellation::Accepted) => Some((
            "the shop accepted the buyer's cancellation",
            "Nothing is to be shipped: DHMAD cancels the escrow",
        )),
        _ => None,
    }
}

/// Whether an escrow still waits for the delivery a job was queued for.
enum Awaits {
    Yes,
    /// Past payment: delivered, settled or disputed.
    MovedOn,
    /// Not paid yet as DHMAD's API reads it (`pending`), or a status this client does not
    /// know: DHMAD's signed event may run ahead of its API (`snapshot` keeps a paid order paid
    /// over such a read), so the deliver is tried again later, not closed. Closed, nothing
    /// would queue it again (`list_missing_deliver` skips an order whose deliver closed since
    /// its escrow last changed), and the merchant would never be paid.
    NotYet(EscrowStatus),
    /// The read is older than what the order already knows (DHMAD's API behind its signed
    /// events: `delivered` from before a rejection whose `paid` came): it says nothing of now,
    /// and closed on it, the job would drop the merchant's ship. Tried again later.
    Behind(EscrowStatus),
    /// Paid, but the buyer rejected a delivery made after the job was queued.
    RejectedSince,
    /// DHMAD did not answer the read.
    Unknown(Box<dhmad::Error>),
}

/// [`awaits_delivery`] for `job`, dated as it was claimed; or, when the merchant has shipped
/// again since (`mark_shipped` dates the open job anew), as it is dated now: the delivery the
/// buyer rejected is older than that ship.
async fn awaits_delivery_for(state: &AppState, job: &Job, escrow_id: &str) -> OrderResult<Awaits> {
    let awaits = awaits_delivery(state, escrow_id, job.queued_at).await?;
    if !matches!(awaits, Awaits::RejectedSince) {
        return Ok(awaits);
    }
    match db::outbox::queued_at(&state.pool, job.id).await? {
        Some(now) if now > job.queued_at => awaits_delivery(state, escrow_id, now).await,
        _ => Ok(awaits),
    }
}

/// Reads the escrow, applies it, and tells whether a deliver queued at `queued_at` is still
/// due. An escrow DHMAD does not know is left to the deliver's own 404, which flags the order.
/// A rejection is dated by DHMAD's clock, the job by ours: a skew larger than the time between
/// a rejection and the merchant's next "ship" holds that ship, with a line telling the
/// merchant to ship again.
async fn awaits_delivery(
    state: &AppState,
    escrow_id: &str,
    queued_at: time::OffsetDateTime,
) -> OrderResult<Awaits> {
    let e = match read_escrow(state, escrow_id).await? {
        Read::Behind(e) if past_payment(&e.status) => return Ok(Awaits::Behind(e.status)),
        // `pending` under a paid order: `NotYet`, as it says.
        Read::Now(e) | Read::Behind(e) => e,
        Read::Failed(dhmad::Error::NotFound(_) | dhmad::Error::Forbidden(_)) => {
            return Ok(Awaits::Yes)
        }
        Read::Failed(e) => return Ok(Awaits::Unknown(Box::new(e))),
    };
    let rejected_since = e
        .delivery_rejections
        .iter()
        .flatten()
        .any(|r| r.rejected_at > queued_at);
    Ok(match e.status {
        EscrowStatus::Paid if rejected_since => Awaits::RejectedSince,
        EscrowStatus::Paid => Awaits::Yes,
        s if past_payment(&s) => Awaits::MovedOn,
        s => Awaits::NotYet(s),
    })
}

/// DHMAD refused a deliver: reads the escrow, applies it, and tells whether it is past
/// payment, so that no deliver is owed. Unread, older than the order, `pending` or unknown:
/// not known to be, and the job tries again (see [`Awaits::NotYet`], [`Awaits::Behind`]).
async fn moved_on(state: &AppState, escrow_id: &str) -> OrderResult<bool> {
    let read = read_escrow(state, escrow_id).await?;
    Ok(read.now().is_some_and(|e| past_payment(&e.status)))
}

/// Delivered, settled or disputed: a deliver has nothing left to do.
fn past_payment(status: &EscrowStatus) -> bool {
    matches!(
        status,
        EscrowStatus::Delivered
            | EscrowStatus::Completed
            | EscrowStatus::Cancelled
            | EscrowStatus::Disputed
    )
}

/// What a read of the escrow before (or after) a deliver found.
enum Read {
    /// The escrow as DHMAD has it now, applied to the order.
    Now(dhmad::Escrow),
    /// An answer older than what the order knows (`Applied::Stale`): not applied.
    Behind(dhmad::Escrow),
    /// DHMAD did not answer.
    Failed(dhmad::Error),
}

impl Read {
    fn now(&self) -> Option<&dhmad::Escrow> {
        match self {
            Read::Now(e) => Some(e),
            Read::Behind(_) | Read::Failed(_) => None,
        }
    }
}

async fn read_escrow(state: &AppState, escrow_id: &str) -> OrderResult<Read> {
    Ok(match state.dhmad.get_escrow(escrow_id).await {
        Ok(e) => match sync::apply_in_tx(state, &e, "read before deliver").await? {
            Applied::Stale { .. } => Read::Behind(e),
            _ => Read::Now(e),
        },
        Err(e) => Read::Failed(e),
    })
}
