//! The HTTP edge against clients that hold connections: headers or bodies sent slowly or
//! never, idle keep-alive connections, and one address opening more than its share.

use std::time::Duration;

use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Reads until the server closes the connection (or `limit` passes).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(limit, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await,
        Ok(())
    )
}

#[sqlx::test(migrations = "./migrations")]
async fn slow_and_idle_clients_are_cut_off_and_capped(pool: PgPool) {
    let mut cfg = offline_config();
    // Long enough that the 300 ms look below ends well before an idle connection is cut, on a
    // loaded machine too.
    cfg.edge.header_read_timeout = Duration::from_secs(3);
    cfg.edge.max_connections = 2;
    // As behind this machine's proxy: every connection is some client's, and no address's
    // share (a quarter of the cap) closes one before the cap itself is reached.
    cfg.edge.client_ip_header = Some("x-forwarded-for".into());
    let app = spawn(pool, cfg).await;
    let addr = format!("127.0.0.1:{}", app.port);

    // A client that never finishes its headers is disconnected.
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(10)).await,
        "slow client still connected"
    );

    // Two idle connections fill the cap: a third client waits…
    let mut idle1 = TcpStream::connect(&addr).await.unwrap();
    let idle2 = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(300), third.read_to_end(&mut answer)).await;
    assert!(early.is_err() || answer.is_empty(), "served past the cap");
    // …until an idle one is cut off by the header timeout, then it is served.
    assert!(closed_within(&mut idle1, Duration::from_secs(10)).await);
    tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut answer))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    drop(idle2);
}

/// With two connections of this address held (its share: a quarter of `max_connections` 8), a
/// third one is closed at once: within seconds, where the header-read timeout (a minute here)
/// would close an idle one only much later.
async fn a_third_is_closed(app: &TestApp, what: &str) {
    let addr = format!("127.0.0.1:{}", app.port);
    let held = (
        TcpStream::connect(&addr).await.unwrap(),
        TcpStream::connect(&addr).await.unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(5)).await,
        "{what}"
    );
    drop(held);
}

/// One address cannot hold every connection: a new one from an address holding its share (a
/// quarter of the server's; `max_connections_per_client` once over three quarters of them are
/// open) is closed at once;
/// behind a proxy (`CLIENT_IP_HEADER`) too, for a peer that is not a trusted proxy. A trusted
/// proxy's connections all share its address, so the share does not apply to them.
#[sqlx::test(migrations = "./migrations")]
async fn one_client_cannot_hold_every_connection(pool: PgPool) {
    let mut cfg = offline_config();
    cfg.edge.max_connections_per_client = 2;
    cfg.edge.max_connections = 8;
    // Idle connections are not cut meanwhile: only the share can close the third one.
    cfg.edge.header_read_timeout = Duration::from_secs(60);
    let app = spawn(pool.clone(), cfg.clone()).await;
    a_third_is_closed(&app, "a third connection from the same address").await;
    // Once the server has seen them close (a connection it still counts is closed at once).
    wait_for("its share back", 30, || async {
        let r = app.http.get(app.url("/healthz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    // Behind a proxy that is not the one the shop trusts, this address is a client reaching
    // the port directly: it keeps its share (before, setting the header lifted every share).
    cfg.edge.client_ip_header = Some("x-forwarded-for".into());
    cfg.edge.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let direct = spawn(pool.clone(), cfg.clone()).await;
    a_third_is_closed(
        &direct,
        "a third connection from an untrusted peer behind a proxy",
    )
    .await;
    // Its connections (those it keeps for reuse too) go back to the test's pool, which the
    // next instance's start-up needs.
    direct.stop().await;
    drop(direct);

    // From the trusted proxy itself, every connection is some client's: no share.
    cfg.edge.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let proxied = spawn(pool, cfg).await;
    let addr = format!("127.0.0.1:{}", proxied.port);
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut last = conns.pop().unwrap();
    last.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), last.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

/// A body announced and then withheld, or trickled, is the client's failure: 408 once the
/// header-read time has passed again, and the connection closed; never the request deadline's
/// 503, which says the shop failed. Except for DHMAD's webhooks: a 4xx would tell DHMAD never
/// to send the event again, so a slow one gets its route's 503, which DHMAD retries.
#[sqlx::test(migrations = "./migrations")]
async fn a_body_that_does_not_arrive_is_a_408(pool: PgPool) {
    let mut cfg = offline_config();
    cfg.edge.header_read_timeout = Duration::from_secs(1);
    let app = spawn(pool, cfg).await;
    let addr = format!("127.0.0.1:{}", app.port);
    let head = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 1000\r\n\r\n"
        )
    };
    for (path, trickle, status) in [
        ("/checkout", false, 408),
        ("/api/checkout", true, 408),
        ("/webhooks/dhmad", false, 503),
    ] {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(head(path).as_bytes()).await.unwrap();
        if trickle {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                // The server may have answered and closed already.
                if c.write_all(b"a").await.is_err() {
                    break;
                }
            }
        }
        // The status line (the webhook's comes at its route's 8 s deadline).
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), async {
            let mut buf = [0u8; 512];
            while !answer.windows(2).any(|w| w == b"\r\n") {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .expect("answered");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {answer}"
        );
    }
    // A body sent in time is read as before.
    let r = app
        .http
        .post(app.url("/api/checkout"))
        .json(&serde_json::json!({"sku": "no-such-sku", "email": "b@example.tn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// A client that sends requests and never reads the answers: once the answers fill the
/// buffers, hyper stops reading the next head, so the header timer never runs, and the
/// connection (with its slot, here the only one) was held for ever. A few such clients held
/// every slot, and the shop stopped answering anyone. An answer that cannot be written for
/// `WRITE_STALL_FACTOR` header timeouts now closes its connection.
#[sqlx::test(migrations = "./migrations")]
async fn a_client_that_never_reads_its_answers_does_not_hold_its_connection(pool: PgPool) {
    let mut cfg = offline_config();
    cfg.edge.header_read_timeout = Duration::from_secs(1);
    cfg.edge.max_connections = 1;
    let app = spawn(pool, cfg).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", app.port).parse().unwrap();
    let one = app.get("/openapi.json").await.bytes().await.unwrap().len();
    // Enough answers to fill both sides' socket buffers and hyper's own many times over.
    let requests = (32 << 20) / one + 1;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let mut hog = socket.connect(addr).await.unwrap();
    let pipelined = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests);
    // Sent from a task: past the buffers the write waits until the server stops reading, and
    // fails once it closes the connection, as it should.
    let hog = tokio::spawn(async move {
        let _ = hog.write_all(pipelined.as_bytes()).await;
        hog
    });

    let mut other = TcpStream::connect(addr).await.unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), other.read_to_end(&mut answer))
        .await
        .expect("served once the stalled connection was closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    drop(hog.await.unwrap());
}
