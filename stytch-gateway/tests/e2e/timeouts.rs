//! Slow and silent clients against the gateway binary (issue #24): every connection, HTTP/1
//! or HTTP/2, is closed when it stays silent, idle or half-sent past its timeout, a request
//! body that stops coming is cut with 408, and connections past `--max-connections` are
//! closed at once and counted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::edge::{raw, recorder};
use super::{Gateway, Stytch, bounded, free_port, metrics_text, within};

/// Short timeouts, so the tests wait seconds: header 1 s, keep-alive 2 s, body 1 s.
const SHORT: [&str; 6] = [
    "--client-header-timeout",
    "1s",
    "--keepalive-timeout",
    "2s",
    "--client-body-timeout",
    "1s",
];

/// HTTP/2's connection preface and an empty SETTINGS frame.
const PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// When `stream` closes, reading (and dropping) whatever comes, waiting at most `patience`
/// from now: `None` if it is still open then.
async fn closed_within(stream: &mut TcpStream, patience: Duration) -> Option<Instant> {
    let mut sink = [0u8; 1024];
    let read_until_closed = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(patience, read_until_closed)
        .await
        .ok()
        .map(|()| Instant::now())
}

async fn connect(gw: &Gateway) -> TcpStream {
    TcpStream::connect(gw.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// The value of the metric line starting with `series` in `rendered`.
fn metric(rendered: &str, series: &str) -> Option<f64> {
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_idle_and_half_sent_http1_connections_are_closed_after_their_timeouts() {
    // If this broke, a client opening connections and sending nothing (or half a header, or
    // nothing after a first request) would keep them open forever: 1,100 of them exhaust a
    // 1,024 file limit and the gateway stops accepting anyone.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
        let mut args = SHORT.to_vec();
        args.extend(["--metrics-listen", &metrics, "--public", "/"]);
        let gw = Gateway::start(&stytch, up.addr, &args).await;
        let mut silent = Vec::new();
        for _ in 0..20 {
            silent.push(connect(&gw).await);
        }
        let mut half = connect(&gw).await;
        half.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        let mut idle = connect(&gw).await;
        idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut answer = [0u8; 12];
        idle.read_exact(&mut answer).await.unwrap();
        let answered = Instant::now();
        assert_eq!(&answer, b"HTTP/1.1 200");
        for stream in &mut silent {
            let closed = closed_within(stream, Duration::from_secs(5)).await;
            assert!(closed.is_some(), "a silent connection is still open");
        }
        let closed = closed_within(&mut half, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a half-sent header is still open");
        // Idle after a response: the keep-alive timeout (2 s), not the header timeout (1 s).
        let closed = closed_within(&mut idle, Duration::from_secs(5)).await;
        let closed = closed.expect("an idle keep-alive connection is still open");
        let idle_for = closed.duration_since(answered);
        assert!(idle_for >= Duration::from_millis(1500), "idle closed after {idle_for:?}");
        let rendered = metrics_text(&metrics).await;
        let timed_out = |phase: &str| {
            let series = format!(
                "stytch_gateway_connections_timed_out_total{{listener=\"proxy\",phase=\"{phase}\"}} "
            );
            metric(&rendered, &series).unwrap_or(0.0)
        };
        assert!(timed_out("first_request") >= 21.0, "{rendered}");
        assert!(timed_out("idle") >= 1.0, "{rendered}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_connection_sending_only_the_preface_or_idle_is_closed() {
    // If this broke, an HTTP/2 client sending the connection preface and then nothing, half
    // a header block, or answering pings and never asking for anything, would hold its
    // connection forever.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let mut args = SHORT.to_vec();
        args.extend(["--public", "/"]);
        let gw = Gateway::start(&stytch, up.addr, &args).await;
        let mut preface_only = connect(&gw).await;
        preface_only.write_all(PREFACE_AND_SETTINGS).await.unwrap();
        // A header block never finished: HEADERS without END_HEADERS, no CONTINUATION.
        let mut unfinished = connect(&gw).await;
        unfinished.write_all(PREFACE_AND_SETTINGS).await.unwrap();
        unfinished
            .write_all(b"\x00\x00\x03\x01\x00\x00\x00\x00\x01\x82\x84\x86")
            .await
            .unwrap();
        let closed = closed_within(&mut preface_only, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "a preface-only connection is still open");
        let closed = closed_within(&mut unfinished, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "an unfinished header block is still open");
        // A client that made one request and then idles (hyper answers the gateway's pings).
        let tcp = connect(&gw).await;
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let req = Request::get(format!("{}/", gw.base))
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert_eq!(
            send.send_request(req).await.unwrap().status(),
            StatusCode::OK
        );
        let idle = tokio::time::timeout(Duration::from_secs(6), conn).await;
        assert!(idle.is_ok(), "an idle HTTP/2 connection is still open");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_that_stops_coming_is_cut_with_408() {
    // If this broke, a client sending part of a body and then nothing would hold the
    // request, its connection and an upstream connection until the upstream timeout (30 s),
    // for every such request it opens.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let gw = Gateway::start(&stytch, up.addr, &SHORT).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        for content_type in ["application/octet-stream", "application/x-www-form-urlencoded"] {
            let head = format!(
                "POST /upload HTTP/1.1\r\nauthorization: Bearer {token}\r\ncontent-type: {content_type}\r\ncontent-length: 100\r\n"
            );
            let started = Instant::now();
            // Ten bytes of the hundred announced, then silence.
            let (status, response) = raw(&gw.base, &head, b"a=01234567").await;
            assert_eq!(status, 408, "{content_type}: {response}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{content_type}: cut after {:?}",
                started.elapsed()
            );
        }
        assert!(up.seen().is_empty(), "a half-sent body was answered by the upstream");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_cap_are_closed_at_once_and_counted() {
    // If this broke, connections past --max-connections would be served until the process
    // ran out of file descriptors (then nobody is served), or the cap would be hit with no
    // metric or log line saying so.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
        let args = ["--max-connections", "3", "--metrics-listen", &metrics];
        let gw = Gateway::start(&stytch, up.addr, &args).await;
        let open = "stytch_gateway_connections_open{listener=\"proxy\"} ";
        let quiet = || async { metric(&metrics_text(&metrics).await, open) == Some(0.0) };
        assert!(within(Duration::from_secs(5), quiet).await, "the readiness probes' connections stay open");
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect(&gw).await);
        }
        let full = || async { metric(&metrics_text(&metrics).await, open) == Some(3.0) };
        assert!(within(Duration::from_secs(5), full).await);
        let mut refused = connect(&gw).await;
        let closed = closed_within(&mut refused, Duration::from_secs(2)).await;
        assert!(closed.is_some(), "a connection past the cap was kept open");
        let rendered = metrics_text(&metrics).await;
        let series = "stytch_gateway_connections_refused_total{listener=\"proxy\",reason=\"max_connections\"} ";
        assert_eq!(metric(&rendered, series), Some(1.0), "{rendered}");
        assert!(gw.proc.stderr().contains("connection limit reached"));
        // A closed connection gives its slot back.
        drop(held.pop());
        let freed = || async { metric(&metrics_text(&metrics).await, open) == Some(2.0) };
        assert!(within(Duration::from_secs(5), freed).await);
        let (status, _) = raw(&gw.base, "GET /healthz HTTP/1.1\r\n", b"").await;
        assert_eq!(status, 200);
    })
    .await;
}
