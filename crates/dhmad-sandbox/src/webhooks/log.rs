//! The delivery log behind `GET /sandbox/deliveries` and the `/sandbox` page.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

use crate::state::push_bounded;

/// One delivery attempt (or a dropped event, with `attempt` 0).
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub event_id: String,
    pub event_type: String,
    pub escrow_id: Option<String>,
    pub url: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    #[serde(with = "dhmad::iso")]
    pub at: OffsetDateTime,
}

/// The newest [`LOG_CAPACITY`](crate::state::LOG_CAPACITY) attempts.
#[derive(Debug, Default)]
pub struct DeliveryLog {
    entries: Mutex<VecDeque<DeliveryRecord>>,
}

impl DeliveryLog {
    /// Appends, dropping the oldest attempt once the log is full.
    pub fn push(&self, r: DeliveryRecord) {
        push_bounded(&mut self.entries.lock().expect("log lock poisoned"), r);
    }

    /// A copy, oldest first.
    pub fn all(&self) -> Vec<DeliveryRecord> {
        self.entries
            .lock()
            .expect("log lock poisoned")
            .iter()
            .cloned()
            .collect()
    }
}
