//! Error bodies (`docs/dhmad-api.md` §5): the three shapes, every code, status → variant.

use std::time::Duration;

use dhmad::{ApiError, Error, ErrorCode, OAuthErrorCode};

fn err(status: u16, body: &str) -> Error {
    Error::from_response(status, body.as_bytes(), None)
}

#[test]
fn shape_a_with_message_and_details() {
    let a = ApiError::parse(
        400,
        br#"{"error":"Bad Request","message":"Validation failed","details":{"title":"Title is required","amount":"Must be at least 5"}}"#,
    );
    assert_eq!(a.status, 400);
    assert_eq!(a.error.as_deref(), Some("Bad Request"));
    assert_eq!(a.message, "Validation failed");
    assert_eq!(a.details["title"], "Title is required");
    assert_eq!(a.details.len(), 2);
    assert!(a.code.is_none() && a.user_message.is_none() && a.oauth_error().is_none());
}

/// Shape B's fields are read one by one: a `user_message` per language (or any odd field)
/// keeps the code, which callers act on.
#[test]
fn shape_b_keeps_its_code_beside_an_odd_field() {
    let e = err(
        400,
        r#"{"error":{"code":"CANCELLATION_ALREADY_REQUESTED","type":"business_rule_violation","message":"m","user_message":{"en":"Already asked","fr":"Déjà demandé"}}}"#,
    );
    let Error::BusinessRule { code, api } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*code, ErrorCode::CancellationAlreadyRequested);
    assert_eq!(api.message, "m");
}

/// A business rule is one whatever the status DHMAD gives it (`SELLER_NOT_READY`'s is
/// UNSTATED), but for the statuses whose own variant callers act on.
#[test]
fn shape_b_is_a_business_rule_whatever_its_status() {
    let body = r#"{"error":{"code":"SELLER_NOT_READY","type":"business_rule_violation","message":"m","user_message":"The seller must finish verification"}}"#;
    for status in [400, 403, 422] {
        let e = err(status, body);
        assert!(
            matches!(&e, Error::BusinessRule { code: ErrorCode::SellerNotReady, api } if api.user_message.is_some()),
            "{status}: {e:?}"
        );
    }
    let proof =
        r#"{"error":{"code":"PROOF_NOT_ACCEPTED","type":"business_rule_violation","message":"m"}}"#;
    assert!(matches!(err(409, proof), Error::Conflict(_)));
    assert!(matches!(err(401, body), Error::Unauthorized(_)));
    assert!(matches!(err(429, body), Error::RateLimited { .. }));
    // Without shape B's type, a 403 stays a refusal of access.
    assert!(matches!(
        err(403, r#"{"error":"Forbidden"}"#),
        Error::Forbidden(_)
    ));
}

#[test]
fn shape_a_without_message_falls_back_to_error() {
    let a = ApiError::parse(404, br#"{"error":"Escrow not found"}"#);
    assert_eq!(a.error.as_deref(), Some("Escrow not found"));
    assert_eq!(a.message, "Escrow not found");
    let e = err(400, r#"{"error":"Invalid escrow ID"}"#);
    assert!(matches!(&e, Error::Validation(a) if a.message == "Invalid escrow ID"));
}

#[test]
fn a_retry_after_past_a_day_is_read_as_a_day() {
    for body in [
        r#"{"error":"Too Many Requests","retryAfter":18446744073709551615}"#,
        r#"{"error":"Too Many Requests","retryAfter":1e30}"#,
    ] {
        let e = err(429, body);
        let Error::RateLimited { retry_after, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*retry_after, Some(Duration::from_secs(86_400)), "{body}");
    }
}

#[test]
fn shape_a_429_with_retry_after() {
    let reset = dhmad::iso::parse("2026-07-02T09:01:00Z").unwrap();
    let e = Error::from_response(
        429,
        br#"{"error":"Too Many Requests","message":"Rate limit exceeded","retryAfter":3600}"#,
        Some(reset),
    );
    let Error::RateLimited {
        retry_after,
        reset: r,
        api,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(3600)));
    assert_eq!(*r, Some(reset));
    assert_eq!(api.message, "Rate limit exceeded");
    assert!(e.is_transient());
    // The older daily-cap body has no retryAfter but extra fields, kept in `body`.
    let e = err(
        429,
        r#"{"error":"Rate Limit Exceeded","message":"Daily limit","limit":10,"count":10,"remaining":0}"#,
    );
    let Error::RateLimited {
        retry_after, api, ..
    } = &e
    else {
        panic!()
    };
    assert_eq!(*retry_after, None);
    assert_eq!(api.body["limit"], 10);
    // It is the cap on new escrows; the rate limit's 429, however long its wait, is not.
    assert!(e.is_creation_cap());
    let hour = err(429, r#"{"error":"Too Many Requests","retryAfter":3600}"#);
    assert!(!hour.is_creation_cap());
    assert!(!err(500, "{}").is_creation_cap());
}

#[test]
fn shape_b_business_rule() {
    let e = err(
        400,
        r#"{"error":{"code":"REDIRECT_URL_NOT_ALLOWED","type":"business_rule_violation",
        "message":"redirectUrl is not in the allow-list","user_message":"Checkout is unavailable right now."}}"#,
    );
    let Error::BusinessRule { code, api } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*code, ErrorCode::RedirectUrlNotAllowed);
    assert_eq!(api.kind.as_deref(), Some("business_rule_violation"));
    assert_eq!(api.message, "redirectUrl is not in the allow-list");
    assert!(api.error.is_none());
    assert_eq!(e.user_message(), Some("Checkout is unavailable right now."));
    assert_eq!(e.code(), Some(&ErrorCode::RedirectUrlNotAllowed));
    assert_eq!(e.status(), Some(400));
    assert!(!e.is_transient());
}

#[test]
fn shape_c_oauth() {
    let a = ApiError::parse(
        400,
        br#"{"error":"invalid_grant","error_description":"Authorization code expired"}"#,
    );
    assert_eq!(a.oauth_error(), Some(OAuthErrorCode::InvalidGrant));
    assert_eq!(a.message, "Authorization code expired");
    assert!(a.code.is_none());
    let a = ApiError::parse(401, br#"{"error":"invalid_token"}"#);
    assert_eq!(a.oauth_error(), Some(OAuthErrorCode::InvalidToken));
    let a = ApiError::parse(400, br#"{"error":"slow_down","error_description":"x"}"#);
    assert_eq!(
        a.oauth_error(),
        Some(OAuthErrorCode::Unknown("slow_down".into()))
    );
    for c in OAuthErrorCode::KNOWN {
        assert_eq!(OAuthErrorCode::from(*c).as_str(), *c);
    }
}

#[test]
fn later_rev_shape_a_with_code() {
    let e = err(
        409,
        r#"{"error":"Conflict","code":"PROOF_NOT_ACCEPTED","message":"Proof must be accepted before delivery"}"#,
    );
    let Error::Conflict(api) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(api.code, Some(ErrorCode::ProofNotAccepted));
    assert_eq!(api.error.as_deref(), Some("Conflict"));
    assert_eq!(e.code(), Some(&ErrorCode::ProofNotAccepted));
    let e = err(
        400,
        r#"{"error":"Bad Request","code":"DELIVERY_REQUIRED","message":"Deliver first"}"#,
    );
    assert!(matches!(
        e,
        Error::BusinessRule {
            code: ErrorCode::DeliveryRequired,
            ..
        }
    ));
    // Identity 409 keeps its extra fields.
    let e = err(
        409,
        r#"{"error":"Conflict","message":"Already verified","kyc_status":"approved","user_exists":true}"#,
    );
    let Error::Conflict(api) = &e else { panic!() };
    assert!(api.code.is_none());
    assert_eq!(api.body["user_exists"], true);
}

#[test]
fn non_json_body() {
    let e = err(502, "<html><body>Bad gateway</body></html>");
    let Error::Server(api) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(api.status, 502);
    assert!(api.body.is_null());
    assert!(api.message.contains("Bad gateway"));
    let long = "é".repeat(500);
    let a = ApiError::parse(500, long.as_bytes());
    assert!(a.message.len() <= 200 + 3, "truncated: {}", a.message.len());
    let empty = ApiError::parse(500, b"");
    assert_eq!(empty.message, "");
    // JSON that is not an object, or an unexpected `error` type, still yields an error.
    assert_eq!(ApiError::parse(500, b"[1,2]").status, 500);
    assert_eq!(ApiError::parse(500, br#"{"error":42}"#).status, 500);
}

#[test]
fn every_known_code_round_trips_through_shape_b() {
    assert!(ErrorCode::KNOWN.len() >= 40);
    for code in ErrorCode::KNOWN {
        let body = format!(
            r#"{{"error":{{"code":"{code}","type":"business_rule_violation","message":"m","user_message":"u"}}}}"#
        );
        let e = err(400, &body);
        let Error::BusinessRule { code: parsed, .. } = &e else {
            panic!("{code}: {e:?}")
        };
        assert!(parsed.is_known(), "{code}");
        assert_eq!(parsed.as_str(), *code);
        assert_eq!(&parsed.to_string(), code);
        assert_eq!(serde_json::to_value(parsed).unwrap(), *code);
    }
    let published = [
        "NO_REDIRECT_URLS_CONFIGURED",
        "REDIRECT_URL_NOT_ALLOWED",
        "REDIRECT_URL_MUST_BE_HTTPS",
        "INSTANT_ESCROW_NO_CONTRACT",
        "INSTANT_ESCROW_NO_COMPLETE_STEP",
        "QUICK_ESCROW_NO_CONTRACT",
        "CONTRACT_ALREADY_SIGNED",
        "PAYMENT_ALREADY_DONE",
        "ESCROW_ALREADY_COMPLETED",
        "DISPUTE_ALREADY_OPENED",
        "CANCELLATION_REQUEST_INVALID_STATUS",
        "CANCELLATION_REQUEST_BUYER_ONLY",
        "CANCEL_ESCROW_INVALID_STATUS",
        "CANCEL_ESCROW_SELLER_ONLY",
        "CHECKOUT_TARGET_NOT_BUYER",
        "CHECKOUT_TARGET_NOT_SELLER",
        "CANCELLATION_ALREADY_REQUESTED",
        "NO_PENDING_CANCELLATION",
        "SELLER_NOT_READY",
        "PROOF_NOT_ACCEPTED",
    ];
    for code in published {
        assert!(ErrorCode::KNOWN.contains(&code), "{code} missing");
    }
}

#[test]
fn unknown_code_is_kept() {
    let e = err(
        400,
        r#"{"error":{"code":"BRAND_NEW_RULE","type":"business_rule_violation","message":"m"}}"#,
    );
    let Error::BusinessRule { code, .. } = e else {
        panic!()
    };
    assert_eq!(code, ErrorCode::Unknown("BRAND_NEW_RULE".into()));
}

#[test]
fn status_to_variant() {
    let rule = r#"{"error":{"code":"PAYMENT_ALREADY_DONE","type":"business_rule_violation","message":"m"}}"#;
    let plain = r#"{"error":"Bad Request","message":"m"}"#;
    assert!(matches!(err(400, rule), Error::BusinessRule { .. }));
    assert!(matches!(err(400, plain), Error::Validation(_)));
    assert!(matches!(
        err(401, r#"{"error":"Unauthorized"}"#),
        Error::Unauthorized(_)
    ));
    assert!(matches!(err(403, plain), Error::Forbidden(_)));
    assert!(matches!(err(404, plain), Error::NotFound(_)));
    // A 404 or 403 that is not DHMAD's (a wrong base URL, a proxy's or a web firewall's page)
    // is not "no such resource" nor "not yours".
    for other in ["", "<html><body>Not Found</body></html>", "{}"] {
        assert!(matches!(err(404, other), Error::Unexpected(_)), "{other:?}");
        assert!(matches!(err(403, other), Error::Unexpected(_)), "{other:?}");
    }
    assert!(matches!(err(409, plain), Error::Conflict(_)));
    assert!(matches!(err(429, plain), Error::RateLimited { .. }));
    for s in [500, 502, 503, 504] {
        let e = err(s, plain);
        assert!(matches!(e, Error::Server(_)), "{s}");
        assert!(e.is_transient());
        assert_eq!(e.status(), Some(s));
    }
    for s in [302, 405, 413, 422] {
        assert!(matches!(err(s, plain), Error::Unexpected(_)), "{s}");
    }
    for e in [
        err(401, plain),
        err(403, plain),
        err(404, plain),
        err(409, plain),
        err(400, plain),
    ] {
        assert!(!e.is_transient(), "{e}");
    }
    assert!(Error::Timeout.is_transient());
    assert_eq!(Error::Timeout.status(), None);
}

#[test]
fn display_is_readable() {
    let e = err(
        409,
        r#"{"error":"Conflict","code":"PROOF_NOT_ACCEPTED","message":"gate closed"}"#,
    );
    assert_eq!(
        e.to_string(),
        "DHMAD conflict PROOF_NOT_ACCEPTED: gate closed"
    );
    let e = err(401, r#"{"error":"Unauthorized"}"#);
    assert_eq!(e.to_string(), "DHMAD refused the API key: Unauthorized");
}

/// A sibling field of an unexpected type is dropped on its own: DHMAD's business-rule code and
/// the message for the buyer survive it.
#[test]
fn a_field_of_an_unexpected_type_does_not_hide_the_rest() {
    let e = err(
        400,
        r#"{"error":{"code":"PAYMENT_ALREADY_DONE","type":"business_rule_violation",
            "message":"Escrow already paid","user_message":"This order is already paid."},
            "code":11000,"message":["a","b"],"details":"none"}"#,
    );
    assert!(
        matches!(
            &e,
            Error::BusinessRule {
                code: ErrorCode::PaymentAlreadyDone,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.user_message(), Some("This order is already paid."));
    let a = ApiError::parse(
        400,
        br#"{"error":"Bad Request","message":42,"details":{"title":"Title is required"}}"#,
    );
    assert_eq!(a.error.as_deref(), Some("Bad Request"));
    assert_eq!(a.details["title"], "Title is required");
}
