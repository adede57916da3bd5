#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod client;
mod enums;
pub mod error;
pub mod event;
pub mod iso;
pub mod lenient;
pub mod money;
mod nullable;
pub mod types;
pub mod webhook;

pub use client::{
    Admission, BuildError, CallRecord, Client, ClientBuilder, Gate, Notice, RateLimit, RetryPolicy,
    MAX_ANSWER_BYTES, SANDBOX_API_BASE,
};
pub use enums::*;
pub use error::{ApiError, Error, TransportError};
pub use event::*;
pub use types::*;
pub use webhook::{SignedDelivery, VerifyError, WebhookVerifier};
