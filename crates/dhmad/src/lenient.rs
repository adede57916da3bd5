//! Text from DHMAD that a strict reader would refuse or a database could not store, repaired
//! rather than lost: the same text comes again on every retry, so refusing it loses it for good.
//! Webhook bodies and the API's answers (success and error alike) go through [`repair`].

/// `raw` with every unpaired surrogate escape and every NUL replaced by U+FFFD; `None` when it
/// holds neither (the usual case, no copy). A body that is not JSON is left as it is, for its
/// reader to refuse.
pub fn repair(raw: &str) -> Option<String> {
    let paired = without_lone_surrogates(raw);
    let text = paired.as_deref().unwrap_or(raw);
    match without_nul(text) {
        Ok(Some(cleaned)) => Some(cleaned),
        Ok(None) | Err(_) => paired,
    }
}

/// `text` with each NUL replaced by U+FFFD: an error body that is not JSON is kept as raw
/// text, which a database must be able to store.
pub fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}").into()
    } else {
        text.into()
    }
}

/// Postgres text and JSONB cannot hold NUL, yet JSON may carry it (`\u0000`). A signed event
/// holding one must still be stored and applied, or DHMAD's retries fail alike and the event
/// is lost; an escrow read holding one could never be recorded: each NUL becomes U+FFFD. `None` when there is none (the usual case, no copy).
fn without_nul(raw: &str) -> serde_json::Result<Option<String>> {
    if !raw.contains("\\u0000") {
        return Ok(None);
    }
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
            serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
            serde_json::Value::Object(o) => {
                let entries = std::mem::take(o);
                for (k, mut v) in entries {
                    scrub(&mut v);
                    o.insert(k.replace('\0', "\u{fffd}"), v);
                }
            }
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(raw)?;
    scrub(&mut v);
    serde_json::to_string(&v).map(Some)
}

/// JavaScript writes a string cut inside a surrogate pair (a truncated emoji) with a lone
/// `\ud83d` escape, which JSON's grammar allows and serde_json refuses: a signed event holding
/// one must still be stored and applied, or it is refused (400) and lost. Each unpaired
/// surrogate escape becomes `\ufffd`. Hand-written: serde_json has no lenient mode for it.
/// `None` when there is none (the usual case, no copy).
fn without_lone_surrogates(raw: &str) -> Option<String> {
    if !(raw.contains("\\ud") || raw.contains("\\uD")) {
        return None;
    }
    let b = raw.as_bytes();
    let hex4 = |at: usize| -> Option<u32> {
        let h = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
        u32::from_str_radix(h, 16).ok()
    };
    // The escape `\uXXXX` starting at `at`, if it is one.
    let escape = |at: usize| -> Option<u32> {
        (b.get(at) == Some(&b'\\') && b.get(at + 1) == Some(&b'u'))
            .then(|| hex4(at + 2))
            .flatten()
    };
    let (mut out, mut last, mut i) = (None::<String>, 0, 0);
    while let Some(k) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'\\')) {
        let at = i + k;
        let Some(unit) = escape(at) else {
            i = at + 2; // any other escape, `\\` included: skip the escaped character
            continue;
        };
        let high = (0xD800..0xDC00).contains(&unit);
        let low = (0xDC00..0xE000).contains(&unit);
        if high && escape(at + 6).is_some_and(|next| (0xDC00..0xE000).contains(&next)) {
            i = at + 12; // a pair
            continue;
        }
        if high || low {
            let s = out.get_or_insert_with(|| String::with_capacity(raw.len()));
            s.push_str(&raw[last..at]);
            s.push_str("\\ufffd");
            last = at + 6;
        }
        i = at + 6;
    }
    let mut s = out?;
    s.push_str(&raw[last..]);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_are_replaced_and_pairs_kept() {
        assert_eq!(without_lone_surrogates(r#"{"a":"b\n\u00e9"}"#), None);
        let pair = r#"{"a":"\ud83d\ude00"}"#;
        assert_eq!(without_lone_surrogates(pair), None);
        let cut =
            without_lone_surrogates(r#"{"a":"x\ud83d","b":"\uDC00y","c":"\\ud83d"}"#).unwrap();
        assert_eq!(cut, r#"{"a":"x\ufffd","b":"\ufffdy","c":"\\ud83d"}"#);
        let v: serde_json::Value = serde_json::from_str(&cut).unwrap();
        assert_eq!(v["a"], "x\u{fffd}");
        assert_eq!(v["c"], "\\ud83d");
        // A high surrogate followed by another high one: both lone.
        assert_eq!(
            without_lone_surrogates(r#""\ud83d\ud83d""#).unwrap(),
            r#""\ufffd\ufffd""#
        );
    }

    #[test]
    fn nul_is_replaced_only_where_there_is_one() {
        assert_eq!(without_nul(r#"{"a":"b"}"#).unwrap(), None);
        let cleaned = without_nul(r#"{"a\u0000":"x\u0000y","n":[1,"\u0000"]}"#)
            .unwrap()
            .unwrap();
        assert!(!cleaned.contains("\\u0000"), "{cleaned}");
        let v: serde_json::Value = serde_json::from_str(&cleaned).unwrap();
        assert_eq!(v["a\u{fffd}"], "x\u{fffd}y");
        assert_eq!(v["n"][1], "\u{fffd}");
    }

    #[test]
    fn an_error_answer_holds_no_nul() {
        let json = crate::ApiError::parse(400, br#"{"message":"bad\u0000 value"}"#);
        assert_eq!(json.message, "bad\u{fffd} value");
        let raw = crate::ApiError::parse(502, b"gateway\0 down");
        assert_eq!(raw.message, "gateway\u{fffd} down");
    }
}
