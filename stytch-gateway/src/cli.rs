//! The command line: parsing (with `serve --config FILE`'s file), logging setup, the
//! runtime, and the dispatch to `serve` and `check-config` (and, with the `demo` feature,
//! `emulator`, `demo` and the hidden `upstream`); exit codes (0 success, 1 run-time failure,
//! 2 bad configuration).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use crate::access_log::TARGET as ACCESS_TARGET;
use crate::config_file::check::{CheckConfigArgs, render};
use crate::config_file::{CliError, Loaded, load};
#[cfg(feature = "demo")]
use crate::demo::{self, DemoArgs, EmulatorArgs, UpstreamArgs};
use crate::error::{GatewayError, chain};
use crate::options::{ServeArgs, ServeOptions};
use crate::serve::Gateway;
use crate::server::shutdown_signal;

/// Exit code of a bad configuration (also clap's code for usage errors).
pub(crate) const EXIT_CONFIG: u8 = 2;
/// Exit code of a run-time failure.
pub(crate) const EXIT_FAILURE: u8 = 1;

/// stytch-gateway: an authenticating reverse proxy for Stytch B2B sessions.
///
/// Every flag of `serve` can also be set through the environment variable shown next to it,
/// or in a configuration file (`serve --config FILE`, checked by `check-config FILE`): a flag
/// wins over the environment, the environment over the file. Logging follows RUST_LOG
/// (default `info`) and the access log `--access-log` (on); credentials never appear in any
/// log line.
#[derive(Debug, Parser)]
#[command(name = "stytch-gateway", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, env = "GATEWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Workers (default: one per CPU core). `serve` runs each worker as a thread with a
    /// single-threaded runtime and its own upstream connections, plus one thread for the
    /// acceptor and background work; the other commands run a multi-threaded runtime with
    /// this many threads.
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
    /// Check a configuration file (and the environment) as `serve --config FILE` reads it,
    /// without binding a port or calling Stytch, and print the effective configuration with
    /// each value's source, secrets redacted. Exits 0 when valid, 2 otherwise.
    CheckConfig(CheckConfigArgs),
    /// Run the Stytch B2B sessions API emulator on its own (for local development and tests).
    #[cfg(feature = "demo")]
    Emulator(EmulatorArgs),
    /// Start the emulator with seeded members, a demo upstream and the gateway, and print
    /// ready-to-paste curl commands.
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Run the demo's echo upstream on its own (used by the load-run script).
    #[cfg(feature = "demo")]
    #[command(hide = true)]
    Upstream(UpstreamArgs),
}

/// Installs the `tracing` subscriber: `RUST_LOG` (default `info`; the access log's target at
/// `info` unless `RUST_LOG` names it), text or JSON on stderr, with ANSI colours only on a
/// terminal without `NO_COLOR`.
pub(crate) fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let mut filter = rust_log
        .as_deref()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    if !rust_log.is_some_and(|v| v.contains(ACCESS_TARGET))
        && let Ok(directive) = format!("{ACCESS_TARGET}=info").parse()
    {
        filter = filter.add_directive(directive);
    }
    let ansi = colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi && format == LogFormat::Text)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already installed (tests): keep the existing one.
    let _ = result;
}

/// Whether log lines get ANSI colours: only on a terminal, and never when `NO_COLOR` is set
/// to anything but the empty string (<https://no-color.org>).
fn colours(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// Parses the command line, runs the command on a multi-threaded runtime, and maps the
/// outcome to the exit code. A usage or configuration error prints one line
/// `stytch-gateway: <problem>` on stderr and exits 2.
pub fn main() -> ExitCode {
    let cli = match read_command_line(std::env::args_os().collect()) {
        Ok((cli, _, _)) => cli,
        Err(CliError::Config(err)) => {
            eprintln!("stytch-gateway: {}", chain(&err));
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(CliError::Clap(err)) => {
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
    if let Command::CheckConfig(args) = &cli.command {
        // Before logging and the runtime: nothing runs.
        return check_config(&args.file);
    }
    init_logging(cli.log_format);
    let workers = cli.worker_threads.map(usize::from);
    // `serve`: this thread accepts and runs the background work; the workers are threads of
    // their own (`workers`).
    let mut builder = if matches!(cli.command, Command::Serve(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(threads) = workers {
            builder.worker_threads(threads);
        }
        builder
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("stytch-gateway: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli.command, workers)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("stytch-gateway: {}", chain(&err));
            ExitCode::from(if err.is_config() {
                EXIT_CONFIG
            } else {
                EXIT_FAILURE
            })
        }
    }
}

/// The command line, the environment and (with `serve --config FILE`) the configuration
/// file read into a [`Cli`]; what was loaded, and the built command it was read with.
///
/// # Errors
///
/// Usage errors and the configuration file's.
pub(crate) fn read_command_line(
    argv: Vec<OsString>,
) -> Result<(Cli, Loaded, clap::Command), CliError> {
    let mut command = Cli::command();
    command.build();
    let mut loaded = load(&command, argv)?;
    let mut cli = Cli::from_arg_matches(&loaded.matches).map_err(CliError::Clap)?;
    if let Command::Serve(args) = &mut cli.command {
        args.config.routes = loaded.routes.take();
    }
    Ok((cli, loaded, command))
}

/// `check-config FILE`: the effective configuration on stdout and exit 0, or the problem on
/// one line and exit 2.
fn check_config(file: &Path) -> ExitCode {
    match checked_config(file) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("stytch-gateway: {}", chain(&err));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Reads `file` as `serve --config FILE` would, checks every setting as `serve` does before
/// it binds, and renders the effective configuration.
///
/// # Errors
///
/// The first problem found: the file's, the environment's, or a setting's.
pub(crate) fn checked_config(file: &Path) -> Result<String, GatewayError> {
    let argv = ["stytch-gateway", "serve", "--config"]
        .map(OsString::from)
        .into_iter()
        .chain([file.as_os_str().to_owned()])
        .collect();
    let (cli, loaded, command) = read_command_line(argv).map_err(|err| match err {
        CliError::Config(err) => err,
        CliError::Clap(err) => {
            let rendered = err.to_string();
            let why = rendered.lines().next().unwrap_or_default();
            GatewayError::ConfigFile {
                file: file.to_owned(),
                problem: format!(
                    "with the environment: {}",
                    why.trim_start_matches("error: ")
                ),
            }
        }
    })?;
    let (Command::Serve(args), Some(serve)) = (cli.command, command.find_subcommand("serve"))
    else {
        return Err(GatewayError::Missing {
            setting: "the serve command",
        });
    };
    let options = ServeOptions::try_from(*args)?;
    crate::serve::validate(&options)?;
    let routes_file = options.routes_file.as_deref();
    Ok(render(serve, &loaded, file, &options.routes, routes_file))
}

/// Runs one command to completion (until ctrl-c / SIGTERM for the long-running ones);
/// `serve` on `workers` workers (one per CPU when `None`).
///
/// # Errors
///
/// Configuration and start-up failures.
pub(crate) async fn run(
    command: Command,
    workers: Option<usize>,
) -> Result<ExitCode, GatewayError> {
    let outcome = |ok: bool| {
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILURE)
        }
    };
    match command {
        Command::CheckConfig(args) => Ok(check_config(&args.file)),
        Command::Serve(args) => {
            let mut options = ServeOptions::try_from(*args)?;
            options.workers = workers;
            let gateway = Gateway::bind(options).await?;
            let report = gateway.run(shutdown_signal()).await;
            if report.credentials_refused {
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            Ok(outcome(report.is_clean()))
        }
        #[cfg(feature = "demo")]
        Command::Emulator(args) => {
            demo::run_emulator(args, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => Ok(outcome(demo::run_demo(args, shutdown_signal()).await?)),
        #[cfg(feature = "demo")]
        Command::Upstream(args) => {
            demo::run_upstream(args, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::options::RedisUrl;

    /// The flags of the `serve` command `cli` holds.
    // Without the `demo` feature, `serve` is the only command.
    #[cfg_attr(not(feature = "demo"), allow(irrefutable_let_patterns))]
    fn serve_args(cli: Cli) -> Box<ServeArgs> {
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        args
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        // If this broke, log files and pipes would fill with escape codes, or NO_COLOR
        // (https://no-color.org) would be ignored.
        use std::ffi::OsStr;
        assert!(colours(true, None));
        assert!(colours(true, Some(OsStr::new(""))));
        assert!(!colours(true, Some(OsStr::new("1"))));
        assert!(!colours(false, None));
        assert!(!colours(false, Some(OsStr::new("1"))));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        // If this broke, clap would panic at run time on a malformed argument definition.
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn the_demo_commands_exist_only_with_the_demo_feature() {
        // If this broke, the lean proxy (`--no-default-features`) would offer commands it
        // cannot run, or the default build would lose the demo and the emulator.
        use clap::CommandFactory as _;
        let command = Cli::command();
        let names: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
        if cfg!(feature = "demo") {
            assert_eq!(
                names,
                ["serve", "check-config", "emulator", "demo", "upstream"]
            );
        } else {
            assert_eq!(names, ["serve", "check-config"]);
        }
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
        let args = serve_args(cli);
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
        let args = serve_args(cli);
        assert_eq!(args.redis_lease, Duration::from_secs(3));
        assert_eq!(args.redis_startup_wait, Duration::from_secs(5));
        assert!(!format!("{args:?}").contains("hunter2"));
        let mut bad = (*args).clone();
        bad.redis_url = Some(RedisUrl("http://:hunter2-secret@h/".to_owned()));
        bad.stytch.project_id = Some("project-test-1".to_owned());
        bad.stytch.secret = Some("secret-test-1".to_owned());
        let err = ServeOptions::try_from(bad).unwrap_err();
        assert!(err.is_config());
        assert!(!chain(&err).contains("hunter2"));
    }
}
