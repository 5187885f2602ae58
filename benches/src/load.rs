//! Loopback HTTP: the same trivial endpoint served twice by [`mcp_auth::net::serve`], once
//! behind the real [`AuthLayer`] (the resource server's guard) and once without it, and a
//! keep-alive load generator with a fixed number of connections, bounded in requests and time.
//!
//! The servers run on their own thread (a current-thread tokio runtime, like one worker); the
//! load generator runs on the caller's thread with raw HTTP/1.1 over `TcpStream`, so that
//! almost all of its core is left to the server on a 2-core machine.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use mcp_auth::net::guarded as behind_guard;
use mcp_auth::net::{Body, full, serve};
use mcp_auth_layer::{AuthLayer, McpGuard};
use mcp_auth_proto::guard::Sessions;
use mcp_auth_proto::resource::ResourceServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn ok() -> http::Response<Body> {
    http::Response::new(full("ok"))
}

/// The core the servers run on; [`CLIENT_CORE`] is the load generator's (and the other
/// measurements'), as in the anchors of `perf-anchors.md` (server on core 0, wrk on core 1).
pub const SERVER_CORE: usize = 0;
/// The core of the load generator and of the single-threaded measurements.
pub const CLIENT_CORE: usize = 1;

/// Pin the calling thread to `core` if the machine has it (otherwise leave it).
pub fn pin_to_core(core: usize) -> bool {
    core_affinity::get_core_ids()
        .and_then(|ids| ids.into_iter().find(|c| c.id == core))
        .is_some_and(core_affinity::set_for_current)
}

/// The two servers: `plain` (the endpoint alone) and `guarded` (behind [`AuthLayer`]).
pub struct Servers {
    /// The endpoint without the guard.
    pub plain: SocketAddr,
    /// The endpoint behind the guard.
    pub guarded: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Servers {
    /// Start both on loopback. `rs` must already hold the issuer's keys (nothing is fetched).
    pub fn start(rs: ResourceServer) -> Self {
        let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            pin_to_core(SERVER_CORE);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let guarded = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addrs_tx
                    .send((
                        plain.local_addr().expect("addr"),
                        guarded.local_addr().expect("addr"),
                    ))
                    .expect("addresses");
                let endpoint =
                    tower::service_fn(|_: http::Request<Full<Bytes>>| async { Ok(ok()) });
                // An unroutable JWKS URI: the keys are installed already and never refetched
                // for a valid token.
                let guard = McpGuard::new(rs, Sessions::new(&mut mcp_auth_layer::OsEntropy))
                    .with_jwks_uri("http://127.0.0.1:9/jwks");
                let layer = AuthLayer::with_roots(guard, rustls::RootCertStore::empty());
                let plain_service = tower::service_fn(|_: http::Request<Incoming>| async {
                    Ok::<_, Infallible>(ok())
                });
                let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                tokio::join!(
                    serve(plain, plain_service, until(stopped.clone())),
                    serve(guarded, behind_guard(&layer, endpoint), until(stopped)),
                );
            });
        });
        let (plain, guarded) = addrs_rx.recv().expect("servers started");
        Self {
            plain,
            guarded,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `GET /mcp` with the given `Authorization` value, as raw HTTP/1.1 (keep-alive).
pub fn request_bytes(authorization: &str) -> Vec<u8> {
    format!(
        "GET /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: application/json\r\n\
         authorization: {authorization}\r\n\r\n"
    )
    .into_bytes()
}

/// One block's outcome.
#[derive(Clone, Copy, Debug)]
pub struct Block {
    /// 200 answers.
    pub ok: u64,
    /// Anything else (a non-200 status or a broken connection).
    pub errors: u64,
    /// Wall time of the block.
    pub elapsed: Duration,
}

impl Block {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Where the header ends, and the `content-length`.
fn parse_head(buf: &[u8]) -> Option<(usize, usize, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let ok = head.starts_with("HTTP/1.1 200");
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    Some((end, len, ok))
}

async fn connection(
    mut stream: TcpStream,
    request: Arc<Vec<u8>>,
    budget: Arc<AtomicU64>,
    deadline: Instant,
) -> (u64, u64) {
    let (mut ok, mut errors) = (0, 0);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    'requests: while Instant::now() < deadline
        && budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    {
        if stream.write_all(&request).await.is_err() {
            errors += 1;
            break;
        }
        loop {
            if let Some((head, len, good)) = parse_head(&buf)
                && buf.len() >= head + len
            {
                buf.drain(..head + len);
                if good {
                    ok += 1;
                } else {
                    errors += 1;
                }
                continue 'requests;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    errors += 1;
                    break 'requests;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
    (ok, errors)
}

/// Send `request` over `connections` keep-alive connections to `addr` until `max_requests`
/// are answered or `max_time` has passed, whichever is first.
pub async fn block(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    connections: usize,
    max_requests: u64,
    max_time: Duration,
) -> Block {
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        streams.push(s);
    }
    let budget = Arc::new(AtomicU64::new(max_requests));
    let start = Instant::now();
    let deadline = start + max_time;
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| {
            tokio::spawn(connection(
                s,
                Arc::clone(&request),
                Arc::clone(&budget),
                deadline,
            ))
        })
        .collect();
    let (mut ok, mut errors) = (0, 0);
    for t in tasks {
        let (o, e) = t.await.unwrap_or((0, 1));
        ok += o;
        errors += e;
    }
    Block {
        ok,
        errors,
        elapsed: start.elapsed(),
    }
}
