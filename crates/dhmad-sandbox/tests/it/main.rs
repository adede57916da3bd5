//! The sandbox's integration tests, one module per area, compiled as one test binary (linking
//! one binary instead of one per module saves most of the build time). Each test starts its own
//! sandbox on a free port, so they run in parallel.

// A panic is how a test reports; printing helps when one fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

mod api_auth;
mod api_create;
mod api_escrows;
mod api_parties;
mod checkout_page;
mod cli;
mod dashboard_actions;
mod dashboard_admin;
mod deadlines;
mod faults;
mod hosted_page_text;
mod identity;
mod journeys;
mod journeys_after_payment;
mod journeys_instant;
mod journeys_proof;
mod logs;
mod metrics;
mod pages;
mod security;
mod security_bind;
mod sessions_lifecycle;
mod sessions_matrix;
mod webhooks;
