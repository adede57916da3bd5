//! `Error::Transport` carries the crate's own `TransportError`: what a caller can ask of it,
//! and that its text and cause chain still say what went wrong.

use std::error::Error as _;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::KEY;
use dhmad::{Error, RetryPolicy, TransportError};

fn client(base: String) -> dhmad::Client {
    dhmad::Client::builder(KEY)
        .base_url(base)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    // Port 9 (discard): nothing listens there. A port freed by this test could be taken at
    // once by a server of a test running beside it.
    let port = 9;
    let err = client(format!("http://127.0.0.1:{port}/api/v1"))
        .me()
        .await
        .unwrap_err();
    let Error::Transport(t) = &err else {
        panic!("expected a transport error, got {err:?}");
    };
    assert!(t.is_connect());
    assert!(!t.is_timeout());
    assert!(!t.is_body());
    assert_eq!(
        t.url(),
        Some(format!("http://127.0.0.1:{port}/api/v1/me").as_str())
    );

    assert!(
        err.to_string().starts_with("could not reach DHMAD: "),
        "{err}"
    );
    // The chain: our error, then the transport error, then its causes down to the OS.
    let source = err.source().unwrap();
    assert!(source.downcast_ref::<TransportError>().is_some());
    assert!(source.source().is_some(), "the cause is kept: {t:?}");
    assert!(!format!("{t:?}").contains(KEY));
}

/// A session's path is a capability (its hosted page): the error's text, which callers log,
/// leaves the URL out; `url()` still gives it.
#[tokio::test]
async fn the_errors_text_leaves_the_url_out() {
    let session = "3f0c2a9e-5b1d-4e77-9a60-0d6c1b2e8f41";
    let err = client("http://127.0.0.1:9/api/v1".into())
        .get_session(session)
        .await
        .unwrap_err();
    let Error::Transport(t) = &err else {
        panic!("expected a transport error, got {err:?}");
    };
    assert!(t.url().is_some_and(|u| u.ends_with(session)));
    for text in [
        err.to_string(),
        format!("{err:?}"),
        t.to_string(),
        format!("{t:?}"),
    ] {
        assert!(!text.contains(session), "{text}");
    }
}

#[tokio::test]
async fn answer_cut_short_is_a_body_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = socket.read(&mut buf).await.unwrap();
        // Promises 100 bytes, sends 12, hangs up.
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"escrow\":{")
            .await
            .unwrap();
    });
    let err = client(format!("http://{addr}/api/v1"))
        .get_escrow("e1")
        .await
        .unwrap_err();
    let Error::Transport(t) = &err else {
        panic!("expected a transport error, got {err:?}");
    };
    assert!(t.is_body(), "{t:?}");
    assert!(!t.is_connect());
    assert!(err.is_transient());
}

#[test]
fn errors_can_cross_threads() {
    // `anyhow`, `Box<dyn Error + Send + Sync>` and spawned tasks need these.
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Error>();
    assert_send_sync::<TransportError>();
    assert_send_sync::<dhmad::BuildError>();
}

/// A connection that never gets established (a server whose accept queue is full drops the
/// handshake) times out while connecting: nothing was sent, so it is a connect error a caller
/// may retry safely, not `Error::Timeout`'s "outcome unknown" (which made every checkout
/// during an outage one to reconcile later).
#[tokio::test]
async fn a_connect_timeout_is_a_connect_error_not_an_unknown_outcome() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    // A backlog of 0 holds one connection; nothing is accepted, so the next handshakes wait.
    let listener = socket.listen(0).unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        let c = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(c)) = tokio::time::timeout(std::time::Duration::from_millis(200), c).await {
            held.push(c);
        }
    }
    let client = dhmad::Client::builder(KEY)
        .base_url(format!("http://{addr}/api/v1"))
        .connect_timeout(std::time::Duration::from_millis(300))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let req = dhmad::CreateEscrow::new("t", rust_decimal::Decimal::new(10, 0), "b@example.tn");
    let err = client.create_escrow(&req).await.unwrap_err();
    let Error::Transport(t) = &err else {
        panic!("expected a transport error, got {err:?}");
    };
    assert!(t.is_connect(), "{t:?}");
    drop((held, listener));
}
