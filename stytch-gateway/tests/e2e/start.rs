//! Issue #27 at start and towards old upstreams: a wrong Stytch secret is a configuration
//! error (ERROR with the fix, exit 2), an unreachable Stytch is not (the gateway starts, not
//! ready, and turns ready when Stytch comes up); an HTTP/1.1 client behind an HTTP/1.0
//! upstream is answered in HTTP/1.1 and keeps its connection.

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::{
    Gateway, PROJECT_ID, Proc, SECRET, Stytch, bounded, free_port, http, wait_connectable, within,
};

const WRONG_SECRET: &str = "secret-test-wrong-do-not-log-cccccccccccccccccccccccc";

#[test]
fn a_wrong_secret_at_start_is_a_configuration_error_that_names_the_fix() {
    // If this broke, a gateway with a mistyped STYTCH_SECRET would log "Stytch not
    // reachable yet" and run, every request failing, as if Stytch were down.
    let stytch = Stytch::start();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
    let args = [
        "serve",
        "--listen",
        &listen,
        "--upstream",
        "http://127.0.0.1:9",
    ];
    let env = [
        ("STYTCH_PROJECT_ID", PROJECT_ID),
        ("STYTCH_SECRET", WRONG_SECRET),
        ("STYTCH_BASE_URL", stytch.base_url.as_str()),
    ];
    let mut gateway = Proc::spawn("wrong-secret", &args, &env);
    let status = gateway.wait(Duration::from_secs(20));
    let logs = gateway.stderr();
    assert_eq!(status.code(), Some(2), "{logs}");
    let refusal = logs
        .lines()
        .find(|l| l.contains("Stytch refused the project's credentials"))
        .unwrap_or_else(|| panic!("no refusal line:\n{logs}"));
    assert!(refusal.contains("ERROR"), "{refusal}");
    assert!(
        refusal.contains("check STYTCH_PROJECT_ID / STYTCH_SECRET"),
        "{refusal}"
    );
    assert!(refusal.contains("unauthorized_credentials"), "{refusal}");
    assert!(!logs.contains("not reachable"), "{logs}");
    assert!(!logs.contains(WRONG_SECRET) && !logs.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_stytch_at_start_is_not_ready_until_it_comes_up() {
    // If this broke, a gateway started before Stytch (or during its outage) would exit or
    // claim to be ready, or never turn ready, or say why in words nobody reads.
    bounded(async {
        let stytch_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let gw_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let listen = gw_addr.to_string();
        let base_url = format!("http://{stytch_addr}/");
        let args = [
            "serve",
            "--listen",
            &listen,
            "--upstream",
            "http://127.0.0.1:9",
        ];
        let env = [
            ("STYTCH_PROJECT_ID", PROJECT_ID),
            ("STYTCH_SECRET", SECRET),
            ("STYTCH_BASE_URL", base_url.as_str()),
        ];
        let gateway = Proc::spawn("no-stytch", &args, &env);
        wait_connectable(gw_addr);
        let base = format!("http://{gw_addr}");
        let logged = within(Duration::from_secs(15), || async {
            gateway.stderr().contains("Stytch not reachable yet")
        })
        .await;
        let logs = gateway.stderr();
        assert!(logged, "{logs}");
        let warning = logs
            .lines()
            .find(|l| l.contains("Stytch not reachable yet"))
            .unwrap();
        assert!(
            warning.contains(&format!("connection refused to {stytch_addr}")),
            "{warning}"
        );
        assert_eq!(status(&format!("{base}/healthz")).await, StatusCode::OK);
        assert_eq!(
            status(&format!("{base}/readyz")).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let _stytch = Proc::spawn(
            "late-emulator",
            &[
                "emulator",
                "--listen",
                &stytch_addr.to_string(),
                "--project-id",
                PROJECT_ID,
                "--secret",
                SECRET,
            ],
            &[],
        );
        let ready = within(Duration::from_secs(15), || async {
            status(&format!("{base}/readyz")).await == StatusCode::OK
        })
        .await;
        assert!(
            ready,
            "never ready once Stytch came up:\n{}",
            gateway.stderr()
        );
    })
    .await;
}

async fn status(url: &str) -> StatusCode {
    http().get(url).send().await.unwrap().status()
}

/// An HTTP/1.0 upstream: reads a request's head, answers `HTTP/1.0 200` with
/// `Connection: close` and no length, and closes.
async fn http10_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                while stream.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let answer = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\
                              Connection: close\r\nKeep-Alive: timeout=5\r\n\r\nold upstream\n";
                let _ = stream.get_mut().write_all(answer.as_bytes()).await;
                let _ = stream.get_mut().shutdown().await;
            });
        }
    });
    addr
}

/// A response read off a raw HTTP/1.1 connection.
struct RawResponse {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (its body by `Content-Length` or chunked) off `conn`.
async fn read_response(conn: &mut BufReader<TcpStream>) -> RawResponse {
    let mut status_line = String::new();
    conn.read_line(&mut status_line).await.unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut response = RawResponse {
        status_line: status_line.trim_end().to_owned(),
        headers,
        body: Vec::new(),
    };
    if let Some(length) = response.header("content-length") {
        let mut body = vec![0; length.parse().unwrap()];
        conn.read_exact(&mut body).await.unwrap();
        response.body = body;
    } else if response.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            conn.read_line(&mut size).await.unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).await.unwrap();
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    }
    response
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http11_client_behind_an_http10_upstream_keeps_http11_and_its_connection() {
    // If this broke, every HTTP/1.1 client of a legacy (HTTP/1.0) upstream would get
    // `HTTP/1.0 200` and a closed connection after each request: a new TCP (and TLS)
    // handshake per request, and clients that reuse connections failing.
    bounded(async {
        let stytch = Stytch::start();
        let upstream = http10_upstream().await;
        let gw = Gateway::start(&stytch, upstream, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let addr = gw.base.trim_start_matches("http://").to_owned();
        let mut conn = BufReader::new(TcpStream::connect(&addr).await.unwrap());
        for path in ["/first", "/second"] {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
            );
            conn.get_mut().write_all(request.as_bytes()).await.unwrap();
            let response = read_response(&mut conn).await;
            assert_eq!(response.status_line, "HTTP/1.1 200 OK", "{path}");
            assert_eq!(response.body, b"old upstream\n", "{path}");
            assert_eq!(response.header("connection"), None, "{path}");
            assert_eq!(response.header("keep-alive"), None, "{path}");
        }
    })
    .await;
}
