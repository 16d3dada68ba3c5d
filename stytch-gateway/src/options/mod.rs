//! The `serve` command's flags and what they become: [`ServeArgs`] (clap, with the Stytch
//! project's [`StytchArgs`]) is checked into [`ServeOptions`], what a
//! [`Gateway`](crate::serve::Gateway) is built from (in-process embedders build it directly).

mod args;
mod redis;

use std::net::SocketAddr;
use std::time::Duration;

use tower_stytch::config::{PolicyConfig, Rule};
use tower_stytch::{StytchConfig, bus::RedisBus, webhook::WebhookSecrets};

#[cfg(test)]
pub(crate) use self::args::RedisUrl;
pub(crate) use self::args::ServeArgs;
use self::redis::redis_bus;
use crate::access_log::Switch;
use crate::conn::{DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_MAX_CONNECTIONS};
use crate::error::GatewayError;
use crate::form::DEFAULT_FORM_BODY_LIMIT;
use crate::health::DEFAULT_READINESS_MAX_AGE;
use crate::live::DEFAULT_REVOCATION_GRACE;
use crate::proxy::DEFAULT_UPSTREAM_TIMEOUT;
use crate::request_body::DEFAULT_BODY_TIMEOUT;
use crate::upgrade::DEFAULT_UPGRADE_PROTOCOL;

/// Everything `stytch-gateway serve` is configured with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Address of the proxy.
    pub listen: SocketAddr,
    /// Upstream URL (`http://host:port[/prefix]` or `https://…`).
    pub upstream: String,
    /// PEM file of the CA certificates an `https://` upstream must chain to (the system's
    /// trust store when `None`).
    pub upstream_ca: Option<std::path::PathBuf>,
    /// HTTP/2 with prior knowledge (h2c) to an `http://` upstream.
    pub upstream_h2c: bool,
    /// Time the upstream has to send response headers (504 after).
    pub upstream_timeout: Duration,
    /// Address of the Prometheus endpoint, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// Path of the auth-only endpoint, if any.
    pub auth_only_path: Option<String>,
    /// Logout path (layer default when `None`).
    pub logout_path: Option<String>,
    /// Admin prefix (layer default when `None`).
    pub admin_prefix: Option<String>,
    /// Forced sign-out hook patterns.
    pub forced_signout: Vec<String>,
    /// Public path prefixes.
    pub public: Vec<String>,
    /// Routes where a credential is optional.
    pub optional: Vec<String>,
    /// Session cookies written without `Secure` (plain-http development).
    pub insecure_cookies: bool,
    /// Disable local JWT verification.
    pub no_jwt: bool,
    /// Forward the credentials the layer consumed (bearer token, Stytch session cookies) to
    /// the upstream; by default they are removed.
    pub pass_credentials: bool,
    /// Networks of the proxies in front of the gateway, whose forwarding headers are kept
    /// (appended to); every other peer's are replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Budget for draining and flushing revocations on shutdown.
    pub shutdown_timeout: Duration,
    /// How long a `/readyz` result is reused (zero: every probe checks Stytch).
    pub readiness_max_age: Duration,
    /// Revocations shared with other instances through Redis, if any.
    pub redis: Option<RedisBus>,
    /// Path receiving Stytch's webhooks and the secrets they are signed with (off when
    /// `None`).
    pub webhook: Option<(String, WebhookSecrets)>,
    /// The Stytch project.
    pub stytch: StytchConfig,
    /// The `Upgrade` protocols tunnelled (`websocket` by default; none when empty); `h2c`
    /// is refused.
    pub upgrade_protocols: Vec<String>,
    /// Tunnel upgrades for requests without a session (public routes, optional ones without
    /// a credential) too; by default they are refused (403).
    pub public_upgrades: bool,
    /// Request headers with `_` in their names that reach the upstream (every other one is
    /// dropped).
    pub allow_underscore_headers: Vec<String>,
    /// Time a client has to send a request's headers (on a new connection: from the accept).
    pub client_header_timeout: Duration,
    /// Longest wait for the next piece of a request body (408 after).
    pub client_body_timeout: Duration,
    /// Time a connection with no request in flight stays open.
    pub keepalive_timeout: Duration,
    /// Client connections open at once on the proxy's listener.
    pub max_connections: usize,
    /// Largest `application/x-www-form-urlencoded` POST body read for a `_method` field
    /// (413 beyond).
    pub form_body_limit: usize,
    /// How long a response of unknown length, or a long poll, of a revoked session may
    /// still run.
    pub stream_revocation_grace: Duration,
    /// Authorization rules, `(pattern, rule)`: each one
    /// [`authorize`](tower_stytch::StytchAuthLayerBuilder::authorize) in this order (the
    /// routes file of `--routes`).
    pub routes: Vec<(String, Rule)>,
    /// The file `routes` were read from, named in configuration errors.
    pub routes_file: Option<std::path::PathBuf>,
    /// How often the RBAC policy is fetched again in the background.
    pub policy_refresh: Duration,
    /// Where logout's `return_to` and the routes' step-up pages may redirect (local path
    /// prefixes or absolute URL prefixes; nowhere when empty).
    pub redirect_allowlist: Vec<String>,
    /// One access log line per request (the `access_log` module).
    pub access_log: bool,
    /// Workers serving the proxy's connections, each a thread with a single-threaded runtime
    /// and its own upstream connections (`--worker-threads`); one per CPU when `None`.
    pub workers: Option<usize>,
}

impl ServeOptions {
    /// Options with the defaults of the command line, for `stytch` and `upstream`, listening
    /// on an ephemeral loopback port.
    pub fn new(stytch: StytchConfig, upstream: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: upstream.into(),
            upstream_ca: None,
            upstream_h2c: false,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            metrics_listen: None,
            auth_only_path: None,
            logout_path: None,
            admin_prefix: None,
            forced_signout: Vec::new(),
            public: Vec::new(),
            optional: Vec::new(),
            insecure_cookies: false,
            no_jwt: false,
            pass_credentials: false,
            trusted_proxies: Vec::new(),
            shutdown_timeout: Duration::from_secs(10),
            readiness_max_age: DEFAULT_READINESS_MAX_AGE,
            redis: None,
            webhook: None,
            stytch,
            upgrade_protocols: vec![DEFAULT_UPGRADE_PROTOCOL.to_owned()],
            public_upgrades: false,
            allow_underscore_headers: Vec::new(),
            client_header_timeout: DEFAULT_HEADER_TIMEOUT,
            client_body_timeout: DEFAULT_BODY_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            form_body_limit: DEFAULT_FORM_BODY_LIMIT,
            stream_revocation_grace: DEFAULT_REVOCATION_GRACE,
            routes: Vec::new(),
            routes_file: None,
            policy_refresh: PolicyConfig::default().refresh_every,
            redirect_allowlist: Vec::new(),
            access_log: true,
            workers: None,
        }
    }
}

impl TryFrom<ServeArgs> for ServeOptions {
    type Error = GatewayError;

    fn try_from(args: ServeArgs) -> Result<Self, GatewayError> {
        let redis = redis_bus(&args)?;
        let upstream =
            args.upstream
                .filter(|u| !u.trim().is_empty())
                .ok_or(GatewayError::Missing {
                    setting: "GATEWAY_UPSTREAM (or --upstream)",
                })?;
        if let Some(path) = &args.auth_only_path
            && !path.starts_with('/')
        {
            return Err(GatewayError::InvalidPath {
                name: "auth-only-path",
                path: path.clone(),
            });
        }
        let webhook = webhook(args.webhook_path, args.webhook_secret)?;
        let routes_file = args.routes.filter(|p| !p.as_os_str().is_empty());
        let (routes, routes_file) = match (args.config.routes, routes_file) {
            // `config_file` refuses a file's routes with --routes; the file's win here.
            (Some(file), _) => (file.routes, Some(file.file)),
            (None, Some(file)) => (crate::routes::load(&file)?, Some(file)),
            (None, None) => (Vec::new(), None),
        };
        Ok(Self {
            webhook,
            listen: args.listen,
            upstream,
            upstream_ca: args.upstream_ca,
            upstream_h2c: args.upstream_h2c,
            upstream_timeout: args.upstream_timeout,
            metrics_listen: args.metrics_listen,
            auth_only_path: args.auth_only_path,
            logout_path: args.logout_path,
            admin_prefix: args.admin_prefix,
            forced_signout: args.forced_signout,
            public: args.public,
            optional: args.optional,
            insecure_cookies: args.insecure_cookies,
            no_jwt: args.no_jwt,
            pass_credentials: args.pass_credentials,
            trusted_proxies: args.trusted_proxies,
            shutdown_timeout: args.shutdown_timeout,
            readiness_max_age: args.readiness_max_age,
            redis,
            stytch: args.stytch.stytch_config()?,
            upgrade_protocols: args.upgrade_protocols,
            public_upgrades: args.public_upgrades,
            allow_underscore_headers: args.allow_underscore_headers,
            client_header_timeout: args.client_header_timeout,
            client_body_timeout: args.client_body_timeout,
            keepalive_timeout: args.keepalive_timeout,
            max_connections: args.max_connections,
            form_body_limit: args.form_body_limit,
            stream_revocation_grace: args.stream_revocation_grace,
            routes,
            routes_file,
            policy_refresh: args.policy_refresh,
            redirect_allowlist: args.redirect_allowlist,
            access_log: args.access_log.access_log == Switch::On,
            workers: None,
        })
    }
}

/// The webhook receiver's path and secrets: both given, or neither (off).
fn webhook(
    path: Option<String>,
    secret: Option<String>,
) -> Result<Option<(String, WebhookSecrets)>, GatewayError> {
    let path = path.filter(|p| !p.trim().is_empty());
    let secret = secret.filter(|s| !s.trim().is_empty());
    match (path, secret) {
        (None, None) => Ok(None),
        (Some(path), Some(secret)) => {
            if !path.starts_with('/') {
                return Err(GatewayError::InvalidPath {
                    name: "webhook-path",
                    path,
                });
            }
            Ok(Some((path, WebhookSecrets::parse(&secret)?)))
        }
        (Some(_), None) => Err(GatewayError::Missing {
            setting: "STYTCH_WEBHOOK_SECRET (or --webhook-secret), needed by --webhook-path",
        }),
        (None, Some(_)) => Err(GatewayError::Missing {
            setting: "GATEWAY_WEBHOOK_PATH (or --webhook-path), for STYTCH_WEBHOOK_SECRET",
        }),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec![
            "stytch-gateway",
            "serve",
            "--upstream",
            "http://127.0.0.1:1",
        ];
        argv.extend_from_slice(extra);
        #[cfg_attr(not(feature = "demo"), allow(irrefutable_let_patterns))]
        let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not serve")
        };
        *args
    }

    #[test]
    fn the_edge_flags_default_like_nginx_and_accumulate() {
        // If this broke, the gateway would start without the timeouts, the connection cap or
        // the WebSocket default the README promises, or repeated flags would keep only one.
        let args = serve_args(&[]);
        assert_eq!(args.upgrade_protocols, ["websocket"]);
        assert!(!args.public_upgrades);
        assert!(args.allow_underscore_headers.is_empty());
        assert_eq!(args.client_header_timeout, Duration::from_secs(60));
        assert_eq!(args.client_body_timeout, Duration::from_secs(60));
        assert_eq!(args.keepalive_timeout, Duration::from_secs(75));
        assert_eq!(args.max_connections, 400);
        assert_eq!(args.form_body_limit, 64 * 1024);
        assert_eq!(args.stream_revocation_grace, Duration::from_secs(10));
        let args = serve_args(&[
            "--upgrade-protocol",
            "websocket",
            "--upgrade-protocol",
            "x-custom/2",
            "--allow-underscore-header",
            "X_A,X_B",
            "--max-connections",
            "1000",
        ]);
        assert_eq!(args.upgrade_protocols, ["websocket", "x-custom/2"]);
        assert_eq!(args.allow_underscore_headers, ["X_A", "X_B"]);
        assert_eq!(args.max_connections, 1000);
        for zero in [["--max-connections", "0"], ["--client-body-timeout", "0s"]] {
            let mut argv = vec!["stytch-gateway", "serve"];
            argv.extend_from_slice(&zero);
            assert!(Cli::try_parse_from(argv).is_err(), "{zero:?}");
        }
    }

    #[test]
    fn the_sentinel_flags_make_a_sentinel_bus_and_never_show_its_passwords() {
        // If this broke, `--redis-sentinel` would not find the primary through the Sentinels
        // (or follow it through a failover), a password with URL characters would be cut,
        // or a password would be printed wherever the options are debug-printed.
        let mut args = serve_args(&[
            "--redis-sentinel",
            "10.0.0.1:26379,10.0.0.2:26379",
            "--redis-sentinel",
            "10.0.0.3:26380",
            "--redis-sentinel-master",
            "mymaster",
            "--redis-password",
            "p@ss/w:rd-hunter2",
            "--redis-sentinel-password",
            "sentinel-hunter3",
        ]);
        assert_eq!(args.redis_sentinels.len(), 3);
        args.stytch.project_id = Some("project-test-1".to_owned());
        args.stytch.secret = Some("secret-test-1".to_owned());
        assert!(!format!("{args:?}").contains("hunter"));
        let options = ServeOptions::try_from(args).unwrap();
        let bus = format!("{:?}", options.redis.unwrap());
        assert!(
            bus.contains(
                "redis+sentinel://***@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26380/mymaster"
            ),
            "{bus}"
        );
        assert!(bus.contains("\"sentinel\""), "{bus}");
        assert!(!bus.contains("hunter") && !bus.contains("p%40ss"), "{bus}");
        assert_eq!(super::redis::percent_encode("p@ss/w:rd"), "p%40ss%2Fw%3Ard");
        // A Sentinel needs its master's name, and excludes a URL.
        for argv in [
            &["--redis-sentinel", "h:26379"][..],
            &[
                "--redis-sentinel",
                "h:26379",
                "--redis-sentinel-master",
                "m",
                "--redis-url",
                "redis://h/",
            ],
            &["--redis-password", "x"],
        ] {
            let mut full = vec!["stytch-gateway", "serve"];
            full.extend_from_slice(argv);
            assert!(Cli::try_parse_from(full).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn a_cluster_url_makes_a_cluster_bus() {
        // If this broke, `--redis-url redis+cluster://…` would be refused, or talk to one node
        // and miss every redirection of Redis Cluster.
        let mut args = serve_args(&["--redis-url", "redis+cluster://:pw@h1:7000,h2:7001"]);
        args.stytch.project_id = Some("project-test-1".to_owned());
        args.stytch.secret = Some("secret-test-1".to_owned());
        let options = ServeOptions::try_from(args).unwrap();
        let bus = format!("{:?}", options.redis.unwrap());
        assert!(bus.contains("\"cluster\""), "{bus}");
    }
}
