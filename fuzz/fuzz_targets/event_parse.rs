//! `WebhookEnvelope::from_slice`, then `.event()` and `Event::from_parts`, on arbitrary bytes:
//! no panic, and a parsed event written back with `WebhookEnvelope::new(..).to_json()` parses
//! to an equal event (see `dhmad_fuzz::check_envelope`).

#![no_main]

use dhmad::WebhookEnvelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = WebhookEnvelope::from_slice(data) {
        dhmad_fuzz::check_envelope(&env);
    }
});
