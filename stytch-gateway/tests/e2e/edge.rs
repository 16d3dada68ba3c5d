//! Issue #24, the gateway's edge: what reaches the upstream when a client spells headers
//! with `_`, climbs out of the upstream's prefix, or sends a browser's DELETE as a form. The
//! shared pieces of the other #24 modules (`smuggling`, `timeouts`, `grace`, `inherited`)
//! are here too: an upstream that records what it got ([`recorder`]) and a raw HTTP/1.1
//! exchange ([`raw`]) for requests no client library would send.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

use super::nginx::{Nginx, nginx_or_skip};
use super::{Gateway, PROJECT_ID, Proc, SECRET, Stytch, bounded, http};

/// What the recording upstream got.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// An upstream that reads each request's whole body, records it (unless the body failed),
/// and answers with the
/// status of the `status` query parameter (200 without), `Cache-Control: public,
/// max-age=3600` and `seen\n`.
pub(crate) struct Recorder {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    _stop: oneshot::Sender<()>,
}

impl Recorder {
    /// Everything recorded so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn record(seen: Arc<Mutex<Vec<Seen>>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    // A body that never completed is no request the app acted on: not recorded.
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Response::new(Full::new(Bytes::from_static(b"body incomplete\n")));
    };
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let status = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "status")
        .and_then(|(_, v)| v.parse::<u16>().ok())
        .unwrap_or(200);
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        target: target.to_owned(),
        headers: parts.headers,
        body,
    });
    let mut response = Response::new(Full::new(Bytes::from_static(b"seen\n")));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    let public = http::HeaderValue::from_static("public, max-age=3600");
    response.headers_mut().insert("cache-control", public);
    if (300..400).contains(&status) {
        let location = http::HeaderValue::from_static("/members");
        response.headers_mut().insert("location", location);
    }
    response
}

pub(crate) async fn recorder() -> Recorder {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop, mut stopped) = oneshot::channel::<()>();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = &mut stopped => return,
            };
            let s = s.clone();
            let service = hyper::service::service_fn(move |req| {
                let s = s.clone();
                async move { Ok::<_, Infallible>(record(s, req).await) }
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Recorder {
        addr,
        seen,
        _stop: stop,
    }
}

/// Sends `head` (request line and headers, each ending in `\r\n`; the blank line is added)
/// and `body` to the gateway at `base` on a new connection, and reads until it closes (at
/// most 10 s): the status and everything received.
pub(crate) async fn raw(base: &str, head: &str, body: &[u8]) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}host: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response));
    // A reset after the answer (the gateway closing with unread bytes) still leaves it read.
    let _ = read
        .await
        .expect("the gateway neither answered nor closed in 10 s");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    (status, response)
}

/// Sends `head` (as [`raw`], without asking to close) on a new connection and reads the
/// answer's head only (what may follow a 101 is another protocol's): its status.
pub(crate) async fn raw_head(base: &str, head: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}host: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        while !answer.ends_with(b"\r\n\r\n") {
            answer.push(stream.read_u8().await.unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("no answer in 10 s");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap()
}

/// Headers spelled with `_` that a CGI, WSGI, PHP or Rack app reads as the gateway's.
const FORGED: [(&str, &str); 7] = [
    ("X_Stytch_Member_Id", "member-evil"),
    ("X_Stytch_Roles", "stytch_admin"),
    ("X_Stytch_Organization_Id", "organization-evil"),
    ("X_Forwarded_For", "6.6.6.6"),
    ("X_Real_IP", "6.6.6.6"),
    ("X_Forwarded_Proto", "https"),
    ("X_Forwarded_Host", "evil.example"),
];

/// `GET path` through `gw` with `headers` (and `token` as the bearer when given): the
/// names with `_` the upstream saw.
async fn underscored_seen(
    gw: &Gateway,
    up: &Recorder,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Vec<String> {
    let mut req = http().get(format!("{}{path}", gw.base));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    assert_eq!(req.send().await.unwrap().status(), StatusCode::OK, "{path}");
    let seen = up.seen();
    let last = seen.last().unwrap();
    last.headers
        .keys()
        .map(|n| n.as_str().to_owned())
        .filter(|n| n.contains('_'))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn underscore_spellings_of_identity_and_forwarding_headers_never_reach_the_upstream() {
    // If this broke, `X_Stytch_Member_Id: member-evil` (or `X_Stytch_Roles`, `X_Forwarded_For`,
    // `X_Real_IP`…) would reach a WSGI, CGI, PHP or Rack app, which reads `_` as `-`, as the
    // identity or client address the gateway vouches for.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let gw = Gateway::start(&stytch, up.addr, &["--public", "/assets/"]).await;
        let org = stytch.organization("acme").await;
        let (member, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let authenticated = underscored_seen(&gw, &up, "/whoami", Some(&token), &FORGED).await;
        assert!(
            authenticated.is_empty(),
            "reached the upstream: {authenticated:?}"
        );
        let seen = up.seen()[0].headers.clone();
        assert_eq!(seen["x-stytch-member-id"], member.as_str());
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
        let public = underscored_seen(&gw, &up, "/assets/app.js", None, &FORGED).await;
        assert!(public.is_empty(), "reached the upstream: {public:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn allowing_underscore_headers_lets_named_ones_through_but_never_a_gateway_header() {
    // If this broke, an app needing one header with `_` could not have it, or an operator
    // could let `X_Stytch_Roles` through with it, and every client's forged roles.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let allow = ["--allow-underscore-header", "X_App_Tenant", "--public", "/"];
        let gw = Gateway::start(&stytch, up.addr, &allow).await;
        let mut headers = FORGED.to_vec();
        headers.push(("X_App_Tenant", "acme"));
        let seen = underscored_seen(&gw, &up, "/page", None, &headers).await;
        assert_eq!(seen, ["x_app_tenant"]);
        let mut proc = Proc::spawn(
            "gateway",
            &[
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--allow-underscore-header",
                "X_Stytch_Roles",
            ],
            &[
                ("STYTCH_PROJECT_ID", PROJECT_ID),
                ("STYTCH_SECRET", SECRET),
                ("STYTCH_BASE_URL", stytch.base_url.as_str()),
            ],
        );
        let status = proc.wait(Duration::from_secs(10));
        assert_eq!(status.code(), Some(2), "{}", proc.stderr());
        let stderr = proc.stderr();
        assert!(
            stderr.contains("X_Stytch_Roles") && stderr.contains("once '_' is read as '-'"),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_segments_never_escape_the_upstreams_prefix_through_nginx() {
    // If this broke, with `--upstream http://host/app`, `/../internal/admin` or
    // `/%2e%2e/internal/admin` would be forwarded as `/app/../internal/admin`, which nginx
    // (like Tomcat or Spring) normalises to `/internal/admin`: outside what the gateway
    // exposes.
    if !nginx_or_skip() {
        return;
    }
    bounded(async {
        let nginx = Nginx::serve(
            "location /app/ { return 200 \"app $uri\\n\"; }
             location /internal/ { return 200 \"internal $uri\\n\"; }
             location / { return 404; }",
        );
        let stytch = Stytch::start();
        let upstream = format!("http://{}/app", nginx.addr);
        let gw = Gateway::start_url(&stytch, &upstream, &[], &[]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let get = |path: &str| format!("GET {path} HTTP/1.1\r\nauthorization: Bearer {token}\r\n");
        for escaping in [
            "/../internal/admin",
            "/%2e%2e/internal/admin",
            "/%2E%2e/internal/admin",
            "/docs/../../internal/admin",
            "/%252e%252e/internal/admin",
        ] {
            let (status, response) = raw(&gw.base, &get(escaping), b"").await;
            assert_eq!(status, 400, "{escaping}: {response}");
            assert!(!response.contains("internal /internal"), "{escaping}");
        }
        // Inside the prefix, dot segments are resolved and the request goes through.
        for (path, served) in [
            ("/docs/page", "app /app/docs/page"),
            ("/docs/%2e%2e/page", "app /app/page"),
            ("/docs/../page?x=1", "app /app/page"),
        ] {
            let (status, response) = raw(&gw.base, &get(path), b"").await;
            assert_eq!(status, 200, "{path}: {response}");
            assert!(
                response.ends_with(&format!("{served}\n")),
                "{path}: {response}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_post_with_method_delete_to_a_hooked_route_signs_the_member_out() {
    // If this broke, a Rails, Laravel or Symfony admin page deleting a member with a POST
    // form carrying `_method=delete` (how browsers send DELETE) would have the app delete
    // the member while the gateway's forced sign-out hook never fired: the member would
    // stay signed in.
    bounded(async {
        let stytch = Stytch::start();
        let up = recorder().await;
        let hook = ["--forced-signout", "DELETE /api/members/{member_id}"];
        let gw = Gateway::start(&stytch, up.addr, &hook).await;
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (bob_id, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        let form = "authenticity_token=abc&_method=delete";
        let client = no_redirects();
        let post = |path: String| {
            client
                .post(format!("{}{path}", gw.base))
                .bearer_auth(&admin)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
        };
        // A form whose `_method` disagrees with the client's override header: refused.
        let conflicting = post(format!("/api/members/{bob_id}"))
            .header("x-http-method-override", "PATCH")
            .send()
            .await
            .unwrap();
        assert_eq!(conflicting.status(), StatusCode::BAD_REQUEST);
        assert!(
            up.seen().is_empty(),
            "a conflicting override reached the app"
        );
        // The app answers the delete with a redirect, as Rails does.
        let deleted = post(format!("/api/members/{bob_id}?status=303"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
        assert!(gw.refused_soon(&bob).await, "the member is still signed in");
        assert!(
            !session_live(&stytch, &bob).await,
            "Stytch still has the session"
        );
        // The app got the client's request as sent: POST, the form whole, no added header.
        let seen = &up.seen()[0];
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.target, format!("/api/members/{bob_id}?status=303"));
        assert_eq!(seen.body, form.as_bytes());
        assert!(!seen.headers.contains_key("x-http-method-override"));
        gw.assert_logs_clean(&[&admin, &bob]);
    })
    .await;
}

/// A client that shows redirects instead of following them.
pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// Whether Stytch still authenticates `token` (its sessions API, as an SDK would ask).
pub(crate) async fn session_live(stytch: &Stytch, token: &str) -> bool {
    let response = http()
        .post(format!("{}v1/b2b/sessions/authenticate", stytch.base_url))
        .basic_auth(PROJECT_ID, Some(SECRET))
        .json(&serde_json::json!({ "session_token": token }))
        .send()
        .await
        .unwrap();
    response.status().is_success()
}
