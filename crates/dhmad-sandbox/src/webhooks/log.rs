//! The delivery log behind `GET /sandbox/deliveries` and the `/sandbox` page.

use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

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

/// Append-only list of attempts.
#[derive(Debug, Default)]
pub struct DeliveryLog {
    entries: Mutex<Vec<DeliveryRecord>>,
}

impl DeliveryLog {
    /// Appends.
    pub fn push(&self, r: DeliveryRecord) {
        self.entries.lock().expect("log lock poisoned").push(r);
    }

    /// A copy, oldest first.
    pub fn all(&self) -> Vec<DeliveryRecord> {
        self.entries.lock().expect("log lock poisoned").clone()
    }
}
