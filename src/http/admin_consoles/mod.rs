//! The back office's consoles: the webhook inbox (with reprocessing), the outbox (retry now,
//! abandon), the audit trail, and the inbox events of one order. Every action is recorded in
//! the audit trail and answers with a flash message (see `admin::Notice`).

mod audit;
mod inbox;
mod outbox;

pub use audit::audit;
pub use inbox::{inbox, order_events, reprocess_one, reprocess_unmatched};
pub(super) use inbox::{order_extras, OrderExtras};
pub use outbox::{abandon_job, outbox, retry_job};

use time::OffsetDateTime;

use crate::error::AppError;

const PAGE: i64 = 50;

fn micros(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1000
}

fn from_micros(s: &str) -> Option<OffsetDateTime> {
    let m: i128 = s.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(m.checked_mul(1000)?)
        .ok()
        .filter(|t| super::admin::cursor_time_ok(*t))
}

fn bad(what: &str) -> AppError {
    AppError::BadRequest(format!("invalid {what}"))
}

/// `?a=1&b=2` from the pairs that are set, for links.
fn query_of(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.finish()
}

struct Opt {
    value: String,
    selected: bool,
}

fn opts<'a>(values: impl IntoIterator<Item = &'a str>, chosen: &str) -> Vec<Opt> {
    values
        .into_iter()
        .map(|v| Opt {
            value: v.to_owned(),
            selected: v == chosen,
        })
        .collect()
}
