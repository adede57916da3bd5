//! Helpers shared by the event tests: a full escrow snapshot and an envelope parser.

use dhmad::{Event, WebhookEnvelope};
use serde_json::{json, Value};

/// The common escrow snapshot of `docs/dhmad-api.md` §6.4.
pub fn escrow(status: &str) -> Value {
    json!({"id":"66aa00000000000000000001","title":"Logo pack","amount":300,"escrowFee":15,
        "status":status,
        "seller":{"_id":"66aa0000000000000000000a","email":"s@x.tn","firstName":"Sami","lastName":"B"},
        "buyer":{"_id":"66aa0000000000000000000b","email":"b@x.tn","firstName":"Ines","lastName":"K"},
        "estimatedDeliveryDays":5,"createdAt":"2026-07-01T09:00:00Z","updatedAt":"2026-07-02T09:00:00Z"})
}

/// `v` with `key` set to `val`.
pub fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

/// Parses `{id,type,timestamp,data}` and reads the typed event, checking its type.
pub fn parse(event_type: &str, data: Value) -> Event {
    let body = json!({"id":"8d3c0a52-1f7e-4b8e-9d51-7c1d2e3f4a5b","type":event_type,
        "timestamp":"2026-07-02T09:00:00Z","data":data});
    let env = WebhookEnvelope::from_slice(body.to_string().as_bytes()).unwrap();
    assert_eq!(env.kind().as_str(), event_type);
    let ev = env.event().unwrap_or_else(|e| panic!("{event_type}: {e}"));
    assert_eq!(ev.event_type().as_str(), event_type);
    ev
}
