//! Creates an escrow, opens a checkout session on it, and prints the URL to send the buyer to.
//!
//! It talks to the local sandbox unless told otherwise, never to DHMAD's production API:
//!
//! ```text
//! cargo run -p dhmad-sandbox    # in the storefront repository: serves http://127.0.0.1:6002
//! DHMAD_API_KEY=sk_sandbox_… cargo run -p dhmad --example create_checkout
//! ```
//!
//! | variable | default |
//! |---|---|
//! | `DHMAD_API_KEY` | required (`sk_sandbox_…`) |
//! | `DHMAD_API_BASE` | `http://127.0.0.1:6002/api/v1` (the local sandbox) |
//! | `DHMAD_BUYER_EMAIL` | `buyer@example.tn` |
//! | `DHMAD_REDIRECT_URL` | `http://localhost:3000/checkout/callback` (must be on DHMAD's allow-list) |

// An example reports on stdout.
#![allow(clippy::print_stdout)]

use std::env;

use dhmad::{CheckoutAction, Client, CreateEscrow, CreateSession, EscrowMode, SANDBOX_API_BASE};
use rust_decimal::Decimal;

fn var_or(name: &str, default: &str) -> String {
    env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let api_key = env::var("DHMAD_API_KEY")
        .map_err(|_| "set DHMAD_API_KEY to your sandbox API key (sk_sandbox_…)")?;
    let base = var_or("DHMAD_API_BASE", SANDBOX_API_BASE);
    let buyer = var_or("DHMAD_BUYER_EMAIL", "buyer@example.tn");
    let redirect = var_or(
        "DHMAD_REDIRECT_URL",
        "http://localhost:3000/checkout/callback",
    );

    let client = Client::builder(api_key).base_url(&base).build()?;
    println!("DHMAD API at {}", client.base_url());

    // A real shop records the order *before* this call. `create_escrow` is not retried after a
    // timeout: look the escrow up with `list_escrows` instead of creating a second one.
    let created = client
        .create_escrow(
            &CreateEscrow::new("AI credits", Decimal::new(15_000, 3), &buyer)
                .mode(EscrowMode::Instant),
        )
        .await?;
    let escrow = created.escrow;
    println!(
        "escrow {} created: {} TND, {}",
        escrow.id,
        escrow
            .amount
            .map_or_else(|| "?".to_owned(), |a| a.to_string()),
        escrow.status
    );

    let session = client
        .create_session(
            &escrow.id,
            &CreateSession::new(CheckoutAction::AcceptPay, &buyer, &redirect)
                .metadata("order_id", "example-1"),
        )
        .await?;
    println!(
        "checkout session {} expires at {}",
        session.session_id,
        dhmad::iso::format(session.expires_at)
    );
    // A web handler answers the buyer with `303 See Other` and `Location: {session.url}`.
    println!("send the buyer to: {}", session.url);
    Ok(())
}
