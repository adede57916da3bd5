//! The client a request's work is done for, as the HTTP edge names it (its rate-limit key: an
//! address, an IPv6 /64), set around the buyer's requests (`http::client_addr::for_its_client`).
//! What one client may cost others is counted by it: its looks at DHMAD's pages (`looks`), its
//! turns in the checkout line (`queue`). Work no client asked for (the jobs, the CLI) has none.

use std::future::Future;

tokio::task_local! {
    static CLIENT: String;
}

/// Runs `f` as work for `client`.
pub async fn scope<F: Future>(client: String, f: F) -> F::Output {
    CLIENT.scope(client, f).await
}

/// The current client, if the work has one.
pub fn current() -> Option<String> {
    CLIENT.try_with(String::clone).ok()
}
