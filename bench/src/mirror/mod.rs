//! The anchors' SQL, taken from the storefront itself.
//!
//! A second storefront talks to Postgres through a relay that reads the protocol going to the
//! server (plain TCP: `sslmode=disable` on that instance only). For one request the relay
//! records every statement the storefront executes, with its parameters, and counts the round
//! trips (*flights*: bytes to the server after the server last spoke). From those statements
//! `script` writes a pgbench script that sends the same statements, in the same order and
//! transaction, with the request's ids replaced by expressions of pgbench's `:i`. So the
//! anchor follows the handler whenever its SQL changes, with nothing to keep in step by hand.

mod params;
mod script;

pub use script::{script, summarize, Key, Mirror};

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use anyhow::Context;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpListener, TcpStream,
    },
};

use params::{be_i32, decode, Reader};

/// One bound parameter: its type and its value as text (`None` for NULL).
#[derive(Debug, Clone)]
pub struct Param {
    pub oid: u32,
    pub value: Option<String>,
    /// Why the value could not be read (a binary format this relay does not know).
    pub unreadable: Option<String>,
}

/// One executed statement.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Param>,
    /// Sent with the simple protocol (a `Query` message: `BEGIN`, `COMMIT`, …).
    pub simple: bool,
    /// The `options` startup parameter of the connection that sent it: the storefront's
    /// connections do not all have the same (the DHMAD call log's does not wait for the disk).
    pub options: Option<String>,
}

/// What the relay saw.
#[derive(Default)]
pub struct Capture {
    pub flights: AtomicU64,
    pub connections: AtomicU64,
    log: Mutex<Vec<Stmt>>,
    problems: Mutex<Vec<String>>,
}

impl Capture {
    /// The statements recorded since the last call.
    pub fn take(&self) -> Vec<Stmt> {
        self.log
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn problem(&self, p: String) {
        if let Ok(mut v) = self.problems.lock() {
            if v.len() < 10 {
                v.push(p);
            }
        }
    }
}

/// Relays every connection made to `listener` to `upstream`, recording into `capture`.
pub fn spawn_relay(listener: TcpListener, upstream: String, capture: Arc<Capture>) {
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            capture.connections.fetch_add(1, Ordering::Relaxed);
            // `true` while the last bytes seen went from Postgres to the storefront.
            let answered = Arc::new(AtomicBool::new(true));
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(to_server(cr, sw, answered.clone(), capture.clone()));
            tokio::spawn(to_client(sr, cw, answered));
        }
    });
}

async fn to_client(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, answered: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        answered.store(true, Ordering::Release);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

async fn to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    answered: Arc<AtomicBool>,
    capture: Arc<Capture>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut conn = Frontend::default();
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if answered.swap(false, Ordering::AcqRel) {
            capture.flights.fetch_add(1, Ordering::Relaxed);
        }
        conn.feed(&buf[..n], &capture);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The frontend half of one connection's protocol, as far as statements go.
#[derive(Default)]
struct Frontend {
    pending: Vec<u8>,
    started: bool,
    /// This connection's `options` startup parameter.
    options: Option<String>,
    /// Prepared statements by name: their SQL and parameter types.
    prepared: HashMap<String, (String, Vec<u32>)>,
}

impl Frontend {
    fn feed(&mut self, bytes: &[u8], capture: &Capture) {
        self.pending.extend_from_slice(bytes);
        loop {
            if !self.started {
                // StartupMessage (or SSLRequest): length, then the body, no type byte.
                let Some(len) = be_i32(&self.pending, 0) else {
                    return;
                };
                let len = len.max(4) as usize;
                if self.pending.len() < len {
                    return;
                }
                let msg: Vec<u8> = self.pending.drain(..len).collect();
                let code = be_i32(&msg, 4).unwrap_or(0);
                if code == 196_608 {
                    // Protocol 3.0: key\0value\0 pairs.
                    self.started = true;
                    let mut parts = msg[8..].split(|b| *b == 0);
                    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                        if k == b"options" {
                            self.options = Some(String::from_utf8_lossy(v).into_owned());
                        }
                    }
                }
                continue;
            }
            let Some(len) = be_i32(&self.pending, 1) else {
                return;
            };
            let total = 1 + len.max(4) as usize;
            if self.pending.len() < total {
                return;
            }
            let msg: Vec<u8> = self.pending.drain(..total).collect();
            if let Err(e) = self.message(msg[0], &msg[5..], capture) {
                capture.problem(format!("message {:?}: {e:#}", msg[0] as char));
            }
        }
    }

    fn message(&mut self, kind: u8, body: &[u8], capture: &Capture) -> anyhow::Result<()> {
        let mut r = Reader { b: body, at: 0 };
        match kind {
            b'Q' => {
                let sql = r.cstr()?;
                push(
                    capture,
                    Stmt {
                        sql,
                        params: Vec::new(),
                        simple: true,
                        options: self.options.clone(),
                    },
                );
            }
            b'P' => {
                let name = r.cstr()?;
                let sql = r.cstr()?;
                let n = r.i16()? as usize;
                let oids = (0..n).map(|_| r.u32()).collect::<anyhow::Result<_>>()?;
                self.prepared.insert(name, (sql, oids));
            }
            b'B' => {
                let _portal = r.cstr()?;
                let name = r.cstr()?;
                let (sql, oids) = self
                    .prepared
                    .get(&name)
                    .cloned()
                    .with_context(|| format!("bind of unknown statement {name:?}"))?;
                let nf = r.i16()? as usize;
                let formats = (0..nf)
                    .map(|_| r.i16())
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let np = r.i16()? as usize;
                let mut params = Vec::with_capacity(np);
                for k in 0..np {
                    let len = r.i32()?;
                    let oid = oids.get(k).copied().unwrap_or(0);
                    let format = match nf {
                        0 => 0,
                        1 => formats[0],
                        _ => formats.get(k).copied().unwrap_or(0),
                    };
                    let (value, unreadable) = if len < 0 {
                        (None, None)
                    } else {
                        match decode(oid, format, r.bytes(len as usize)?) {
                            Ok(v) => (Some(v), None),
                            Err(e) => (None, Some(format!("{e:#}"))),
                        }
                    };
                    params.push(Param {
                        oid,
                        value,
                        unreadable,
                    });
                }
                push(
                    capture,
                    Stmt {
                        sql,
                        params,
                        simple: false,
                        options: self.options.clone(),
                    },
                );
            }
            // Close of a statement ('S'; 'P' is a portal).
            b'C' if r.u8()? == b'S' => {
                let name = r.cstr()?;
                self.prepared.remove(&name);
            }
            _ => {}
        }
        Ok(())
    }
}

fn push(capture: &Capture, s: Stmt) {
    if let Ok(mut l) = capture.log.lock() {
        if l.len() < 10_000 {
            l.push(s);
        }
    }
}
