//! The DHMAD reference storefront: catalog, checkout through DHMAD Checkout Sessions, the
//! callback, webhook ingestion, order pages, back office and background jobs, on Postgres.
//!
//! The architecture is described in `docs/ARCHITECTURE.md`; the one function to know is
//! [`orders::apply_escrow_snapshot`], through which every piece of news about an escrow flows.

pub mod app;
pub mod budget;
pub mod config;
pub mod db;
pub mod email;
pub mod error;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod orders;
pub mod server;
pub mod state;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
