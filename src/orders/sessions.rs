//! DHMAD checkout sessions for an order: reuse a pending one that stays open long enough,
//! else open a new one (sessions are cheap and single-use; escrows are not). Sessions for the
//! buyer target the order's e-mail; sessions for the merchant target `DHMAD_SELLER_EMAIL`.

use dhmad::{CheckoutAction, CreateSession};
use sqlx::PgExecutor;
use time::OffsetDateTime;

use super::{Order, OrderError, OrderResult};
use crate::db::{self, events::NewEvent, sessions::Session};
use crate::state::AppState;

/// A session is reused only if it stays open at least this long: time for the user to act.
pub const MIN_SESSION_LIFE: time::Duration = time::Duration::minutes(2);

/// How far DHMAD's clock may run behind ours when a page's `expiresAt` is compared with our
/// time: a page is taken for closed only this long after it. The skew the webhook verifier
/// accepts (five minutes): with less, a DHMAD whose signed news passes could still hold a page
/// open that the shop took for closed, and the merchant's cancel went through under a guest
/// paying on it.
pub const CLOCK_LEEWAY: time::Duration = dhmad::webhook::DEFAULT_TOLERANCE;

/// Whether the buyer's payment page of an instant order may still be open at DHMAD: a page
/// not known closed, expiring after `now` less DHMAD's clock leeway. A guest may be paying on
/// it outside DHMAD's wallet, so the merchant's cancel waits (`actions::merchant_cancel`, and
/// the back office, which offers no cancel meanwhile). A page finished with a guest's proof
/// counts once DHMAD rejected the proof: the rejection reopens it for a new upload (§4.2),
/// and the order's page invites one.
pub fn buyer_payment_page_open(order: &Order, pages: &[Session], now: OffsetDateTime) -> bool {
    let reopened = order.deposit_rejection_reason.is_some();
    order.is_instant()
        && pages.iter().any(|s| {
            s.action == CheckoutAction::AcceptPay.as_str()
                && !s.for_merchant
                && (s.status == "pending" || (reopened && s.status == "completed"))
                && s.expires_at > now - CLOCK_LEEWAY
        })
}

/// The buyer's next page on DHMAD: the contract while it is theirs to sign, else the payment;
/// none while a payment is under review, or the shop has yet to sign (a checkout is refused
/// then), or once the order is past paying.
pub fn next_buyer_action(order: &Order) -> Option<CheckoutAction> {
    if order.allows(super::Action::Sign) {
        return Some(CheckoutAction::SignContract);
    }
    let payable = order.status == super::OrderStatus::AwaitingPayment
        && !order.in_payment_review()
        && (order.mode != super::Mode::Standard || order.contract_signed());
    payable.then_some(CheckoutAction::AcceptPay)
}

/// Who must finish the session on DHMAD's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Buyer,
    Merchant,
}

/// The order's pending session of `action` for `party` that stays open long enough.
pub async fn live_session(
    e: impl PgExecutor<'_>,
    order: &Order,
    action: &CheckoutAction,
    party: Party,
) -> sqlx::Result<Option<Session>> {
    let open_until = OffsetDateTime::now_utc() + MIN_SESSION_LIFE;
    let merchant = party == Party::Merchant;
    db::sessions::live_for_order(e, order.id, action.as_str(), merchant, open_until).await
}

/// The buyer's last payment page and every older one that may still have been open when it
/// was opened, newest first, from the order's pages newest first: a page is reused only while
/// it has minutes left (`MIN_SESSION_LIFE`), so a guest may hold two at once and send a proof
/// on the older. Any older page was closed before the last one opened.
pub(super) fn pay_pages_maybe_used(pages: Vec<Session>) -> Vec<Session> {
    let action = CheckoutAction::AcceptPay.as_str();
    let mut pages = pages
        .into_iter()
        .filter(|s| s.action == action && !s.for_merchant);
    let Some(last) = pages.next() else {
        return Vec::new();
    };
    let opened = last.created_at;
    let mut maybe = vec![last];
    maybe.extend(pages.filter(|s| s.expires_at + CLOCK_LEEWAY > opened));
    maybe
}

/// The buyer's live payment page, when it is the only one the buyer may be using: an older
/// page that may still have been open beside it may hold a guest's proof sent without coming
/// back, which only DHMAD can tell. Then no page is handed out as it is, and the buyer goes
/// through "Pay", which asks DHMAD first (`payment_review::known`).
pub async fn live_pay_page(e: impl PgExecutor<'_>, order: &Order) -> sqlx::Result<Option<Session>> {
    let open_until = OffsetDateTime::now_utc() + MIN_SESSION_LIFE;
    let mut pages =
        pay_pages_maybe_used(db::sessions::list_for_order(e, order.id).await?).into_iter();
    let last = pages.next();
    let alone = pages.all(|s| s.status == "cancelled");
    Ok(last.filter(|s| alone && s.status == "pending" && s.expires_at > open_until))
}

/// A pending session of `action` for `party` that stays open long enough, or a new one.
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order.id), action = %action, party = ?party))]
pub async fn ensure_session(
    state: &AppState,
    order: &Order,
    action: CheckoutAction,
    party: Party,
) -> OrderResult<Session> {
    if let Some(s) = live_session(&state.pool, order, &action, party).await? {
        return Ok(s);
    }
    open_session(state, order, action, party).await
}

/// How long a request waits for the page another request is opening before it asks the user to
/// try again (an opening takes one DHMAD call).
const WAIT_FOR_OTHER_OPENER: std::time::Duration = std::time::Duration::from_secs(5);
const WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(100);

/// The claim on opening the order's page of one action for one side (`session_openings`):
/// while it is held, nobody else opens that page, nor cancels the escrow under it (the
/// abandoned-order job takes the buyer's payment claim). Let go by [`OpeningClaim::release`],
/// or when dropped (a request cut short mid-call), so that the next opener does not wait out
/// the lease, which only covers a process that died.
pub struct OpeningClaim {
    pool: db::Pool,
    order_id: uuid::Uuid,
    action: String,
    for_merchant: bool,
    token: Option<OffsetDateTime>,
}

impl OpeningClaim {
    /// The claim, or `None` while another holds it.
    pub async fn take(
        state: &AppState,
        order_id: uuid::Uuid,
        action: &CheckoutAction,
        party: Party,
    ) -> OrderResult<Option<Self>> {
        let for_merchant = party == Party::Merchant;
        let token = db::sessions::claim_opening(
            &state.pool,
            order_id,
            action.as_str(),
            for_merchant,
            opening_lease(state.config.dhmad_timeout),
        )
        .await?;
        Ok(token.map(|t| Self {
            pool: state.pool.clone(),
            order_id,
            action: action.as_str().to_owned(),
            for_merchant,
            token: Some(t),
        }))
    }

    pub async fn release(mut self) {
        if let Some(token) = self.token.take() {
            let (id, action, merchant) = (self.order_id, &self.action, self.for_merchant);
            if let Err(e) =
                db::sessions::release_opening(&self.pool, id, action, merchant, token).await
            {
                tracing::warn!(order.ref = %crate::orders::log_ref(id), error = %e, "could not let go of a session claim; it runs out by itself");
            }
        }
    }
}

impl Drop for OpeningClaim {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let (pool, id, action, merchant) = (
            self.pool.clone(),
            self.order_id,
            std::mem::take(&mut self.action),
            self.for_merchant,
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = db::sessions::release_opening(&pool, id, &action, merchant, token).await;
            });
        }
    }
}

/// How long a claim holds if its holder dies: past the longest work done under it (the
/// checkout queue's worker and the jobs have no request deadline to cut it short). That is
/// the abandoned-order job's cancel (`actions::cancel_abandoned`): the look at the buyer's
/// payment pages that may have been used (two at most: a page is only replaced in its last
/// minutes), then the escrow's cancel or, when a page was finished, a read of the escrow;
/// opening a page is one write.
fn opening_lease(timeout: std::time::Duration) -> std::time::Duration {
    super::patience::lease(timeout, OPENING_CLAIM_READS, 0)
}

/// The DHMAD reads the longest work under an opening claim makes (reads outlast writes).
const OPENING_CLAIM_READS: u32 = 3;

/// Opens a new session of `action` for `party` at DHMAD and records it, one opener at a time:
/// DHMAD lets two `accept_pay` pages of one pending escrow be open together (a guest could pay
/// on both), so a second request waits for the first one's page and gets it. Callers that know
/// the order can have no live one (its escrow was created just now) skip [`ensure_session`]'s
/// look.
pub async fn open_session(
    state: &AppState,
    order: &Order,
    action: CheckoutAction,
    party: Party,
) -> OrderResult<Session> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER_OPENER;
    loop {
        if let Some(claim) = OpeningClaim::take(state, order.id, &action, party).await? {
            let opened = open_claimed(state, order, &action, party).await;
            claim.release().await;
            return opened;
        }
        if tokio::time::Instant::now() >= deadline {
            // Not `InProgress`: the waiting page follows a creation, not a stalled opener.
            return Err(OrderError::not_allowed(
                "This page is being opened by another request. Please try again in a few seconds.",
            ));
        }
        tokio::time::sleep(WAIT_STEP).await;
        if let Some(s) = live_session(&state.pool, order, &action, party).await? {
            return Ok(s);
        }
    }
}

/// Under the opening claim: the page another request stored just before it, or a new one.
async fn open_claimed(
    state: &AppState,
    order: &Order,
    action: &CheckoutAction,
    party: Party,
) -> OrderResult<Session> {
    if let Some(s) = live_session(&state.pool, order, action, party).await? {
        return Ok(s);
    }
    let action = action.clone();
    let call_order = order.id;
    super::call_log::for_order(
        call_order,
        Box::pin(async move {
            let escrow_id = order
                .escrow_id
                .as_deref()
                .ok_or_else(|| OrderError::not_allowed("This order has no escrow yet."))?;
            let req = request(state, order, &action, party)?;
            match state.dhmad.create_session(escrow_id, &req).await {
                Ok(c) => {
                    on_dhmad(state, order, &c).await?;
                    let new = new_session(order, escrow_id, &action, party, &c);
                    let line = opened_line(&action, party);
                    Ok(db::sessions::insert(&state.pool, &new, &line).await?)
                }
                Err(err) => Err(failed(state, order, &action, err).await?),
            }
        }),
    )
    .await
}

/// What DHMAD is asked for: a session of `action` for the buyer's e-mail or the merchant's
/// DHMAD account, back to our callback.
pub(super) fn request(
    state: &AppState,
    order: &Order,
    action: &CheckoutAction,
    party: Party,
) -> OrderResult<CreateSession> {
    let target = match party {
        Party::Buyer => order.buyer_email.as_str(),
        Party::Merchant => state.config.seller_email.as_deref().ok_or_else(|| {
            OrderError::not_allowed(
                "DHMAD_SELLER_EMAIL is not set: the shop cannot act on DHMAD's pages.",
            )
        })?,
    };
    // The order's short reference, as in the escrow's title: its id is the buyer's key to
    // the order (and an instant order's code), which DHMAD's session records need not hold.
    Ok(
        CreateSession::new(action.clone(), target, state.config.callback_url())
            .metadata("order_ref", super::checkout::short_ref(order.id)),
    )
}

/// The session DHMAD opened, as it is stored.
pub(super) fn new_session<'a>(
    order: &Order,
    escrow_id: &'a str,
    action: &'a CheckoutAction,
    party: Party,
    c: &'a dhmad::CreatedSession,
) -> db::sessions::NewSession<'a> {
    db::sessions::NewSession {
        session_id: &c.session_id,
        order_id: order.id,
        escrow_id,
        action: action.as_str(),
        url: &c.url,
        expires_at: c.expires_at,
        for_merchant: party == Party::Merchant,
    }
}

/// Whether a page DHMAD opened is on one of its checkout origins, the list the shop's CSP lets
/// forms go to: buyers and the merchant are sent there with a redirect, so a URL anywhere else
/// (a wrong `DHMAD_CHECKOUT_ORIGIN`, an answer altered on its way) is not followed, and one
/// with a control character would not make a `Location` header. Refused as DHMAD failing.
pub(super) async fn on_dhmad(
    state: &AppState,
    order: &Order,
    page: &dhmad::CreatedSession,
) -> OrderResult<()> {
    let origins = state.config.checkout_origins();
    let known = !page.url.chars().any(char::is_control)
        && url::Url::parse(&page.url).is_ok_and(|u| {
            matches!(u.scheme(), "https" | "http")
                && origins.contains(&u.origin().ascii_serialization())
        });
    if known {
        return Ok(());
    }
    // The session's id opens its page and, through the callback, the order: cut, as in logs.
    let cause = format!(
        "DHMAD's page for session {}… is not on its checkout origins {origins:?} \
         (DHMAD_CHECKOUT_ORIGIN): not followed",
        crate::orders::log_ref_of(&page.session_id)
    );
    db::events::add(&state.pool, order.id, "session_failed", &cause, None).await?;
    Err(OrderError::DhmadFailed {
        message: "DHMAD answered with a page the shop does not know. Please try again later."
            .into(),
        cause,
    })
}

/// The timeline line of an opened session.
pub(super) fn opened_line(action: &CheckoutAction, party: Party) -> NewEvent<'static> {
    NewEvent {
        kind: "session_opened",
        detail: format!("Checkout session opened ({action}, {party:?})"),
        public: None,
    }
}

/// DHMAD would not open the session: the error for the user, and a line for the back office
/// (none for a call the budget held back). A refusal that says the order's view of the escrow
/// is behind (its status moved on, a dispute or a signature made on DHMAD's page with the
/// callback and the event lost, an escrow DHMAD no longer shows) is news: the escrow is read
/// and applied now, so the pages stop offering the step (they did until the reconciler's next
/// look), and an escrow DHMAD does not know is flagged. The refusal is still shown. (Read
/// under the opening claim: its lease allows for several calls, and a refused page is rare.)
pub(super) async fn failed(
    state: &AppState,
    order: &Order,
    action: &CheckoutAction,
    err: dhmad::Error,
) -> OrderResult<OrderError> {
    let behind = view_behind(&err);
    let what = format!("could not open a {action} session");
    let err = if matches!(err, dhmad::Error::Validation(_)) {
        // A 400 without a code: DHMAD will not open this page as the order now stands (§4.1
        // leaves the codes of most refusals UNSTATED). Trying again will not help until the
        // escrow moves, which the read below may show.
        OrderError::Refused {
            message: super::error::REFUSED.into(),
            cause: format!("{what}: {err}"),
            code: None,
        }
    } else {
        OrderError::from_dhmad(err, &what)
    };
    if let (Some(reason), false) = (err.cause(), matches!(err, OrderError::Busy { .. })) {
        db::events::add(&state.pool, order.id, "session_failed", &reason, None).await?;
    }
    if behind {
        let why = format!("read after DHMAD refused a {action} page");
        if let Err(read) = super::sync::refresh_order(state, order, &why).await {
            tracing::warn!(order.ref = %crate::orders::log_ref(order.id), error = %read, "could not read the escrow after a refused page");
        }
    }
    Ok(err)
}

/// Whether DHMAD's refusal may say the escrow is not as the order last saw it: any refusal
/// but those about the shop's own setup and those read back where they are answered (the
/// cancellation's, `actions::cancellation_known_at_dhmad`). DHMAD names few of its refusals (§4.1: "other cases → 400, code UNSTATED";
/// a proof review past its deadline, a step on an escrow cancelled at its `expiresAt`, which
/// sends no event), so a refusal it does not name is read back too.
fn view_behind(err: &dhmad::Error) -> bool {
    use dhmad::ErrorCode as C;
    match err {
        dhmad::Error::NotFound(_)
        | dhmad::Error::Forbidden(_)
        | dhmad::Error::Validation(_)
        | dhmad::Error::Conflict(_) => true,
        dhmad::Error::BusinessRule { code, .. } => !matches!(
            code,
            C::NoRedirectUrlsConfigured
                | C::RedirectUrlNotAllowed
                | C::RedirectUrlMustBeHttps
                | C::CheckoutTargetNotBuyer
                | C::CheckoutTargetNotSeller
                | C::SellerNotReady
                | C::SellerIdentityRequired
                | C::CancellationAlreadyRequested
                | C::NoPendingCancellation
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::patience::walked;

    /// The abandoned-order job's cancel outlasted the claim (eight timeouts and 10 s, at least
    /// two minutes): at a 10 s timeout its two page reads and cancel could take 150 s and more,
    /// and a buyer back meanwhile got a new payment page that the cancel then closed.
    #[test]
    fn an_opening_claim_outlasts_the_cancel_made_under_it() {
        for secs in [1, 7, 10, 20, 60] {
            let t = std::time::Duration::from_secs(secs);
            let lease = opening_lease(t);
            for (reads, writes) in [(2, 1), (3, 0), (0, 1)] {
                let worst = walked(t, reads, writes);
                assert!(
                    lease > worst,
                    "{secs} s, {reads}+{writes}: {lease:?} against {worst:?}"
                );
            }
        }
    }
}
