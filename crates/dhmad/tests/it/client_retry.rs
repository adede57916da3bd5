//! Retry behaviour against a real local HTTP server: reads retry, writes only after a 429
//! (DHMAD did not act), and a 429 waits for the reset only when it is near. Bounds on time are generous on purpose.

use std::time::{Duration, Instant};

use crate::common::{fast_retry, Reply, Server, KEY};
use dhmad::{CheckoutAction, CreateEscrow, CreateSession, Error, RetryPolicy};
use rust_decimal_macros::dec;
use serde_json::json;

fn escrow_ok() -> Reply {
    Reply::json(200, json!({"escrow":{"id":"e1","status":"paid"}}))
}

fn server_error() -> Reply {
    Reply::json(500, json!({"error":"Internal Server Error"}))
}

fn create_req() -> CreateEscrow {
    CreateEscrow::new("Logo pack", dec!(300), "b@x.tn")
}

fn session_req() -> CreateSession {
    CreateSession::new(CheckoutAction::AcceptPay, "b@x.tn", "https://shop.tn/cb")
}

/// Lets a late (wrong) retry arrive before we count.
/// `call`'s outcome; a call still waiting after a minute (a wait it should not make, such as an
/// hour's reset) fails the test instead of holding it.
async fn within_a_minute<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call waited a minute or more")
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn get_retries_5xx_then_succeeds() {
    let server = Server::start(|_, i| if i < 2 { server_error() } else { escrow_ok() }).await;
    let e = server.client().get_escrow("e1").await.unwrap();
    assert_eq!(e.id, "e1");
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn get_gives_up_after_max_retries() {
    let server =
        Server::start(|_, _| Reply::json(503, json!({"error":"Service Unavailable"}))).await;
    let err = server.client().get_escrow("e1").await.unwrap_err();
    assert!(
        matches!(&err, Error::Server(a) if a.status == 503),
        "{err:?}"
    );
    assert_eq!(server.count(), 1 + fast_retry().max_retries as usize);
}

#[tokio::test]
async fn retry_policy_none_sends_once() {
    let server = Server::start(|_, _| server_error()).await;
    let err = server
        .client_with(RetryPolicy::none())
        .me()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server(_)));
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = Server::start(|_, _| Reply::json(404, json!({"error":"Escrow not found"}))).await;
    let err = server.client().get_escrow("e1").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)));
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn create_escrow_is_not_retried_on_500() {
    let server = Server::start(|_, _| server_error()).await;
    let err = server
        .client()
        .create_escrow(&create_req())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err:?}");
    settle().await;
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn create_session_is_not_retried_on_500() {
    let server = Server::start(|_, _| server_error()).await;
    let err = server
        .client()
        .create_session("e1", &session_req())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err:?}");
    settle().await;
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn create_escrow_timeout_is_not_retried() {
    let server = Server::start(|_, _| {
        Reply::json(201, json!({"escrow":{"id":"e1","status":"pending"}}))
            .after(Duration::from_secs(2))
    })
    .await;
    let err = server
        .client()
        .create_escrow(&create_req())
        .await
        .unwrap_err();
    // A timeout, not the 201 sent after 2 s; and sent once.
    assert!(matches!(err, Error::Timeout), "{err:?}");
    settle().await;
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn create_session_timeout_is_not_retried() {
    let server = Server::start(|_, _| server_error().after(Duration::from_secs(2))).await;
    let err = server
        .client()
        .create_session("e1", &session_req())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    settle().await;
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn other_writes_are_not_retried_either() {
    let server = Server::start(|_, _| server_error()).await;
    let c = server.client();
    assert!(c.deliver_escrow("e1").await.is_err());
    assert!(c.cancel_escrow("e1").await.is_err());
    assert!(c.update_escrow("e1", &Default::default()).await.is_err());
    assert!(c.reject_delivery("e1", &Default::default()).await.is_err());
    settle().await;
    assert_eq!(server.count(), 4);
}

#[tokio::test]
async fn get_timeout_is_retried_then_reported() {
    let server = Server::start(|_, i| {
        if i == 0 {
            escrow_ok().after(Duration::from_secs(2))
        } else {
            escrow_ok()
        }
    })
    .await;
    server.client().get_escrow("e1").await.unwrap();
    assert_eq!(server.count(), 2);

    let slow = Server::start(|_, _| escrow_ok().after(Duration::from_secs(2))).await;
    let err = slow
        .client_with(RetryPolicy {
            max_retries: 1,
            ..fast_retry()
        })
        .get_escrow("e1")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert_eq!(slow.count(), 2);
}

/// A handle for callers with a deadline of their own: a read that timed out is reported at
/// once, a quick failure is still tried again.
#[tokio::test]
async fn a_handle_that_does_not_retry_timeouts_reports_the_first() {
    let slow = Server::start(|_, _| escrow_ok().after(Duration::from_secs(2))).await;
    let patient = slow.client_with(fast_retry());
    let hurried = patient.with_retry_policy(RetryPolicy {
        retry_timeouts: false,
        ..fast_retry()
    });
    let err = hurried.get_escrow("e1").await.unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert_eq!(slow.count(), 1);

    let flaky = Server::start(|_, i| if i == 0 { server_error() } else { escrow_ok() }).await;
    let hurried = flaky
        .client_with(fast_retry())
        .with_retry_policy(RetryPolicy {
            retry_timeouts: false,
            ..fast_retry()
        });
    hurried.get_escrow("e1").await.unwrap();
    assert_eq!(flaky.count(), 2);
}

#[tokio::test]
async fn rate_limited_get_waits_for_a_near_reset() {
    let server = Server::start(|_, i| {
        if i == 0 {
            // Near (under the policy's 2 s wait), and far enough that a stalled machine does
            // not read it after it passed (a reset in the past says nothing).
            let reset = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1500);
            Reply::json(
                429,
                json!({"error":"Too Many Requests","message":"Slow down"}),
            )
            .header("X-RateLimit-Limit", "100")
            .header("X-RateLimit-Remaining", "0")
            .header("X-RateLimit-Reset", dhmad::iso::format(reset))
        } else {
            escrow_ok().header("X-RateLimit-Remaining", "99")
        }
    })
    .await;
    let c = server.client();
    let started = Instant::now();
    within_a_minute(c.get_escrow("e1")).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(server.count(), 2);
    assert!(
        waited >= Duration::from_millis(200),
        "retried before the reset: {waited:?}"
    );
    assert_eq!(c.rate_limit().unwrap().remaining, Some(99));
}

#[tokio::test]
async fn rate_limited_with_a_far_reset_returns_at_once() {
    let reset = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let reset_header = dhmad::iso::format(reset);
    let server = Server::start(move |_, _| {
        Reply::json(
            429,
            json!({"error":"Too Many Requests","message":"Slow down","retryAfter":3600}),
        )
        .header("X-RateLimit-Remaining", "0")
        .header("X-RateLimit-Reset", reset_header.clone())
    })
    .await;
    let c = server.client();
    // Returned, not held for the hour's wait.
    let err = within_a_minute(c.get_escrow("e1")).await.unwrap_err();
    assert_eq!(server.count(), 1);
    let Error::RateLimited {
        reset: r,
        retry_after,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(r.map(dhmad::iso::format), Some(dhmad::iso::format(reset)));
    assert_eq!(*retry_after, Some(Duration::from_secs(3600)));
    assert_eq!(c.rate_limit().unwrap().remaining, Some(0));
}

/// A `retryAfter` of 0 or less says nothing of when the window reopens: the client must not
/// take it as "now" and spend the window's calls on quick resends.
#[tokio::test]
async fn a_zero_or_negative_retry_after_is_no_hint() {
    for hint in [json!(0), json!(-1), json!(-0.5), json!("0")] {
        let server = Server::start(move |_, _| {
            Reply::json(
                429,
                json!({"error":"Too Many Requests","message":"Slow down","retryAfter":hint.clone()}),
            )
        })
        .await;
        let err = server.client().get_escrow("e1").await.unwrap_err();
        let Error::RateLimited { retry_after, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*retry_after, None);
        assert_eq!(server.count(), 1, "sent again after a 0 hint");
    }
}

#[tokio::test]
async fn rate_limited_write_waits_for_a_near_reset_then_is_sent_again() {
    // A 429 means DHMAD did nothing, so resending the create cannot make a duplicate.
    let server = Server::start(|_, i| {
        if i == 0 {
            // Near (under the policy's 2 s wait), and far enough that a stalled machine does
            // not read it after it passed (a reset in the past says nothing).
            let reset = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(1500);
            Reply::json(429, json!({"error":"Too Many Requests"}))
                .header("X-RateLimit-Reset", dhmad::iso::format(reset))
        } else {
            Reply::json(
                201,
                json!({"escrow":{"id":"e1","status":"pending"},"contract":null}),
            )
        }
    })
    .await;
    let started = Instant::now();
    let created = server.client().create_escrow(&create_req()).await.unwrap();
    assert_eq!(created.escrow.id, "e1");
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    settle().await;
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn rate_limited_write_with_a_far_reset_is_returned_at_once() {
    let server = Server::start(|_, _| {
        let reset = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        Reply::json(429, json!({"error":"Too Many Requests"}))
            .header("X-RateLimit-Reset", dhmad::iso::format(reset))
    })
    .await;
    let err = within_a_minute(server.client().create_escrow(&create_req()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }));
    settle().await;
    assert_eq!(server.count(), 1);
}

/// DHMAD's cap on new escrows (older docs: 10 a day) answered with the rate window's near
/// reset, as DHMAD sends on every answer: waiting out the window does not lift the cap, so
/// every resend met it again and spent another call of the window. It is returned at once.
#[tokio::test]
async fn the_cap_on_new_escrows_is_not_sent_again_at_the_windows_reset() {
    let server = Server::start(|_, _| {
        let reset = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(200);
        Reply::json(
            429,
            json!({"error":"Rate Limit Exceeded","message":"Daily escrow limit reached",
                   "limit":10,"count":10,"remaining":0}),
        )
        .header("X-RateLimit-Reset", dhmad::iso::format(reset))
    })
    .await;
    let err = within_a_minute(server.client().create_escrow(&create_req()))
        .await
        .unwrap_err();
    assert!(err.is_creation_cap(), "{err:?}");
    settle().await;
    assert_eq!(server.count(), 1);
}

/// A gateway in front of DHMAD answers 503 with `Retry-After: 1` (maintenance): the read was
/// tried again at once, its three retries spent within a second and a half. It now waits as
/// asked, within the backoff's own bound; a far `Retry-After` comes back to the caller at once.
#[tokio::test]
async fn a_5xx_asking_to_wait_is_waited_for_when_near() {
    let server = Server::start(|_, i| {
        if i == 0 {
            Reply::json(503, json!({"error":"Service Unavailable"})).header("Retry-After", "1")
        } else {
            escrow_ok()
        }
    })
    .await;
    // Backoffs of up to 2 s: a `Retry-After` within that is waited for.
    let patient = RetryPolicy {
        max_backoff: Duration::from_secs(2),
        ..fast_retry()
    };
    let started = Instant::now();
    server.client_with(patient).get_escrow("e1").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.count(), 2);

    let far = Server::start(|_, _| {
        Reply::json(503, json!({"error":"Service Unavailable"})).header("Retry-After", "3600")
    })
    .await;
    let err = within_a_minute(far.client_with(patient).get_escrow("e1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Server(_)), "{err:?}");
    settle().await;
    assert_eq!(far.count(), 1);
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    // Port 9 (discard): nothing listens there. A port freed by this test could be taken at
    // once by a server of a test running beside it.
    let port = 9;
    let c = dhmad::Client::builder(KEY)
        .base_url(format!("http://127.0.0.1:{port}/api/v1"))
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    let err = within_a_minute(c.me()).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(err.is_transient());
}

/// Our clock ahead of DHMAD's: its reset reads as past, which must not hide `retryAfter`
/// (an at-once retry would only meet another 429 and spend another call).
#[tokio::test]
async fn a_reset_already_past_does_not_hide_retry_after() {
    let server = Server::start(|_, i| {
        if i == 0 {
            let past = time::OffsetDateTime::now_utc() - time::Duration::seconds(30);
            Reply::json(
                429,
                json!({"error":"Too Many Requests","message":"Slow down","retryAfter":1}),
            )
            .header("X-RateLimit-Reset", dhmad::iso::format(past))
        } else {
            Reply::json(
                200,
                json!({"balance":{"available":0,"pending":0,"escrow":0}}),
            )
        }
    })
    .await;
    let started = Instant::now();
    server.client().balance().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}",
        started.elapsed()
    );
    assert_eq!(server.count(), 2);
}

/// A `Retry-After` header (a gateway's, in front of DHMAD) is a hint when the body has none.
#[tokio::test]
async fn a_429_with_only_a_retry_after_header_says_when_to_come_back() {
    let server = Server::start(|_, _| {
        Reply::json(429, json!({"error":"Too Many Requests"})).header("Retry-After", "7")
    })
    .await;
    let c = server.client_with(RetryPolicy {
        max_rate_limit_wait: Duration::from_secs(1),
        ..fast_retry()
    });
    let err = c.balance().await.unwrap_err();
    assert_eq!(
        err.rate_limit_wait(),
        Some(Duration::from_secs(7)),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
}

/// A 429 that says nothing of when to come back is returned at once, not retried blindly.
#[tokio::test]
async fn a_429_without_any_hint_is_returned_at_once() {
    let server = Server::start(|_, _| Reply::json(429, json!({"error":"Too Many Requests"}))).await;
    let err = server.client().balance().await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(server.count(), 1);
}
