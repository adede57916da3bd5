//! Which order the DHMAD calls in flight are made for, so that each call can be recorded on
//! the order (`dhmad_calls`, shown on the back office's order page). A task-local set around
//! the domain operations that call DHMAD; the client's observer reads it.

use std::future::Future;

use uuid::Uuid;

tokio::task_local! {
    static ORDER: Uuid;
}

/// Runs `f` with its DHMAD calls attributed to `order_id`.
pub async fn for_order<F: Future>(order_id: Uuid, f: F) -> F::Output {
    ORDER.scope(order_id, f).await
}

/// The order the current DHMAD call is made for, if any.
pub fn current() -> Option<Uuid> {
    ORDER.try_with(|id| *id).ok()
}
