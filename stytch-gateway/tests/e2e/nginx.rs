//! nginx `auth_request` in front of the gateway's auth-only endpoint, both real processes:
//! a flood of junk credentials through nginx must not cost a connection per request.
//!
//! nginx never reads the body of an `auth_request` answer; an answer with a body cannot go
//! back to its keep-alive pool, so before the refusals lost their body every junk check
//! opened a new TCP connection to the gateway (and left a TIME_WAIT socket and a used
//! ephemeral port on nginx's host: a flood exhausts nginx's ports, and then every member's
//! check fails, not only the attacker's).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use http::StatusCode;

use super::{Gateway, Stytch, bounded, free_port, http, metrics_text, upstream, wait_connectable};

const NGINX: &str = "/usr/sbin/nginx";
const AUTH_PATH: &str = "/_stytch_auth";

/// Whether nginx is here; without it the test fails in CI and skips elsewhere.
pub(crate) fn nginx_or_skip() -> bool {
    let present = Path::new(NGINX).exists();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{NGINX} is missing: .ci/run installs nginx"
        );
        eprintln!("nginx test skipped: install nginx to run it");
    }
    present
}

/// One nginx process (no master, no daemon), configured and run in its own temporary
/// directory, killed on drop.
pub(crate) struct Nginx {
    child: Child,
    dir: std::path::PathBuf,
    pub(crate) addr: SocketAddr,
}

impl Nginx {
    /// nginx on a free port: every request is checked with `auth_request` against the
    /// gateway's auth-only endpoint (kept-alive connections, as the load script and the
    /// README configure it), then proxied to `upstream`.
    fn start(gateway: &str, upstream: SocketAddr) -> Self {
        let gateway = gateway.trim_start_matches("http://");
        Self::run(|addr| {
            format!(
                "upstream gateway_auth {{ server {gateway}; keepalive 16; }}
    upstream app {{ server {upstream}; keepalive 16; }}
    server {{
        listen {addr};
        location = {AUTH_PATH} {{
            internal;
            proxy_pass http://gateway_auth;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_pass_request_body off;
            proxy_set_header Content-Length \"\";
        }}
        location / {{
            auth_request {AUTH_PATH};
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}"
            )
        })
    }

    /// nginx on a free port serving one `server` whose body (its `location`s) is
    /// `locations` (nginx as an upstream).
    pub(crate) fn serve(locations: &str) -> Self {
        Self::run(|addr| format!("server {{ listen {addr}; {locations} }}"))
    }

    /// nginx on a free port with the `http` block's servers and upstreams `servers` makes
    /// of the address.
    fn run(servers: impl FnOnce(SocketAddr) -> String) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "stytch-gateway-e2e-nginx-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let servers = servers(addr);
        let d = dir.display();
        let conf = format!(
            "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    {servers}
}}
"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        wait_connectable(addr);
        Self { child, dir, addr }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The gateway's `stytch_gateway_connections_accepted_total{listener="proxy"}`.
async fn connections_accepted(metrics: &str) -> u64 {
    metrics_text(metrics)
        .await
        .lines()
        .find_map(|line| {
            line.strip_prefix("stytch_gateway_connections_accepted_total{listener=\"proxy\"} ")
        })
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_junk_credential_flood_through_nginx_auth_request_reuses_one_connection() {
    // If this broke, every refused check through nginx would open a new connection to the
    // gateway: a junk-credential flood would exhaust nginx's ephemeral ports and fail every
    // member's check along with the attacker's.
    if !nginx_or_skip() {
        return;
    }
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
        let args = ["--auth-only-path", AUTH_PATH, "--metrics-listen", &metrics];
        let gw = Gateway::start(&stytch, up.addr, &args).await;
        let nginx = Nginx::start(&gw.base, up.addr);
        let org = stytch.organization("acme").await;
        let (_member, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let through = format!("http://{}/whoami", nginx.addr);

        // nginx works in front of the gateway: a member passes, a missing credential does not.
        let member = || http().get(&through).bearer_auth(&token).send();
        assert_eq!(member().await.unwrap().status(), StatusCode::OK);
        let before = connections_accepted(&metrics).await;
        assert!(before >= 1, "the metric counts nothing");

        const JUNK: u64 = 60;
        let client = http();
        for n in 0..JUNK {
            let junk = format!("junk-credential-{n:032}");
            let refused = client.get(&through).bearer_auth(junk).send().await.unwrap();
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(
            member().await.unwrap().status(),
            StatusCode::OK,
            "a member is still served"
        );

        let opened = connections_accepted(&metrics).await - before;
        // One nginx worker, sequential checks: its kept-alive connection serves them all.
        // The margin allows nginx to replace a connection or two, not one per request.
        assert!(
            opened <= 3,
            "{opened} new connections to the gateway for {JUNK} refused checks"
        );
        assert_eq!(
            up.seen.lock().unwrap().len(),
            2,
            "junk reached the upstream"
        );
    })
    .await;
}
