//! The storefront's integration tests, compiled as one binary (linking is most of a test run's
//! time on a small machine). Each module is one area; `common` starts the storefront on a
//! fresh database per test and the DHMAD sandbox in-process.

// A panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;
mod webdriver;

mod abandoned;
mod after_payment;
mod api_contract;
mod back_office;
mod browser;
mod burst;
mod database_restart;
mod dhmad_failures;
mod disputes;
mod due_orders;
mod guest_payments;
mod http_basics;
mod interrupted;
mod journeys;
mod lost_escrows;
mod modes;
mod operations;
mod order_states;
mod payment_pages;
mod pool;
mod reliability;
mod reused_orders;
mod security_admin;
mod security_client_addr;
mod security_connections;
mod security_edge;
mod security_orders;
mod smtp_outages;
mod torture;
mod webhook_refusals;
mod webhooks;
