//! The buyer's order page: what happened, what comes next, and the actions the order's state
//! machine allows now. It shows only what is meant for the buyer (no internal errors, URLs or
//! event types: the timeline's public lines).

use askama::Template;
use axum::response::Html;
use sqlx::PgExecutor;
use time::{macros::format_description, OffsetDateTime};
use uuid::Uuid;

use super::render;
use crate::{
    db,
    error::AppResult,
    orders::{
        sessions,
        sessions::Party,
        snapshot::{GUEST_CANCELLATION_ACCEPTED, PAID_BY_GUEST},
        Action, Cancellation, Order, OrderStatus,
    },
};

/// A time as pages show it, to the minute. (Templates pass a reference.)
pub(crate) fn fmt_time(t: impl std::borrow::Borrow<OffsetDateTime>) -> String {
    t.borrow()
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default()
}

struct ContractView {
    terms: String,
    buyer_signed: bool,
    seller_signed: bool,
}

/// What the buyer reads of DHMAD's proof phase, with the deadline that matters now. The gate
/// runs while DHMAD holds the money (`paid`): on an order cancelled, disputed or past it, a
/// phase still open promises what will not happen (a deadline, a refund, a review), so only a
/// gate that cancelled the order is told.
fn proof_text(o: &Order) -> Option<String> {
    let at = |t: Option<OffsetDateTime>| t.map(fmt_time).unwrap_or_else(|| "soon".into());
    let phase = o.proof_phase.as_deref()?;
    let ended = matches!(phase, "expired_no_proof" | "rejected");
    if o.status != OrderStatus::Paid && !ended {
        return None;
    }
    Some(match phase {
        "waiting_seller_proof" => format!(
            "The shop must show a proof of purchase by {}; otherwise DHMAD cancels and refunds you.",
            at(o.proof_upload_deadline)
        ),
        "submitted_waiting_buyer_review" => format!(
            "The shop sent its proof of purchase. Review it by {}: without an answer it counts as accepted.",
            at(o.proof_review_deadline)
        ),
        "correction_requested" => "You asked for a better proof; the shop is sending a new one.".into(),
        // The buyer's acceptance, or DHMAD's after a review.
        "accepted" => "The proof of purchase was accepted; the shop can ship.".into(),
        "accepted_by_timeout" => {
            "The review time passed, so the proof counts as accepted; the shop can ship.".into()
        }
        "needs_dhmad_review" => "DHMAD is reviewing the proof of purchase itself.".into(),
        "expired_no_proof" => "The shop sent no proof in time: DHMAD cancelled and refunds you.".into(),
        "rejected" => "DHMAD rejected the proof: the order is cancelled and refunded.".into(),
        // A phase DHMAD added since: a fixed text, not DHMAD's word (nothing internal shows).
        _ => "DHMAD is handling the shop's proof of purchase.".into(),
    })
}

struct EventView {
    at: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    id: Uuid,
    product_name: String,
    status: &'static str,
    status_label: &'static str,
    amount: String,
    buyer_email: String,
    digital_code: Option<String>,
    deposit_rejection_reason: Option<String>,
    payment_review: bool,
    cancellation: Option<&'static str>,
    delivery_rejection_reason: Option<String>,
    next_step: &'static str,
    pay_url: Option<String>,
    can_pay_again: bool,
    pay_label: &'static str,
    can_confirm: bool,
    can_cancel: bool,
    cancel_label: &'static str,
    can_dispute: bool,
    can_sign: bool,
    can_review_proof: bool,
    /// Standard mode: the terms, and who has signed them.
    contract: Option<ContractView>,
    /// Proof escrows: where the proof stands, for the buyer.
    proof: Option<String>,
    refresh: bool,
    error: Option<String>,
    events: Vec<EventView>,
    csrf: String,
}

/// `guest_paid`: a guest paid the order outside DHMAD's wallet (`PAID_BY_GUEST`), so a refund
/// is not automatic (§4.2).
fn next_step(o: &Order, has_pay_url: bool, guest_paid: bool) -> &'static str {
    match o.status {
        OrderStatus::New if o.checkout_gave_up() => {
            "We could not start the payment with DHMAD. Your order is saved: try again."
        }
        OrderStatus::New | OrderStatus::CreatingEscrow => "We are preparing your checkout.",
        OrderStatus::EscrowFailed => "We could not start the payment with DHMAD. Your order is saved: try again.",
        OrderStatus::NeedsReconciliation => {
            "DHMAD did not answer in time; we are checking whether your checkout was created. Try again in a minute."
        }
        OrderStatus::AwaitingPayment if o.in_payment_review() && o.is_instant() => {
            "DHMAD received your payment proof and is checking it. There is nothing more to pay: we confirm your order as soon as DHMAD approves it."
        }
        OrderStatus::AwaitingPayment if o.in_payment_review() => {
            "You finished DHMAD's payment page: we are confirming your payment with DHMAD. There is nothing more to pay."
        }
        OrderStatus::AwaitingPayment if o.deposit_rejection().is_some() => {
            "DHMAD could not accept your payment proof (the reason is above): pay again, or send a new proof, below."
        }
        OrderStatus::AwaitingPayment if has_pay_url => {
            "Pay on DHMAD's secure page. If you have just paid, we are confirming your payment with DHMAD; this page refreshes by itself."
        }
        OrderStatus::AwaitingPayment if o.mode == crate::orders::Mode::Standard => {
            if o.contract_signed() {
                "The contract is signed by both sides: pay on DHMAD's secure page below."
            } else if o.contract_buyer_signed == Some(true) {
                "You have signed the contract; once the shop has signed too, you can pay. This page refreshes by itself."
            } else {
                "Sign the contract on DHMAD's page; once the shop has signed too, you can pay."
            }
        }
        OrderStatus::AwaitingPayment => "Your payment link has expired or was not used. Start a new payment below.",
        // Whatever the status says (DHMAD may keep `paid` under a dispute).
        _ if o.dispute_open() => "A dispute is open with DHMAD; they will contact you.",
        _ if o.cancellation_request() == Some(Cancellation::Requested) => {
            "You asked to cancel. The shop will accept (DHMAD then refunds you) or decline."
        }
        // DHMAD's cancellation of the escrow may take a moment to reach us: nothing is left to
        // confirm or dispute (what happens to the money is said above).
        _ if o.cancellation_request() == Some(Cancellation::Accepted) => {
            "The shop accepted your cancellation: DHMAD is cancelling the order."
        }
        OrderStatus::Paid if o.is_instant() => "Payment confirmed. Your code is below.",
        OrderStatus::Paid => "Payment confirmed and held by DHMAD. We are preparing your parcel.",
        OrderStatus::Delivered => {
            "Your parcel is on its way. Once it has arrived, confirm receipt to release the payment to the seller."
        }
        OrderStatus::Completed => "All done. Thank you for your order!",
        OrderStatus::Cancelled if o.cancelled_over_guest_proof() => {
            "This order was cancelled while DHMAD was checking your payment proof. The money you sent is not returned automatically: contact DHMAD with your proof to get it back."
        }
        OrderStatus::Cancelled if o.cancelled_after_rejected_proof() => {
            "This order was cancelled after DHMAD could not accept your payment proof. The money you sent is not returned automatically: contact DHMAD with your proof to get it back."
        }
        OrderStatus::Cancelled if guest_paid => {
            "This order was cancelled. You paid outside DHMAD's wallet, so the money is not returned automatically: contact DHMAD with your payment proof to get it back."
        }
        OrderStatus::Cancelled => "This order was cancelled. DHMAD returns any payment to you.",
        OrderStatus::Disputed => "A dispute is open with DHMAD; they will contact you.",
    }
}

/// The order awaits a payment the buyer must start anew (no live payment page: its link
/// expired or was not used), as [`next_step`] tells them: no news is coming by itself. A
/// standard order whose contract the shop has still to sign waits for the shop, not the buyer.
fn payment_link_gone(o: &Order, has_pay_url: bool) -> bool {
    o.status == OrderStatus::AwaitingPayment
        && !has_pay_url
        && (o.mode != crate::orders::Mode::Standard || o.contract_signed())
}

/// Renders the page, with `error` shown at the top when an action just failed.
/// The page's reads share one connection (`conn`): one take from the pool, not one per query.
pub async fn render_page(
    conn: &mut db::Conn,
    o: Order,
    csrf: String,
    error: Option<String>,
) -> AppResult<Html<String>> {
    let product = db::products::get(&mut *conn, &o.sku).await?;
    let product_name = product
        .as_ref()
        .map_or_else(|| o.sku.clone(), |p| p.name.clone());
    let contract = (o.mode == crate::orders::Mode::Standard).then(|| ContractView {
        terms: product.and_then(|p| p.contract_terms).unwrap_or_default(),
        buyer_signed: o.contract_buyer_signed == Some(true),
        seller_signed: o.contract_seller_signed == Some(true),
    });
    let events = db::events::list(&mut *conn, o.id).await?;
    let guest_paid = events.iter().any(|e| e.kind == PAID_BY_GUEST);
    let events = events
        .into_iter()
        .filter_map(|e| {
            Some(EventView {
                at: fmt_time(e.created_at),
                detail: e.public?,
            })
        })
        .collect();
    let pay_url = live_pay_url(&mut *conn, &o).await?;
    let status = o.status;
    let paid = matches!(status, OrderStatus::Paid | OrderStatus::Delivered);
    render(&OrderPage {
        id: o.id,
        product_name,
        status: status.as_str(),
        status_label: status.label(),
        amount: format!("{} {}", o.amount, o.currency),
        next_step: next_step(&o, pay_url.is_some(), guest_paid),
        can_pay_again: o.allows(Action::Pay),
        // A standard order's first payment comes after the contract, not after a failed one.
        pay_label: if o.mode == crate::orders::Mode::Standard {
            "Pay"
        } else {
            "Pay again"
        },
        can_confirm: o.allows(Action::ConfirmReceipt),
        can_cancel: o.allows(Action::Cancel) || o.allows(Action::RequestCancellation),
        cancel_label: if paid {
            "Ask to cancel"
        } else {
            "Cancel order"
        },
        can_dispute: o.allows(Action::Dispute),
        can_sign: o.allows(Action::Sign),
        can_review_proof: o.allows(Action::ReviewProof),
        proof: proof_text(&o),
        contract,
        // Not over an error (this page answers a POST: reloaded, its address is no page), nor
        // while the buyer has the contract to read and sign here: the callback brings them back
        // to a fresh page.
        // Nor when its payment link is gone and nothing can change until the buyer starts a
        // new payment: a page reloading every 5 s for nothing moves a screen reader's place
        // and closes what the buyer opened.
        refresh: o.expects_news()
            && !o.in_payment_review()
            && error.is_none()
            && !o.allows(Action::Sign)
            && !payment_link_gone(&o, pay_url.is_some()),
        payment_review: o.in_payment_review(),
        cancellation: o.cancellation_request().map(|c| match c {
            Cancellation::Requested => "You asked to cancel; the shop has not answered yet.",
            Cancellation::Rejected => "The shop declined your cancellation request.",
            Cancellation::Accepted if guest_paid => GUEST_CANCELLATION_ACCEPTED,
            Cancellation::Accepted => "Cancellation accepted: DHMAD refunds you.",
        }),
        delivery_rejection_reason: o.delivery_rejection().map(str::to_owned),
        digital_code: o.visible_good().map(str::to_owned),
        deposit_rejection_reason: o.deposit_rejection().map(str::to_owned),
        buyer_email: o.buyer_email,
        pay_url,
        error,
        events,
        csrf,
    })
}

/// The buyer's open DHMAD page, if any: the contract while it waits for the buyer's signature
/// (standard mode), else the payment page (`POST /api/checkout` sends the buyer to the same).
pub async fn live_buyer_url(e: impl PgExecutor<'_>, o: &Order) -> AppResult<Option<String>> {
    if !o.allows(Action::Sign) {
        return live_pay_url(e, o).await;
    }
    let live =
        sessions::live_session(e, o, &dhmad::CheckoutAction::SignContract, Party::Buyer).await?;
    Ok(live.map(|x| x.url))
}

/// The payment page the buyer can still use, if any.
pub async fn live_pay_url(e: impl PgExecutor<'_>, o: &Order) -> AppResult<Option<String>> {
    if o.status != OrderStatus::AwaitingPayment || o.in_payment_review() {
        return Ok(None);
    }
    // Only a page the buyer may be using alone: else "Pay" asks DHMAD first.
    Ok(sessions::live_pay_page(e, o).await?.map(|x| x.url))
}
