//! Creating an order's escrow. DHMAD has no idempotency keys, so `POST /escrows` is never
//! resent blindly: the order is written first, the create call is claimed (`creating_escrow`)
//! so only one request makes it, and a timeout leaves the order `needs_reconciliation` until
//! someone looks at DHMAD's list.

use dhmad::{CreateEscrow, Currency, FulfillmentPolicy, FulfillmentPolicyType, ProofType};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{self, events::NewEvent, products::Product};
use crate::orders::{lost_escrow, Mode, Order, OrderError, OrderResult, OrderStatus, SAVED};
use crate::state::AppState;

pub(super) async fn ensure_escrow(
    state: &AppState,
    mut order: Order,
    product: &Product,
) -> OrderResult<Order> {
    for _ in 0..3 {
        match order.status {
            OrderStatus::AwaitingPayment => return Ok(order),
            OrderStatus::New | OrderStatus::EscrowFailed => {
                if let Some(at) = db::orders::claim_creation(&state.pool, order.id).await? {
                    order.status = OrderStatus::CreatingEscrow;
                    order.escrow_attempted_at = Some(at);
                    return create_escrow(state, &order, product).await;
                }
            }
            OrderStatus::NeedsReconciliation => {
                lost_escrow::reconcile_creation_for_buyer(state, &order).await?;
            }
            OrderStatus::CreatingEscrow => {
                if creation_in_flight(state, &order) {
                    return Err(OrderError::InProgress);
                }
                let reason = "escrow creation was interrupted; checking DHMAD";
                let claim = order.escrow_attempted_at;
                let in_flight = in_flight_limit(state);
                let marked = db::orders::mark_unknown_if_in_flight(
                    &state.pool,
                    order.id,
                    claim,
                    reason,
                    in_flight,
                )
                .await?;
                let now = db::orders::get(&state.pool, order.id)
                    .await?
                    .ok_or(OrderError::NotFound)?;
                // Not over by the database's clock, which stamped the claim: this instance's
                // runs ahead of it.
                if !marked
                    && now.status == OrderStatus::CreatingEscrow
                    && now.escrow_attempted_at == claim
                {
                    return Err(OrderError::InProgress);
                }
                order = now;
                continue;
            }
            other => {
                return Err(OrderError::not_allowed(format!(
                    "This order is no longer awaiting payment ({}).",
                    other.label()
                )))
            }
        }
        order = db::orders::get(&state.pool, order.id)
            .await?
            .ok_or(OrderError::NotFound)?;
    }
    Err(OrderError::DhmadUnavailable {
        message: "We could not start your checkout. Please try again.".into(),
        // Cut, as every id in a log line (the cause is logged).
        cause: format!(
            "order {}… kept changing while its escrow was prepared",
            short_ref(order.id)
        ),
    })
}

/// After this long a `creating_escrow` order cannot still be waiting for its answer. The
/// slowest creation is two `POST /escrows` (a standard escrow DHMAD refuses `autoSign` for is
/// asked again without), each bounded by the client's timeout, and each possibly held first
/// for a pool connection (`db::ACQUIRE_TIMEOUT`: a call sent late dates its budget row), plus
/// a margin for the rest of the work and for the clocks of the instance that judges and of
/// the database that stamped the claim. (The product is read before the claim.) Taken for
/// over, a creation still running is looked up at DHMAD before its escrow exists, called safe
/// to retry, and made twice.
pub fn in_flight_limit(state: &AppState) -> time::Duration {
    let one_call = state.config.dhmad_timeout + db::ACQUIRE_TIMEOUT;
    time::Duration::try_from(one_call * 2).unwrap_or(time::Duration::MINUTE) + MARGIN
}

/// An escrow creation claimed by a request that may still be making its calls
/// (`creating_escrow`, claimed within [`in_flight_limit`]).
pub fn creation_in_flight(state: &AppState, order: &Order) -> bool {
    order.status == OrderStatus::CreatingEscrow
        && order
            .escrow_attempted_at
            .is_none_or(|t| OffsetDateTime::now_utc() - t <= in_flight_limit(state))
}

/// The work around a creation's calls on a loaded host, and the skew between an instance's
/// clock and the database's.
const MARGIN: time::Duration = time::Duration::seconds(5);

/// The escrow's title carries the order id, so an escrow whose creation answer was lost can
/// be recognised later in DHMAD's list.
pub fn escrow_title(product_name: &str, order_id: Uuid) -> String {
    format!("{product_name}{TITLE_MARKER}{}", short_ref(order_id))
}

/// The order's short reference people read (on DHMAD's pages and in the escrow's title): the
/// first 8 hex digits of its id. 32 bits: with the buyer's e-mail and the time window of a
/// lookup, enough to tell escrows apart.
pub fn short_ref(order_id: Uuid) -> String {
    order_id.simple().to_string()[..8].to_owned()
}

/// What precedes the order id in an escrow's title.
pub const TITLE_MARKER: &str = " · order ";

#[tracing::instrument(skip_all, fields(order.ref = %crate::orders::log_ref(order.id), escrow.id))]
pub(super) async fn create_escrow(
    state: &AppState,
    order: &Order,
    product: &Product,
) -> OrderResult<Order> {
    match call_create(state, order, product).await? {
        Ok(created) => record_created(state, order, created).await,
        Err(err) => Err(create_failed(state, order, err).await?),
    }
}

/// `POST /escrows` for the order, as its product sells it.
pub(super) async fn call_create(
    state: &AppState,
    order: &Order,
    product: &Product,
) -> OrderResult<Result<dhmad::CreatedEscrow, dhmad::Error>> {
    let mut req = escrow_request(order, product);
    let mut created = state.dhmad.create_escrow(&req).await;
    // DHMAD refuses autoSign when the portal holds no signature for the merchant: nothing was
    // created (a refusal: a 400, or a business rule under another status), so asking again
    // without it is safe; the merchant signs from the back office instead.
    if req.auto_sign == Some(true)
        && matches!(
            created,
            Err(dhmad::Error::BusinessRule { .. } | dhmad::Error::Validation(_))
        )
    {
        tracing::info!(order.ref = %crate::orders::log_ref(order.id), "DHMAD refused autoSign; the merchant signs on DHMAD's page");
        req.auto_sign = None;
        created = state.dhmad.create_escrow(&req).await;
    }
    if let Ok(c) = &created {
        tracing::Span::current().record("escrow.id", c.escrow.id.as_str());
    }
    Ok(created)
}

/// The timeline line of a created escrow.
pub(super) fn created_line(escrow: &dhmad::Escrow) -> NewEvent<'static> {
    NewEvent {
        kind: "escrow_created",
        detail: format!("DHMAD escrow {} created", escrow.id),
        public: Some("Secure payment prepared with DHMAD"),
    }
}

/// Records the escrow DHMAD created (and its contract's signatures) on the order.
pub(super) async fn record_created(
    state: &AppState,
    order: &Order,
    created: dhmad::CreatedEscrow,
) -> OrderResult<Order> {
    let contract = created.contract;
    let e = created.escrow;
    let at = e.updated_at.or(e.created_at);
    let line = created_line(&e);
    let status = e.status.as_str();
    let recorded = match &contract {
        // One statement: the escrow and its timeline line.
        None => db::orders::record_escrow(&state.pool, order.id, &e.id, status, at, &line).await?,
        Some(c) => {
            let mut conn = state.pool.acquire().await?;
            let mut tx = db::tx::begin(&mut conn).await?;
            let recorded =
                db::orders::record_escrow(&mut *tx, order.id, &e.id, status, at, &line).await?;
            // Only for this escrow: an order that took another one meanwhile (a reconciliation
            // over the claim) keeps that escrow's signatures; one the reconciliation gave this
            // very escrow (DHMAD's list carries no signatures) gets them.
            let holds = match &recorded {
                Some(_) => true,
                None => db::orders::get(&mut *tx, order.id)
                    .await?
                    .is_some_and(|o| o.escrow_id.as_deref() == Some(e.id.as_str())),
            };
            if holds {
                let facts = db::orders::EscrowFacts {
                    buyer_signed: Some(c.buyer_signed),
                    seller_signed: Some(c.seller_signed),
                    ..Default::default()
                };
                db::orders::set_escrow_facts(&mut *tx, order.id, &facts).await?;
            }
            tx.commit().await?;
            recorded
        }
    };
    match recorded {
        Some(o) if contract.is_none() => Ok(o),
        // The contract's signatures were kept after the row was returned; or the order moved
        // on meanwhile (another request resolved it): take it as it is.
        _ => db::orders::get(&state.pool, order.id)
            .await?
            .ok_or(OrderError::NotFound),
    }
}

/// `POST /escrows` failed: what the order keeps and what the user is told.
pub(super) async fn create_failed(
    state: &AppState,
    order: &Order,
    err: dhmad::Error,
) -> OrderResult<OrderError> {
    // DHMAD's cap on new escrows: waiting in line would not lift it (`classify_create_error`).
    let capped = err.is_creation_cap();
    if let Some(retry_after) = crate::orders::error::busy_for(&err).filter(|_| !capped) {
        // Nothing was created (the call was held back, or DHMAD answered 429 without
        // acting): the order goes back to waiting for its turn, with nothing to tell.
        db::orders::unclaim_creation(&state.pool, order.id, order.escrow_attempted_at).await?;
        return Ok(OrderError::Busy { retry_after });
    }
    let unanswered = may_still_be_making(&err);
    let (status, reason, err) = classify_create_error(err);
    let detail = err.cause().unwrap_or_default();
    let public = Some("We could not start the payment with DHMAD; your order is saved");
    let mut conn = state.pool.acquire().await?;
    let mut tx = db::tx::begin(&mut conn).await?;
    let (claimed, at) = ([OrderStatus::CreatingEscrow], order.escrow_attempted_at);
    if db::orders::record_failure(&mut *tx, order.id, &claimed, status, &reason, at).await? {
        db::events::add(&mut *tx, order.id, "escrow_failed", &detail, public).await?;
        if unanswered {
            let window = in_flight_limit(state);
            let after = state.config.dhmad_timeout + std::time::Duration::from_secs(5);
            db::orders::creation_unanswered(&mut *tx, order.id, at, window, after).await?;
        }
    }
    tx.commit().await?;
    Ok(err)
}

/// Whether a failed create got no answer from DHMAD itself, which may then still be making
/// the escrow (often why it did not answer): a timeout, a connection cut after the request
/// left, a gateway's 502, 503 or 504 in front of DHMAD.
fn may_still_be_making(err: &dhmad::Error) -> bool {
    match err {
        dhmad::Error::Timeout => true,
        dhmad::Error::Transport(t) => !t.is_connect(),
        dhmad::Error::Server(_) => matches!(err.status(), Some(502..=504)),
        _ => false,
    }
}

/// The escrow for the order as its product sells it. The merchant sells as its associated
/// DHMAD user: no sellerEmail (instant and autoSign require that).
fn escrow_request(order: &Order, product: &Product) -> CreateEscrow {
    let mut req = CreateEscrow::new(
        escrow_title(&product.name, order.id),
        order.amount,
        &order.buyer_email,
    )
    .mode(order.mode.to_dhmad())
    .currency(Currency::from(order.currency.as_str()));
    if order.mode != Mode::Instant {
        let days = product.estimated_delivery_days.unwrap_or(5).max(1);
        req = req.estimated_delivery_days(days.unsigned_abs());
    }
    if order.mode == Mode::Standard {
        let terms = product.contract_terms.clone().unwrap_or_default();
        req = req.contract_terms(terms).auto_sign(true);
    }
    // The order's own copy, as the state machine's proof gate reads it: an escrow made later
    // (a retry, a queued checkout) after the product's row changed must not open a gate the
    // order keeps closed, nor the reverse.
    if order.proof_required && order.mode == Mode::Quick {
        let hours = |h: Option<i32>| h.and_then(|h| u32::try_from(h).ok());
        req = req.fulfillment_policy(FulfillmentPolicy {
            policy_type: FulfillmentPolicyType::PurchaseProofRequired,
            proof_upload_deadline_hours: hours(product.proof_upload_hours),
            buyer_review_deadline_hours: hours(product.proof_review_hours),
            allowed_proof_types: Some(vec![ProofType::Receipt, ProofType::ProductPhoto]),
        });
    }
    req
}

/// What a failed `POST /escrows` means: the order's status (nothing was created, so a retry is
/// safe; or the escrow may exist, so DHMAD is looked at before any retry), the reason the order
/// keeps (its JSON shows it: no internal detail such as URLs or transport errors; the full error
/// goes to the back-office timeline and the log) and the error the user gets.
fn classify_create_error(err: dhmad::Error) -> (OrderStatus, String, OrderError) {
    use dhmad::Error as E;
    const UNKNOWN: &str = "outcome unknown; checking DHMAD before any retry";
    let (failed, unknown) = (OrderStatus::EscrowFailed, OrderStatus::NeedsReconciliation);
    let cause = format!("escrow creation failed: {err}");
    let unknown_cause = format!("{cause} ({UNKNOWN})");
    let unavailable = |message: &str, cause: String| OrderError::DhmadUnavailable {
        message: format!("{message} {SAVED}"),
        cause,
    };
    let provider_error = |cause: String| OrderError::DhmadFailed {
        message: format!("The payment provider reported an error. {SAVED}"),
        cause,
    };
    let unreachable = "The payment provider is unreachable or busy.";
    let late = "The payment provider did not answer in time.";
    let status = err.status();
    match err {
        // No answer, or an answer we could not read: the escrow may exist.
        E::Timeout => (
            unknown,
            format!("DHMAD did not answer in time ({UNKNOWN})"),
            unavailable(late, unknown_cause),
        ),
        E::Decode { .. } | E::TooLarge { .. } => (
            unknown,
            format!("DHMAD's answer could not be read ({UNKNOWN})"),
            unavailable(late, unknown_cause),
        ),
        // Sent, then a failure: DHMAD may have created the escrow before failing, and it has
        // no idempotency keys (`docs/dhmad-api.md` §9), so only a look tells whether a new one
        // may be made.
        E::Server(_) => (
            unknown,
            format!("DHMAD answered {} ({UNKNOWN})", status.unwrap_or(500)),
            provider_error(unknown_cause),
        ),
        E::Transport(ref t) if !t.is_connect() => (
            unknown,
            format!("the connection to DHMAD failed ({UNKNOWN})"),
            unavailable(unreachable, unknown_cause),
        ),
        // Never reached DHMAD, or refused without acting: nothing was created.
        E::Transport(_) => (
            failed,
            "could not reach DHMAD; safe to retry".into(),
            unavailable(unreachable, cause),
        ),
        // Only a cap on creations gets here (`create_failed`): the minute's limit is waited
        // for in line.
        E::RateLimited { .. } => (
            failed,
            "DHMAD refuses new escrows for now (429: its limit on creations); safe to retry later"
                .into(),
            OrderError::DhmadUnavailable {
                message: "The payment provider is not accepting new payments for now. Your \
                          order is saved; please try again later."
                    .into(),
                cause,
            },
        ),
        E::BusinessRule { api, .. } | E::Validation(api) => (
            failed,
            format!(
                "DHMAD refused: {}",
                api.user_message.as_deref().unwrap_or(&api.message)
            ),
            OrderError::Refused {
                code: api.code.clone(),
                message: api
                    .user_message
                    .unwrap_or_else(|| "The payment provider refused this order.".into()),
                cause,
            },
        ),
        _ => (
            failed,
            match status {
                Some(code) => format!("DHMAD answered {code}; safe to retry"),
                None => "DHMAD failed; safe to retry".into(),
            },
            provider_error(cause),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_that_never_acted_is_safe_to_resend() {
        let (s, reason, e) = classify_create_error(dhmad::Error::Timeout);
        assert_eq!(s, OrderStatus::NeedsReconciliation);
        assert!(reason.contains("outcome unknown"), "{reason}");
        assert!(matches!(e, OrderError::DhmadUnavailable { .. }), "{e:?}");
        // DHMAD may have created the escrow before failing: look before making another.
        let api = dhmad::ApiError::parse(502, b"{}");
        let (s, reason, e) = classify_create_error(dhmad::Error::Server(api));
        assert_eq!(s, OrderStatus::NeedsReconciliation);
        assert_eq!(
            reason,
            "DHMAD answered 502 (outcome unknown; checking DHMAD before any retry)"
        );
        assert!(matches!(e, OrderError::DhmadFailed { .. }), "{e:?}");
        let api = dhmad::ApiError::parse(400, br#"{"message":"amount must be positive"}"#);
        let (s, reason, e) = classify_create_error(dhmad::Error::Validation(api));
        assert_eq!(s, OrderStatus::EscrowFailed);
        assert_eq!(reason, "DHMAD refused: amount must be positive");
        assert!(matches!(e, OrderError::Refused { .. }), "{e:?}");
    }

    #[test]
    fn dhmad_may_still_be_making_an_escrow_it_did_not_answer_for() {
        let server = |status| dhmad::Error::Server(dhmad::ApiError::parse(status, b"{}"));
        assert!(may_still_be_making(&dhmad::Error::Timeout));
        for gateway in [502, 503, 504] {
            assert!(may_still_be_making(&server(gateway)), "{gateway}");
        }
        // DHMAD answered: what it did is in its list now.
        assert!(!may_still_be_making(&server(500)));
        let refused = dhmad::ApiError::parse(400, br#"{"message":"no"}"#);
        assert!(!may_still_be_making(&dhmad::Error::Validation(refused)));
    }
}
