//! `stytch-gateway emulator` and `stytch-gateway demo`.
//!
//! The demo starts, all on 127.0.0.1: the Stytch emulator with two seeded organizations, the
//! [`DemoApp`] (a web page to open in a browser, and the echo JSON page for everything
//! else), and the gateway in front of it. It prints the URL to open and ready-to-paste curl
//! commands; with `--self-test` it runs them itself and exits 0 only when every answer is the
//! expected one.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

use super::cli::{DemoArgs, EmulatorArgs};
use super::demo_app::{ControlApi, DemoApp, DemoMember};
use super::serve::{Gateway, ServeOptions};
use super::server::serve;
use super::{Body, GatewayError, full_body};
use stytch_emulator::{Emulator, EmulatorConfig, SessionInfo, WebhookEndpoint, WebhookSecret};
use tower_stytch::config::CookieSettings;
use tower_stytch::webhook::WebhookSecrets;

/// Preferred demo ports; each falls back to an ephemeral port when taken.
const EMULATOR_PORT: u16 = 4010;
const GATEWAY_PORT: u16 = 8080;
const UPSTREAM_PORT: u16 = 8081;
const METRICS_PORT: u16 = 9090;

/// Where the demo's gateway receives the emulator's webhooks.
const WEBHOOK_PATH: &str = "/stytch/webhooks";

/// Deadline of one self-test request.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts an emulator on `listen`, falling back to an ephemeral port when `fallback` is set
/// and the address is taken.
async fn start_emulator(
    config: EmulatorConfig,
    listen: SocketAddr,
    fallback: bool,
) -> Result<Emulator, GatewayError> {
    match Emulator::start(config.clone().listen(listen)).await {
        Ok(emulator) => Ok(emulator),
        Err(_) if fallback => Emulator::start(config.listen(loopback(0)))
            .await
            .map_err(|source| GatewayError::Bind {
                addr: loopback(0),
                source,
            }),
        Err(source) => Err(GatewayError::Bind {
            addr: listen,
            source,
        }),
    }
}

/// Binds `127.0.0.1:port`, or an ephemeral port when it is taken.
async fn bind_preferred(port: u16) -> Result<TcpListener, GatewayError> {
    match TcpListener::bind(loopback(port)).await {
        Ok(listener) => Ok(listener),
        Err(_) => super::bind(loopback(0)).await,
    }
}

/// `stytch-gateway emulator`: runs the emulator until `shutdown`, after printing how to
/// point a gateway at it.
///
/// # Errors
///
/// When the address cannot be bound.
pub(crate) async fn run_emulator(
    args: EmulatorArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let mut config = EmulatorConfig::new();
    if let Some(id) = args.project_id {
        config = config.project_id(id);
    }
    if let Some(secret) = args.secret {
        config = config.secret(secret);
    }
    for url in args.webhook_urls {
        let endpoint = WebhookEndpoint::new(url).map_err(|source| GatewayError::Emulator {
            name: "webhook-url",
            source,
        })?;
        config = config.webhook_endpoint(endpoint);
    }
    if let Some(secret) = args.webhook_secret {
        // The error never repeats the value: it is a secret.
        let secret = WebhookSecret::parse(&secret).map_err(|source| GatewayError::Emulator {
            name: "webhook-secret",
            source,
        })?;
        config = config.webhook_secret(secret);
    }
    let emulator = start_emulator(config, args.listen, false).await?;
    println!("Stytch emulator listening");
    println!("  base URL:   {}", emulator.base_url());
    println!("  project id: {}", emulator.project_id());
    println!("  secret:     {}", emulator.secret());
    println!(
        "  webhook signing secret: {}",
        emulator.webhook_secret().expose_secret()
    );
    for endpoint in emulator.webhook_endpoints() {
        println!("  webhooks to {}", endpoint.url());
    }
    println!();
    println!("Point a gateway at it with:");
    println!(
        "  STYTCH_PROJECT_ID={} STYTCH_SECRET={} STYTCH_BASE_URL={} stytch-gateway serve --upstream http://127.0.0.1:8081",
        emulator.project_id(),
        emulator.secret(),
        emulator.base_url()
    );
    tracing::info!(addr = %emulator.local_addr(), "emulator running; ctrl-c to stop");
    shutdown.await;
    emulator.shutdown().await;
    Ok(())
}

/// The seeded demo data.
#[derive(Debug)]
pub(crate) struct DemoSeed {
    /// Acme's id.
    pub(crate) organization_id: String,
    /// Alice, Acme's admin (`stytch_admin`).
    pub(crate) admin: SessionInfo,
    /// Bob, an Acme member.
    pub(crate) bob: SessionInfo,
    /// Carol, an Acme member.
    pub(crate) carol: SessionInfo,
    /// Globex's id.
    pub(crate) other_organization_id: String,
    /// Dave, Globex's admin.
    pub(crate) other_admin: SessionInfo,
}

/// Seeds the emulator: Acme with an admin and two members, Globex with its own admin, each
/// with a live session.
pub(crate) fn seed(emulator: &Emulator) -> DemoSeed {
    let acme = emulator.create_organization("Acme", "acme");
    let alice = emulator.create_member(&acme, "alice@acme.test", &["stytch_admin"]);
    let bob = emulator.create_member(&acme, "bob@acme.test", &[]);
    let carol = emulator.create_member(&acme, "carol@acme.test", &[]);
    let globex = emulator.create_organization("Globex", "globex");
    let dave = emulator.create_member(&globex, "dave@globex.test", &["stytch_admin"]);
    DemoSeed {
        organization_id: acme,
        admin: emulator.create_session(&alice),
        bob: emulator.create_session(&bob),
        carol: emulator.create_session(&carol),
        other_organization_id: globex,
        other_admin: emulator.create_session(&dave),
    }
}

/// The members the demo page offers to sign in as.
pub(crate) fn members(seed: &DemoSeed) -> Vec<DemoMember> {
    let member =
        |name: &str, email: &str, role: &str, session: &SessionInfo, org: &str, org_name: &str| {
            DemoMember {
                name: name.to_owned(),
                email: email.to_owned(),
                role: role.to_owned(),
                admin: role == "admin",
                member_id: session.member_id.clone(),
                organization_id: org.to_owned(),
                organization_name: org_name.to_owned(),
            }
        };
    let (acme, globex) = (&seed.organization_id, &seed.other_organization_id);
    vec![
        member(
            "Alice",
            "alice@acme.test",
            "admin",
            &seed.admin,
            acme,
            "Acme",
        ),
        member("Bob", "bob@acme.test", "member", &seed.bob, acme, "Acme"),
        member(
            "Carol",
            "carol@acme.test",
            "member",
            &seed.carol,
            acme,
            "Acme",
        ),
        member(
            "Dave",
            "dave@globex.test",
            "admin",
            &seed.other_admin,
            globex,
            "Globex",
        ),
    ]
}

/// One step of the demo: a request and the status it must get.
#[derive(Debug, Clone)]
pub(crate) struct DemoStep {
    /// What the step shows.
    pub(crate) title: String,
    /// Request method.
    pub(crate) method: Method,
    /// Request path.
    pub(crate) path: String,
    /// The bearer token sent, if any.
    pub(crate) token: Option<String>,
    /// A form body sent (`application/x-www-form-urlencoded`), if any.
    pub(crate) form: Option<String>,
    /// Whether any 2xx passes (rather than exactly `expected`).
    pub(crate) any_success: bool,
    /// What the answer must also hold.
    pub(crate) check: StepCheck,
    /// The expected status.
    pub(crate) expected: StatusCode,
}

/// What a step's answer must hold besides its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StepCheck {
    /// Nothing more.
    Status,
    /// The body contains this text.
    BodyContains(String),
    /// `Set-Cookie` sets Stytch's two session cookies.
    SetsSessionCookies,
}

impl StepCheck {
    fn passes(&self, headers: &http::HeaderMap, body: &[u8]) -> bool {
        match self {
            Self::Status => true,
            Self::BodyContains(text) => String::from_utf8_lossy(body).contains(text.as_str()),
            Self::SetsSessionCookies => {
                let cookies: Vec<&str> = headers
                    .get_all(header::SET_COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                ["stytch_session=", "stytch_session_jwt="]
                    .iter()
                    .all(|name| cookies.iter().any(|c| c.starts_with(name)))
            }
        }
    }
}

impl DemoStep {
    fn curl(&self, base: &str) -> String {
        let mut line = "curl -i ".to_owned();
        if let Some(form) = &self.form {
            line.push_str(&format!("-d '{form}' "));
        } else if self.method != Method::GET {
            line.push_str(&format!("-X {} ", self.method));
        }
        if let Some(token) = &self.token {
            line.push_str(&format!("-H 'Authorization: Bearer {token}' "));
        }
        format!("{line}{base}{}", self.path)
    }

    fn passes(&self, status: StatusCode) -> bool {
        if self.any_success {
            status.is_success()
        } else {
            status == self.expected
        }
    }
}

/// The demo's steps, in order.
///
/// Long on purpose: it is a table, one entry per step, as the banner prints them.
pub(crate) fn steps(seed: &DemoSeed) -> Vec<DemoStep> {
    let token = |s: &SessionInfo| Some(s.session_token.expose_secret().to_owned());
    let step =
        |title: &str, method: Method, path: String, token: Option<String>, expected: StatusCode| {
            DemoStep {
                title: title.to_owned(),
                method,
                path,
                token,
                form: None,
                any_success: false,
                check: StepCheck::Status,
                expected,
            }
        };
    vec![
        DemoStep {
            check: StepCheck::BodyContains("tower-stytch demo".to_owned()),
            ..step(
                "the demo page, for anyone (open it in a browser)",
                Method::GET,
                "/".to_owned(),
                None,
                StatusCode::OK,
            )
        },
        DemoStep {
            form: Some(format!("member_id={}", seed.bob.member_id)),
            check: StepCheck::SetsSessionCookies,
            ..step(
                "signing in as bob on the demo page sets Stytch's session cookies",
                Method::POST,
                "/demo/sign-in".to_owned(),
                None,
                StatusCode::SEE_OTHER,
            )
        },
        DemoStep {
            check: StepCheck::BodyContains(seed.bob.member_id.clone()),
            ..step(
                "bob calls the app through the gateway (identity headers reach the upstream)",
                Method::GET,
                "/whoami".to_owned(),
                token(&seed.bob),
                StatusCode::OK,
            )
        },
        DemoStep {
            check: StepCheck::BodyContains(seed.bob.member_session_id.clone()),
            ..step(
                "bob's active sessions, through Stytch's Get Sessions",
                Method::GET,
                "/api/sessions".to_owned(),
                token(&seed.bob),
                StatusCode::OK,
            )
        },
        DemoStep {
            any_success: true,
            ..step(
                "bob logs out (his session is revoked at Stytch and evicted here)",
                Method::POST,
                "/logout".to_owned(),
                token(&seed.bob),
                StatusCode::NO_CONTENT,
            )
        },
        step(
            "bob's token is refused afterwards",
            Method::GET,
            "/whoami".to_owned(),
            token(&seed.bob),
            StatusCode::UNAUTHORIZED,
        ),
        step(
            "carol (no admin role) tries to force bob out and is refused",
            Method::POST,
            format!("/admin/members/{}/revoke-sessions", seed.bob.member_id),
            token(&seed.carol),
            StatusCode::FORBIDDEN,
        ),
        DemoStep {
            any_success: true,
            ..step(
                "alice (stytch_admin) forces carol out of every session",
                Method::POST,
                format!("/admin/members/{}/revoke-sessions", seed.carol.member_id),
                token(&seed.admin),
                StatusCode::NO_CONTENT,
            )
        },
        step(
            "carol's token is refused afterwards",
            Method::GET,
            "/whoami".to_owned(),
            token(&seed.carol),
            StatusCode::UNAUTHORIZED,
        ),
    ]
}

/// The Stytch configuration pointing at `emulator` (its project id, secret and base URL).
///
/// # Errors
///
/// [`GatewayError::Config`] when the emulator's project id or secret is not a valid one.
pub(crate) fn stytch_config(
    emulator: &Emulator,
) -> Result<tower_stytch::StytchConfig, GatewayError> {
    Ok(
        tower_stytch::StytchConfig::builder(emulator.project_id(), emulator.secret())
            .base_url(emulator.base_url())
            .build()?,
    )
}

/// A running demo: emulator, upstream and gateway.
struct Running {
    emulator: Emulator,
    seed: DemoSeed,
    gateway_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    upstream_addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    gateway_task: tokio::task::JoinHandle<super::serve::ShutdownReport>,
    upstream_task: tokio::task::JoinHandle<super::server::Drain>,
}

async fn start_demo() -> Result<Running, GatewayError> {
    let emulator = start_emulator(EmulatorConfig::new(), loopback(EMULATOR_PORT), true).await?;
    let seed = seed(&emulator);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let upstream = bind_preferred(UPSTREAM_PORT).await?;
    let upstream_addr = upstream.local_addr().map_err(GatewayError::LocalAddr)?;
    let upstream_task = tokio::spawn(serve(
        "upstream",
        upstream,
        demo_app(&emulator, &seed)?,
        wait(stop_rx.clone()),
        Duration::from_secs(2),
    ));

    let mut options =
        ServeOptions::new(stytch_config(&emulator)?, format!("http://{upstream_addr}"));
    options.shutdown_timeout = Duration::from_secs(5);
    options.auth_only_path = Some("/auth".to_owned());
    // The page is served to anyone and shows who is signed in; its assets and sign-in route
    // are public; plain http on loopback, so cookies without `Secure`.
    options.optional = vec!["/".to_owned()];
    options.public = vec!["/demo/".to_owned()];
    options.insecure_cookies = true;
    options.listen = loopback(GATEWAY_PORT);
    options.metrics_listen = Some(loopback(METRICS_PORT));
    let secrets = WebhookSecrets::parse(emulator.webhook_secret().expose_secret())?;
    options.webhook = Some((WEBHOOK_PATH.to_owned(), secrets));
    let gateway = match Gateway::bind(options.clone()).await {
        Ok(gateway) => gateway,
        Err(GatewayError::Bind { .. }) => {
            options.listen = loopback(0);
            options.metrics_listen = Some(loopback(0));
            Gateway::bind(options).await?
        }
        Err(err) => return Err(err),
    };
    let gateway_addr = gateway.local_addr();
    let metrics_addr = gateway.metrics_addr();
    let hook =
        WebhookEndpoint::new(format!("http://{gateway_addr}{WEBHOOK_PATH}")).map_err(|source| {
            GatewayError::Emulator {
                name: "webhook-url",
                source,
            }
        })?;
    emulator.add_webhook_endpoint(hook);
    // Fail early (and clearly) when the gateway cannot reach the emulator.
    gateway
        .layer()
        .ready()
        .await
        .map_err(GatewayError::NotReady)?;
    let gateway_task = tokio::spawn(gateway.run(wait(stop_rx)));
    Ok(Running {
        emulator,
        seed,
        gateway_addr,
        metrics_addr,
        upstream_addr,
        stop,
        gateway_task,
        upstream_task,
    })
}

/// The demo web app for `seed`, minting sessions through `emulator`'s control API and
/// writing cookies as the demo gateway clears them (no `Secure`: plain http on loopback).
fn demo_app(emulator: &Emulator, seed: &DemoSeed) -> Result<DemoApp, GatewayError> {
    let control = ControlApi::new(
        &emulator.base_url(),
        emulator.project_id(),
        emulator.secret(),
    )
    .ok_or(GatewayError::InvalidUpstream {
        url: emulator.base_url(),
        reason: "the emulator's control API URL is not valid",
    })?;
    let mut cookies = CookieSettings::default();
    cookies.secure = false;
    let stytch = tower_stytch::StytchClient::new(stytch_config(emulator)?)?;
    Ok(DemoApp::new(members(seed), stytch, control, cookies))
}

fn print_banner(run: &Running, steps: &[DemoStep]) {
    let base = format!("http://{}", run.gateway_addr);
    let s = &run.seed;
    println!("stytch-gateway demo: everything on 127.0.0.1");
    println!(
        "  Stytch emulator  {}  (project {})",
        run.emulator.base_url(),
        run.emulator.project_id()
    );
    println!("  upstream app     http://{}/", run.upstream_addr);
    println!("  gateway          {base}/   (auth-only endpoint: {base}/auth)");
    if let Some(metrics) = run.metrics_addr {
        println!("  metrics          http://{metrics}/metrics");
    }
    println!("  probes           {base}/healthz  {base}/readyz");
    println!();
    println!("Open {base}/ in a browser: sign in as a demo member, log out, force a member out,");
    println!("and watch the live panel close when the session is revoked from another tab.");
    println!();
    println!("Organization Acme ({}):", s.organization_id);
    println!("  alice  stytch_admin  member {}", s.admin.member_id);
    println!("  bob    member        member {}", s.bob.member_id);
    println!("  carol  member        member {}", s.carol.member_id);
    println!("Organization Globex ({}):", s.other_organization_id);
    println!("  dave   stytch_admin  member {}", s.other_admin.member_id);
    println!();
    for (i, step) in steps.iter().enumerate() {
        let expected = if step.any_success {
            "2xx".to_owned()
        } else {
            step.expected.as_u16().to_string()
        };
        println!("{}. {} (expect {expected}):", i + 1, step.title);
        println!("   {}", step.curl(&base));
    }
    println!();
    let emulator = run.emulator.base_url();
    let dave = &s.other_admin;
    println!(
        "Revocations made outside the app: the emulator sends Stytch's webhooks to {base}{WEBHOOK_PATH}."
    );
    println!("Delete dave in the emulator, as in Stytch's dashboard:");
    println!(
        "   curl -u {}:{} -X DELETE -H 'Content-Type: application/json' -d '{{\"source\":\"DASHBOARD\"}}' {emulator}emulator/v1/members/{}",
        run.emulator.project_id(),
        run.emulator.secret(),
        dave.member_id
    );
    println!("and his token is refused within a second (expect 401):");
    println!(
        "   curl -i -H 'Authorization: Bearer {}' {base}/whoami",
        dave.session_token.expose_secret()
    );
    println!();
}

/// Sends one step's request through the gateway; returns the status, headers and body.
async fn send(
    client: &Client<HttpConnector, Body>,
    base: &str,
    step: &DemoStep,
) -> Result<(StatusCode, http::HeaderMap, Bytes), GatewayError> {
    let mut request = Request::builder()
        .method(step.method.clone())
        .uri(format!("{base}{}", step.path));
    if let Some(token) = &step.token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match &step.form {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            full_body(form.clone())
        }
        None => full_body(Bytes::new()),
    };
    let request = request
        .body(body)
        .map_err(|e| GatewayError::DemoRequest(e.into()))?;
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, super::BoxError>((parts.status, parts.headers, body))
    };
    match tokio::time::timeout(STEP_TIMEOUT, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(GatewayError::DemoRequest(err)),
        Err(_) => Err(GatewayError::DemoTimeout),
    }
}

/// Runs the steps; prints each status; true when all are as expected.
async fn self_test(run: &Running, steps: &[DemoStep]) -> bool {
    let base = format!("http://{}", run.gateway_addr);
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut all_ok = true;
    for (i, step) in steps.iter().enumerate() {
        let (ok, got) = match send(&client, &base, step).await {
            Ok((status, headers, body)) => {
                let ok = step.passes(status) && step.check.passes(&headers, &body);
                (ok, status.as_u16().to_string())
            }
            Err(err) => (false, crate::error::chain(&err)),
        };
        all_ok &= ok;
        let expected = if step.any_success {
            "2xx".to_owned()
        } else {
            step.expected.as_u16().to_string()
        };
        println!(
            "self-test {}. {}: {} {} -> {got} (expected {expected}) {}",
            i + 1,
            step.title,
            step.method,
            step.path,
            if ok { "ok" } else { "FAILED" }
        );
    }
    println!("self-test {}", if all_ok { "passed" } else { "FAILED" });
    all_ok
}

/// `stytch-gateway demo`: runs until `shutdown` (or, with `--self-test`, until the steps
/// ran). Returns whether the self-test passed (always true without it).
///
/// # Errors
///
/// When a component cannot start.
pub(crate) async fn run_demo(
    args: DemoArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<bool, GatewayError> {
    let run = start_demo().await?;
    let steps = steps(&run.seed);
    print_banner(&run, &steps);
    let ok = if args.self_test {
        self_test(&run, &steps).await
    } else {
        println!("Ready. Press ctrl-c to stop.");
        shutdown.await;
        true
    };
    let _ = run.stop.send(true);
    let report = run.gateway_task.await.map_err(GatewayError::Task)?;
    let _ = run.upstream_task.await;
    run.emulator.shutdown().await;
    tracing::debug!(?report, "demo stopped");
    Ok(ok)
}
