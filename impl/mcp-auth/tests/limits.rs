//! HTTP limits of every server (`net::serve`: the AS, the MCP server, the client's redirect
//! listener), over raw loopback TCP: an oversized header block gets 431, a request head that
//! does not arrive in time 408, a connection over the cap 503; never a hang. Bounded in count
//! and time.

use std::time::Duration;

use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth::net::{ServeLimits, full, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every exchange here finishes well within this, or the test fails.
const BOUND: Duration = Duration::from_secs(60);

/// `host:port` of an `http://host:port/...` URL.
fn authority(url: &str) -> String {
    let rest = url.trim_start_matches("http://");
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Write `bytes`, then read the answer until the server closes or `BOUND`; the status code.
async fn status_after(stream: &mut TcpStream, bytes: &[u8]) -> u16 {
    // The server may answer and close before taking everything: a failed write is fine.
    let _ = stream.write_all(bytes).await;
    read_status(stream).await
}

async fn read_status(stream: &mut TcpStream) -> u16 {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    };
    tokio::time::timeout(BOUND, read).await.expect("no hang");
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

fn request_with_header(authority: &str, path: &str, header_len: usize) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {authority}\r\nx-filler: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(header_len)
    )
    .into_bytes()
}

// spec: SEC-16, PF-18
#[tokio::test]
async fn an_oversized_header_block_gets_431_from_the_as_and_the_mcp_server() {
    let s = Stack::start(StackOptions::default())
        .await
        .expect("the stack starts");
    let as_host = authority(&s.issuer);
    let rs_host = authority(&s.mcp_url);
    for (host, path) in [
        (&as_host, "/.well-known/oauth-authorization-server"),
        (&rs_host, "/mcp"),
    ] {
        let mut stream = TcpStream::connect(host.as_str()).await.expect("connect");
        let status = status_after(&mut stream, &request_with_header(host, path, 64 * 1024)).await;
        assert_eq!(status, 431, "{host}{path}");
        // A header block within the limit is served as usual.
        let mut stream = TcpStream::connect(host.as_str()).await.expect("connect");
        let status = status_after(&mut stream, &request_with_header(host, path, 8 * 1024)).await;
        assert_ne!(status, 431, "{host}{path}");
    }
    s.stop().await;
}

/// A server answering 200 to everything, under `limits`; its `host:port`.
async fn tiny_server(limits: ServeLimits) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let service = tower::service_fn(|_: http::Request<hyper::body::Incoming>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(full("ok")))
    });
    tokio::spawn(serve_with(
        listener,
        service,
        std::future::pending(),
        limits,
    ));
    addr
}

// spec: SEC-16, PF-18
#[tokio::test]
async fn a_request_head_that_does_not_arrive_in_time_gets_408() {
    let limits = ServeLimits::default().with_header_timeout(Duration::from_millis(300));
    let addr = tiny_server(limits).await;
    // Slow loris: half a head, then nothing.
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let started = std::time::Instant::now();
    let status = status_after(&mut stream, b"GET / HTTP/1.1\r\nhost: x\r\nx-a: ").await;
    assert_eq!(status, 408);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Nothing at all.
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    assert_eq!(read_status(&mut stream).await, 408);
    // A prompt request is served.
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let request = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    assert_eq!(status_after(&mut stream, request).await, 200);
}

// spec: SEC-16, PF-18
#[tokio::test]
async fn a_connection_over_the_cap_gets_503_and_a_freed_slot_serves_again() {
    let limits = ServeLimits::default().with_max_connections(1);
    let addr = tiny_server(limits).await;
    let request = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let holder = TcpStream::connect(&addr).await.expect("connect");
    let mut extra = TcpStream::connect(&addr).await.expect("connect");
    assert_eq!(status_after(&mut extra, request).await, 503);
    drop(holder);
    // The slot comes back once the server sees the close (bounded retries).
    let mut served = false;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        if status_after(&mut stream, request).await == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served);
}
