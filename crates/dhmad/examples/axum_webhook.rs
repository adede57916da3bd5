//! Receives DHMAD webhooks in an Axum 0.8 server: verify the signature over the raw bytes,
//! then parse the event.
//!
//! ```text
//! DHMAD_WEBHOOK_SECRETS=… cargo run -p dhmad --example axum_webhook
//! ```
//!
//! Listens on `LISTEN_ADDR` (default `127.0.0.1:3000`) at `POST /webhooks/dhmad`.
//! `DHMAD_WEBHOOK_SECRETS` may hold several secrets separated by commas, so a rotation needs no
//! downtime: the old and the new one both verify until the old one is removed.

// An example reports on stdout.
#![allow(clippy::print_stdout)]

use std::env;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use dhmad::{Event, VerifyError, WebhookEnvelope, WebhookVerifier};

/// `POST /webhooks/dhmad`. Takes the body as `Bytes`: the signature covers the exact bytes
/// DHMAD sent, so they are verified before any JSON parsing.
async fn dhmad_webhook(
    State(verifier): State<WebhookVerifier>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    match verifier.verify_headers(&headers, &body) {
        Ok(()) => {}
        // Our misconfiguration, not the sender's fault: a 5xx makes DHMAD try again later.
        Err(VerifyError::NoSecret) => return StatusCode::INTERNAL_SERVER_ERROR,
        // Missing, malformed or wrong signature.
        Err(e) if e.is_authentication() => return StatusCode::UNAUTHORIZED,
        // Missing, malformed, stale or future timestamp.
        Err(_) => return StatusCode::BAD_REQUEST,
    }
    // Signed by DHMAD from here on: DHMAD never retries a 4xx, so refusing what follows would
    // lose the event for good. What this crate cannot read is kept, to apply once it can.
    let Ok(envelope) = WebhookEnvelope::from_slice(&body) else {
        eprintln!("a signed delivery that is no envelope: keep its body and look at it");
        return StatusCode::OK;
    };
    // Delivery is at least once: a real handler first records `envelope.id` under a unique key
    // (in the same transaction as its effects) and answers 200 for an id it has already seen.
    match envelope.event() {
        Ok(Event::EscrowStatusUpdated(d)) => println!(
            "{}: escrow {} went {:?} -> {}",
            envelope.id, d.escrow.id, d.escrow.old_status, d.escrow.status
        ),
        Ok(Event::Unknown { event_type, .. }) => {
            println!("{}: ignoring unknown event type {event_type}", envelope.id);
        }
        Ok(other) => println!(
            "{}: {} for escrow {:?}",
            envelope.id,
            other.event_type(),
            other.escrow().map(|e| &e.id)
        ),
        // A known type whose `data` does not have that type's shape (DHMAD changed it): keep
        // the body (a real handler stores it under `envelope.id`) and apply it once updated.
        Err(e) => eprintln!("{}: kept for later, not readable yet: {e}", envelope.id),
    }
    StatusCode::OK
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secrets = env::var("DHMAD_WEBHOOK_SECRETS")
        .map_err(|_| "set DHMAD_WEBHOOK_SECRETS to your webhook secret")?;
    let verifier = WebhookVerifier::new(secrets.split(',').map(str::trim));
    let addr = env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());

    let app = Router::new()
        .route("/webhooks/dhmad", post(dhmad_webhook))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "listening on http://{}/webhooks/dhmad",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
