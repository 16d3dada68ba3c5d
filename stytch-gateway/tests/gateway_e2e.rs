//! End-to-end tests of the `stytch-gateway` binary: the emulator and the gateway run as
//! separate processes on 127.0.0.1, the upstream is a small server in this test process.
//!
//! If these fail, the shipped binary misbehaves where the in-process tests cannot see it:
//! flags and environment, exit codes, signals and graceful shutdown, or logs that leak a
//! credential.
//!
//! One test binary (the helpers compile once): the processes and helpers shared by every
//! topic are here; the tests are in `e2e/`, one module per topic: `headers`, `routes`,
//! `process`, `redis`, `webhooks`, `https`, `websocket`, `live`, `nginx`, `browser`, `trace`,
//! issue #24's `edge`, `smuggling`, `timeouts`, `grace`, `inherited`, issue #29's `authz`,
//! `browser_authz`, and issue #27's `start`, `logs`, `config`.

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

#[path = "e2e/authz.rs"]
mod authz;
#[path = "e2e/browser.rs"]
mod browser;
#[path = "e2e/browser_authz.rs"]
mod browser_authz;
#[path = "e2e/config.rs"]
mod config;
#[path = "e2e/edge.rs"]
mod edge;
#[path = "e2e/grace.rs"]
mod grace;
#[path = "e2e/headers.rs"]
mod headers;
#[path = "e2e/https.rs"]
mod https;
#[path = "e2e/inherited.rs"]
mod inherited;
#[path = "e2e/live.rs"]
mod live;
#[path = "e2e/logs.rs"]
mod logs;
#[path = "e2e/nginx.rs"]
mod nginx;
#[path = "e2e/process.rs"]
mod process;
#[path = "e2e/redis.rs"]
mod redis;
#[path = "../../tests/it/redis_server.rs"]
mod redis_server;
#[path = "e2e/routes.rs"]
mod routes;
#[path = "e2e/smuggling.rs"]
mod smuggling;
#[path = "e2e/start.rs"]
mod start;
#[path = "e2e/timeouts.rs"]
mod timeouts;
#[path = "e2e/trace.rs"]
mod trace;
#[path = "e2e/webhooks.rs"]
mod webhooks;
#[path = "e2e/websocket.rs"]
mod websocket;

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

/// The headers the upstream saw last.
fn last_seen(up: &Upstream) -> HeaderMap {
    up.seen
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("nothing reached the upstream")
}

const REDIS_PASSWORD: &str = "redis-pass-e2e-do-not-log-bbbbbbbbbbbbbbbb";

/// The secret the emulator signs webhooks with and the gateway verifies them with.
const WEBHOOK_SECRET: &str = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWRvLW5vdC1sb2chIQ==";
const WEBHOOK_PATH: &str = "/stytch/webhooks";
