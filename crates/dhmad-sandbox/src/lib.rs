//! `dhmad-sandbox`: a stateful local emulator of the DHMAD escrow API, with the hosted checkout
//! page, signed webhooks delivered with DHMAD's retry policy, a control API and fault injection.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use dhmad_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::for_tests()).await?;
//! let client = dhmad::Client::builder(sandbox.api_key()).base_url(sandbox.api_base()).build()?;
//! let me = client.me().await?;
//! assert_eq!(me.developer.email, sandbox.seller_email());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api;
mod checkout_page;
pub mod clock;
pub mod config;
mod control;
mod dashboard;
pub mod error;
pub mod faults;
pub mod lifecycle;
pub mod metrics;
mod pages;
pub mod rate_limit;
mod security;
mod server;
pub mod state;
pub mod webhooks;

pub use config::{
    ConfigError, SandboxConfig, DEFAULT_API_KEY, DEFAULT_SELLER_EMAIL, DEFAULT_WEBHOOK_SECRET,
};
pub use faults::{ApiFaultKind, ApiFaultRule, FaultConfig, WebhookFaults};
pub use server::{router, BindError, Sandbox, SandboxHandle};
