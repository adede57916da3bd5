//! Queries, one module per table. Every function takes `impl PgExecutor` so the caller decides
//! whether it runs on the pool or inside a transaction.

pub mod admin;
pub mod admin_consoles;
pub mod admin_views;
pub mod budget;
pub mod calls;
pub mod checkout_queue;
pub mod events;
pub mod inbox;
pub mod orders;
pub mod outbox;
pub mod pool;
pub mod products;
pub mod sessions;
pub mod tx;

pub use pool::{Conn, Pool};
