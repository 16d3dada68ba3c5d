//! `stytch-emulator`: the Stytch B2B sessions API emulator on its own, with one seeded
//! organization.
//!
//! ```text
//! cargo run -p stytch-emulator -- --listen 127.0.0.1:4010 \
//!     [--project-id project-test-…] [--secret secret-test-…] \
//!     [--webhook-url http://127.0.0.1:8080/stytch/webhooks]… [--webhook-secret whsec_…]
//! ```
//!
//! Prints the base URL, the test project's id and secret, the webhook signing secret (given
//! with `--webhook-secret` or `STYTCH_EMULATOR_WEBHOOK_SECRET`, else generated), and the ids
//! and credentials of an admin and a member with live sessions, then serves until ctrl-c.
//! These are throwaway credentials of a local emulator, printed on purpose for the demo.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use stytch_emulator::{Emulator, EmulatorConfig, WebhookEndpoint, WebhookSecret};

const USAGE: &str = "usage: stytch-emulator [--listen ADDR] [--project-id ID] [--secret SECRET] \
[--webhook-url URL]... [--webhook-secret whsec_...]";
/// Environment variable read for the webhook secret when `--webhook-secret` is absent.
const WEBHOOK_SECRET_ENV: &str = "STYTCH_EMULATOR_WEBHOOK_SECRET";

/// The configuration from the arguments; `env_secret` is `STYTCH_EMULATOR_WEBHOOK_SECRET`.
fn parse_args(
    args: impl Iterator<Item = String>,
    env_secret: Option<String>,
) -> Result<EmulatorConfig, String> {
    let mut config = EmulatorConfig::new();
    let mut webhook_secret = env_secret;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{flag} needs a value\n{USAGE}")),
        };
        config = match flag.as_str() {
            "--listen" => config.listen(
                value
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("--listen {value}: {e}"))?,
            ),
            "--project-id" => config.project_id(value),
            "--secret" => config.secret(value),
            "--webhook-url" => config.webhook_endpoint(
                WebhookEndpoint::new(value).map_err(|e| format!("--webhook-url: {e}"))?,
            ),
            "--webhook-secret" => {
                webhook_secret = Some(value);
                config
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        };
    }
    if let Some(secret) = webhook_secret {
        // The message never repeats the value: it is a secret.
        let secret = WebhookSecret::parse(&secret)
            .map_err(|e| format!("--webhook-secret / {WEBHOOK_SECRET_ENV}: {e}"))?;
        config = config.webhook_secret(secret);
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let env_secret = std::env::var(WEBHOOK_SECRET_ENV).ok();
    let config = match parse_args(std::env::args().skip(1), env_secret) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let emulator = match Emulator::start(config).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!("cannot start the emulator: {error}");
            return ExitCode::FAILURE;
        }
    };

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

    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("cannot wait for ctrl-c: {error}");
    }
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|a| (*a).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn webhook_flags_are_repeatable_validated_and_secret() {
        // If this broke, the binary could not send webhooks to the gateway of the demo, or
        // would print a mistyped secret back in its error.
        let config = parse_args(
            args(&[
                "--webhook-url",
                "http://127.0.0.1:1/a",
                "--webhook-url=http://127.0.0.1:1/b",
            ]),
            None,
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("/a") && shown.contains("/b"), "{shown}");
        assert!(parse_args(args(&["--webhook-url", "ftp://x"]), None).is_err());
        let error = parse_args(args(&["--webhook-secret", "whsec_???"]), None).unwrap_err();
        assert!(!error.contains("???"), "{error}");
        assert!(
            parse_args(args(&[]), Some("nope".into())).is_err(),
            "env is read"
        );
        let flag = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(
            parse_args(args(&["--webhook-secret", flag]), Some("nope".into())).is_ok(),
            "the flag wins"
        );
    }
}
