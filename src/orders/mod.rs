//! The domain: what an order is, how DHMAD's news changes it, and what we do in response. It
//! knows no HTTP: operations return [`OrderError`], which the HTTP edge maps to a status.

pub mod actions;
pub mod call_log;
pub mod checkout;
pub mod client;
mod error;
pub mod fulfilment;
pub mod left_pages;
pub mod looks;
pub mod lost_escrow;
mod news;
pub mod notify;
pub mod patience;
pub mod payment_review;
pub mod queue;
pub mod reprocess;
pub mod sessions;
pub mod snapshot;
pub mod state_machine;
pub mod sync;
pub mod webhook;

pub use checkout::CheckoutStarted;
pub use error::{OrderError, OrderResult, SAVED};
pub use snapshot::{apply_escrow_snapshot, Applied};
pub use state_machine::{Action, Cancellation, Mode, Order, OrderStatus};

/// How logs name an order: its short reference, the first 8 hex digits of its id (as escrow
/// titles carry it; the back office's search finds an order by it). The full id is the order's
/// link, its only key, and logs are read by more people and services than the back office.
pub fn log_ref(id: uuid::Uuid) -> String {
    checkout::short_ref(id)
}

/// The same for a DHMAD session id, which opens its hosted page and, through the callback,
/// leads to the order: its first 8 characters.
pub fn log_ref_of(session_id: &str) -> &str {
    session_id.get(..8).unwrap_or(session_id)
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use uuid::Uuid;

    /// What `Debug` prints may reach a log: no order link, session, token, key or code.
    #[test]
    fn debug_output_holds_no_capability() {
        let order = Uuid::new_v4();
        let session = "3f0c2a9e-5b1d-4e77-9a60-0d6c1b2e8f41";
        let started = super::CheckoutStarted {
            order_id: order,
            session_id: session.into(),
            checkout_url: format!("http://localhost:6002/checkout/{session}"),
        };
        let email = crate::mail::Email {
            to: "buyer@example.tn".into(),
            subject: "Your code".into(),
            body: format!("http://localhost:3000/orders/{order} code AI-SECRET-CODE"),
        };
        let page = crate::db::sessions::Session {
            session_id: session.into(),
            order_id: order,
            escrow_id: "66aa00000000000000000001".into(),
            action: "accept_pay".into(),
            url: started.checkout_url.clone(),
            status: "pending".into(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
            created_at: OffsetDateTime::UNIX_EPOCH,
            checked_at: None,
            for_merchant: false,
        };
        let printed = [
            format!("{started:?}"),
            format!("{email:?}"),
            format!("{page:?}"),
            format!(
                "{:?}",
                super::checkout::Owner::Key("idem-key-secret".into())
            ),
            format!(
                "{:?}",
                super::checkout::Owner::Browser("cookie-secret".into())
            ),
        ];
        for text in printed {
            for secret in [
                order.to_string().as_str(),
                session,
                "AI-SECRET-CODE",
                "idem-key-secret",
                "cookie-secret",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }
}
