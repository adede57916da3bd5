//! What each DHMAD event means for the order, beyond the escrow snapshot it carries (which
//! `apply_escrow_snapshot` has applied already): the buyer's cancellation request and its
//! answer, a rejected delivery, a rejected payment proof, changed details. Each sets the facts
//! the order's state machine asks about and writes the timeline: the internal line for the back
//! office, and what the buyer reads.

use dhmad::{CancellationRequestStatus, CheckoutAction, Event};
use sqlx::PgConnection;

use super::{snapshot, Applied, Cancellation, Order};
use crate::db;

/// Runs under the order's row lock taken by `apply_escrow_snapshot`; `order` is the order as
/// that left it.
pub async fn apply(
    conn: &mut PgConnection,
    order: &Order,
    event: &Event,
    applied: &Applied,
) -> sqlx::Result<()> {
    let mut late = matches!(applied, Applied::Stale { .. });
    let (detail, public): (String, Option<String>) = match event {
        // The transition is on the timeline already.
        Event::EscrowStatusUpdated(_) => return Ok(()),
        Event::DepositProofRejected(d) => {
            let reason = d
                .deposit_proof
                .reason
                .as_deref()
                .unwrap_or("no reason given");
            // The cancellation came before this rejection of the proof it made DHMAD reject
            // (`webhook::apply_read` marks the review): its line promised DHMAD returns the
            // money, which it does not for a guest's. Told now.
            let cancelled_before = order.cancelled_over_guest_proof()
                && !matches!(applied, Applied::Transitioned { .. });
            if cancelled_before {
                let detail = format!("Payment proof rejected by DHMAD as it cancelled: {reason}");
                let public = Some(snapshot::GUEST_CANCELLED);
                return db::events::add(&mut *conn, order.id, "event", &detail, public).await;
            }
            if !order.takes_deposit_rejection() {
                // Paid (or over) meanwhile, by another payment: history for the back office.
                // Telling the buyer to send a new proof would ask them to pay twice.
                return db::events::add(
                    &mut *conn,
                    order.id,
                    "late_event",
                    &format!(
                        "Payment proof rejected by DHMAD, the order being {}: {reason}",
                        order.status.as_str()
                    ),
                    None,
                )
                .await;
            }
            snapshot::record_deposit_rejection(conn, order, reason).await?;
            late = false; // recorded, whatever the snapshot's age
            (
                format!("Payment proof rejected by DHMAD: {reason}"),
                Some(format!(
                    "DHMAD could not accept your payment proof: {reason}. You can send a new one."
                )),
            )
        }
        Event::DeliveryRejected(d) => {
            let reason = d.delivery_rejection.reason.as_deref();
            if !late {
                db::orders::set_delivery_rejection(&mut *conn, order.id, reason).await?;
            }
            let said = reason.map(|r| format!(": {r}")).unwrap_or_default();
            (
                format!("The buyer rejected the delivery{said}"),
                Some(format!(
                    "You rejected the delivery{said}. The shop will ship again."
                )),
            )
        }
        Event::CancellationRequested(d) => {
            let reason = d.cancellation_request.reason.as_deref();
            late = !cancellation(conn, order, Cancellation::Requested, reason).await?;
            (
                format!(
                    "The buyer asked to cancel{}",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                Some("You asked to cancel; the shop will answer.".into()),
            )
        }
        Event::CancellationRejected(d) => {
            let state = match d.cancellation_request.status {
                CancellationRequestStatus::Accepted => Cancellation::Accepted,
                _ => Cancellation::Rejected,
            };
            late = !cancellation(conn, order, state, None).await?;
            // Its request says what was decided, whatever the event's name.
            if state == Cancellation::Accepted {
                accepted_lines(conn, order).await?
            } else {
                (
                    "The cancellation request was refused".into(),
                    Some("The shop declined your cancellation request.".into()),
                )
            }
        }
        Event::CancellationAccepted(_) => {
            late = !cancellation(conn, order, Cancellation::Accepted, None).await?;
            accepted_lines(conn, order).await?
        }
        Event::EscrowUpdated(d) => {
            let changed = d.updated_fields.join(", ");
            // The edits are ordered by their own clock (the amount's, apart from the status
            // snapshot's), so a retried older one changes nothing, and one that arrives after
            // other news (a payment: its snapshot is stale then) still lands. Other snapshots
            // repair a lost edit (`snapshot::amount`). (Each other fact has its own order:
            // signatures only add, a request's answer is final, proof phases follow their
            // graph.)
            // Every dated edit moves the clock, one that leaves the amount as it was too, so
            // an older edit arriving after it cannot bring back an amount it replaced.
            let mut amount = None;
            match d.escrow.amount.map(|a| (a, snapshot::amount::storable(a))) {
                Some((a, None)) => {
                    tracing::warn!(order.ref = %crate::orders::log_ref(order.id), amount = %a, "escrow.updated with an amount out of range; amount not changed");
                }
                Some((_, Some(a))) => {
                    let now = time::OffsetDateTime::now_utc();
                    let at = snapshot::sane_clock(d.escrow.updated_at, now);
                    if db::orders::set_amount(&mut *conn, order.id, a, at).await? {
                        amount = (a != order.amount).then_some(a);
                        late = false;
                    } else {
                        late = true;
                    }
                }
                None => {}
            }
            (
                format!("Escrow details updated at DHMAD ({changed})"),
                Some(match amount {
                    Some(a) => format!(
                        "The order was updated: the amount is now {a} {}",
                        order.currency
                    ),
                    None => "The order's details were updated".into(),
                }),
            )
        }
        Event::ContractSigned(d) => {
            let c = &d.contract;
            let facts = db::orders::EscrowFacts {
                buyer_signed: c.buyer_signature.as_ref().map(|_| true),
                seller_signed: c.seller_signature.as_ref().map(|_| true),
                ..Default::default()
            };
            if !late {
                db::orders::set_escrow_facts(&mut *conn, order.id, &facts).await?;
            }
            let who = if c.signed_by.as_str() == "buyer" {
                "The buyer"
            } else {
                "The shop"
            };
            let public = if c.is_fully_signed {
                "The contract is signed by both sides: you can pay".to_owned()
            } else if c.signed_by.as_str() == "buyer" {
                "You signed the contract".to_owned()
            } else {
                "The shop signed the contract".to_owned()
            };
            (format!("{who} signed the contract"), Some(public))
        }
        Event::ProofRequired(p) => {
            late = !proof_facts(conn, order, late, &p.proof).await?;
            (
                "DHMAD asks the shop for a proof of purchase".into(),
                Some("The shop will show you a proof of purchase before shipping".into()),
            )
        }
        Event::ProofSubmitted(p) => {
            late = !proof_facts(conn, order, late, &p.proof).await?;
            (
                "The shop submitted its proof of purchase".into(),
                Some("The shop sent its proof of purchase: review it below".into()),
            )
        }
        Event::ProofCorrectionRequested(p) => {
            late = !proof_facts(conn, order, late, &p.proof).await?;
            (
                "The buyer asked for a better proof".into(),
                Some("You asked the shop for a better proof".into()),
            )
        }
        Event::ProofAccepted(p) | Event::ProofAcceptedByTimeout(p) => {
            late = !proof_facts(conn, order, late, &p.proof).await?;
            let how = if matches!(event, Event::ProofAcceptedByTimeout(_)) {
                "accepted (the review time passed)"
            } else {
                "accepted"
            };
            (
                format!("Proof of purchase {how}: shipping unlocked"),
                Some(format!(
                    "The proof of purchase was {how}; the shop can ship"
                )),
            )
        }
        Event::ProofNeedsReview(p) => {
            late = !proof_facts(conn, order, late, &p.proof).await?;
            (
                "Proof escalated to DHMAD after the maximum of corrections".into(),
                Some("DHMAD is reviewing the proof of purchase itself".into()),
            )
        }
        Event::ProofExpired(p) => {
            late = !proof_facts(conn, order, late, &p.proof).await?;
            (
                "No proof before the deadline: DHMAD cancelled and refunds the buyer".into(),
                Some(
                    "The shop sent no proof in time: DHMAD cancelled the order and refunds you"
                        .into(),
                ),
            )
        }
        other => (format!("DHMAD event {}", other.event_type()), None),
    };
    let kind = if late { "late_event" } else { "event" };
    // A fact not kept, or news for an order that is over: the buyer's line would contradict
    // what the page shows ("review it below" after the acceptance, "the shop will ship again"
    // after completion). The back office keeps its line.
    // (An event whose own snapshot ends the order, a cancellation accepted or a proof expired,
    // says why it ended, whichever of it and its status event came first.)
    let ends_it = event.escrow().is_some_and(|e| e.status.is_terminal());
    let settled = matches!(applied, Applied::Settled { .. }) && !ends_it;
    let public = public.filter(|_| !late && !settled);
    db::events::add(&mut *conn, order.id, kind, &detail, public.as_deref()).await
}

/// The timeline's lines for an accepted cancellation: DHMAD refunds a wallet's payment, not a
/// guest's (§4.2).
async fn accepted_lines(
    conn: &mut PgConnection,
    order: &Order,
) -> sqlx::Result<(String, Option<String>)> {
    Ok(
        if db::events::has(&mut *conn, order.id, snapshot::PAID_BY_GUEST).await? {
            (
                "The cancellation was accepted; the buyer paid as a guest, outside DHMAD's \
                 wallet: no automatic refund"
                    .into(),
                Some(snapshot::GUEST_CANCELLATION_ACCEPTED.into()),
            )
        } else {
            (
                "The cancellation was accepted; DHMAD refunds the buyer".into(),
                Some("Cancellation accepted: DHMAD refunds you.".into()),
            )
        },
    )
}

/// Keeps the proof gate's phase and deadlines as the event states them, unless the event is
/// late: the snapshot was, or the gate it reports is no news over the stored one
/// (`snapshot::proof_is_news`: its phase cannot follow, or its correction rounds tell an older
/// report). Whether they were kept.
async fn proof_facts(
    conn: &mut PgConnection,
    order: &Order,
    late: bool,
    proof: &dhmad::Proof,
) -> sqlx::Result<bool> {
    if late {
        return Ok(false);
    }
    let phase = proof.phase.as_str();
    // An event that does not count its rounds is ordered by its phase alone, as before.
    if !snapshot::proof_is_news(conn, order, phase, proof.correction_rounds).await? {
        return Ok(false);
    }
    let rounds = proof
        .correction_rounds
        .map(|r| i32::try_from(r).unwrap_or(i32::MAX));
    let facts = db::orders::EscrowFacts {
        proof_phase: Some(phase),
        proof_upload_deadline: proof.upload_deadline,
        proof_review_deadline: proof.review_deadline,
        proof_correction_rounds: rounds,
        ..Default::default()
    };
    db::orders::set_escrow_facts(&mut *conn, order.id, &facts).await?;
    Ok(true)
}

/// Records where the buyer's cancellation request stands, in its own order (none, requested,
/// then a final answer), whatever the order of arrival: a request or an answer whose snapshot
/// is stale (DHMAD does not order events, §6.7) still lands, since nothing else would ever
/// bring it (no escrow snapshot carries the request), and an older event never overwrites a
/// newer answer. Whether it landed.
async fn cancellation(
    conn: &mut PgConnection,
    order: &Order,
    state: Cancellation,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let follows = cancellation_may_follow(order.cancellation, state);
    if follows {
        db::orders::set_cancellation(&mut *conn, order.id, state, reason).await?;
    }
    Ok(follows)
}

/// The request's own order: none, requested, then a final answer that nothing changes. The
/// same step again follows (it changes nothing): an acceptance the page's return recorded
/// first still writes the buyer's line when its event comes.
fn cancellation_may_follow(stored: Option<Cancellation>, next: Cancellation) -> bool {
    !matches!(
        (stored, next),
        (
            Some(Cancellation::Accepted),
            Cancellation::Requested | Cancellation::Rejected
        ) | (Some(Cancellation::Rejected), Cancellation::Requested)
    )
}

/// Where a completed page of DHMAD's for `action` leaves the buyer's cancellation request, if
/// the action is one of the cancellation steps.
pub(super) fn cancellation_step(action: &str) -> Option<Cancellation> {
    match CheckoutAction::from(action) {
        CheckoutAction::RequestCancellation => Some(Cancellation::Requested),
        CheckoutAction::RejectCancellation => Some(Cancellation::Rejected),
        CheckoutAction::AcceptCancellation => Some(Cancellation::Accepted),
        _ => None,
    }
}

/// A cancellation step was taken on DHMAD's page (the callback saw the page completed, or DHMAD
/// refused the step as taken already): records the request or its answer as the event would.
/// No escrow snapshot carries the request and DHMAD does not resend a lost event, so without
/// this a lost `escrow.cancellation.*` left the order waiting for an answer for ever: no
/// shipping, no receipt, buttons DHMAD then refuses. The event, when it comes, finds it
/// recorded and writes the buyer's line. Whether it was new.
pub(super) async fn cancellation_done_on_page(
    conn: &mut PgConnection,
    order: &Order,
    state: Cancellation,
) -> sqlx::Result<bool> {
    let detail = match state {
        Cancellation::Requested => {
            "The buyer asked to cancel on DHMAD's page (its event has not come)"
        }
        Cancellation::Rejected => {
            "The cancellation request was refused on DHMAD's page (its event has not come)"
        }
        Cancellation::Accepted => {
            "The cancellation was accepted on DHMAD's page (its event has not come)"
        }
    };
    if order.cancellation == Some(state) || !cancellation_may_follow(order.cancellation, state) {
        return Ok(false);
    }
    db::orders::set_cancellation(&mut *conn, order.id, state, None).await?;
    db::events::add(&mut *conn, order.id, "event", detail, None).await?;
    Ok(true)
}
