//! The `serve` command's flags and what they become: [`ServeArgs`] (clap, with the Stytch
//! project's [`StytchArgs`]) is checked into [`ServeOptions`], what a
//! [`Gateway`](crate::serve::Gateway) is built from (in-process embedders build it directly).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use tower_stytch::config::{PolicyConfig, Rule};
use tower_stytch::{StytchConfig, bus::RedisBus, webhook::WebhookSecrets};

use crate::access_log::{AccessLogArgs, Switch};
use crate::config_file::ConfigArgs;
use crate::conn::{DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_MAX_CONNECTIONS};
use crate::error::GatewayError;
use crate::form::DEFAULT_FORM_BODY_LIMIT;
use crate::forwarded::parse_trusted_proxy;
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
    /// One access log line per request ([`access_log`](crate::access_log)).
    pub access_log: bool,
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

/// `serve`'s flags: the reverse proxy.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Address the proxy listens on.
    #[arg(
        long,
        env = "GATEWAY_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub(crate) listen: SocketAddr,
    /// The upstream every authenticated request is forwarded to
    /// (`http://host:port[/prefix]` or `https://…`; over https, HTTP/2 when the upstream
    /// offers it).
    #[arg(long, env = "GATEWAY_UPSTREAM", value_name = "URL")]
    pub(crate) upstream: Option<String>,
    /// PEM file of the CA certificates an `https://` upstream's certificate must chain to,
    /// instead of the system's trust store.
    #[arg(long, env = "GATEWAY_UPSTREAM_CA", value_name = "FILE")]
    pub(crate) upstream_ca: Option<std::path::PathBuf>,
    /// Speak HTTP/2 without TLS (h2c, prior knowledge) to an `http://` upstream; by default
    /// plain-http upstreams get HTTP/1.1.
    #[arg(long, env = "GATEWAY_UPSTREAM_H2C")]
    pub(crate) upstream_h2c: bool,
    /// How long the upstream has to send its response headers before the client gets a 504.
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT", value_name = "DURATION", default_value = "30s",
          value_parser = parse_duration)]
    pub(crate) upstream_timeout: Duration,
    /// Serve Prometheus metrics at http://ADDR/metrics (off when unset).
    #[arg(long, env = "GATEWAY_METRICS_LISTEN", value_name = "ADDR")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Path answering 200 with the identity headers, or the auth layer's 401, for nginx
    /// `auth_request` and Traefik `forwardAuth` (e.g. `/auth`; off when unset).
    #[arg(long, env = "GATEWAY_AUTH_ONLY_PATH", value_name = "PATH")]
    pub(crate) auth_only_path: Option<String>,
    /// Logout path (POST); log-out-everywhere is `{PATH}/everywhere`. Default `/logout`.
    #[arg(long, env = "GATEWAY_LOGOUT_PATH", value_name = "PATH")]
    pub(crate) logout_path: Option<String>,
    /// Prefix of the admin revoke routes: `{PREFIX}/members/{member_id}/revoke-sessions` and
    /// `{PREFIX}/sessions/{member_session_id}/revoke`. Default `/admin`.
    #[arg(long, env = "GATEWAY_ADMIN_PREFIX", value_name = "PREFIX")]
    pub(crate) admin_prefix: Option<String>,
    /// Upstream route that, when answered 2xx, signs the member out everywhere, e.g.
    /// 'DELETE /api/members/{member_id}'. Repeatable; comma separated in the environment.
    #[arg(
        long = "forced-signout",
        env = "GATEWAY_FORCED_SIGNOUT",
        value_name = "PATTERN",
        value_delimiter = ','
    )]
    pub(crate) forced_signout: Vec<String>,
    /// Path prefix served without authentication, e.g. '/assets/'. Repeatable; comma
    /// separated in the environment.
    #[arg(
        long = "public",
        env = "GATEWAY_PUBLIC",
        value_name = "PREFIX",
        value_delimiter = ','
    )]
    pub(crate) public: Vec<String>,
    /// Route where a credential is optional: with a valid one the upstream gets the identity
    /// headers, without (or with an invalid one) the request passes anonymously, e.g. '/'.
    /// Repeatable; comma separated in the environment.
    #[arg(
        long = "optional",
        env = "GATEWAY_OPTIONAL",
        value_name = "ROUTE",
        value_delimiter = ','
    )]
    pub(crate) optional: Vec<String>,
    /// Write the session cookies (a refreshed JWT, logout's clearing) without `Secure`, for
    /// a gateway served over plain http in development. Off by default.
    #[arg(long, env = "GATEWAY_INSECURE_COOKIES")]
    pub(crate) insecure_cookies: bool,
    /// Disable local verification of session JWTs (every cache miss asks Stytch).
    #[arg(long, env = "GATEWAY_NO_JWT")]
    pub(crate) no_jwt: bool,
    /// Forward the credentials the gateway consumed (the `Authorization: Bearer` token and the
    /// Stytch session cookies) to the upstream. Off by default: the upstream gets the identity
    /// headers, not the member's credential.
    #[arg(long, env = "GATEWAY_PASS_CREDENTIALS")]
    pub(crate) pass_credentials: bool,
    /// A proxy in front of the gateway (network like 10.0.0.0/8, or one address): from it,
    /// X-Forwarded-For is appended to and X-Forwarded-Proto/-Host, Forwarded and X-Real-IP
    /// are kept; from any other peer they are replaced. Repeatable; comma separated in the
    /// environment.
    #[arg(
        long = "trusted-proxy",
        env = "GATEWAY_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_trusted_proxy
    )]
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    /// Share revocations with every gateway (and app) using this Redis and Stytch project:
    /// `redis://[user:password@]host:port[/db]` or `rediss://` (TLS). The password is never
    /// logged. Off when unset.
    /// Behind Sentinels: `redis+sentinel://[:password@]host:26379,host:26379/master[/db]`
    /// (`redis+sentinels://`: TLS). Redis Cluster: `redis+cluster://[:password@]host:6379,…`
    /// (seed nodes; `redis+clusters://`: TLS).
    #[arg(long, env = "GATEWAY_REDIS_URL", value_name = "URL")]
    pub(crate) redis_url: Option<RedisUrl>,
    /// A Sentinel (`host:port`) to find the Redis primary through (repeatable, or comma
    /// separated): instead of `--redis-url`, with `--redis-sentinel-master`. The gateway
    /// follows the primary through failovers.
    #[arg(
        long = "redis-sentinel",
        env = "GATEWAY_REDIS_SENTINELS",
        value_name = "HOST:PORT",
        value_delimiter = ',',
        conflicts_with = "redis_url",
        requires = "redis_sentinel_master"
    )]
    pub(crate) redis_sentinels: Vec<String>,
    /// The name the Sentinels monitor the primary under (`sentinel monitor <name> …`).
    #[arg(
        long,
        env = "GATEWAY_REDIS_SENTINEL_MASTER",
        value_name = "NAME",
        requires = "redis_sentinels"
    )]
    pub(crate) redis_sentinel_master: Option<String>,
    /// The Redis nodes' password, with `--redis-sentinel` (with `--redis-url`, it is in the
    /// URL). Prefer the environment variable. Never logged.
    #[arg(
        long,
        env = "GATEWAY_REDIS_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        requires = "redis_sentinels"
    )]
    pub(crate) redis_password: Option<RedisUrl>,
    /// With `--redis-sentinel`: TLS to the Sentinels and the Redis nodes (their certificates
    /// verified against the system's roots, or `SSL_CERT_FILE`).
    #[arg(long, env = "GATEWAY_REDIS_TLS", requires = "redis_sentinels")]
    pub(crate) redis_tls: bool,
    /// The Sentinels' own password (their `requirepass`), when they require one. Prefer the
    /// environment variable. Never logged.
    #[arg(
        long,
        env = "GATEWAY_REDIS_SENTINEL_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub(crate) redis_sentinel_password: Option<RedisUrl>,
    /// How long a gateway holding revocations Stytch has not confirmed may stay silent
    /// before another takes them over.
    #[arg(long, env = "GATEWAY_REDIS_LEASE", value_name = "DURATION", default_value = "15s",
          value_parser = parse_duration)]
    pub(crate) redis_lease: Duration,
    /// Longest wait at startup for the shared revocations to be read before `/readyz`
    /// answers 200 anyway (Redis down must not keep every gateway out of the load balancer).
    #[arg(long, env = "GATEWAY_REDIS_STARTUP_WAIT", value_name = "DURATION", default_value = "5s",
          value_parser = parse_duration)]
    pub(crate) redis_startup_wait: Duration,
    /// Path receiving Stytch's webhooks (POST, Svix-signed), e.g. `/stytch/webhooks`: members
    /// deleted, deprovisioned or demoted at Stytch are signed out (or re-validated) at once.
    /// Needs STYTCH_WEBHOOK_SECRET. Off when unset.
    #[arg(long, env = "GATEWAY_WEBHOOK_PATH", value_name = "PATH")]
    pub(crate) webhook_path: Option<String>,
    /// The webhook endpoint's signing secret(s) from Stytch's dashboard (`whsec_…`; several
    /// comma separated during a rotation). Prefer the environment variable.
    #[arg(
        long,
        env = "STYTCH_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub(crate) webhook_secret: Option<String>,
    /// On SIGTERM / ctrl-c: how long in-flight requests and pending revocations get.
    #[arg(long, env = "GATEWAY_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value = "10s",
          value_parser = parse_duration)]
    pub(crate) shutdown_timeout: Duration,
    /// How long a `/readyz` result is reused before a probe checks Stytch again (0: every
    /// probe checks).
    #[arg(long, env = "GATEWAY_READINESS_MAX_AGE", value_name = "DURATION", default_value = "5s",
          value_parser = humantime::parse_duration)]
    pub(crate) readiness_max_age: Duration,
    /// TOML file of authorization rules, one `[[route]]` table each: `match` ('METHOD
    /// /path/{param}'), and any of `permission = { resource, action }` (Stytch RBAC),
    /// `organization` (a capture that must be the member's organization), `mfa = true`,
    /// `max_age` ('10m'), `step_up` (a page for browsers). Off when unset.
    #[arg(long, env = "GATEWAY_ROUTES", value_name = "FILE")]
    pub(crate) routes: Option<std::path::PathBuf>,
    /// How often the RBAC policy (and the organizations' custom roles) is fetched again from
    /// Stytch in the background.
    #[arg(long, env = "GATEWAY_POLICY_REFRESH", value_name = "DURATION", default_value = "5m",
          value_parser = parse_duration)]
    pub(crate) policy_refresh: Duration,
    /// Where logout's `return_to` and the routes' step-up pages may redirect: a local path
    /// prefix ('/account/') or an absolute URL prefix ('https://app.example.com/').
    /// Repeatable; comma separated in the environment. Nowhere when unset.
    #[arg(
        long = "redirect-allowlist",
        env = "GATEWAY_REDIRECT_ALLOWLIST",
        value_name = "PREFIX",
        value_delimiter = ','
    )]
    pub(crate) redirect_allowlist: Vec<String>,
    /// The Stytch project.
    #[command(flatten)]
    pub(crate) stytch: StytchArgs,
    /// `--access-log`.
    #[command(flatten)]
    pub(crate) access_log: AccessLogArgs,
    /// `--config`, and the routes of its file.
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// An HTTP/1.1 `Upgrade` protocol the gateway tunnels (WebSocket: `websocket`, the
    /// default). Repeatable; comma separated in the environment; `none` tunnels nothing.
    /// `h2c` is refused: an upstream switched to HTTP/2 would take requests for any path,
    /// with any identity headers, straight from the client. Other protocols' `Upgrade` is
    /// dropped and the request forwarded as an ordinary one.
    #[arg(
        long = "upgrade-protocol",
        env = "GATEWAY_UPGRADE_PROTOCOL",
        value_name = "NAME",
        value_delimiter = ',',
        default_value = DEFAULT_UPGRADE_PROTOCOL
    )]
    pub(crate) upgrade_protocols: Vec<String>,
    /// Tunnel upgrades (WebSocket) for requests without a session too: public routes, and
    /// optional ones without a credential. Off by default: such a handshake gets 403.
    #[arg(long, env = "GATEWAY_PUBLIC_UPGRADES")]
    pub(crate) public_upgrades: bool,
    /// A request header with `_` in its name that reaches the upstream; every other one is
    /// dropped (CGI, WSGI, PHP and Rack read `_` as `-`). Names that read as a header the
    /// gateway strips or writes are refused. Repeatable; comma separated in the environment.
    #[arg(
        long = "allow-underscore-header",
        env = "GATEWAY_ALLOW_UNDERSCORE_HEADER",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub(crate) allow_underscore_headers: Vec<String>,
    /// Time a client has to send a request's headers; on a new connection, from the accept
    /// (a silent connection, or HTTP/2's preface alone, is closed after it). nginx's
    /// `client_header_timeout`.
    #[arg(long, env = "GATEWAY_CLIENT_HEADER_TIMEOUT", value_name = "DURATION",
          default_value = "60s", value_parser = parse_duration)]
    pub(crate) client_header_timeout: Duration,
    /// Longest wait for the next piece of a request body: past it the request gets 408 and
    /// the connection closes. nginx's `client_body_timeout`.
    #[arg(long, env = "GATEWAY_CLIENT_BODY_TIMEOUT", value_name = "DURATION",
          default_value = "60s", value_parser = parse_duration)]
    pub(crate) client_body_timeout: Duration,
    /// Time a connection (HTTP/1.1 or HTTP/2) with no request in flight stays open. nginx's
    /// `keepalive_timeout`.
    #[arg(long, env = "GATEWAY_KEEPALIVE_TIMEOUT", value_name = "DURATION",
          default_value = "75s", value_parser = parse_duration)]
    pub(crate) keepalive_timeout: Duration,
    /// Client connections open at once (upgraded ones included); past it new connections
    /// are closed at once (stytch_gateway_connections_refused_total). Keep it under half
    /// the open-file limit: a proxied connection may use a second one towards the upstream.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", value_name = "N", default_value = "400",
          value_parser = parse_positive)]
    pub(crate) max_connections: usize,
    /// Largest `application/x-www-form-urlencoded` POST body the gateway reads, in bytes,
    /// for a `_method` field (Rails, Laravel, Symfony forms) that forced sign-out hooks
    /// match on; a larger one gets 413.
    #[arg(long, env = "GATEWAY_FORM_BODY_LIMIT", value_name = "BYTES", default_value = "65536",
          value_parser = parse_positive)]
    pub(crate) form_body_limit: usize,
    /// How long a revoked session's response of unknown length (chunked), or long poll,
    /// may still run, from the moment it was sent upstream. Server-sent events end at the
    /// revocation; responses with a Content-Length arrive whole.
    #[arg(long, env = "GATEWAY_STREAM_REVOCATION_GRACE", value_name = "DURATION",
          default_value = "10s", value_parser = parse_duration)]
    pub(crate) stream_revocation_grace: Duration,
}

/// The Stytch project the gateway authenticates against.
#[derive(Debug, Clone, Args)]
pub(crate) struct StytchArgs {
    /// Stytch project id (`project-live-…` talks to api.stytch.com, others to test.stytch.com).
    #[arg(long, env = "STYTCH_PROJECT_ID", value_name = "ID")]
    pub(crate) project_id: Option<String>,
    /// Stytch project secret. Prefer the environment variable: flags are visible in `ps`.
    #[arg(
        long,
        env = "STYTCH_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub(crate) secret: Option<String>,
    /// Override of Stytch's API base URL (custom domain or emulator); plain http only for
    /// loopback hosts.
    #[arg(long, env = "STYTCH_BASE_URL", value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// Longest time one call to Stytch may take, retries included: past it, the request gets
    /// 503 with `Retry-After` (fail closed).
    #[arg(long, env = "GATEWAY_STYTCH_DEADLINE", value_name = "DURATION", default_value = "3s",
          value_parser = parse_duration)]
    pub(crate) stytch_deadline: Duration,
}

impl StytchArgs {
    /// The validated Stytch configuration.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Missing`] or [`GatewayError::Config`] naming the missing or invalid
    /// input (never the secret).
    pub(crate) fn stytch_config(&self) -> Result<tower_stytch::StytchConfig, GatewayError> {
        let project_id = self
            .project_id
            .clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or(GatewayError::Missing {
                setting: "STYTCH_PROJECT_ID (or --project-id)",
            })?;
        let secret =
            self.secret
                .clone()
                .filter(|v| !v.trim().is_empty())
                .ok_or(GatewayError::Missing {
                    setting: "STYTCH_SECRET (or --secret)",
                })?;
        let mut builder = tower_stytch::StytchConfig::builder(project_id, secret);
        if let Some(url) = self.base_url.as_deref().filter(|v| !v.trim().is_empty()) {
            builder = builder.base_url(url);
        }
        let mut retry = tower_stytch::client::RetryPolicy::default();
        retry.deadline = self.stytch_deadline;
        builder = builder
            .request_timeout(
                self.stytch_deadline
                    .min(tower_stytch::client::DEFAULT_REQUEST_TIMEOUT),
            )
            .retry_policy(retry);
        Ok(builder.build()?)
    }
}

/// The revocation bus of `--redis-url`, or of `--redis-sentinel` (a `redis+sentinel://` URL
/// made of the Sentinel flags); `None` without either.
fn redis_bus(args: &ServeArgs) -> Result<Option<RedisBus>, GatewayError> {
    let url = if args.redis_sentinels.is_empty() {
        match &args.redis_url {
            Some(url) if !url.0.trim().is_empty() => url.0.clone(),
            _ => return Ok(None),
        }
    } else {
        let scheme = if args.redis_tls {
            "redis+sentinels"
        } else {
            "redis+sentinel"
        };
        let userinfo = args
            .redis_password
            .as_ref()
            .map(|p| format!(":{}@", percent_encode(&p.0)))
            .unwrap_or_default();
        let master = percent_encode(args.redis_sentinel_master.as_deref().unwrap_or_default());
        let hosts = args.redis_sentinels.join(",");
        format!("{scheme}://{userinfo}{hosts}/{master}")
    };
    let mut builder = RedisBus::builder(&url)
        .lease(args.redis_lease)
        .startup_wait(args.redis_startup_wait);
    if let Some(password) = &args.redis_sentinel_password {
        builder = builder.sentinel_password(&password.0);
    }
    Ok(Some(builder.build()?))
}

/// `raw` with every byte but the URL's unreserved ones percent-encoded.
fn percent_encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Redis URL (or password) as given on the command line; its `Debug` output hides it (it
/// may hold a password).
#[derive(Clone)]
pub(crate) struct RedisUrl(pub(crate) String);

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisUrl(***)")
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self(raw.to_owned()))
    }
}

fn parse_positive(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(0) => Err("must be greater than zero".to_owned()),
        Ok(n) => Ok(n),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(d)
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
        assert_eq!(percent_encode("p@ss/w:rd"), "p%40ss%2Fw%3Ard");
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
