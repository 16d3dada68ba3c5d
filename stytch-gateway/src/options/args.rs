//! `serve`'s command line: [`ServeArgs`] (every flag, its environment variable and default)
//! and the Stytch project's [`StytchArgs`]; checked into [`ServeOptions`](super::ServeOptions).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::access_log::AccessLogArgs;
use crate::config_file::ConfigArgs;
use crate::error::GatewayError;
use crate::forwarded::parse_trusted_proxy;
use crate::upgrade::DEFAULT_UPGRADE_PROTOCOL;

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
