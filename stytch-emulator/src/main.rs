//! `stytch-emulator`: the Stytch B2B sessions API emulator on its own, with one seeded
//! organization.
//!
//! ```text
//! cargo run -p stytch-emulator -- --listen 127.0.0.1:4010 \
//!     [--project-id project-test-…] [--secret secret-test-…]
//! ```
//!
//! Prints the base URL, the test project's id and secret, and the ids and credentials of an
//! admin and a member with live sessions, then serves until ctrl-c. These are throwaway
//! credentials of a local emulator, printed on purpose for the demo.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use stytch_emulator::{Emulator, EmulatorConfig};

const USAGE: &str = "usage: stytch-emulator [--listen ADDR] [--project-id ID] [--secret SECRET]";

fn parse_args(args: impl Iterator<Item = String>) -> Result<EmulatorConfig, String> {
    let mut config = EmulatorConfig::new();
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
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        };
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
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
