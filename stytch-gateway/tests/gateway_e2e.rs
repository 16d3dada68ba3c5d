//! End-to-end tests of the `stytch-gateway` binary: the emulator and the gateway run as
//! separate processes on 127.0.0.1, the upstream is a small server in this test process.
//!
//! If these fail, the shipped binary misbehaves where the in-process tests cannot see it:
//! flags and environment, exit codes, signals and graceful shutdown, or logs that leak a
//! credential.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::oneshot;

#[path = "e2e/browser.rs"]
mod browser;
#[path = "e2e/https.rs"]
mod https;
#[path = "e2e/live.rs"]
mod live;
#[path = "e2e/nginx.rs"]
mod nginx;
#[path = "../../tests/it/redis_server.rs"]
mod redis_server;
#[path = "e2e/trace.rs"]
mod trace;
#[path = "e2e/websocket.rs"]
mod websocket;
use redis_server::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_stytch-gateway");
const PROJECT_ID: &str = "project-test-11111111-2222-4333-8444-555555555555";
const SECRET: &str = "secret-test-e2e-do-not-log-aaaaaaaaaaaaaaaaaaaa";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A child process killed on drop, with its stdout / stderr in files.
struct Proc {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir();
        let unique = format!("{name}-{}-{}", std::process::id(), fastrand::u64(..));
        let stdout = dir.join(format!("stytch-gateway-e2e-{unique}.out"));
        let stderr = dir.join(format!("stytch-gateway-e2e-{unique}.err"));
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("STYTCH_PROJECT_ID")
            .env_remove("STYTCH_SECRET")
            .env_remove("STYTCH_BASE_URL")
            .env_remove("STYTCH_WEBHOOK_SECRET")
            .env_remove("GATEWAY_WEBHOOK_PATH")
            .env_remove("STYTCH_EMULATOR_WEBHOOK_SECRET")
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().expect("spawn stytch-gateway"),
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits for the process to exit, at most `timeout`.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit in {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_connectable(addr: SocketAddr) {
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{addr} never accepted connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// The emulator process.
struct Stytch {
    proc: Proc,
    base_url: String,
}

impl Stytch {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with more arguments.
    fn start_with(extra: &[&str]) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let listen = addr.to_string();
        let mut args = vec![
            "emulator",
            "--listen",
            &listen,
            "--project-id",
            PROJECT_ID,
            "--secret",
            SECRET,
        ];
        args.extend_from_slice(extra);
        let proc = Proc::spawn("emulator", &args, &[]);
        wait_connectable(addr);
        Self {
            proc,
            base_url: format!("http://{addr}/"),
        }
    }

    async fn control(&self, what: &str, body: serde_json::Value) -> serde_json::Value {
        self.control_with(reqwest::Method::POST, what, body).await
    }

    /// `method` on the control API's `what`, with a JSON body.
    async fn control_with(
        &self,
        method: reqwest::Method,
        what: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let response = http()
            .request(method, format!("{}emulator/v1/{what}", self.base_url))
            .basic_auth(PROJECT_ID, Some(SECRET))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "control {what}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn organization(&self, slug: &str) -> String {
        let v = self
            .control(
                "organizations",
                serde_json::json!({"organization_name": slug, "organization_slug": slug}),
            )
            .await;
        v["organization_id"].as_str().unwrap().to_owned()
    }

    /// A member with a live session: (member_id, session_token).
    async fn member(&self, org: &str, email: &str, roles: &[&str]) -> (String, String) {
        let v = self
            .control(
                "members",
                serde_json::json!({"organization_id": org, "email_address": email, "roles": roles}),
            )
            .await;
        let member_id = v["member_id"].as_str().unwrap().to_owned();
        let s = self
            .control("sessions", serde_json::json!({"member_id": member_id}))
            .await;
        (member_id, s["session_token"].as_str().unwrap().to_owned())
    }
}

/// The upstream: records request headers; `/slow` answers after two seconds.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    _stop: oneshot::Sender<()>,
}

async fn upstream() -> Upstream {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                s.lock().unwrap().push(req.headers().clone());
                async move {
                    if req.uri().path() == "/slow" {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"upstream\n"))))
                }
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        seen,
        _stop: stop,
    }
}

/// The gateway process in front of `upstream`, ready (`/readyz` 200).
struct Gateway {
    proc: Proc,
    base: String,
}

impl Gateway {
    async fn start(stytch: &Stytch, upstream: SocketAddr, extra: &[&str]) -> Self {
        Self::start_with_env(stytch, upstream, extra, &[]).await
    }

    /// [`start`](Self::start) with more environment variables.
    async fn start_with_env(
        stytch: &Stytch,
        upstream: SocketAddr,
        extra: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Self {
        Self::start_url(stytch, &format!("http://{upstream}"), extra, extra_env).await
    }

    /// [`start_with_env`](Self::start_with_env) with an upstream given as a URL.
    async fn start_url(
        stytch: &Stytch,
        upstream: &str,
        extra: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Self::start_on(addr, stytch, upstream, extra, extra_env).await
    }

    /// [`start_with_env`](Self::start_with_env) listening on `addr`.
    async fn start_on(
        addr: SocketAddr,
        stytch: &Stytch,
        upstream: &str,
        extra: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Self {
        let listen = addr.to_string();
        let mut args = vec!["serve", "--listen", &listen, "--upstream", upstream];
        args.extend_from_slice(extra);
        let mut env = vec![
            ("STYTCH_PROJECT_ID", PROJECT_ID),
            ("STYTCH_SECRET", SECRET),
            ("STYTCH_BASE_URL", stytch.base_url.as_str()),
        ];
        env.extend_from_slice(extra_env);
        let proc = Proc::spawn("gateway", &args, &env);
        Self::ready(proc, format!("http://{addr}")).await
    }

    /// Waits until the gateway process `proc`, listening at `base`, answers `/readyz` 200.
    async fn ready(proc: Proc, base: String) -> Self {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = http().get(format!("{base}/readyz")).send().await
                && r.status() == StatusCode::OK
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "gateway never ready:\n{}",
                proc.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { proc, base }
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str) -> StatusCode {
        http()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Asserts no credential appeared in the gateway's logs (RUST_LOG=trace).
    fn assert_logs_clean(&self, credentials: &[&str]) {
        let logs = self.proc.stderr();
        assert!(!logs.is_empty(), "no logs captured");
        for secret in credentials.iter().chain([&SECRET]) {
            assert!(
                !logs.contains(secret),
                "a credential appeared in the gateway's logs"
            );
        }
    }
}

/// What the gateway's `--metrics-listen` address serves at `/metrics`.
async fn metrics_text(addr: &str) -> String {
    http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test took too long")
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_headers_reach_the_upstream_and_spoofed_ones_do_not() {
    // If this broke, the real binary would forward spoofed identities, drop real ones or lose /metrics.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
        let gw = Gateway::start(&stytch, up.addr, &["--metrics-listen", &metrics]).await;
        let org = stytch.organization("acme").await;
        let (member, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .bearer_auth(&token)
            .header("x-stytch-member-id", "member-evil")
            .header("x-stytch-roles", "stytch_admin")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let anonymous = http()
            .get(format!("{}/whoami", gw.base))
            .header("x-stytch-member-id", "member-evil")
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let seen = up.seen.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            1,
            "the unauthenticated request reached the upstream"
        );
        assert_eq!(seen[0]["x-stytch-member-id"], member.as_str());
        assert_eq!(seen[0]["x-stytch-organization-id"], org.as_str());
        assert!(
            !seen[0]["x-stytch-roles"]
                .to_str()
                .unwrap()
                .contains("stytch_admin")
        );
        assert_eq!(seen[0]["x-forwarded-for"], "127.0.0.1");
        let rendered = metrics_text(&metrics).await;
        assert!(
            rendered.contains("stytch_gateway_upstream_responses_total{class=\"2xx\"} 1"),
            "{rendered}"
        );
        assert!(
            rendered.contains("stytch_auth_requests_total"),
            "{rendered}"
        );
        gw.assert_logs_clean(&[&token]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_and_admin_revoke_end_to_end() {
    // If this broke, logged-out or force-signed-out members would keep access through the binary.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (bob_id, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        let (carol_id, carol) = stytch.member(&org, "carol@acme.test", &[]).await;
        use reqwest::Method;
        assert_eq!(gw.call(Method::GET, "/whoami", &bob).await, StatusCode::OK);
        assert!(gw.call(Method::POST, "/logout", &bob).await.is_success());
        assert_eq!(
            gw.call(Method::GET, "/whoami", &bob).await,
            StatusCode::UNAUTHORIZED
        );
        let revoke_bob = format!("/admin/members/{bob_id}/revoke-sessions");
        assert_eq!(
            gw.call(Method::POST, &revoke_bob, &carol).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            gw.call(Method::GET, "/whoami", &carol).await,
            StatusCode::OK
        );
        let revoke_carol = format!("/admin/members/{carol_id}/revoke-sessions");
        assert!(
            gw.call(Method::POST, &revoke_carol, &admin)
                .await
                .is_success()
        );
        assert_eq!(
            gw.call(Method::GET, "/whoami", &carol).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            gw.call(Method::GET, "/whoami", &admin).await,
            StatusCode::OK
        );
        gw.assert_logs_clean(&[&admin, &bob, &carol]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_turns_503_when_the_emulator_dies() {
    // If this broke, a load balancer would keep sending traffic to a gateway that cannot authenticate.
    bounded(async {
        let mut stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        stytch.proc.signal("-KILL");
        stytch.proc.wait(Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = http()
                .get(format!("{}/readyz", gw.base))
                .send()
                .await
                .unwrap()
                .status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            assert!(Instant::now() < deadline, "/readyz stayed {status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let live = http()
            .get(format!("{}/healthz", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    // If this broke, deploys would cut requests off mid-flight or hang on shutdown.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let mut gw = Gateway::start(&stytch, up.addr, &["--shutdown-timeout", "8s"]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let url = format!("{}/slow", gw.base);
        let in_flight = tokio::spawn(async move {
            http()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status())
        });
        // Let the request reach the upstream, then ask the gateway to stop.
        let deadline = Instant::now() + Duration::from_secs(10);
        while up.seen.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the slow request never reached the upstream"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gw.proc.signal("-TERM");
        let status = in_flight.await.unwrap().expect("in-flight request failed");
        assert_eq!(status, StatusCode::OK);
        let exit = gw.proc.wait(Duration::from_secs(10));
        assert_eq!(exit.code(), Some(0), "stderr:\n{}", gw.proc.stderr());
    })
    .await;
}

/// The status of `method path` sent verbatim (no client normalises the path), with
/// `Authorization: Bearer credential` when one is given.
async fn raw_status(base: &str, method: &str, path: &str, credential: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = credential
        .map(|c| format!("authorization: Bearer {c}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

#[tokio::test(flavor = "multi_thread")]
async fn public_prefix_path_tricks_never_reach_the_upstream_without_a_credential() {
    // If this broke, `--public /assets/` would let `/assets/..;/admin` (Tomcat, Jetty) or
    // `/assets/%252e%252e/admin` (double decoding) reach the upstream's /admin anonymously.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &["--public", "/assets/"]).await;
        assert_eq!(
            raw_status(&gw.base, "GET", "/assets/app.js", None).await,
            200
        );
        for path in [
            "/assets/..;/admin",
            "/assets/%252e%252e/admin",
            "/assets/%2e%2e/admin",
            "/assets/%252fadmin",
        ] {
            assert_eq!(raw_status(&gw.base, "GET", path, None).await, 401, "{path}");
        }
        assert_eq!(
            up.seen.lock().unwrap().len(),
            1,
            "a trick reached the upstream"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn percent_encoded_member_id_through_the_gateway_signs_the_member_out() {
    // If this broke, `DELETE /api/members/member%2Dtest%2D…` would reach the upstream (which
    // decodes it and acts) and the member would stay signed in.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(
            &stytch,
            up.addr,
            &["--forced-signout", "DELETE /api/members/{member_id}"],
        )
        .await;
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (bob_id, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        use reqwest::Method;
        assert_eq!(gw.call(Method::GET, "/whoami", &bob).await, StatusCode::OK);
        let path = format!("/api/members/{}", bob_id.replace('-', "%2D"));
        assert_eq!(
            raw_status(&gw.base, "DELETE", &path, Some(&admin)).await,
            200
        );
        assert_eq!(
            gw.call(Method::GET, "/whoami", &bob).await,
            StatusCode::UNAUTHORIZED
        );
    })
    .await;
}

/// The headers the upstream saw last.
fn last_seen(up: &Upstream) -> HeaderMap {
    up.seen
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("nothing reached the upstream")
}

/// Every value of `name` the upstream saw, in order.
fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_never_sees_the_members_bearer_token_or_stytch_cookies() {
    // If this broke, the upstream (its logs, a compromised dependency) would hold the member's
    // Stytch credential and could act as the member at Stytch or replay it through the gateway.
    // One gateway process for the three ways a credential comes (bearer, cookies, both) and
    // the logout that must still clear the cookies: hence its length.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (member, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .bearer_auth(&token)
            .header(
                "cookie",
                format!("theme=dark; stytch_session={token}; stytch_session_jwt=a.b.c; lang=en"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen = last_seen(&up);
        assert!(
            !seen.contains_key("authorization"),
            "the bearer token reached the upstream"
        );
        assert_eq!(values(&seen, "cookie"), ["theme=dark; lang=en"]);
        assert_eq!(seen["x-stytch-member-id"], member.as_str());
        // A cookie-only request: the session cookie is consumed, the app's cookies stay.
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .header("cookie", format!("stytch_session={token}"))
            .header("authorization", "Basic YXBwOmFwcA==")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen = last_seen(&up);
        assert!(!seen.contains_key("cookie"), "{seen:?}");
        // Not the layer's credential: another scheme is the app's business.
        assert_eq!(seen["authorization"], "Basic YXBwOmFwcA==");
        // Logout still clears the session cookies in the browser.
        let r = http()
            .post(format!("{}/logout", gw.base))
            .header("cookie", format!("stytch_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let cleared: Vec<_> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(
            cleared.iter().any(|c| c.starts_with("stytch_session=;")),
            "{cleared:?}"
        );
        assert!(
            cleared
                .iter()
                .any(|c| c.starts_with("stytch_session_jwt=;")),
            "{cleared:?}"
        );
        gw.assert_logs_clean(&[&token]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_cookie_crumbs_reach_the_upstream_as_one_header() {
    // If this broke, an HTTP/1.1 upstream would see several Cookie headers (most frameworks
    // keep only one) or a Stytch cookie hidden in a second crumb.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Full<Bytes>>();
        let req = Request::builder()
            .uri(format!("{}/whoami", gw.base))
            .header("cookie", "a=1")
            .header("cookie", format!("stytch_session={token}"))
            .header("cookie", "b=2")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = client.request(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(values(&last_seen(&up), "cookie"), ["a=1; b=2"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pass_credentials_forwards_the_token_and_cookies() {
    // If this broke, an upstream that needs the member's credential (it calls Stytch itself)
    // could not be given it.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &["--pass-credentials"]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .bearer_auth(&token)
            .header("cookie", format!("theme=dark; stytch_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let seen = last_seen(&up);
        assert_eq!(seen["authorization"], format!("Bearer {token}").as_str());
        assert_eq!(
            values(&seen, "cookie"),
            [format!("theme=dark; stytch_session={token}")]
        );
    })
    .await;
}

/// What the upstream saw of a member's `GET /whoami` through `gw` carrying `headers`.
async fn seen_with(
    stytch: &Stytch,
    gw: &Gateway,
    up: &Upstream,
    headers: &[(&str, &str)],
) -> HeaderMap {
    let org = stytch.organization("acme").await;
    let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
    let mut req = http()
        .get(format!("{}/whoami", gw.base))
        .bearer_auth(&token);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    assert_eq!(req.send().await.unwrap().status(), StatusCode::OK);
    last_seen(up)
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_forwarding_headers_from_an_untrusted_peer_are_replaced() {
    // If this broke, any client could pose as another address (rate limits, audit logs, IP
    // allowlists) or as an https request to the upstream.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        // No trusted proxy (the default): every peer is a client.
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        let forged = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6;proto=https"),
            ("x-real-ip", "6.6.6.6"),
        ];
        let seen = seen_with(&stytch, &gw, &up, &forged).await;
        assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(values(&seen, "x-forwarded-proto"), ["http"]);
        let host = gw.base.trim_start_matches("http://");
        assert_eq!(values(&seen, "x-forwarded-host"), [host]);
        assert_eq!(values(&seen, "x-real-ip"), ["127.0.0.1"]);
        assert!(!seen.contains_key("forwarded"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_from_a_trusted_proxy_are_kept_and_appended_to() {
    // If this broke, behind a load balancer the upstream would see the balancer's address as
    // the client, and a TLS-terminated request as plain http.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let trusted = [("GATEWAY_TRUSTED_PROXY", "10.0.0.0/8, 127.0.0.1")];
        let gw = Gateway::start_with_env(&stytch, up.addr, &[], &trusted).await;
        let from_proxy = [
            ("x-forwarded-for", "203.0.113.7, 10.1.2.3"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example.com"),
            ("x-real-ip", "203.0.113.7"),
        ];
        let seen = seen_with(&stytch, &gw, &up, &from_proxy).await;
        assert_eq!(
            values(&seen, "x-forwarded-for"),
            ["203.0.113.7, 10.1.2.3, 127.0.0.1"]
        );
        assert_eq!(values(&seen, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&seen, "x-forwarded-host"), ["app.example.com"]);
        assert_eq!(values(&seen, "x-real-ip"), ["203.0.113.7"]);
    })
    .await;
}

/// Long on purpose: a table of bad configurations, one entry each, then one loop.
#[test]
fn bad_configuration_exits_2_with_one_line() {
    // If this broke, operators would get a panic, a wall of text or a leaked secret instead of the cause.
    let cases: [(&[&str], &[(&str, &str)], &str); 7] = [
        (
            &[
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--webhook-path",
                "/stytch/webhooks",
            ],
            &[("STYTCH_PROJECT_ID", PROJECT_ID), ("STYTCH_SECRET", SECRET)],
            "STYTCH_WEBHOOK_SECRET",
        ),
        (
            &[
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--webhook-path",
                "/stytch/webhooks",
            ],
            &[
                ("STYTCH_PROJECT_ID", PROJECT_ID),
                ("STYTCH_SECRET", SECRET),
                ("STYTCH_WEBHOOK_SECRET", SECRET),
            ],
            "invalid webhook secret",
        ),
        (
            &["serve", "--upstream", "http://127.0.0.1:9"],
            &[
                ("STYTCH_PROJECT_ID", PROJECT_ID),
                ("STYTCH_SECRET", SECRET),
                ("STYTCH_BASE_URL", "http://stytch.example.com"),
            ],
            "plain http is accepted only for loopback hosts",
        ),
        (
            &["serve", "--upstream", "http://127.0.0.1:9"],
            &[("STYTCH_SECRET", SECRET)],
            "STYTCH_PROJECT_ID",
        ),
        (
            &["serve"],
            &[("STYTCH_PROJECT_ID", PROJECT_ID), ("STYTCH_SECRET", SECRET)],
            "upstream",
        ),
        (
            &[
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--listen",
                "nowhere",
            ],
            &[("STYTCH_PROJECT_ID", PROJECT_ID), ("STYTCH_SECRET", SECRET)],
            "--listen",
        ),
        (
            &["serve", "--upstream", "http://127.0.0.1:9"],
            &[
                ("STYTCH_PROJECT_ID", PROJECT_ID),
                ("STYTCH_SECRET", SECRET),
                ("GATEWAY_TRUSTED_PROXY", "10.0.0.0/8,not-a-network"),
            ],
            "not-a-network",
        ),
    ];
    for (args, env, needle) in cases {
        let mut p = Proc::spawn("badconfig", args, env);
        let status = p.wait(Duration::from_secs(10));
        let stderr = p.stderr();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("stytch-gateway: "), "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains(SECRET), "the secret was printed");
    }
}

#[test]
fn demo_self_test_passes() {
    // If this broke, the documented demo (and the CI smoke run) would not work on a fresh machine.
    let mut p = Proc::spawn("demo", &["demo", "--self-test"], &[]);
    let status = p.wait(Duration::from_secs(60));
    let stdout = p.stdout();
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        p.stderr()
    );
    assert!(stdout.contains("self-test passed"), "{stdout}");
}

/// Whether Stytch (the emulator) still takes `token` as a live session.
async fn live_at_stytch(stytch: &Stytch, token: &str) -> bool {
    let status = http()
        .post(format!("{}v1/b2b/sessions/authenticate", stytch.base_url))
        .basic_auth(PROJECT_ID, Some(SECRET))
        .json(&serde_json::json!({"session_token": token}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        status == StatusCode::OK || status == StatusCode::NOT_FOUND,
        "authenticate: {status}"
    );
    status == StatusCode::OK
}

/// Waits until `f` gives `true`, at most `timeout`.
async fn within<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const REDIS_PASSWORD: &str = "redis-pass-e2e-do-not-log-bbbbbbbbbbbbbbbb";

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_share_revocations_through_redis() {
    // If this broke, a logout or an admin revocation through one gateway would leave the
    // session working through the others (or the Redis password would reach the logs).
    bounded(async {
        let redis = RedisServer::start_with_password(REDIS_PASSWORD);
        let stytch = Stytch::start();
        let up = upstream().await;
        let url = redis.url();
        let flags = ["--redis-url", url.as_str()];
        let a = Gateway::start(&stytch, up.addr, &flags).await;
        let b =
            Gateway::start_with_env(&stytch, up.addr, &[], &[("GATEWAY_REDIS_URL", &url)]).await;
        let readyz = http()
            .get(format!("{}/readyz", b.base))
            .send()
            .await
            .unwrap();
        assert!(
            readyz
                .text()
                .await
                .unwrap()
                .contains("revocation bus: live")
        );
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (_, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        let (carol_id, carol) = stytch.member(&org, "carol@acme.test", &[]).await;
        use reqwest::Method;
        for token in [&bob, &carol] {
            assert_eq!(b.call(Method::GET, "/whoami", token).await, StatusCode::OK);
        }
        assert!(a.call(Method::POST, "/logout", &bob).await.is_success());
        assert!(
            within(Duration::from_secs(2), || async {
                b.call(Method::GET, "/whoami", &bob).await == StatusCode::UNAUTHORIZED
            })
            .await
        );
        let revoke_carol = format!("/admin/members/{carol_id}/revoke-sessions");
        assert_eq!(a.call(Method::GET, "/whoami", &admin).await, StatusCode::OK);
        assert!(
            a.call(Method::POST, &revoke_carol, &admin)
                .await
                .is_success()
        );
        assert!(
            within(Duration::from_secs(2), || async {
                b.call(Method::GET, "/whoami", &carol).await == StatusCode::UNAUTHORIZED
            })
            .await
        );
        for gw in [&a, &b] {
            gw.assert_logs_clean(&[&admin, &bob, &carol, REDIS_PASSWORD]);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_pending_on_a_killed_gateway_is_completed_by_another() {
    // If this broke, a revocation Stytch had not confirmed would die with the gateway that
    // took it (SIGKILL: no flush, no goodbye), and Stytch would never end the session.
    bounded(async {
        let redis = RedisServer::start();
        let stytch = Stytch::start();
        let up = upstream().await;
        let url = redis.url();
        let flags = ["--redis-url", url.as_str(), "--redis-lease", "1s"];
        let mut a = Gateway::start(&stytch, up.addr, &flags).await;
        let b = Gateway::start(&stytch, up.addr, &flags).await;
        let org = stytch.organization("acme").await;
        let (_, admin) = stytch.member(&org, "alice@acme.test", &["stytch_admin"]).await;
        let (carol_id, carol) = stytch.member(&org, "carol@acme.test", &[]).await;
        use reqwest::Method;
        for token in [&admin, &carol] {
            assert_eq!(a.call(Method::GET, "/whoami", token).await, StatusCode::OK);
        }
        stytch
            .control(
                "faults",
                serde_json::json!({"endpoint": "revoke", "fault": {"type": "status", "status": 503}, "times": 100000}),
            )
            .await;
        let revoke_carol = format!("/admin/members/{carol_id}/revoke-sessions");
        assert_eq!(
            a.call(Method::POST, &revoke_carol, &admin).await,
            StatusCode::ACCEPTED,
            "pending at Stytch"
        );
        let pending_key = format!("{{tower-stytch:{PROJECT_ID}}}:pending");
        let pending = || redis.integer(&["XLEN", &pending_key]);
        assert!(within(Duration::from_secs(2), || async { pending() == Some(1) }).await);
        a.proc.signal("-KILL");
        a.proc.wait(Duration::from_secs(5));
        let cleared = http()
            .delete(format!("{}emulator/v1/faults", stytch.base_url))
            .basic_auth(PROJECT_ID, Some(SECRET))
            .send()
            .await
            .unwrap();
        assert!(cleared.status().is_success());
        assert!(live_at_stytch(&stytch, &carol).await, "A completed it before dying");
        assert_eq!(b.call(Method::GET, "/whoami", &carol).await, StatusCode::UNAUTHORIZED);
        assert!(
            within(Duration::from_secs(15), || async { !live_at_stytch(&stytch, &carol).await })
                .await,
            "B never completed the revocation at Stytch"
        );
        assert!(within(Duration::from_secs(2), || async { pending() == Some(0) }).await);
    })
    .await;
}

/// The secret the emulator signs webhooks with and the gateway verifies them with.
const WEBHOOK_SECRET: &str = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWRvLW5vdC1sb2chIQ==";
const WEBHOOK_PATH: &str = "/stytch/webhooks";

/// An emulator sending its webhooks to a gateway (in front of `up`) that receives them on
/// [`WEBHOOK_PATH`]; also the gateway's metrics address.
async fn webhook_pair(up: &Upstream) -> (Stytch, Gateway, String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let url = format!("http://{addr}{WEBHOOK_PATH}");
    let stytch = Stytch::start_with(&["--webhook-url", &url, "--webhook-secret", WEBHOOK_SECRET]);
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
    let args = ["--webhook-path", WEBHOOK_PATH, "--metrics-listen", &metrics];
    let env = [("STYTCH_WEBHOOK_SECRET", WEBHOOK_SECRET)];
    let gw = Gateway::start_on(addr, &stytch, &format!("http://{}", up.addr), &args, &env).await;
    (stytch, gw, metrics)
}

impl Stytch {
    /// The last delivery of `event_type` once answered (or failed), within 10 s.
    async fn delivered(&self, event_type: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response = http()
                .get(format!("{}emulator/v1/webhooks/deliveries", self.base_url))
                .basic_auth(PROJECT_ID, Some(SECRET))
                .send()
                .await
                .unwrap();
            let log: serde_json::Value = response.json().await.unwrap();
            let found = log["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|d| {
                    d["event_type"] == event_type
                        && !d["last_status"].is_null()
                        && d["state"] != "pending"
                });
            if let Some(delivery) = found {
                return delivery.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no delivery of {event_type}: {log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Gateway {
    /// Whether `token` is refused (401) within 5 s.
    async fn refused_soon(&self, token: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.call(reqwest::Method::GET, "/whoami", token).await == StatusCode::UNAUTHORIZED {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// Long on purpose: one pair of processes for the four sign-out events (starting them is
/// the slow part), then one check per member.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_sign_out_deleted_and_deprovisioned_members_and_deleted_organizations() {
    // If this broke, a member deleted in Stytch's dashboard, deprovisioned through SCIM, or
    // in an organization deleted at Stytch would keep passing the shipped gateway on its
    // cached session for up to a minute.
    bounded(async {
        use reqwest::Method;
        let up = upstream().await;
        let (stytch, gw, _) = webhook_pair(&up).await;
        let org = stytch.organization("acme").await;
        let other_org = stytch.organization("globex").await;
        let (deleted_id, deleted) = stytch.member(&org, "a@acme.test", &[]).await;
        let (deactivated_id, deactivated) = stytch.member(&org, "b@acme.test", &[]).await;
        let (scim_deleted_id, scim_deleted) = stytch.member(&org, "c@acme.test", &[]).await;
        let (_, stays) = stytch.member(&org, "e@acme.test", &[]).await;
        let (_, in_deleted_org) = stytch.member(&other_org, "d@globex.test", &[]).await;
        let tokens = [
            &deleted,
            &deactivated,
            &scim_deleted,
            &stays,
            &in_deleted_org,
        ];
        for token in tokens {
            assert_eq!(gw.call(Method::GET, "/whoami", token).await, StatusCode::OK);
        }
        let dashboard = serde_json::json!({"source": "DASHBOARD"});
        let scim = serde_json::json!({"source": "SCIM"});
        stytch
            .control_with(Method::DELETE, &format!("members/{deleted_id}"), dashboard)
            .await;
        stytch
            .control_with(
                Method::PUT,
                &format!("members/{deactivated_id}"),
                serde_json::json!({"status": "deleted", "source": "SCIM"}),
            )
            .await;
        stytch
            .control_with(Method::DELETE, &format!("members/{scim_deleted_id}"), scim)
            .await;
        stytch
            .control_with(
                Method::DELETE,
                &format!("organizations/{other_org}"),
                serde_json::json!({}),
            )
            .await;
        for event_type in [
            "dashboard.member.delete",
            "scim.member.update",
            "scim.member.delete",
            "direct.organization.delete",
        ] {
            assert_eq!(
                stytch.delivered(event_type).await["last_status"],
                204,
                "{event_type}"
            );
        }
        for token in [&deleted, &deactivated, &scim_deleted, &in_deleted_org] {
            assert!(
                gw.refused_soon(token).await,
                "still served after the webhook"
            );
        }
        assert_eq!(
            gw.call(Method::GET, "/whoami", &stays).await,
            StatusCode::OK
        );
        let mut credentials: Vec<&str> = tokens.iter().map(|t| t.as_str()).collect();
        credentials.extend([WEBHOOK_SECRET, WEBHOOK_SECRET.trim_start_matches("whsec_")]);
        gw.assert_logs_clean(&credentials);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn demoted_admin_gets_new_roles_in_the_identity_headers_and_the_admin_route_refuses() {
    // If this broke, an admin demoted in Stytch's dashboard would keep X-Stytch-Roles:
    // stytch_admin at the upstream (and the admin route) until the cache entry expired.
    bounded(async {
        use reqwest::Method;
        let up = upstream().await;
        let (stytch, gw, _) = webhook_pair(&up).await;
        let org = stytch.organization("acme").await;
        let (alice_id, alice) = stytch
            .member(&org, "alice@acme.test", &["stytch_admin"])
            .await;
        let (bob_id, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        assert_eq!(gw.call(Method::GET, "/app", &alice).await, StatusCode::OK);
        let roles = |h: &HeaderMap| h["x-stytch-roles"].to_str().unwrap().to_owned();
        assert!(roles(&last_seen(&up)).contains("stytch_admin"));
        stytch
            .control_with(
                Method::PUT,
                &format!("members/{alice_id}"),
                serde_json::json!({"roles": [], "source": "DASHBOARD"}),
            )
            .await;
        assert_eq!(
            stytch.delivered("dashboard.member.update").await["last_status"],
            204
        );
        assert_eq!(gw.call(Method::GET, "/app", &alice).await, StatusCode::OK);
        let now = roles(&last_seen(&up));
        assert!(!now.contains("stytch_admin"), "{now}");
        assert!(now.contains("stytch_member"), "{now}");
        let revoke_bob = format!("/admin/members/{bob_id}/revoke-sessions");
        assert_eq!(
            gw.call(Method::POST, &revoke_bob, &alice).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(gw.call(Method::GET, "/whoami", &bob).await, StatusCode::OK);
    })
    .await;
}

/// Long on purpose: three deliveries against one pair of processes, then the metrics they
/// left, read once.
#[tokio::test(flavor = "multi_thread")]
async fn duplicate_foreign_and_forged_webhooks_are_counted_and_change_nothing() {
    // If this broke, a Svix redelivery would be applied twice, another project's event or a
    // forged one would act here, or operators could not see which happened.
    bounded(async {
        use reqwest::Method;
        let up = upstream().await;
        let (stytch, gw, metrics) = webhook_pair(&up).await;
        let org = stytch.organization("acme").await;
        let (deleted_id, _) = stytch.member(&org, "a@acme.test", &[]).await;
        let (kept_id, kept) = stytch.member(&org, "b@acme.test", &[]).await;
        stytch
            .control_with(
                Method::DELETE,
                &format!("members/{deleted_id}"),
                serde_json::json!({}),
            )
            .await;
        let first = stytch.delivered("direct.member.delete").await;
        let msg_id = first["msg_id"].as_str().unwrap().to_owned();
        stytch
            .control("webhooks/redeliver", serde_json::json!({"msg_id": msg_id}))
            .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while stytch.delivered("direct.member.delete").await["attempts"] != 2 {
            assert!(Instant::now() < deadline, "the redelivery never arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let event = |project: &str| {
            serde_json::json!({
                "project_id": project, "event_id": "event-test-1", "action": "DELETE",
                "object_type": "member", "source": "DASHBOARD", "id": kept_id,
                "timestamp": "2030-01-01T00:00:00Z", "vertical": "B2B",
            })
        };
        stytch
            .control(
                "webhooks/send",
                serde_json::json!({"event_type": "dashboard.member.delete",
                    "payload": event("project-test-another")}),
            )
            .await;
        assert_eq!(
            stytch.delivered("dashboard.member.delete").await["last_status"],
            204
        );
        stytch
            .control(
                "webhooks/send",
                serde_json::json!({"event_type": "scim.member.delete", "payload": event(PROJECT_ID),
                    "secret": "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}),
            )
            .await;
        assert_eq!(
            stytch.delivered("scim.member.delete").await["last_status"],
            401
        );
        assert_eq!(gw.call(Method::GET, "/whoami", &kept).await, StatusCode::OK);
        let rendered = metrics_text(&metrics).await;
        let count = |kind: &str, outcome: &str| {
            rendered
                .lines()
                .find(|l| {
                    l.starts_with("stytch_webhooks_total{")
                        && l.contains(&format!("type=\"{kind}\""))
                        && l.contains(&format!("outcome=\"{outcome}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(
            count("direct.member.delete", "applied").as_deref(),
            Some("1"),
            "{rendered}"
        );
        assert_eq!(
            count("direct.member.delete", "duplicate").as_deref(),
            Some("1"),
            "{rendered}"
        );
        assert_eq!(
            count("dashboard.member.delete", "ignored").as_deref(),
            Some("1"),
            "{rendered}"
        );
        assert!(count("unverified", "rejected").is_some(), "{rendered}");
    })
    .await;
}
#[tokio::test]
async fn two_gateways_share_revocations_over_rediss_with_a_verified_certificate() {
    // If this broke, `rediss://` (Redis over TLS, as managed Redis services require) would not
    // carry revocations between gateways, or would trust a certificate nobody vouched for.
    bounded(async {
        let pki = https::TestPki::new();
        let redis = RedisServer::start_tls(REDIS_PASSWORD, &pki.leaf_pem, &pki.leaf_key_pem);
        let url = redis.tls_url().unwrap();
        let stytch = Stytch::start();
        let up = upstream().await;
        // The test CA is this process's only trust anchor for Redis (rustls-native-certs
        // reads SSL_CERT_FILE).
        let trusted = [
            ("GATEWAY_REDIS_URL", url.as_str()),
            ("SSL_CERT_FILE", pki.ca_path()),
        ];
        let a = Gateway::start_with_env(&stytch, up.addr, &[], &trusted).await;
        let b = Gateway::start_with_env(&stytch, up.addr, &[], &trusted).await;
        for gw in [&a, &b] {
            let body = http()
                .get(format!("{}/readyz", gw.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(body.contains("revocation bus: live"), "{body}");
        }
        let org = stytch.organization("acme").await;
        let (_, bob) = stytch.member(&org, "bob@acme.test", &[]).await;
        use reqwest::Method;
        assert_eq!(b.call(Method::GET, "/whoami", &bob).await, StatusCode::OK);
        assert!(a.call(Method::POST, "/logout", &bob).await.is_success());
        assert!(
            within(Duration::from_secs(2), || async {
                b.call(Method::GET, "/whoami", &bob).await == StatusCode::UNAUTHORIZED
            })
            .await
        );
        // A gateway that does not trust the test CA never gets a bus: the certificate is
        // verified, not merely encrypted to.
        let untrusting = Gateway::start_with_env(
            &stytch,
            up.addr,
            &["--redis-startup-wait", "1s"],
            &[("GATEWAY_REDIS_URL", url.as_str())],
        )
        .await;
        let body = http()
            .get(format!("{}/readyz", untrusting.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains("revocation bus: live"), "{body}");
        for gw in [&a, &b, &untrusting] {
            gw.assert_logs_clean(&[&bob, REDIS_PASSWORD]);
        }
    })
    .await;
}
