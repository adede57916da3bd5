//! A guest's payment under DHMAD's review: a payment page finished while the escrow stays
//! pending (a proof of money sent outside DHMAD's wallet). While it lasts no new payment page
//! is opened and nobody cancels; DHMAD's approval (paid) or rejection ends it.

use dhmad::CheckoutAction;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{sync::upstream, Order, OrderError, OrderResult, OrderStatus};
use crate::db::{self, sessions::Session};
use crate::state::AppState;

/// A payment page DHMAD says was finished.
pub struct FinishedPage {
    /// When we opened it.
    pub opened_at: OffsetDateTime,
    /// When it closes, by DHMAD's clock (its `expiresAt`).
    pub expires_at: OffsetDateTime,
    /// When DHMAD says it was finished, if it says.
    pub completed_at: Option<OffsetDateTime>,
}

/// The buyer finished the payment page but DHMAD does not hold the money: a guest paid out of
/// band and DHMAD's admin reviews the proof. From now on no new payment is offered (a second
/// one would take the money twice) until DHMAD approves (paid) or rejects the proof. A page
/// finished before the last rejection holds the rejected proof, not a new one: it changes
/// nothing (else the buyer, told to pay again, would be told a proof is under review for ever).
pub async fn note(state: &AppState, order_id: Uuid, page: &FinishedPage) -> OrderResult<()> {
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    let Some(order) = db::orders::lock(&mut *tx, order_id).await? else {
        return Err(OrderError::NotFound);
    };
    if order.status == OrderStatus::AwaitingPayment
        && order.payment_review_since.is_none()
        && holds_a_new_proof(&mut tx, &order, page).await?
    {
        let now = OffsetDateTime::now_utc();
        db::orders::set_payment_review(&mut *tx, order.id, Some(now)).await?;
        db::orders::set_deposit_rejection(&mut *tx, order.id, None).await?;
        // Only an instant order takes a guest's proof; any other finished its payment page
        // with a payment whose news is not in yet (the escrow read failed, say).
        let (detail, public) = if order.is_instant() {
            (
                "Payment page finished but the escrow is still pending: a guest proof awaits DHMAD",
                "DHMAD received your payment proof and is checking it",
            )
        } else {
            (
                "Payment page finished but the escrow is not known to be paid yet",
                "You finished DHMAD's payment page: we are confirming your payment with DHMAD",
            )
        };
        db::events::add(&mut *tx, order.id, "payment_review", detail, Some(public)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// DHMAD's event for a rejected guest proof.
const DEPOSIT_PROOF_REJECTED: &str = "escrow.deposit_proof.rejected";

/// Was `page` finished after the order's last rejected proof, if any? After a rejection the
/// buyer is asked to pay again, on a new page or on the one the rejected proof came from: DHMAD
/// reopens it, and the buyer "may upload again through the same session" (§4.2). A page
/// opened since the rejection holds a new proof. For a page opened before it, DHMAD's clock
/// tells (the rejection event's `timestamp`, else when it came): a page closed by
/// then took no new upload, so its completion is the rejected proof's; else a `completedAt`
/// after the rejection is a new proof, and a page DHMAD does not date is taken for one (not
/// knowing is not "no"). That DHMAD dates a second completion of one page anew is the
/// sandbox's reading (the contract leaves it open); if it keeps the first date, such a page
/// reads as the rejected proof's.
/// When DHMAD rejected a proof: the event's own `timestamp` (DHMAD's clock), else when it came.
fn rejection_time(rejection: &db::inbox::LastEvent) -> OffsetDateTime {
    rejection
        .timestamp
        .as_deref()
        .and_then(|t| dhmad::iso::parse(t).ok())
        .unwrap_or(rejection.received_at)
}

async fn holds_a_new_proof(
    conn: &mut PgConnection,
    order: &Order,
    page: &FinishedPage,
) -> OrderResult<bool> {
    if order.deposit_rejection_reason.is_none() {
        return Ok(true);
    }
    let Some(rejection) =
        db::inbox::last_received(&mut *conn, order.id, DEPOSIT_PROOF_REJECTED).await?
    else {
        // A rejection we cannot date: a completion tells nothing new.
        return Ok(false);
    };
    if page.opened_at > rejection.received_at {
        return Ok(true);
    }
    let rejected_at = rejection_time(&rejection);
    if page.expires_at <= rejected_at {
        return Ok(false);
    }
    Ok(page.completed_at.is_none_or(|at| at > rejected_at))
}

/// Did the buyer finish a payment page without coming back (a guest proof under review)?
/// Asked before a new payment page is opened for an order that has none live, and before an
/// order nobody seems to have paid is cancelled. Asks DHMAD about the last pages; a DHMAD that does
/// not answer is an error, never "no": under review the escrow is still pending, so DHMAD
/// would take a second payment on a new page, and a cancel would reject a proof of money sent.
pub async fn known(state: &AppState, order: &Order) -> OrderResult<bool> {
    if order.in_payment_review() {
        return Ok(true);
    }
    for page in pages_maybe_used(state, order.id).await? {
        let Some(finished) = finished_page(state, order, &page).await? else {
            continue;
        };
        note(state, order.id, &finished).await?;
        if db::orders::get(&state.pool, order.id)
            .await?
            .is_some_and(|o| o.in_payment_review())
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The pages [`known`] asks DHMAD about (`sessions::pay_pages_maybe_used`).
async fn pages_maybe_used(state: &AppState, order_id: Uuid) -> OrderResult<Vec<Session>> {
    let pages = db::sessions::list_for_order(&state.pool, order_id).await?;
    Ok(super::sessions::pay_pages_maybe_used(pages))
}

/// `page`, if DHMAD says it was finished. A page finished since a rejection may hold a new
/// proof or the rejected one: DHMAD's `completedAt` tells ([`holds_a_new_proof`]), so such a
/// page is read again.
async fn finished_page(
    state: &AppState,
    order: &Order,
    page: &Session,
) -> OrderResult<Option<FinishedPage>> {
    let trust_local = order.deposit_rejection_reason.is_none();
    let completed_at = match page.status.as_str() {
        "completed" if trust_local => None,
        "cancelled" => return Ok(None),
        // Pending or expired here: the buyer may have finished without coming back.
        _ => match state.dhmad.get_session(&page.session_id).await {
            Ok(s) => {
                db::sessions::set_status(&state.pool, &page.session_id, s.status.as_str()).await?;
                if s.status != dhmad::SessionStatus::Completed {
                    return Ok(None);
                }
                s.completed_at
            }
            // DHMAD answered that it has no such page: nothing is under review there.
            Err(dhmad::Error::NotFound(_) | dhmad::Error::Forbidden(_)) => return Ok(None),
            Err(e) => return Err(upstream(e, "reading a payment page")),
        },
    };
    Ok(Some(FinishedPage {
        opened_at: page.created_at,
        expires_at: page.expires_at,
        completed_at,
    }))
}

/// The review's way out when DHMAD's rejection is lost: DHMAD sends
/// `escrow.deposit_proof.rejected` and retries it for seconds only, and no escrow read tells
/// of it (the escrow stays pending). But a rejection reopens the page the proof came from: "the
/// buyer may upload again through the same session" (§4.2). So every page this shop last saw
/// finished is read again (the review's is one of them; after an earlier rejection whose event
/// did arrive, its reopened page may still read `completed` here). One still finished at DHMAD
/// may hold the proof under review: the review stays. None: the proof was rejected, and the
/// buyer may pay again. Asked by the reconciler of an order still in review once its escrow
/// was read. Whether the review ended here.
pub async fn recheck(state: &AppState, order: &Order) -> OrderResult<bool> {
    if !order.in_payment_review() {
        return Ok(false);
    }
    let action = CheckoutAction::AcceptPay.as_str();
    // Not a page closed before the last rejection DHMAD sent: it holds a rejected proof, and
    // stays finished at DHMAD (a page is reopened only while it lives).
    let rejected_at = db::inbox::last_received(&state.pool, order.id, DEPOSIT_PROOF_REJECTED)
        .await?
        .map(|r| rejection_time(&r));
    let finished: Vec<Session> = db::sessions::list_for_order(&state.pool, order.id)
        .await?
        .into_iter()
        .filter(|s| s.action == action && !s.for_merchant && s.status == "completed")
        .filter(|s| rejected_at.is_none_or(|at| s.expires_at > at))
        .collect();
    if finished.is_empty() {
        return Ok(false);
    }
    let mut reopened = Vec::with_capacity(finished.len());
    for page in &finished {
        match state.dhmad.get_session(&page.session_id).await {
            Ok(s) if reopened_for_a_new_proof(&s.status) => {
                reopened.push((page.session_id.as_str(), s.status));
            }
            // Still finished, or a status this client does not know: the review stays.
            Ok(_) => return Ok(false),
            // A page DHMAD cannot show tells nothing: the review stays, as DHMAD's approval or
            // the escrow's end will say.
            Err(dhmad::Error::NotFound(_) | dhmad::Error::Forbidden(_)) => return Ok(false),
            Err(e) => return Err(upstream(e, "reading the payment page under review")),
        }
    }
    // A page also reads `cancelled` when the seller cancels the escrow under a guest's proof
    // (§2.7): ended there, the review would tell the guest to pay again, and the cancellation
    // then that DHMAD returns the money, which it does not for a guest. So a page that ran out
    // or was left ends the review only while the escrow is still pending.
    let left = reopened
        .iter()
        .any(|(_, s)| *s != dhmad::SessionStatus::Pending);
    if let (true, Some(escrow_id)) = (left, order.escrow_id.as_deref()) {
        match state.dhmad.get_escrow(escrow_id).await {
            Ok(e) if e.status == dhmad::EscrowStatus::Pending => {}
            Ok(_) | Err(dhmad::Error::NotFound(_) | dhmad::Error::Forbidden(_)) => {
                return Ok(false)
            }
            Err(e) => return Err(upstream(e, "reading the escrow under review")),
        }
    }
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    let Some(now) = db::orders::lock(&mut *tx, order.id).await? else {
        return Err(OrderError::NotFound);
    };
    // The review the pages were read for, not one begun since (a proof sent on a page meanwhile).
    let ended = now.in_payment_review() && now.payment_review_since == order.payment_review_since;
    if ended {
        // As DHMAD shows them now: else the look before a new page would trust them finished.
        for (session_id, status) in &reopened {
            db::sessions::set_status(&mut *tx, session_id, status.as_str()).await?;
        }
        db::orders::set_payment_review(&mut *tx, order.id, None).await?;
        db::events::add(
            &mut *tx,
            order.id,
            "payment_review_ended",
            "DHMAD reopened the payment page under review: the guest's proof was not accepted \
             (its rejection event never arrived)",
            Some("DHMAD did not accept your payment proof. You can pay again."),
        )
        .await?;
        tracing::warn!(order.ref = %crate::orders::log_ref(order.id), "payment review ended: DHMAD reopened its page");
    }
    tx.commit().await?;
    Ok(ended)
}

/// Whether a page the guest finished now reads as reopened for a new proof: `pending` again,
/// which is how the buyer "may upload again through the same session" (§4.2); or `expired` or
/// `cancelled`, which a page reaches only from `pending` (§2.7: `completed` is final), so
/// this one was reopened, then ran out or was left. A status this client does not know tells
/// nothing: ending the review on it would invite the guest to pay a second time, outside
/// DHMAD's wallet, for a proof that may still be under review.
fn reopened_for_a_new_proof(status: &dhmad::SessionStatus) -> bool {
    use dhmad::SessionStatus::{Cancelled, Expired, Pending};
    matches!(status, Pending | Expired | Cancelled)
}

#[cfg(test)]
mod tests {
    use dhmad::SessionStatus;

    use super::reopened_for_a_new_proof;

    #[test]
    fn only_a_page_reopened_ends_a_review() {
        for reopened in [
            SessionStatus::Pending,
            SessionStatus::Expired,
            SessionStatus::Cancelled,
        ] {
            assert!(reopened_for_a_new_proof(&reopened), "{reopened:?}");
        }
        for says_nothing in [
            SessionStatus::Completed,
            SessionStatus::Unknown("reviewing".into()),
        ] {
            assert!(!reopened_for_a_new_proof(&says_nothing), "{says_nothing:?}");
        }
    }
}
