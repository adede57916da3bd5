//! The integration tests of `dhmad`, compiled as one test binary (one link instead of one per
//! file). Each module is one area; `common` and `event_support` are shared helpers.

// A panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;
mod event_support;

mod client_behaviour;
mod client_endpoints;
mod client_retry;
mod errors;
mod escrows;
mod events_escrow;
mod events_other;
mod transport_error;
mod webhook_golden;
mod webhook_verify;
