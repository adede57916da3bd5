//! The buyer's e-mails about an order: the link to follow it (the link is the only key to the
//! order page) and, for instant goods, the good itself. Queued through the outbox with what
//! they announce, sent by the worker, retried with backoff.

use std::time::Duration;

use super::fulfilment::{give_up_after, JobOutcome};
use super::{Mode, Order, OrderResult, OrderStatus};
use crate::db::{self, outbox::Job};
use crate::mail::{Email, MailError};
use crate::state::AppState;

/// Outbox kinds.
pub const CONFIRMATION: &str = "email_confirmation";
pub const GOOD: &str = "email_good";

/// An e-mail waits out about a day of SMTP outage (the backoff reaches 2.5-5 min; 400 tries
/// take 17-33 h), where a deliver's twelve tries end in 12-24 minutes: the reconciler queues a
/// deliver again, while nothing queues an e-mail again, and the confirmation is the only way
/// an API buyer learns the order's link.
const MAX_ATTEMPTS: i32 = 400;
/// Tries ending with the server silent after which an e-mail is given up (see `run`), counted
/// apart from refusals (`outbox_jobs.silent_tries`).
const MAX_SILENT_TRIES: i32 = 3;
/// The least wait after a silent try: a relay that stalls for a minute or two (at its process
/// limit, restarting behind a balancer) is waited out before the third silent try gives up.
const SILENT_TRY_SPACING: Duration = Duration::from_secs(10 * 60);
/// Order e-mails (the confirmation) one mailbox gets in [`FLOOD_WINDOW`] at most (an address
/// and its sub-addresses, `name+tag@…`, which reach the same inbox). Anyone may
/// start orders for any address, and each sent it a mail from the shop's own relay: a few
/// addresses under their checkout limits could flood a stranger's inbox, and the shop's
/// reputation with it. Past this, the e-mail is given up with why; the merchant's retry sends
/// it. (Paid orders' e-mails are not capped: each took a payment.)
const CONFIRMATIONS_PER_ADDRESS: i64 = 5;
const FLOOD_WINDOW: time::Duration = time::Duration::HOUR;

/// How often the code's e-mail looks again at an order under dispute.
const DISPUTE_RECHECK: Duration = Duration::from_secs(15 * 60);

fn order_link(state: &AppState, order: &Order) -> String {
    format!(
        "{}/orders/{}",
        state.config.public_base_url.as_str().trim_end_matches('/'),
        order.id
    )
}

fn confirmation(state: &AppState, order: &Order, product: &str) -> Email {
    // What the buyer does on the order's page, by mode: an instant good has no receipt to
    // confirm (DHMAD has no such step for it), a standard order is signed before it is paid.
    let steps = match order.mode {
        Mode::Instant => {
            "Follow it and pay here; your code appears there once DHMAD confirms \
                          your payment"
        }
        Mode::Quick => "Follow it, pay and confirm receipt here",
        Mode::Standard => "Follow it, sign the contract, pay and confirm receipt here",
    };
    Email {
        to: order.buyer_email.clone(),
        subject: format!("Your order: {product}"),
        // Anyone may start an order for any address, and whoever started it holds its link
        // too: a buyer who pays an order they did not place pays for someone else's.
        body: format!(
            "Thank you for your order of {product} ({} {}).\n\n\
             {steps} (keep this link to yourself: it is the key to your order):\n{}\n\n\
             DHMAD holds your payment in escrow until the order is done.\n\n\
             Did not place this order? Do not pay for it: whoever placed it can follow it \
             too. Nothing is owed, and an order nobody pays is cancelled.\n",
            order.amount,
            order.currency,
            order_link(state, order)
        ),
    }
}

fn good(state: &AppState, order: &Order, product: &str, code: &str) -> Email {
    Email {
        to: order.buyer_email.clone(),
        subject: format!("Your code for {product}"),
        body: format!(
            "Your payment is confirmed. Your code for {product}:\n\n    {code}\n\n\
             Your order: {}\n",
            order_link(state, order)
        ),
    }
}

/// Why the order's confirmation is not sent, if [`CONFIRMATIONS_PER_ADDRESS`] already went to
/// its address within [`FLOOD_WINDOW`]. Asked on every try until it is sent (a first try the
/// relay refused says nothing of the flood: a stranger's orders placed during an outage would
/// all go out once it ended), except for the merchant's retry of one given up, which they asked
/// to send.
async fn held_as_a_flood(
    state: &AppState,
    job: &Job,
    order: &Order,
) -> OrderResult<Option<String>> {
    let sent = db::outbox::sent_to_address(
        &state.pool,
        CONFIRMATION,
        &order.buyer_email,
        FLOOD_WINDOW,
        job.id,
    )
    .await?;
    if sent < CONFIRMATIONS_PER_ADDRESS
        || db::outbox::gave_up_before(&state.pool, CONFIRMATION, order.id).await?
    {
        return Ok(None);
    }
    Ok(Some(format!(
        "not sent: {sent} order e-mails went to this address within the hour (a flood of \
         orders for one address is not mailed; retry to send it)"
    )))
}

/// Runs one e-mail job.
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(job.order_id), job.kind = %job.kind))]
pub async fn run(state: &AppState, job: &Job) -> OrderResult<JobOutcome> {
    let Some(order) = db::orders::get(&state.pool, job.order_id).await? else {
        return Ok(JobOutcome::GiveUp("order not found".into()));
    };
    let product = db::products::get(&state.pool, &order.sku)
        .await?
        .map_or_else(|| order.sku.clone(), |p| p.name);
    let email = match job.kind.as_str() {
        GOOD => match order.visible_good() {
            Some(code) => good(state, &order, &product, code),
            // DHMAD holds the money while a dispute runs: the code stands again if it ends
            // for the seller (and is then on the order's page), so its e-mail waits.
            None if order.status == OrderStatus::Disputed && order.digital_code.is_some() => {
                return Ok(JobOutcome::Postpone(DISPUTE_RECHECK));
            }
            None => return Ok(JobOutcome::Done("no good to send any more".into())),
        },
        _ => {
            if let Some(why) = held_as_a_flood(state, job, &order).await? {
                return Ok(JobOutcome::GiveUp(why));
            }
            confirmation(state, &order, &product)
        }
    };
    Ok(match state.mailer.send(&email).await {
        Ok(()) => JobOutcome::Done("sent".into()),
        // A server silent before it asked for the message has nothing: tried again, but not
        // within minutes (a relay at its process limit takes the connection and says nothing).
        Err(e @ MailError::NotAnswering(_)) => {
            match give_up_after(MAX_ATTEMPTS, job, format!("e-mail not sent: {e}")) {
                JobOutcome::Retry(error) => JobOutcome::RetryIn(SILENT_TRY_SPACING, error),
                outcome => outcome,
            }
        }
        // A server that went silent after the message may have taken it, and a relay slower
        // than our timeout takes every copy: at most three tries end that way, however many
        // were refused before (an outage waited out).
        Err(e) if e.may_have_arrived() => {
            let error = format!(
                "e-mail may not have been sent: {e}; it may have arrived (retry to send it again)"
            );
            let silent = db::outbox::count_silent_try(&state.pool, job).await?;
            if silent.is_none_or(|n| n >= MAX_SILENT_TRIES) {
                JobOutcome::GiveUp(error)
            } else {
                match give_up_after(MAX_ATTEMPTS, job, error) {
                    JobOutcome::Retry(error) => JobOutcome::RetryIn(SILENT_TRY_SPACING, error),
                    outcome => outcome,
                }
            }
        }
        // No retry delivers to an address its server refused for good; the back office shows
        // it now, not after a day of tries.
        Err(e) if e.refused_for_good() => {
            JobOutcome::GiveUp(format!("e-mail refused for good: {e}"))
        }
        Err(e) => give_up_after(MAX_ATTEMPTS, job, format!("e-mail not sent: {e}")),
    })
}

/// An e-mail job that failed before its message was sent (the order could not be read): as
/// patient as with a refusing server.
pub fn failed(job: &Job, error: String) -> JobOutcome {
    give_up_after(MAX_ATTEMPTS, job, error)
}
