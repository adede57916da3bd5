//! `apply_escrow_snapshot`: the one place where what DHMAD says about an escrow changes an
//! order. The webhook handler, the callback and the reconciler all call it, inside the
//! transaction that also records why (inbox row, timeline) and what follows (outbox).

use dhmad::{Escrow, EscrowStatus};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{fulfilment, state_machine::proof_report_is_news, Order, OrderStatus};
use crate::db::{self, events::NewEvent};

pub mod amount;
mod plan;
pub(crate) use plan::sane_clock;

pub use plan::Authority;
use plan::{Decision, Seen};

/// What applying a snapshot did. Every variant but `Unmatched` carries the order as it is now,
/// still row-locked by the caller's transaction.
#[derive(Debug, Clone)]
pub enum Applied {
    /// No order has this escrow.
    Unmatched,
    /// The escrow status changed; `funded` when DHMAD now holds the money for the first time.
    Transitioned {
        order: Box<Order>,
        from: Option<String>,
        to: String,
        funded: bool,
    },
    /// Same status (perhaps newer details): nothing to do but note we heard from DHMAD.
    Unchanged { order: Box<Order> },
    /// Older than what we already applied.
    Stale { order: Box<Order> },
    /// The order is completed or cancelled and stays so.
    Settled { order: Box<Order> },
}

impl Applied {
    pub fn order(&self) -> Option<&Order> {
        match self {
            Applied::Unmatched => None,
            Applied::Transitioned { order, .. }
            | Applied::Unchanged { order }
            | Applied::Stale { order }
            | Applied::Settled { order } => Some(order),
        }
    }
}

/// The order was flagged because DHMAD did not know its escrow (a 404 or 403 on a read or a
/// deliver); DHMAD now speaks of it (a signed webhook, or its API): the flag no longer holds.
/// Left set, it kept the order out of every repair for good (the reconciler, a deliver queued
/// again, the abandoned-order job) until the merchant thought of its "Reconcile" button.
async fn lift_flag(conn: &mut PgConnection, order: &mut Order) -> sqlx::Result<()> {
    if db::orders::clear_attention(&mut *conn, order.id).await? {
        let why = "DHMAD spoke of the escrow again: flag lifted";
        db::events::add(&mut *conn, order.id, "attention_cleared", why, None).await?;
        tracing::info!(order.ref = %crate::orders::log_ref(order.id), "flag lifted: DHMAD knows the escrow");
    }
    order.attention = None;
    Ok(())
}

/// Applies `escrow` to the order that owns it, under the order's row lock. Idempotent: the same
/// snapshot twice transitions once. `source` says where the news came from, for the timeline.
#[tracing::instrument(skip_all, fields(escrow.id = %escrow.id, escrow.status = %escrow.status, source))]
pub async fn apply_escrow_snapshot(
    conn: &mut PgConnection,
    escrow: &Escrow,
    authority: Authority,
    source: &str,
) -> sqlx::Result<Applied> {
    let Some(mut order) = db::orders::lock_by_escrow(&mut *conn, &escrow.id).await? else {
        return Ok(Applied::Unmatched);
    };
    // Money news for an order closed here, or money paid into a second escrow of the order,
    // keeps its flag until the merchant's "Reconcile" ([`lift_money_flag`]): no webhook and no
    // other read lifts it (a buyer's return, a job's read: the duplicate's money was no longer
    // on the merchant's list once its sweep stopped).
    let kept = is_money_flag(order.attention.as_deref());
    if order.attention.is_some() && !kept {
        lift_flag(conn, &mut order).await?;
    }
    let order = Box::new(order);
    let seen = Seen {
        status: order.status,
        escrow_status: order.escrow_status.as_deref().map(EscrowStatus::from),
        clock: order.escrow_updated_at,
    };
    let plan = plan::plan(
        &seen,
        &escrow.status,
        escrow.updated_at,
        authority,
        OffsetDateTime::now_utc(),
    );
    if plan.clamped {
        tracing::warn!(order.ref = %crate::orders::log_ref(order.id), updated_at = ?escrow.updated_at, "escrow snapshot dated in the future; taken as now");
    }
    match plan.decision {
        Decision::Settled => {
            money_for_a_closed_order(conn, &order, escrow).await?;
            return Ok(Applied::Settled { order });
        }
        Decision::Stale => {
            tracing::info!(order.ref = %crate::orders::log_ref(order.id), "stale escrow snapshot ignored");
            // A read is a look all the same: left unrecorded, the order stayed due and headed
            // every reconciler batch. One the order cannot take (a paid order DHMAD's API calls
            // pending) is a disagreement, not old news: not a look that confirmed anything (the
            // lag gauge keeps growing), but the order waits before it is read again.
            if authority == Authority::Api && plan.refused {
                tracing::warn!(order.ref = %crate::orders::log_ref(order.id), escrow.status = %escrow.status, "DHMAD's API says a status the order cannot take");
                db::orders::sync_failed(&mut *conn, order.id, DISAGREEMENT_WAIT).await?;
            } else if authority == Authority::Api {
                db::orders::touch_synced(&mut *conn, order.id, None, false).await?;
            }
            return Ok(Applied::Stale { order });
        }
        Decision::Same => {
            db::orders::touch_synced(&mut *conn, order.id, plan.clock, plan.reset_clock).await?;
            // Same status, but the contract or the proof gate may have moved on (they do not
            // change the status). Only from a snapshot at least as new as ours.
            let fresh = plan.reset_clock
                || matches!((plan.clock, seen.clock), (Some(n), Some(c)) if n >= c)
                || seen.clock.is_none();
            if fresh && keep_facts(conn, &order, escrow, authority).await? {
                let now = db::orders::get(&mut *conn, order.id)
                    .await?
                    .unwrap_or_else(|| (*order).clone());
                // A dispute over with the money still held (its ticket closed, the status
                // `paid` throughout): the deliver it held back is owed again, as after
                // `disputed` → `paid` below. One open job at most (its unique index); none if the
                // merchant abandoned it.
                if order.dispute_open() && now.is_instant() && now.deliver_due() {
                    db::outbox::enqueue_unless_abandoned(&mut *conn, fulfilment::DELIVER, now.id)
                        .await?;
                }
                return Ok(Applied::Unchanged {
                    order: Box::new(now),
                });
            }
            return Ok(Applied::Unchanged { order });
        }
        Decision::Apply => {}
    }
    let from = order.escrow_status.clone();
    keep_facts(conn, &order, escrow, authority).await?;
    let code = plan
        .fulfil
        .then(|| fulfilment::code_to_issue(&order))
        .flatten();
    let paid_after_a_proof = order.in_payment_review();
    let mut order = Box::new(
        db::orders::apply_snapshot(
            &mut *conn,
            order.id,
            plan.next,
            escrow.status.as_str(),
            plan.clock,
            code.as_deref(),
        )
        .await?,
    );
    let mut funded = fulfilment::Funded::default();
    let guest_money = guest_cancelled_line(conn, &order, seen.status, &escrow.status).await?;
    funded.lines.push(NewEvent {
        kind: "escrow_status",
        detail: format!(
            "DHMAD escrow {} → {} ({source})",
            from.as_deref().unwrap_or("unknown"),
            escrow.status
        ),
        public: public_status_line(&escrow.status, seen.escrow_status.as_ref(), guest_money),
    });
    // A snapshot that says `"buyer": null`, or one that leaves the field out (webhook
    // snapshots vary, §6.4) of a payment made by a guest's proof: left out alone, it says
    // nothing, and a wallet payer would be told its refund is not automatic.
    let by_guest = escrow.names_no_buyer() || (escrow.buyer.is_none() && paid_after_a_proof);
    if plan.fulfil && order.is_instant() && by_guest {
        funded.lines.push(NewEvent {
            kind: PAID_BY_GUEST,
            detail: "Paid by a guest, outside DHMAD's wallet (the escrow names no buyer): a \
                     refund would not be automatic"
                .into(),
            public: None,
        });
    }
    tracing::info!(order.ref = %crate::orders::log_ref(order.id), from = ?from, "order transitioned");
    if plan.fulfil {
        clear_deposit_rejection(conn, &mut order).await?;
        // Issued now only if the UPDATE kept our code (the order had none).
        let issued = code.is_some() && order.digital_code == code;
        fulfilment::on_funded(&order, issued, &mut funded);
    } else if seen.status == OrderStatus::Disputed && order.is_instant() && order.deliver_due() {
        // Paid again after a dispute (DHMAD kept the money): the deliver it waits for is due,
        // and one closed while the dispute was open ("nothing to deliver") is queued by nothing
        // else. One open job at most (its unique index); none if the merchant abandoned it.
        db::outbox::enqueue_unless_abandoned(&mut *conn, fulfilment::DELIVER, order.id).await?;
    }
    // The status line and what funding adds, in one statement.
    db::events::add_all_and_enqueue(&mut *conn, order.id, &funded.lines, &funded.jobs).await?;
    Ok(Applied::Transitioned {
        order,
        from,
        to: escrow.status.to_string(),
        funded: plan.fulfil,
    })
}

/// How long an order whose escrow DHMAD's API describes in a status it cannot take waits
/// before it is read again.
const DISAGREEMENT_WAIT: time::Duration = time::Duration::minutes(10);

/// How the flag of [`money_for_a_closed_order`] begins.
const MONEY_AFTER_CLOSE: &str = "Money for a closed order: ";
/// The start of the flag of an order whose buyer paid a second escrow of it
/// (`lost_escrow::flag_funded_duplicate`).
pub(crate) const DUPLICATE_FUNDED: &str = "Money in a second escrow: ";
/// Flags about money only the merchant can put right: only their "Reconcile" lifts them, and
/// no later flag but another about money replaces them (a 404 on a read during a key mix-up
/// hid a buyer's double payment).
const MONEY_FLAGS: [&str; 2] = [MONEY_AFTER_CLOSE, DUPLICATE_FUNDED];

fn is_money_flag(attention: Option<&str>) -> bool {
    attention.is_some_and(|a| MONEY_FLAGS.iter().any(|f| a.starts_with(f)))
}

/// Flags the order for the merchant with `why`, unless it holds a flag about money that `why`
/// is not (a newer word about money replaces an older one; the timeline keeps both).
pub(crate) async fn flag(
    e: impl sqlx::PgExecutor<'_>,
    order_id: uuid::Uuid,
    why: &str,
) -> sqlx::Result<()> {
    let kept: &[&str] = if is_money_flag(Some(why)) {
        &[]
    } else {
        &MONEY_FLAGS
    };
    db::orders::flag_attention(e, order_id, why, kept).await
}

/// The merchant's "Reconcile": their acknowledgement of the flag about money they were shown
/// (`seen`), which is lifted if it is still the order's (the next sweep flags a duplicate
/// again while it still holds the buyer's money). Whether it was.
pub async fn lift_money_flag(
    conn: &mut PgConnection,
    order_id: uuid::Uuid,
    seen: &str,
) -> sqlx::Result<bool> {
    if !is_money_flag(Some(seen))
        || !db::orders::clear_attention_if(&mut *conn, order_id, seen).await?
    {
        return Ok(false);
    }
    let why = "The merchant's Reconcile lifted the flag about money";
    db::events::add(&mut *conn, order_id, "attention_cleared", why, None).await?;
    Ok(true)
}

/// An order closed here without DHMAD (it had answered that it did not know the escrow, and a
/// fresh order was opened), of which news now says DHMAD holds or released the money: settled
/// orders take no news, and the reconciler reads none, so nobody would ever look. Flagged for
/// the merchant, with a line, once for each status DHMAD tells of (over a flag set when DHMAD
/// did not know the escrow); the merchant's "Reconcile" lifts it.
async fn money_for_a_closed_order(
    conn: &mut PgConnection,
    order: &Order,
    escrow: &Escrow,
) -> sqlx::Result<()> {
    let closed_here = order.status == OrderStatus::Cancelled
        && order.escrow_status.as_deref() != Some(EscrowStatus::Cancelled.as_str());
    let money = matches!(
        escrow.status,
        EscrowStatus::Paid
            | EscrowStatus::Delivered
            | EscrowStatus::Completed
            | EscrowStatus::Disputed
    );
    if !closed_here || !money {
        return Ok(());
    }
    let why = format!(
        "{MONEY_AFTER_CLOSE}DHMAD says escrow {} is {}, but this order was closed when DHMAD did \
         not know it: the buyer's money is held or released for an order the shop no longer \
         serves",
        escrow.id, escrow.status
    );
    if db::events::has_line(&mut *conn, order.id, "money_after_close", &why).await? {
        return Ok(());
    }
    tracing::warn!(order.ref = %crate::orders::log_ref(order.id), escrow.status = %escrow.status, "money for an order closed here");
    flag(&mut *conn, order.id, &why).await?;
    db::events::add(&mut *conn, order.id, "money_after_close", &why, None).await
}

/// Keeps what the snapshot says of the contract's signatures and the proof gate; false when it
/// says nothing of them. Its proof gate is left out when it is no news over the stored one
/// (`proof_report_is_news`): proof events carry no clock, so a read DHMAD answered before the
/// buyer accepted a proof, or before the shop answered a correction request, applied after
/// that event, looks as new as it and would put the gate back.
async fn keep_facts(
    conn: &mut PgConnection,
    order: &Order,
    escrow: &Escrow,
    authority: Authority,
) -> sqlx::Result<bool> {
    let signatures = escrow.signatures.as_ref();
    // Only a full read names the dispute ticket (§2.1: `disputeTicketId` is a GET field, as is
    // `createdViaThirdParty`, which tells a full read from a webhook, the deliver's answer or a
    // list's summary): a snapshot that says nothing of it does not close it.
    let full_read = authority == Authority::Api && escrow.created_via_third_party.is_some();
    let ticket = full_read.then(|| open_dispute_ticket(escrow));
    let mut proof = escrow.proof_info.as_ref();
    if let Some((p, next)) = proof.and_then(|p| Some((p, p.phase.as_ref()?))) {
        if !proof_is_news(conn, order, next.as_str(), p.correction_rounds).await? {
            proof = None;
        }
    }
    let new_ticket = ticket.is_some_and(|t| t != order.dispute_ticket_id.as_deref());
    if signatures.is_none() && proof.is_none() && !new_ticket {
        return Ok(false);
    }
    // A snapshot that does not say the phase keeps the one stored (`COALESCE`).
    let phase = proof.and_then(|p| p.phase.as_ref()).map(|p| p.as_str());
    let facts = db::orders::EscrowFacts {
        buyer_signed: signatures.map(|s| s.buyer_signed),
        seller_signed: signatures.map(|s| s.seller_signed),
        proof_phase: phase,
        proof_upload_deadline: proof.and_then(|p| p.upload_deadline),
        proof_review_deadline: proof.and_then(|p| p.review_deadline),
        // Not from `proofInfo`, whose keys DHMAD leaves UNSTATED: only proof events' count is
        // compared with proof events' (`news::proof_facts`).
        proof_correction_rounds: None,
        dispute_ticket: ticket,
    };
    db::orders::set_escrow_facts(&mut *conn, order.id, &facts).await?;
    Ok(true)
}

/// Whether a report of the order's proof gate (an event's or a read's) at `phase` after
/// `rounds` corrections is news (`state_machine::proof_report_is_news`), the order's count
/// read only when the report has one.
pub(crate) async fn proof_is_news(
    conn: &mut PgConnection,
    order: &Order,
    phase: &str,
    rounds: Option<u32>,
) -> sqlx::Result<bool> {
    let rounds = rounds.map(|r| i32::try_from(r).unwrap_or(i32::MAX));
    let known = match rounds {
        Some(_) => db::orders::proof_correction_rounds(&mut *conn, order.id).await?,
        None => None,
    };
    Ok(proof_report_is_news(
        order.proof_phase.as_deref(),
        known,
        phase,
        rounds,
    ))
}

/// The escrow's dispute ticket, unless the ticket says it is over. Its `status` values are
/// UNSTATED (the sandbox says `open`, then `resolved`): any word for an ended ticket closes it,
/// so that a dispute DHMAD ended with the money still held does not hold the order for good.
fn open_dispute_ticket(escrow: &Escrow) -> Option<&str> {
    const OVER: &[&str] = &[
        "resolved",
        "closed",
        "rejected",
        "dismissed",
        "done",
        "cancelled",
        "canceled",
        "completed",
        "withdrawn",
        "archived",
    ];
    let over = escrow
        .dispute_ticket
        .as_ref()
        .and_then(|t| t.status.as_deref())
        .is_some_and(|s| OVER.contains(&s.trim().to_ascii_lowercase().as_str()));
    escrow.dispute_ticket_id.as_deref().filter(|_| !over)
}

/// The timeline line of an instant order a guest paid (funded with no buyer on the escrow,
/// §2.1: `buyer` is null "for guest payers").
pub const PAID_BY_GUEST: &str = "paid_by_guest";

/// What a cancellation says when a guest's money is at stake, which is not in a DHMAD wallet,
/// so no refund returns it by itself (§4.2): a proof under review, or a guest's payment.
async fn guest_cancelled_line(
    conn: &mut PgConnection,
    order: &Order,
    seen: OrderStatus,
    status: &EscrowStatus,
) -> sqlx::Result<Option<&'static str>> {
    if order.cancelled_over_guest_proof() {
        return Ok(Some(GUEST_CANCELLED));
    }
    if order.cancelled_after_rejected_proof() {
        return Ok(Some(GUEST_PROOF_REJECTED_CANCELLED));
    }
    let paid_then_cancelled = *status == EscrowStatus::Cancelled && seen.is_funded();
    Ok(
        (paid_then_cancelled && db::events::has(&mut *conn, order.id, PAID_BY_GUEST).await?)
            .then_some(GUEST_PAID_CANCELLED),
    )
}

/// What the buyer reads when the escrow moves to `status` from `was` (as the order knew it);
/// `guest_cancelled`: what a cancellation says instead when a guest's money is at stake (a
/// proof under review, or a guest's payment): DHMAD refunds no guest automatically. A move
/// back (a delivery rejected, a dispute closed) charges nothing again and was no act of the
/// shop's: it says so, not "payment received" a second time.
fn public_status_line(
    status: &EscrowStatus,
    was: Option<&EscrowStatus>,
    guest_cancelled: Option<&'static str>,
) -> Option<&'static str> {
    use EscrowStatus as S;
    Some(match (status, was) {
        (S::Paid, Some(S::Delivered)) => {
            "Back with the shop: the delivery is to be made again; DHMAD still holds the payment"
        }
        (S::Paid, Some(S::Disputed)) => {
            "The dispute is closed: DHMAD still holds the payment until the order is done"
        }
        (S::Delivered, Some(S::Disputed)) => "The dispute is closed: the order stands as delivered",
        (S::Paid, _) => "Payment received: DHMAD holds it until the order is done",
        (S::Delivered, _) => "Marked as delivered by the shop",
        (S::Completed, _) => "Completed: DHMAD released the payment to the shop",
        (S::Cancelled, _) => {
            guest_cancelled.unwrap_or("Cancelled: DHMAD returns any payment to you")
        }
        (S::Disputed, _) => "A dispute is open with DHMAD",
        (S::Pending | S::Unknown(_), _) => return None,
    })
}

/// A cancelled order whose guest payment proof was under review: DHMAD rejects the proof, and
/// a guest's money is not in a DHMAD wallet, so nothing refunds it by itself (§4.2).
pub const GUEST_CANCELLED: &str = "Cancelled: DHMAD rejected the payment proof under review. \
     The money you sent is not returned automatically: contact DHMAD with your proof to get it back";

/// A cancelled order whose guest's payment proof DHMAD had rejected, with no payment since: the
/// money sent is outside DHMAD's wallet, so no refund returns it by itself either.
pub const GUEST_PROOF_REJECTED_CANCELLED: &str = "Cancelled. DHMAD did not accept your payment \
     proof, and the money you sent is not returned automatically: contact DHMAD with your proof \
     to get it back";

/// A cancelled order a guest had paid (outside DHMAD's wallet): no refund by itself either.
pub const GUEST_PAID_CANCELLED: &str = "Cancelled. You paid outside DHMAD's wallet, so the money \
     is not returned automatically: contact DHMAD with your payment proof to get it back";

/// The buyer's cancellation accepted, on an order a guest had paid.
pub const GUEST_CANCELLATION_ACCEPTED: &str = "Cancellation accepted. You paid outside DHMAD's \
     wallet: contact DHMAD with your payment proof to get the money back.";

// The deposit-proof rule, both halves here: DHMAD's rejection of a guest's payment proof is
// shown only while the order awaits payment, and a payment makes any earlier one history.

/// Records why DHMAD rejected the buyer's deposit proof, if the order still awaits payment.
pub async fn record_deposit_rejection(
    conn: &mut PgConnection,
    order: &Order,
    reason: &str,
) -> sqlx::Result<()> {
    if order.takes_deposit_rejection() {
        db::orders::set_deposit_rejection(&mut *conn, order.id, Some(reason)).await?;
        // The review is over: the buyer may send a new proof (pay again).
        db::orders::set_payment_review(&mut *conn, order.id, None).await?;
    }
    Ok(())
}

/// A payment supersedes an earlier rejected proof and ends any review.
async fn clear_deposit_rejection(conn: &mut PgConnection, order: &mut Order) -> sqlx::Result<()> {
    if order.deposit_rejection_reason.take().is_some() {
        db::orders::set_deposit_rejection(&mut *conn, order.id, None).await?;
    }
    if order.payment_review_since.take().is_some() {
        db::orders::set_payment_review(&mut *conn, order.id, None).await?;
    }
    Ok(())
}
