//! The demo in a real browser: Debian's headless Chromium, driven over WebDriver
//! (chromedriver + fantoccini), through the `stytch-gateway demo` binary on loopback.
//!
//! One test, in the order a person would click: sign in by cookie, see who you are, a
//! cross-site form post to logout and to an admin route refused (the session still works),
//! log out in another tab (the cookies cleared, the first tab's socket closed and the tab
//! signed out), sign in again; an admin in a second browser context opens the member view (the
//! demo on the other loopback host name, its own cookies) from her page, the member signs in
//! there, the admin forces the member out, and both of the member's live WebSockets close
//! with 1008 "session revoked" (the panels say "signed out: session revoked") and the pages
//! reload signed out. A screenshot of each step is written to `target/browser-test/`.
//!
//! Without Chromium this test fails when `CI` is set (CI installs it: `.ci/run`), and says it
//! skipped otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value as Json;
use tokio::sync::oneshot;

use super::{Proc, free_port, wait_connectable};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to reach the state a step waits for.
const STEP: Duration = Duration::from_secs(15);

/// Held by each browser test: one Chromium at a time (each is heavy, and a slow page would
/// look like a failure).
pub(super) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// chromedriver on a free loopback port, killed on drop with the browsers it started, whose
/// profiles (under `profiles`) go too.
pub(super) struct Chromedriver {
    child: Child,
    url: String,
    profiles: PathBuf,
}

impl Chromedriver {
    pub(super) fn start() -> Self {
        let port = free_port();
        // A process group of its own: the browsers it starts are in it, and go with it even
        // when the test panics before closing them.
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        wait_connectable(SocketAddr::from(([127, 0, 0, 1], port)));
        let profiles = std::env::temp_dir().join(format!(
            "stytch-browser-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles,
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profiles);
    }
}

/// A browser context of its own (a fresh profile: its own cookies), headless.
pub(super) struct Browser {
    client: Client,
    shots: PathBuf,
}

impl Browser {
    pub(super) async fn open(driver: &Chromedriver, name: &str, shots: &Path) -> Self {
        let profile = driver.profiles.join(name);
        std::fs::create_dir_all(&profile).unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-crash-reporter",
            "--window-size=1100,760",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
        );
        // chromedriver listens on plain http on loopback: no TLS connector is needed.
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a Chromium session through chromedriver");
        Self {
            client,
            shots: shots.to_owned(),
        }
    }

    pub(super) async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub(super) async fn js(&self, script: &str) -> Json {
        self.client.execute(script, Vec::new()).await.unwrap()
    }

    /// `document.body.dataset.state`: `loading`, `signed-out`, `signed-in` or `revoked`.
    async fn state(&self) -> String {
        let state = self
            .js("return document.body ? (document.body.dataset.state || '') : ''")
            .await;
        state.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (at most [`STEP`]) until the page is in `state`.
    pub(super) async fn wait_state(&self, state: &str) {
        let deadline = Instant::now() + STEP;
        loop {
            let now = self.state().await;
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "page never reached {state:?} (still {now:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `script` returns `true`.
    pub(super) async fn wait_true(&self, what: &str, script: &str) {
        let deadline = Instant::now() + STEP;
        while self.js(script).await != Json::Bool(true) {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(super) async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    pub(super) async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn cookies(&self) -> String {
        self.js("return document.cookie")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Resizes the window (a taller one for a screenshot of the whole page).
    pub(super) async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    pub(super) async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    pub(super) async fn close(self) {
        let _ = self.client.close().await;
    }

    /// Signs in as `name` from the demo's sign-in page at `base`.
    pub(super) async fn sign_in(&self, base: &str, name: &str) {
        self.goto(&format!("{base}/")).await;
        self.wait_state("signed-out").await;
        self.click(&format!("button[data-member=\"{name}\"]")).await;
        self.wait_state("signed-in").await;
        self.wait_true(
            "the live socket opens",
            "return document.querySelector('#live-status').dataset.live === 'open'",
        )
        .await;
    }
}

/// The running `stytch-gateway demo`: its URL and the member ids it printed.
pub(super) struct Demo {
    _proc: Proc,
    pub(super) base: String,
    bob: String,
    carol: String,
}

impl Demo {
    pub(super) fn start() -> Self {
        let proc = Proc::spawn("demo-browser", &["demo"], &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let banner = loop {
            let out = proc.stdout();
            if out.contains("Ready.") {
                break out;
            }
            assert!(
                Instant::now() < deadline,
                "the demo never started:\n{out}\n{}",
                proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let base = banner
            .lines()
            .find_map(|l| l.strip_prefix("Open "))
            .and_then(|l| l.split_whitespace().next())
            .expect("the demo prints the URL to open")
            .trim_end_matches('/')
            .to_owned();
        let member = |name: &str| {
            banner
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .and_then(|l| l.split_whitespace().last())
                .unwrap_or_else(|| panic!("{name}'s member id in the banner"))
                .to_owned()
        };
        Self {
            base,
            bob: member("bob"),
            carol: member("carol"),
            _proc: proc,
        }
    }
}

/// An "evil" site on another site than the demo (`localhost` vs `127.0.0.1`): `/post?to=URL`
/// is a page that submits a form to `URL` at once, as a cross-site attacker's page would.
struct EvilSite {
    base: String,
    _stop: oneshot::Sender<()>,
}

async fn evil_site() -> EvilSite {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, mut stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = &mut stopped => return,
            };
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let target = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "to")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let page = format!(
                    "<!doctype html><title>evil</title>\
                     <form id=f method=post action=\"{target}\"></form>\
                     <script>document.getElementById('f').submit()</script>"
                );
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(page))))
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    EvilSite {
        base: format!("http://localhost:{port}"),
        _stop: stop,
    }
}

/// Where the screenshots go: `target/browser-test/`.
pub(super) fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("browser-test");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether Chromium is here; without it the test fails in CI and skips elsewhere.
pub(super) fn chromium_or_skip() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMIUM} and {CHROMEDRIVER} are missing: .ci/run installs chromium and chromium-driver"
        );
        eprintln!("browser test skipped: install chromium and chromium-driver to run it");
    }
    present
}

/// A cross-site form post to `target` is refused by the gateway: the browser lands on the
/// layer's 403 `cross_origin` answer.
async fn assert_cross_site_post_refused(browser: &Browser, evil: &EvilSite, target: &str) {
    let url = format!(
        "{}/post?to={}",
        evil.base,
        form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
    );
    browser.goto(&url).await;
    browser
        .wait_true(
            "the cross-site post is answered",
            "return document.body !== null && document.body.innerText.includes('cross_origin')",
        )
        .await;
    let status = browser
        .js("return performance.getEntriesByType('navigation')[0].responseStatus")
        .await;
    assert_eq!(status, Json::from(403), "the cross-site post to {target}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_in_a_browser_signs_in_refuses_cross_site_posts_and_closes_revoked_sockets() {
    // If this broke, a person clicking through the demo would see it fail: cookies not set or
    // not cleared by logout, a cross-site form able to log them out or act as their admin,
    // or a forced sign-out leaving their WebSocket open and their page signed in.
    if !chromium_or_skip() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let shots = shots_dir();
    let demo = Demo::start();
    let driver = Chromedriver::start();
    let evil = evil_site().await;
    let base = demo.base.as_str();

    let bob = Browser::open(&driver, "bob", &shots).await;
    let session = sign_in_by_cookie(&bob, &demo).await;
    cross_site_posts_are_refused(&bob, &evil, &demo, &session).await;
    log_out_in_another_tab(&bob, base).await;

    // Signed in again in his browser, and in Alice's member view: Alice forces Bob out.
    bob.sign_in(base, "Bob").await;
    let alice = Browser::open(&driver, "alice", &shots).await;
    alice.sign_in(base, "Alice").await;
    let (admin_window, member_window) = open_member_view(&alice).await;
    alice.client.switch_to_window(admin_window).await.unwrap();
    alice.goto(&format!("{base}/")).await;
    alice.wait_state("signed-in").await;
    assert_eq!(alice.text("dd[data-field='name']").await, "Alice");
    alice.click("button[data-member='Bob']").await;
    alice
        .wait_true(
            "the admin route answers",
            "return document.querySelector('#action-status').textContent.includes('Bob forced out → 200')",
        )
        .await;
    alice.shot("05-admin-forces-bob-out").await;

    // Both of Bob's live sockets are closed by the gateway with 1008 "session revoked"; the
    // pages say so, then reload signed out.
    alice.client.switch_to_window(member_window).await.unwrap();
    tokio::join!(
        async {
            assert_signed_out_by_revocation(&alice).await;
            alice.shot("06-member-view-signed-out").await;
        },
        async {
            assert_signed_out_by_revocation(&bob).await;
            bob.shot("07-live-socket-closed").await;
        }
    );
    bob.wait_state("signed-out").await;
    bob.shot("08-signed-out-after-revocation").await;

    alice.close().await;
    bob.close().await;
    eprintln!(
        "browser test: {:.1} s, screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// From Alice's page, the member view (the demo on the other loopback host name, a window of
/// its own with its own cookies) is opened, and Bob signs in there. Returns Alice's window and
/// the member view's.
async fn open_member_view(alice: &Browser) -> (WindowHandle, WindowHandle) {
    let admin = alice.client.window().await.unwrap();
    let link = alice
        .js("return document.querySelector('#member-view').href")
        .await;
    assert!(
        link.as_str()
            .is_some_and(|l| l.starts_with("http://localhost:")),
        "{link}"
    );
    alice.click("#member-view").await;
    let deadline = Instant::now() + STEP;
    let member = loop {
        let windows = alice.client.windows().await.unwrap();
        if let Some(member) = windows.into_iter().find(|w| *w != admin) {
            break member;
        }
        assert!(Instant::now() < deadline, "the member view never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    alice.client.switch_to_window(member.clone()).await.unwrap();
    alice.wait_state("signed-out").await;
    alice.click("button[data-member=\"Bob\"]").await;
    alice.wait_state("signed-in").await;
    alice
        .wait_true(
            "the member view's socket opens",
            "return document.querySelector('#live-status').dataset.live === 'open'",
        )
        .await;
    assert_eq!(alice.text("dd[data-field='name']").await, "Bob");
    assert!(alice.text("#view-name").await.starts_with("member view"));
    assert!(
        alice
            .text("#sessions-note")
            .await
            .contains("started one session per member at launch"),
        "Bob's other sessions are explained"
    );
    alice.shot("05a-member-view-bob").await;
    (admin, member)
}

/// The page's live socket was closed by the gateway with 1008 "session revoked", and the
/// live panel says so.
async fn assert_signed_out_by_revocation(browser: &Browser) {
    browser.wait_state("revoked").await;
    assert_eq!(
        browser.text("#live-status").await,
        "signed out: session revoked"
    );
    let code = browser
        .js("return document.querySelector('#live-status').dataset.code")
        .await;
    assert_eq!(code, Json::from("1008"));
}

/// Bob signs in by cookie; the identity shown is the gateway's. Returns his session id.
async fn sign_in_by_cookie(bob: &Browser, demo: &Demo) -> String {
    let base = demo.base.as_str();
    bob.goto(&format!("{base}/")).await;
    bob.wait_state("signed-out").await;
    bob.shot("01-sign-in-page").await;
    bob.sign_in(base, "Bob").await;
    assert_eq!(bob.text("dd[data-field='member_id']").await, demo.bob);
    assert_eq!(bob.text("dd[data-field='name']").await, "Bob");
    let cookies = bob.cookies().await;
    assert!(
        cookies.contains("stytch_session=") && cookies.contains("stytch_session_jwt="),
        "{cookies}"
    );
    let session = bob.text("dd[data-field='session_id']").await;
    bob.shot("02-signed-in").await;
    session
}

/// A cross-site form post to logout, and to an admin route, is refused; Bob's `session`
/// still works.
async fn cross_site_posts_are_refused(bob: &Browser, evil: &EvilSite, demo: &Demo, session: &str) {
    let base = demo.base.as_str();
    assert_cross_site_post_refused(bob, evil, &format!("{base}/logout")).await;
    bob.shot("03-cross-site-logout-refused").await;
    let admin_route = format!("{base}/admin/members/{}/revoke-sessions", demo.carol);
    assert_cross_site_post_refused(bob, evil, &admin_route).await;
    bob.goto(&format!("{base}/")).await;
    bob.wait_state("signed-in").await;
    assert_eq!(bob.text("dd[data-field='session_id']").await, session);
}

/// Bob logs out in another tab: both cookies are cleared (same Path, no Secure on http: else
/// they would stay), and the first tab's live socket is closed, so it signs out too.
async fn log_out_in_another_tab(bob: &Browser, base: &str) {
    let first_tab = bob.client.window().await.unwrap();
    let second_tab = bob.client.new_window(true).await.unwrap().handle;
    bob.client.switch_to_window(second_tab).await.unwrap();
    bob.goto(&format!("{base}/")).await;
    bob.wait_state("signed-in").await;
    bob.click("#logout").await;
    bob.wait_state("signed-out").await;
    let cookies = bob.cookies().await;
    assert!(!cookies.contains("stytch_session"), "{cookies}");
    bob.shot("04-logged-out").await;
    bob.client.close_window().await.unwrap();
    bob.client.switch_to_window(first_tab).await.unwrap();
    bob.wait_state("signed-out").await;
    bob.shot("04b-other-tab-signed-out").await;
}
