//! `stytch-emulator`: the Stytch B2B sessions API emulator on its own, with one seeded
//! organization.
//!
//! ```text
//! cargo run -p stytch-emulator -- --listen 127.0.0.1:4010 \
//!     [--project-id project-test-…] [--webhook-url http://127.0.0.1:8080/stytch/webhooks]…
//! # secrets from the environment, so that they do not show in `ps`:
//! STYTCH_EMULATOR_SECRET=secret-test-… STYTCH_EMULATOR_WEBHOOK_SECRET=whsec_… stytch-emulator
//! ```
//!
//! Prints the base URL, the test project's id and secret, the webhook signing secret (given
//! with `--webhook-secret` or `STYTCH_EMULATOR_WEBHOOK_SECRET`, else generated), and the ids
//! and credentials of an admin and a member with live sessions, then serves until ctrl-c.
//! These are throwaway credentials of a local emulator, printed on purpose for the demo.
//! `--help` lists every flag and its environment variable, never a secret's value.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use stytch_emulator::{
    DEFAULT_PROJECT_ID, DEFAULT_SECRET, Emulator, EmulatorConfig, WebhookEndpoint, WebhookSecret,
};

/// Environment variable read for the project secret when `--secret` is absent.
const SECRET_ENV: &str = "STYTCH_EMULATOR_SECRET";
/// Environment variable read for the webhook secret when `--webhook-secret` is absent.
const WEBHOOK_SECRET_ENV: &str = "STYTCH_EMULATOR_WEBHOOK_SECRET";

/// An emulator of Stytch's B2B API (sessions, RBAC, M2M, webhooks) for tests and demos.
///
/// Serves on a loopback port with one seeded organization (an admin and a member with live
/// sessions) and prints the credentials to point a client at it. The control API under
/// /emulator/v1/ (same Basic auth) drives it. Stops on ctrl-c.
#[derive(Debug, Parser)]
#[command(name = "stytch-emulator", version)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "STYTCH_EMULATOR_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:0"
    )]
    listen: SocketAddr,

    /// Project id of the emulated project (`project-live-…` makes `…-live-…` ids).
    #[arg(
        long,
        env = "STYTCH_EMULATOR_PROJECT_ID",
        value_name = "ID",
        default_value = DEFAULT_PROJECT_ID
    )]
    project_id: String,

    /// Project secret clients authenticate with (HTTP Basic). Prefer the environment
    /// variable: a flag shows in `ps`. Default: the emulator's fixed test secret.
    #[arg(long, env = SECRET_ENV, value_name = "SECRET", hide_env_values = true)]
    secret: Option<String>,

    /// URL webhooks are sent to (repeat the flag for several endpoints).
    #[arg(long = "webhook-url", value_name = "URL", value_parser = parse_webhook_url)]
    webhook_urls: Vec<WebhookEndpoint>,

    /// Secret webhooks are signed with, `whsec_` followed by base64. Prefer the environment
    /// variable: a flag shows in `ps`. Default: a fresh one, printed at start.
    #[arg(
        long,
        env = WEBHOOK_SECRET_ENV,
        value_name = "whsec_…",
        hide_env_values = true
    )]
    webhook_secret: Option<String>,
}

/// A webhook URL, validated as the emulator does.
fn parse_webhook_url(value: &str) -> Result<WebhookEndpoint, String> {
    WebhookEndpoint::new(value).map_err(|e| e.to_string())
}

impl Cli {
    /// The emulator's configuration.
    ///
    /// # Errors
    ///
    /// A malformed webhook secret. It is checked here rather than by a clap value parser
    /// because clap's message would repeat the (secret) value.
    fn config(self) -> Result<EmulatorConfig, clap::Error> {
        let mut config = EmulatorConfig::new()
            .listen(self.listen)
            .project_id(self.project_id)
            .secret(self.secret.unwrap_or_else(|| DEFAULT_SECRET.to_owned()));
        for endpoint in self.webhook_urls {
            config = config.webhook_endpoint(endpoint);
        }
        if let Some(secret) = self.webhook_secret {
            let secret = WebhookSecret::parse(&secret).map_err(|e| {
                Self::command().error(
                    clap::error::ErrorKind::ValueValidation,
                    format!("--webhook-secret / {WEBHOOK_SECRET_ENV}: {e}"),
                )
            })?;
            config = config.webhook_secret(secret);
        }
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Exits 0 for --help and --version, 2 with clap's message for a bad command line.
    let config = Cli::parse().config().unwrap_or_else(|error| error.exit());
    let emulator = match Emulator::start(config).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!("cannot start the emulator: {error}");
            return ExitCode::FAILURE;
        }
    };
    seed_and_print(&emulator);
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("cannot wait for ctrl-c: {error}");
    }
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

/// Seeds one organization with an admin and a member (sessions of a day) and prints what a
/// client needs.
fn seed_and_print(emulator: &Emulator) {
    let org = emulator.create_organization("Acme Inc", "acme");
    let admin = emulator.create_member(&org, "admin@acme.test", &["stytch_admin"]);
    let member = emulator.create_member(&org, "member@acme.test", &[]);
    let day = Duration::from_secs(24 * 60 * 60);
    let admin_session = emulator.create_session_with(&admin, day, Default::default());
    let member_session = emulator.create_session_with(&member, day, Default::default());

    println!("Stytch emulator listening");
    println!("  STYTCH_BASE_URL={}", emulator.base_url());
    println!("  STYTCH_PROJECT_ID={}", emulator.project_id());
    println!("  STYTCH_SECRET={}", emulator.secret());
    println!(
        "  STYTCH_WEBHOOK_SECRET={}",
        emulator.webhook_secret().expose_secret()
    );
    for endpoint in emulator.webhook_endpoints() {
        println!("webhooks to {}", endpoint.url());
    }
    println!("organization {org} (slug acme)");
    for (role, session) in [("admin", &admin_session), ("member", &member_session)] {
        println!("{role}: member_id {}", session.member_id);
        println!("  member_session_id {}", session.member_session_id);
        println!("  session_token {}", session.session_token.expose_secret());
        println!("  session_jwt {}", session.session_jwt.expose_secret());
    }
    println!(
        "control API: {}emulator/v1/ (same Basic auth); ctrl-c to stop",
        emulator.base_url()
    );
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("stytch-emulator").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        // If this broke, clap would panic at start-up on a conflicting flag definition.
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_keeps_its_name_and_meaning() {
        // If this broke, scripts and the demo starting the emulator with these flags would
        // fail or get another configuration.
        let cli = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--project-id=project-live-1",
            "--secret",
            "s3cr3t",
            "--webhook-url",
            "http://127.0.0.1:1/a",
            "--webhook-url=http://127.0.0.1:1/b",
            "--webhook-secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])
        .unwrap();
        assert_eq!(cli.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(cli.project_id, "project-live-1");
        assert_eq!(cli.secret.as_deref(), Some("s3cr3t"));
        let urls: Vec<&str> = cli.webhook_urls.iter().map(WebhookEndpoint::url).collect();
        assert_eq!(urls, ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]);
        assert!(cli.webhook_secret.is_some());
        let shown = format!("{:?}", cli.config().unwrap());
        assert!(
            shown.contains("project-live-1") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn bad_values_are_refused_without_echoing_secrets() {
        // If this broke, a mistyped webhook secret would be printed back to the terminal
        // (and to CI logs), or a bad URL or address accepted.
        let error = parse(&["--webhook-secret", "whsec_???"])
            .unwrap()
            .config()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert_eq!(error.exit_code(), 2);
        assert!(!error.to_string().contains("???"), "{error}");
        assert!(parse(&["--webhook-url", "ftp://x"]).is_err());
        assert!(parse(&["--listen", "nowhere"]).is_err());
    }

    #[test]
    fn unknown_flags_are_reported_as_unknown_and_help_is_not_an_error() {
        // If this broke, `--bogus` would again be reported as "needs a value", and `--help`
        // would exit 2 as if it were a mistake.
        let error = parse(&["--bogus"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnknownArgument);
        assert_eq!(error.exit_code(), 2);
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        assert_eq!(help.exit_code(), 0);
    }

    #[test]
    fn help_names_every_flag_and_the_secret_environment_variables() {
        // If this broke, users would not learn from --help that secrets can come from the
        // environment (keeping them out of `ps`).
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--listen",
            "--project-id",
            "--secret",
            "--webhook-url",
            "--webhook-secret",
            SECRET_ENV,
            WEBHOOK_SECRET_ENV,
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
    }
}
