//! Checkout: record the intent, take DHMAD's calls from the budget, create the escrow
//! (`escrow`), open a payment session.

mod escrow;

use escrow::{
    call_create, create_escrow, create_failed, created_line, ensure_escrow, record_created,
};
pub use escrow::{creation_in_flight, escrow_title, in_flight_limit, short_ref, TITLE_MARKER};

use dhmad::CheckoutAction;
use uuid::Uuid;

use super::{
    notify, payment_review,
    queue::{self, Place},
    sessions::{self, ensure_session, open_session, Party},
    sync, Action, Mode, Order, OrderError, OrderResult, OrderStatus,
};
use crate::budget;
use crate::db::{self, budget::Claimant, events::NewEvent, products::Product, sessions::Session};
use crate::state::AppState;

/// Who is checking out, as far as continuing an open order goes. An open order is handed only
/// to the browser or API key that created it, never to whoever knows the buyer's e-mail. Its
/// `Debug` shows which, not the token or key (secrets: they continue the order).
#[derive(Clone)]
pub enum Owner {
    /// The browser's own random token (an HttpOnly cookie).
    Browser(String),
    /// The API client's `Idempotency-Key`: the same key with the same request continues the
    /// same order; with another request it is refused.
    Key(String),
    /// Nothing to recognise the caller by: always a new order.
    Nobody,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Owner::Browser(_) => "Browser([redacted])",
            Owner::Key(_) => "Key([redacted])",
            Owner::Nobody => "Nobody",
        })
    }
}

impl Owner {
    /// What `orders.owner_key` stores: a hash, so the database never holds a usable token.
    pub fn stored_key(&self) -> String {
        match self {
            Owner::Browser(t) => format!("browser:{}", sha256_hex(t)),
            Owner::Key(k) => format!("key:{}", sha256_hex(k)),
            Owner::Nobody => format!("once:{}", Uuid::new_v4()),
        }
    }
}

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A request to buy one product.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    pub sku: &'a str,
    pub email: &'a str,
    pub owner: Owner,
}

/// Its `Debug` shows references only: the order's id is its link, the session's opens DHMAD's
/// page.
#[derive(Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CheckoutStarted {
    pub order_id: Uuid,
    pub session_id: String,
    pub checkout_url: String,
}

impl std::fmt::Debug for CheckoutStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutStarted")
            .field("order", &crate::orders::log_ref(self.order_id))
            .field("session", &crate::orders::log_ref_of(&self.session_id))
            .finish_non_exhaustive()
    }
}

/// Where a checkout stands once the request is done.
#[derive(Debug)]
pub enum Started {
    /// The buyer can go to DHMAD's page now.
    Ready(CheckoutStarted),
    /// DHMAD's call budget is spent: the order is saved and waits in line; its calls are made
    /// as the budget frees up.
    Queued(Place),
}

/// Starts (or resumes) a checkout. Its DHMAD calls are taken from the budget first, all at
/// once; a checkout that cannot have them, or finds others waiting, joins the line.
#[tracing::instrument(skip_all, fields(product.sku = %req.sku.trim(), order.ref))]
pub async fn start(state: &AppState, req: CheckoutRequest<'_>) -> OrderResult<Started> {
    let sku = req.sku.trim();
    if sku.is_empty() {
        return Err(OrderError::Invalid("a product (sku) is required".into()));
    }
    let email =
        crate::email::normalise(req.email).map_err(|e| OrderError::Invalid(e.to_string()))?;
    let product = match is_sku(sku) {
        true => db::products::get_active(&state.pool, sku).await?,
        false => None,
    }
    .ok_or_else(|| OrderError::Invalid(format!("unknown product {sku:?}")))?;
    if let Owner::Key(key) = &req.owner {
        bind_key(state, key, sku, &email).await?;
    }
    let owner = req.owner.stored_key();
    let limits = state.config.dhmad_budget;
    // A caller with nothing to be recognised by has no open order to continue.
    let open = match req.owner {
        Owner::Nobody => None,
        _ => db::orders::find_open(&state.pool, &owner, &product.sku, &email).await?,
    };
    // A key names one request: replayed once its order was paid for, it answers as the first
    // time could not, but it never buys again (a client retrying a checkout it thinks lost
    // would send its buyer to pay twice).
    if let (None, Owner::Key(_)) = (&open, &req.owner) {
        if let Some(paid) =
            db::orders::find_funded(&state.pool, &owner, &product.sku, &email).await?
        {
            return Err(OrderError::not_allowed(format!(
                "This Idempotency-Key's order is already paid for: see /api/orders/{paid}"
            )));
        }
    }
    let order = match open {
        Some(o) => o,
        None => {
            // A new order takes its calls in the statement that writes it: it is written with
            // its escrow creation claimed and goes straight to DHMAD, or written in line.
            let taken = budget::Prepaid::new(queue::CALLS_PER_CHECKOUT);
            let claim = db::orders::ClaimCalls {
                calls: if limits.calls == 0 {
                    0
                } else {
                    taken.calls as i32
                },
                reuse_after: limits.reuse_after(),
                taker: taken.taker,
            };
            match insert_order(state, &product, &email, &owner, Some(claim)).await? {
                Some(o) if o.status == OrderStatus::CreatingEscrow => {
                    tracing::Span::current().record(
                        "order.ref",
                        tracing::field::display(crate::orders::log_ref(o.id)),
                    );
                    let state = &state.spending_as(Claimant::Interactive, taken);
                    let id = o.id;
                    let started = resume_with(state, o, Some(&product), Fresh::Yes).await;
                    state.give_back_unspent().await;
                    return ready_or_queued(state, id, started).await;
                }
                Some(o) => return Ok(Started::Queued(queue::joined(state, o.id).await?)),
                // The same owner's other checkout wrote it first: continue that one, and give
                // back the calls this one took with its order (a double click spent four).
                None => {
                    if let Err(e) = db::budget::give_back(&state.pool, taken.taker).await {
                        // Then they free at the end of their window, as used rows do.
                        tracing::warn!(error = %e, "could not give back unused DHMAD calls");
                    }
                    open_order(state, &product, &email, &owner).await?
                }
            }
        }
    };
    tracing::Span::current().record(
        "order.ref",
        tracing::field::display(crate::orders::log_ref(order.id)),
    );
    let calls = queue::calls_needed(state, &order).await?;
    let Some(taken) = budget::take(&state.pool, limits, calls, Claimant::NewCheckout).await? else {
        return Ok(Started::Queued(queue::enqueue(state, order.id).await?));
    };
    let state = &state.spending_as(Claimant::Interactive, taken);
    let started = continue_order(state, order, &product, &email, &owner).await;
    state.give_back_unspent().await;
    started
}

/// The open order a refused checkout from this caller was about, if any: its page says where
/// the order stands and what the buyer can do, where an error page would be a dead end.
pub async fn callers_open_order(
    state: &AppState,
    req: &CheckoutRequest<'_>,
) -> OrderResult<Option<Uuid>> {
    let (Owner::Browser(_) | Owner::Key(_), Ok(email)) =
        (&req.owner, crate::email::normalise(req.email))
    else {
        return Ok(None);
    };
    let owner = req.owner.stored_key();
    let open = db::orders::find_open(&state.pool, &owner, req.sku.trim(), &email).await?;
    Ok(open.map(|o| o.id))
}

/// Brings the caller's open order to a live payment session, reusing it only while DHMAD
/// says it can still be paid.
async fn continue_order(
    state: &AppState,
    order: Order,
    product: &Product,
    email: &str,
    owner: &str,
) -> OrderResult<Started> {
    // Paid, even already completed (its webhooks lost): this checkout must not sell it again.
    // Sent again once the order shows it, a checkout finds no open order and buys anew.
    let order = match sync::recheck_before_reuse(state, order).await? {
        o if o.status.is_funded() => {
            return Err(OrderError::not_allowed(format!(
                "You have already paid for this: see your order at /orders/{}",
                o.id
            )))
        }
        o if o.status.is_settled() => open_order(state, product, email, owner).await?,
        o => o,
    };
    tracing::Span::current().record(
        "order.ref",
        tracing::field::display(crate::orders::log_ref(order.id)),
    );
    let id = order.id;
    let started = resume_with(state, order, Some(product), Fresh::No).await;
    ready_or_queued(state, id, started).await
}

/// A call the checkout needed was held back (or DHMAD answered 429): the order waits in line.
async fn ready_or_queued(
    state: &AppState,
    order_id: Uuid,
    started: OrderResult<CheckoutStarted>,
) -> OrderResult<Started> {
    match started {
        Ok(started) => Ok(Started::Ready(started)),
        Err(OrderError::Busy { .. }) => Ok(Started::Queued(queue::enqueue(state, order_id).await?)),
        Err(e) => Err(e),
    }
}

/// Product codes as the catalog's CHECK constraint allows them; anything else is no product
/// (and never reaches a query: a NUL byte would make Postgres fail).
fn is_sku(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

/// Binds an `Idempotency-Key` to the request it first came with.
async fn bind_key(state: &AppState, key: &str, sku: &str, email: &str) -> OrderResult<()> {
    let fingerprint = sha256_hex(&format!("{sku}\n{email}"));
    let bound = db::orders::bind_checkout_key(&state.pool, &sha256_hex(key), &fingerprint).await?;
    if bound == fingerprint {
        Ok(())
    } else {
        Err(OrderError::KeyReused)
    }
}

/// The caller's open order for this product and buyer, or a new one. A repeated checkout
/// from the same browser (or with the same key) thus continues the same order and escrow.
async fn open_order(state: &AppState, p: &Product, email: &str, owner: &str) -> OrderResult<Order> {
    for _ in 0..3 {
        if let Some(o) = db::orders::find_open(&state.pool, owner, &p.sku, email).await? {
            return Ok(o);
        }
        if let Some(o) = insert_order(state, p, email, owner, None).await? {
            return Ok(o);
        }
    }
    Err(OrderError::not_allowed(
        "Your order changed while we were opening it. Please try again.",
    ))
}

/// Writes a new open order with its first line and its confirmation e-mail (the link to the
/// order reaches the buyer by e-mail, whoever started the checkout); `None` if the owner has
/// one open already. With `claim`, it takes its DHMAD calls (or its place in line) as it is
/// written.
async fn insert_order(
    state: &AppState,
    p: &Product,
    email: &str,
    owner: &str,
    claim: Option<db::orders::ClaimCalls>,
) -> OrderResult<Option<Order>> {
    let client = super::client::current();
    let new = db::orders::NewOrder {
        sku: &p.sku,
        mode: p.mode,
        buyer_email: email,
        amount: p.price,
        currency: &p.currency,
        owner_key: owner,
        proof_required: p.proof_required,
        claim,
        created: NewEvent {
            kind: "order_created",
            detail: format!("Order for {} created", p.name),
            public: Some("Order placed"),
        },
        job: Some(notify::CONFIRMATION),
        client: client.as_deref(),
    };
    Ok(db::orders::insert_open(&state.pool, &new).await?)
}

/// Brings an open order to a live payment session: creates the escrow if it has none yet and
/// reuses a pending session that is still open.
#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order.id)))]
pub async fn resume(state: &AppState, order: Order) -> OrderResult<CheckoutStarted> {
    resume_with(state, order, None, Fresh::No).await
}

/// Whether the order was written by this request with its escrow creation claimed: then it
/// has no escrow, no session and no payment to look for, and the first page opens directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    Yes,
    No,
}

/// `product`, when the caller has it already, saves reading it again.
async fn resume_with(
    state: &AppState,
    order: Order,
    product: Option<&Product>,
    fresh: Fresh,
) -> OrderResult<CheckoutStarted> {
    let call_order = order.id;
    super::call_log::for_order(call_order, Box::pin(async move {
        // Read before any creation is claimed: the claim's clock (`in_flight_limit`) counts
        // DHMAD's calls, not a wait for a pool connection.
        let read;
        let product = match product {
            Some(p) => p,
            None => {
                read = db::products::get(&state.pool, &order.sku)
                    .await?
                    .ok_or(OrderError::NotFound)?;
                &read
            }
        };
        let order = match fresh {
            Fresh::Yes if order.mode != Mode::Standard => {
                return first_payment_page(state, order, product).await;
            }
            Fresh::Yes => create_escrow(state, &order, product).await?,
            Fresh::No => ensure_escrow(state, order, product).await?,
        };
        // Standard mode: the buyer signs before paying, so the first DHMAD page is the contract.
        if order.allows(Action::Sign) {
            let session = buyer_page(state, &order, CheckoutAction::SignContract, fresh).await?;
            return Ok(started(&order, session));
        }
        if order.mode == Mode::Standard && !order.contract_signed() {
            return Err(OrderError::not_allowed(
                "You have signed; the shop has not signed the contract yet. You can pay once it has.",
            ));
        }
        if fresh == Fresh::No {
            // Under review, a page still open is not offered either: a guest would pay twice.
            // DHMAD is asked unless the live page is the only one the buyer may have used.
            let alone = sessions::live_pay_page(&state.pool, &order).await?;
            let reviewed = order.in_payment_review()
                || (alone.is_none() && payment_review::known(state, &order).await?);
            if reviewed {
                return Err(OrderError::not_allowed(
                    "DHMAD is confirming your payment. We will confirm your order as soon as it \
                     has; there is nothing more to pay.",
                ));
            }
        }
        let session = buyer_page(state, &order, CheckoutAction::AcceptPay, fresh).await?;
        Ok(started(&order, session))
    }))
    .await
}

/// The buyer's session of `action`: a new one for a fresh order, else a live one if any.
async fn buyer_page(
    state: &AppState,
    order: &Order,
    action: CheckoutAction,
    fresh: Fresh,
) -> OrderResult<Session> {
    match fresh {
        Fresh::Yes => open_session(state, order, action, Party::Buyer).await,
        Fresh::No => ensure_session(state, order, action, Party::Buyer).await,
    }
}

fn started(order: &Order, session: Session) -> CheckoutStarted {
    CheckoutStarted {
        order_id: order.id,
        session_id: session.session_id,
        checkout_url: session.url,
    }
}

/// A fresh order with no contract: both DHMAD calls (the escrow, then the payment page), then
/// one statement that records them. The intent was committed before the first call: a crash
/// in between leaves the order `creating_escrow`, and the reconciler finds the escrow by its
/// title. Should DHMAD not open the page, the escrow is recorded alone.
async fn first_payment_page(
    state: &AppState,
    order: Order,
    product: &Product,
) -> OrderResult<CheckoutStarted> {
    let created = match call_create(state, &order, product).await? {
        Ok(created) if created.contract.is_none() => created,
        Ok(created) => {
            let order = record_created(state, &order, created).await?;
            return resume_with(state, order, Some(product), Fresh::No).await;
        }
        Err(err) => return Err(create_failed(state, &order, err).await?),
    };
    let action = CheckoutAction::AcceptPay;
    let req = sessions::request(state, &order, &action, Party::Buyer)?;
    let escrow = &created.escrow;
    let page = match state.dhmad.create_session(&escrow.id, &req).await {
        Ok(page) => page,
        Err(err) => {
            // The order as recorded, with its escrow: a refusal may be read back from it.
            let order = record_created(state, &order, created).await?;
            return Err(sessions::failed(state, &order, &action, err).await?);
        }
    };
    if let Err(e) = sessions::on_dhmad(state, &order, &page).await {
        record_created(state, &order, created).await?;
        return Err(e);
    }
    let session = sessions::new_session(&order, &escrow.id, &action, Party::Buyer, &page);
    let lines = [
        created_line(escrow),
        sessions::opened_line(&action, Party::Buyer),
    ];
    let at = escrow.updated_at.or(escrow.created_at);
    let status = escrow.status.as_str();
    if db::orders::record_escrow_and_session(&state.pool, order.id, status, at, &session, &lines)
        .await?
    {
        return Ok(CheckoutStarted {
            order_id: order.id,
            session_id: page.session_id,
            checkout_url: page.url,
        });
    }
    // The order moved on meanwhile (another request resolved it): continue from where it is.
    let order = db::orders::get(&state.pool, order.id)
        .await?
        .ok_or(OrderError::NotFound)?;
    resume_with(state, order, Some(product), Fresh::No).await
}
