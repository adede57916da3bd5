//! Client behaviour against a real local HTTP server: rate-limit headers, redirects, error
//! decoding and secrecy of the key.

use crate::common::{Reply, Server, KEY};
use dhmad::{CheckoutAction, CreateSession};
use serde_json::json;

const ID: &str = "66aa00000000000000000001";

#[tokio::test]
async fn exposes_the_last_rate_limit_headers() {
    let server = Server::start(|_, i| {
        Reply::json(
            200,
            json!({"balance":{"available":0,"pending":0,"escrow":0}}),
        )
        .header("X-RateLimit-Limit", "100")
        .header("X-RateLimit-Remaining", (99 - i).to_string())
        .header("X-RateLimit-Reset", "2026-07-02T09:01:00.000Z")
    })
    .await;
    let c = server.client();
    assert_eq!(c.rate_limit(), None);
    c.balance().await.unwrap();
    c.balance().await.unwrap();
    let rl = c.rate_limit().unwrap();
    assert_eq!(rl.limit, Some(100));
    assert_eq!(rl.remaining, Some(98));
    assert_eq!(
        rl.reset,
        Some(dhmad::iso::parse("2026-07-02T09:01:00Z").unwrap())
    );
    // Clones share the observation.
    assert_eq!(c.clone().rate_limit(), Some(rl));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = Server::start(|seen, _| {
        if seen.path.ends_with("/me") {
            Reply::json(302, json!({})).header("location", "/api/v1/balance")
        } else {
            Reply::json(
                200,
                json!({"balance":{"available":0,"pending":0,"escrow":0}}),
            )
        }
    })
    .await;
    let err = server.client().me().await.unwrap_err();
    assert!(
        matches!(&err, dhmad::Error::Unexpected(a) if a.status == 302),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn malformed_success_body_is_a_decode_error() {
    let server = Server::start(|_, _| Reply::json(200, json!({"unexpected":true}))).await;
    let err = server.client().get_escrow(ID).await.unwrap_err();
    assert!(
        matches!(err, dhmad::Error::Decode { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(server.count(), 1, "decode errors are not retried");
}

#[tokio::test]
async fn api_errors_come_back_typed() {
    let server = Server::start(|_, _| {
        Reply::json(
            400,
            json!({"error":{"code":"PAYMENT_ALREADY_DONE","type":"business_rule_violation",
            "message":"Escrow already paid","user_message":"This order is already paid."}}),
        )
    })
    .await;
    let req = CreateSession::new(CheckoutAction::AcceptPay, "b@x.tn", "https://shop.tn/cb");
    let err = server.client().create_session(ID, &req).await.unwrap_err();
    assert!(matches!(
        &err,
        dhmad::Error::BusinessRule {
            code: dhmad::ErrorCode::PaymentAlreadyDone,
            ..
        }
    ));
    assert_eq!(err.user_message(), Some("This order is already paid."));
}

#[tokio::test]
async fn debug_never_prints_the_key() {
    let server = Server::start(|_, _| Reply::json(200, json!({}))).await;
    let c = server.client();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(KEY) && !dbg.contains("00112233"), "{dbg}");
    assert!(dbg.contains("redacted"));
    let builder = dhmad::Client::builder(KEY);
    assert!(!format!("{builder:?}").contains("00112233"));
}

#[test]
fn builder_validates_the_base_url() {
    let ok = dhmad::Client::builder(KEY)
        .base_url("http://127.0.0.1:6002/api/v1/")
        .build()
        .unwrap();
    assert_eq!(ok.base_url(), "http://127.0.0.1:6002/api/v1");
    assert_eq!(
        dhmad::Client::builder(KEY).build().unwrap().base_url(),
        dhmad::SANDBOX_API_BASE
    );
    for bad in ["not a url", "ftp://x.tn/api", "mailto:a@b.tn"] {
        assert!(
            dhmad::Client::builder(KEY).base_url(bad).build().is_err(),
            "{bad}"
        );
    }
}

/// A live key is a production secret: never sent in clear text. A sandbox key may go to a
/// local emulator over http.
#[test]
fn a_live_key_is_only_sent_over_https() {
    let live = format!("sk_live_{}", "a".repeat(64));
    let clear = dhmad::Client::builder(live.as_str())
        .base_url("http://dhmad.example/api/v1")
        .build();
    assert!(
        matches!(clear, Err(dhmad::BuildError::BaseUrl(_))),
        "{clear:?}"
    );
    assert!(dhmad::Client::builder(live.as_str())
        .base_url("https://dhmad.example/api/v1")
        .build()
        .is_ok());
    assert!(dhmad::Client::builder(KEY)
        .base_url("http://sandbox:6002/api/v1")
        .build()
        .is_ok());
}

/// An answer over `MAX_ANSWER_BYTES` is not read into memory: refused from its
/// `Content-Length`, and not retried (a misrouted base URL answers the same again).
#[tokio::test]
async fn an_answer_larger_than_the_limit_is_refused_from_its_length() {
    let huge = "x".repeat(dhmad::MAX_ANSWER_BYTES + 1);
    let server = Server::start(move |_, _| Reply::json(200, json!({ "pad": huge }))).await;
    let err = server.client().get_escrow(ID).await.unwrap_err();
    assert!(
        matches!(err, dhmad::Error::TooLarge { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
}

/// Without a `Content-Length` (chunked), reading stops once the limit is passed.
#[tokio::test]
async fn a_chunked_answer_is_cut_off_at_the_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = sock.read(&mut head).await.unwrap();
        let start = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     transfer-encoding: chunked\r\n\r\n";
        sock.write_all(start.as_bytes()).await.unwrap();
        let chunk = vec![b' '; 64 * 1024];
        // Up to 64 MiB, far past the limit: the client must hang up long before.
        for _ in 0..1024 {
            let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if sock.write_all(&frame).await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
        }
        let _ = sock.write_all(b"0\r\n\r\n").await;
    });
    let client = dhmad::Client::builder(KEY)
        .base_url(format!("http://{addr}/api/v1"))
        .timeout(std::time::Duration::from_secs(10))
        .retry_policy(dhmad::RetryPolicy::none())
        .build()
        .unwrap();
    let err = client.get_escrow(ID).await.unwrap_err();
    assert!(
        matches!(err, dhmad::Error::TooLarge { status: 200, .. }),
        "{err:?}"
    );
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sent < 16 * 1024 * 1024,
        "the server could send {sent} bytes"
    );
}

/// A key read from a file or an `.env` line with its newline (or a space before it) made no
/// valid header: every call failed as a transport error, retried and taken for DHMAD being
/// unreachable, its writes for possibly sent; and a live key with a space slipped past the
/// https rule. It is trimmed; one no header can carry is refused when the client is built.
#[tokio::test]
async fn a_key_read_with_its_newline_is_sent_trimmed() {
    let server = Server::start(|_, _| {
        Reply::json(
            200,
            json!({"balance":{"available":0,"pending":0,"escrow":0}}),
        )
    })
    .await;
    let c = dhmad::Client::builder(format!("{KEY}\n"))
        .base_url(&server.base)
        .build()
        .unwrap();
    c.balance().await.unwrap();
    let auth = server.seen()[0].header("authorization").map(str::to_owned);
    assert_eq!(auth, Some(format!("Bearer {KEY}")));
    let live = format!(" {}", KEY.replace("sandbox", "live"));
    let clear = dhmad::Client::builder(live)
        .base_url("http://dhmad.example/api/v1")
        .build();
    assert!(matches!(clear, Err(dhmad::BuildError::BaseUrl(_))));
    let broken = dhmad::Client::builder("sk_sandbox_a\nb").build();
    assert!(matches!(broken, Err(dhmad::BuildError::ApiKey)));
}

/// Text a database cannot store (NUL, `\u0000`) or serde_json refuses (a surrogate cut in
/// half, `\ud83d`, as JavaScript writes a truncated emoji) in an answer: each becomes U+FFFD.
/// Before, a NUL reached the caller, which could never record the read (Postgres refuses it),
/// and a lone surrogate made the whole answer a decode error, read after read.
#[tokio::test]
async fn an_answer_holding_nul_or_a_lone_surrogate_is_repaired() {
    let server = Server::start(|_, _| Reply {
        body: format!(
            r#"{{"escrow":{{"id":"{ID}","title":"Logo\u0000 pack \ud83d","amount":300,"escrowFee":15,
            "status":"paid","mode":"quick","createdAt":"2026-07-01T09:00:00Z",
            "updatedAt":"2026-07-02T09:00:00.000Z"}}}}"#
        ),
        ..Reply::json(200, json!({}))
    })
    .await;
    let e = server.client().get_escrow(ID).await.unwrap();
    assert_eq!(e.title, "Logo\u{fffd} pack \u{fffd}");
}

/// An error answer's message is stored by its callers (a job's last error): no NUL either.
#[tokio::test]
async fn an_error_answer_holding_nul_is_repaired() {
    let server = Server::start(|_, _| {
        Reply::json(
            400,
            json!({"error":"Bad Request","message":"Bad tracking \u{0}number"}),
        )
    })
    .await;
    let err = server.client().get_escrow(ID).await.unwrap_err();
    let dhmad::Error::Validation(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(api.message, "Bad tracking \u{fffd}number");
}
