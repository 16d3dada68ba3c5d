//! The command line: `serve`, `emulator`, `demo` (and the hidden `upstream`), logging setup,
//! and exit codes (0 success, 1 run-time failure, 2 bad configuration).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::GatewayError;

/// Exit code of a bad configuration (also clap's code for usage errors).
pub(crate) const EXIT_CONFIG: u8 = 2;
/// Exit code of a run-time failure.
pub(crate) const EXIT_FAILURE: u8 = 1;

/// stytch-gateway: an authenticating reverse proxy for Stytch B2B sessions.
///
/// Every flag can also be set through the environment variable shown next to it. Logging
/// follows RUST_LOG (default `info`); credentials never appear in any log line.
#[derive(Debug, Parser)]
#[command(name = "stytch-gateway", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, env = "GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Runtime worker threads (default: one per CPU core).
    #[arg(long, global = true, env = "GATEWAY_WORKER_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) worker_threads: Option<u16>,

    /// What to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the authenticating reverse proxy in front of an upstream.
    Serve(Box<ServeArgs>),
    /// Run the Stytch B2B sessions API emulator on its own (for local development and tests).
    Emulator(EmulatorArgs),
    /// Start the emulator with seeded members, a demo upstream and the gateway, and print
    /// ready-to-paste curl commands.
    Demo(DemoArgs),
    /// Run the demo's echo upstream on its own (used by the load-run script).
    #[command(hide = true)]
    Upstream(UpstreamArgs),
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

/// `serve`: the reverse proxy.
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
        value_parser = super::forwarded::parse_trusted_proxy
    )]
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    /// Share revocations with every gateway (and app) using this Redis and Stytch project:
    /// `redis://[user:password@]host:port[/db]` or `rediss://` (TLS). The password is never
    /// logged. Off when unset.
    #[arg(long, env = "GATEWAY_REDIS_URL", value_name = "URL")]
    pub(crate) redis_url: Option<RedisUrl>,
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
    /// The Stytch project.
    #[command(flatten)]
    pub(crate) stytch: StytchArgs,
}

/// `emulator`: the Stytch emulator on its own.
#[derive(Debug, Clone, Args)]
pub(crate) struct EmulatorArgs {
    /// Address the emulator listens on.
    #[arg(
        long,
        env = "EMULATOR_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:4010"
    )]
    pub(crate) listen: SocketAddr,
    /// Project id the emulator accepts (default: the emulator's built-in test project).
    #[arg(long, value_name = "ID")]
    pub(crate) project_id: Option<String>,
    /// Project secret the emulator accepts (default: the built-in test project's secret).
    #[arg(long, value_name = "SECRET")]
    pub(crate) secret: Option<String>,
    /// URL the emulator sends its Svix-signed webhooks to (repeatable), e.g. the gateway's
    /// `http://127.0.0.1:8080/stytch/webhooks`.
    #[arg(long = "webhook-url", value_name = "URL")]
    pub(crate) webhook_urls: Vec<String>,
    /// Secret the emulator signs webhooks with (`whsec_…`; default: a fresh one, printed).
    #[arg(
        long,
        env = "STYTCH_EMULATOR_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub(crate) webhook_secret: Option<String>,
}

/// `demo`: everything on loopback, with curl commands.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Run the demo's five steps against itself, print each status, and exit 0 only if all
    /// are as expected.
    #[arg(long)]
    pub(crate) self_test: bool,
}

/// `upstream`: the echo upstream on its own.
#[derive(Debug, Clone, Args)]
pub(crate) struct UpstreamArgs {
    /// Address the echo upstream listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub(crate) listen: SocketAddr,
    /// Answer every request 204 with no body instead of echoing it (the no-op auth endpoint
    /// the load run compares the auth-only endpoint with).
    #[arg(long)]
    pub(crate) no_content: bool,
}

/// A Redis URL as given on the command line; its `Debug` output hides it (it may hold a
/// password).
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

fn parse_duration(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(d)
}

/// Installs the `tracing` subscriber: `RUST_LOG` (default `info`), text or JSON on stderr.
pub(crate) fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already installed (tests): keep the existing one.
    let _ = result;
}

/// Parses the command line, runs the command on a multi-threaded runtime, and maps the
/// outcome to the exit code. A usage or configuration error prints one line
/// `stytch-gateway: <problem>` on stderr and exits 2.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                err.exit();
            }
            let rendered = err.to_string();
            let line = rendered
                .lines()
                .next()
                .unwrap_or("invalid command line")
                .trim_start_matches("error: ");
            eprintln!("stytch-gateway: {line} (see --help)");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.worker_threads {
        builder.worker_threads(usize::from(threads));
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("stytch-gateway: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("stytch-gateway: {}", super::error::chain(&err));
            ExitCode::from(if err.is_config() {
                EXIT_CONFIG
            } else {
                EXIT_FAILURE
            })
        }
    }
}

/// Runs one command to completion (until ctrl-c / SIGTERM for the long-running ones).
///
/// # Errors
///
/// Configuration and start-up failures.
pub(crate) async fn run(command: Command) -> Result<ExitCode, GatewayError> {
    use super::server::shutdown_signal;
    match command {
        Command::Serve(args) => {
            let gateway = super::serve::Gateway::bind((*args).try_into()?).await?;
            let report = gateway.run(shutdown_signal()).await;
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            })
        }
        Command::Emulator(args) => {
            super::demo::run_emulator(args, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            let ok = super::demo::run_demo(args, shutdown_signal()).await?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            })
        }
        Command::Upstream(args) => {
            let listener = super::bind(args.listen).await?;
            let drain = Duration::from_secs(5);
            if args.no_content {
                println!("no-content upstream listening on http://{}", args.listen);
                let service = super::upstream::NoContent;
                super::server::serve("upstream", listener, service, shutdown_signal(), drain).await;
            } else {
                println!("echo upstream listening on http://{}", args.listen);
                let service = super::upstream::EchoUpstream;
                super::server::serve("upstream", listener, service, shutdown_signal(), drain).await;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // If this broke, clap would panic at run time on a malformed argument definition.
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn repeated_flags_accumulate() {
        // If this broke, only the last --public / --forced-signout would take effect.
        let cli = Cli::try_parse_from([
            "stytch-gateway",
            "serve",
            "--upstream",
            "http://127.0.0.1:1",
            "--public",
            "/assets/",
            "--public",
            "/static/",
            "--forced-signout",
            "DELETE /api/members/{member_id}",
            "--upstream-timeout",
            "250ms",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "192.168.1.1",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.public, ["/assets/", "/static/"]);
        assert_eq!(args.forced_signout, ["DELETE /api/members/{member_id}"]);
        assert_eq!(args.upstream_timeout, Duration::from_millis(250));
        assert_eq!(args.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(args.readiness_max_age, Duration::from_secs(5));
        assert_eq!(args.stytch.stytch_deadline, Duration::from_secs(3));
        let trusted: Vec<String> = args.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(trusted, ["10.0.0.0/8", "192.168.1.1/32"]);
        assert!(!args.pass_credentials);
    }

    #[test]
    fn the_redis_url_never_shows_its_password() {
        // If this broke, `--redis-url redis://:password@…` would print the password wherever
        // the arguments or options are debug-printed, or in a configuration error.
        let cli = Cli::try_parse_from([
            "stytch-gateway",
            "serve",
            "--upstream",
            "http://127.0.0.1:1",
            "--redis-url",
            "redis://:hunter2-secret@127.0.0.1:6379/",
            "--redis-lease",
            "3s",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.redis_lease, Duration::from_secs(3));
        assert_eq!(args.redis_startup_wait, Duration::from_secs(5));
        assert!(!format!("{args:?}").contains("hunter2"));
        let mut bad = (*args).clone();
        bad.redis_url = Some(RedisUrl("http://:hunter2-secret@h/".to_owned()));
        bad.stytch.project_id = Some("project-test-1".to_owned());
        bad.stytch.secret = Some("secret-test-1".to_owned());
        let err = crate::serve::ServeOptions::try_from(bad).unwrap_err();
        assert!(err.is_config());
        assert!(!crate::error::chain(&err).contains("hunter2"));
    }
}
