//! `WebhookVerifier::verify` on arbitrary deliveries (`signature LF timestamp LF body`, see
//! `dhmad_fuzz::Delivery`): it never panics and answers what `docs/dhmad-api.md` §6.5 says.
//! Then, differentially on the same body: signed with a secret and dated within the window it
//! verifies (any case, `sha256=` prefix, either secret); one flipped byte, one byte less or
//! one byte more fails unless its compact form is the signed body (the same JSON); a date out
//! of the window fails with the right error.

#![no_main]

use dhmad::iso;
use dhmad::webhook::{sign, VerifyError, WebhookVerifier};
use dhmad_fuzz::{
    expected_verdict, mix, now, verdict_for, verifier, Delivery, OLD_SECRET, SECRET, TOLERANCE,
};
use libfuzzer_sys::fuzz_target;
use time::Duration;

fuzz_target!(|data: &[u8]| {
    let d = Delivery::split(data);
    let v = verifier();

    // 1. Any input: no panic, and the verdict of the documented procedure.
    let got = v.verify(d.signature, d.timestamp, d.body);
    let want = expected_verdict(&[OLD_SECRET, SECRET], d.signature, d.timestamp, d.body);
    assert_eq!(got, want, "{d:?}");
    if let Err(e) = &got {
        let auth = matches!(
            e,
            VerifyError::MissingSignature
                | VerifyError::MalformedSignature
                | VerifyError::SignatureMismatch
        );
        assert_eq!(e.is_authentication(), auth);
    }
    // The two halves agree with the whole.
    let sig_only = v.verify_signature(d.signature, d.body);
    match &got {
        Ok(()) => assert_eq!(sig_only, Ok(())),
        Err(e) if e.is_authentication() => assert_eq!(sig_only.as_ref(), Err(e)),
        Err(e) => assert_eq!(v.verify_timestamp(d.timestamp).as_ref(), Err(e)),
    }
    // No secret: refused before anything is read.
    let none = WebhookVerifier::new(["", " "]).with_clock(now);
    assert_eq!(
        none.verify(d.signature, d.timestamp, d.body),
        Err(VerifyError::NoSecret)
    );

    // 2. The same body, signed and dated by us.
    let h = mix(data);
    let body = d.body;
    let skew = (h % 601) as i64 - 300; // within ±TOLERANCE
    let sent = iso::format(now() + Duration::seconds(skew));
    let good = sign(SECRET, body);
    assert_eq!(good.len(), 64);
    assert_eq!(v.verify(Some(&good), Some(&sent), body), Ok(()));
    let shouty = format!(" sha256={} ", good.to_ascii_uppercase());
    assert_eq!(v.verify(Some(&shouty), Some(&sent), body), Ok(()));
    let old = sign(OLD_SECRET, body);
    assert_eq!(v.verify(Some(&old), Some(&sent), body), Ok(()));
    // A verifier that knows only the old secret refuses the new signature.
    let only_old = WebhookVerifier::new([OLD_SECRET]).with_clock(now);
    assert_eq!(
        only_old.verify(Some(&good), Some(&sent), body),
        Err(VerifyError::SignatureMismatch)
    );

    // Tampered bodies: one flipped byte (first, last, one picked by the input), one byte more,
    // one byte less. Each fails unless its compact form is the signed body (white space added
    // after compact JSON, a digit past f64's precision): the same JSON, which verifies.
    let mut tampered_bodies = Vec::new();
    if !body.is_empty() {
        let mask = ((h >> 16) as u8) | 1;
        let picked = (h >> 24) as usize % body.len();
        for i in [0, body.len() - 1, picked] {
            let mut tampered = body.to_vec();
            tampered[i] ^= mask;
            tampered_bodies.push(tampered);
        }
        tampered_bodies.push(body[..body.len() - 1].to_vec());
    }
    let mut longer = body.to_vec();
    longer.push(b' ');
    tampered_bodies.push(longer);
    for tampered in &tampered_bodies {
        assert_eq!(
            v.verify(Some(&good), Some(&sent), tampered),
            verdict_for(body, tampered),
            "{:?}",
            String::from_utf8_lossy(tampered)
        );
    }
    // One flipped hex digit of the signature.
    let mut bad = good.clone().into_bytes();
    let i = (h >> 32) as usize % bad.len();
    bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
    let bad = String::from_utf8(bad).expect("hex is ASCII");
    assert_eq!(
        v.verify(Some(&bad), Some(&sent), body),
        Err(VerifyError::SignatureMismatch)
    );

    // Out of the window, both ways: a timestamp error, not a signature one.
    let beyond = TOLERANCE.whole_seconds() + 1 + (h >> 40) as i64 % 86_400;
    let stale = iso::format(now() - Duration::seconds(beyond));
    assert_eq!(
        v.verify(Some(&good), Some(&stale), body),
        Err(VerifyError::Stale { seconds: beyond })
    );
    let future = iso::format(now() + Duration::seconds(beyond));
    assert_eq!(
        v.verify(Some(&good), Some(&future), body),
        Err(VerifyError::FromTheFuture { seconds: beyond })
    );
    assert_eq!(
        v.verify(Some(&good), None, body),
        Err(VerifyError::MissingTimestamp)
    );
});
