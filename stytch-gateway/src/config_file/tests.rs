//! The configuration file's keys, precedence and errors, read as the command line would
//! (`cli::read_command_line`); the environment's part is in the e2e tests (a process each,
//! `tests/e2e/config.rs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::CommandFactory as _;

use super::{dotted, place, settable};
use crate::cli::{Cli, Command, checked_config, read_command_line};
use crate::error::GatewayError;
use crate::options::{ServeArgs, ServeOptions};

const SECRET: &str = "secret-test-config-file-do-not-print-dddddddddddd";
const WEBHOOK_SECRET: &str = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWRvLW5vdC1sb2chIQ==";
const REDIS_PASSWORD: &str = "redis-pass-config-do-not-print";

/// A directory of its own with `gateway.toml` holding `text`, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn with(text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "stytch-gateway-config-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("gateway.toml"), text).unwrap();
        Self(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("gateway.toml")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `serve --config FILE extra…` read as the binary reads it.
fn serve(file: &Path, extra: &[&str]) -> Result<ServeArgs, GatewayError> {
    let mut argv: Vec<OsString> = ["stytch-gateway", "serve", "--config"]
        .map(OsString::from)
        .to_vec();
    argv.push(file.as_os_str().to_owned());
    argv.extend(extra.iter().map(OsString::from));
    match read_command_line(argv) {
        Ok((cli, _, _)) => match cli.command {
            Command::Serve(args) => Ok(*args),
            _ => panic!("not serve"),
        },
        Err(super::CliError::Config(err)) => Err(err),
        Err(super::CliError::Clap(err)) => panic!("usage error: {err}"),
    }
}

/// The one-line error of a file holding `text`.
fn error_of(text: &str) -> String {
    let dir = Dir::with(text);
    let err = serve(&dir.file(), &[]).expect_err(text);
    assert!(err.is_config(), "{err}");
    let line = crate::error::chain(&err);
    assert!(line.contains("gateway.toml"), "{line}");
    line
}

const BASE: &str = r#"
upstream = "http://127.0.0.1:3000"
[stytch]
project_id = "project-test-11111111-2222-4333-8444-555555555555"
secret = "secret-test-config-file-do-not-print-dddddddddddd"
"#;

#[test]
fn every_flag_has_one_key_and_the_tables_group_stytch_redis_and_webhook() {
    // If this broke, a serve flag could not be set from the file (or two flags would share a
    // key), or the documented key of a flag would not be the one read.
    let mut command = Cli::command();
    command.build();
    let serve = command.find_subcommand("serve").unwrap();
    let keys: Vec<String> = settable(serve)
        .map(|(_, long)| {
            let (table, key) = place(long);
            dotted(table, &key)
        })
        .collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
    let flags = serve
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|long| !["config", "help", "version"].contains(long))
        .count();
    assert_eq!(keys.len(), flags, "{keys:?}");
    for key in [
        "listen",
        "upstream_timeout",
        "trusted_proxy",
        "access_log",
        "log_format",
        "routes",
        "stytch.project_id",
        "stytch.secret",
        "stytch.base_url",
        "stytch.deadline",
        "redis.url",
        "redis.lease",
        "webhook.path",
        "webhook.secret",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
}

#[test]
fn the_files_values_reach_serve_and_a_flag_overrides_them() {
    // If this broke, the file would be ignored, a flag could not override it, or a value
    // the file leaves out would not keep its default.
    let dir = Dir::with(&format!(
        r#"{BASE}deadline = "1s"
[redis]
lease = "4s"
[webhook]
path = "/stytch/webhooks"
secret = "{WEBHOOK_SECRET}"
"#
    ));
    let text = std::fs::read_to_string(dir.file()).unwrap().replace(
        "[stytch]",
        "upstream_timeout = \"5s\"\npublic = [\"/assets/\", \"/static/\"]\nno_jwt = true\nmax_connections = 1000\naccess_log = \"off\"\n[stytch]",
    );
    std::fs::write(dir.file(), text).unwrap();
    let args = serve(&dir.file(), &["--upstream-timeout", "7s"]).unwrap();
    assert_eq!(args.upstream.as_deref(), Some("http://127.0.0.1:3000"));
    assert_eq!(
        args.upstream_timeout,
        Duration::from_secs(7),
        "the flag wins"
    );
    assert_eq!(args.public, ["/assets/", "/static/"]);
    assert!(args.no_jwt);
    assert_eq!(args.max_connections, 1000);
    assert_eq!(args.keepalive_timeout, Duration::from_secs(75), "a default");
    assert_eq!(args.redis_lease, Duration::from_secs(4));
    assert_eq!(args.stytch.stytch_deadline, Duration::from_secs(1));
    let options = ServeOptions::try_from(args).unwrap();
    assert!(!options.access_log);
    assert_eq!(
        options.stytch.project_id(),
        "project-test-11111111-2222-4333-8444-555555555555"
    );
    assert_eq!(
        options.webhook.as_ref().map(|(p, _)| p.as_str()),
        Some("/stytch/webhooks")
    );
}

#[test]
fn unknown_keys_and_refused_values_name_the_file_and_the_key() {
    // If this broke, a typo in the file would be silently ignored (the gateway running
    // with a default the operator thought they had changed), or an error would not say
    // where to look.
    let cases = [
        ("upstream_timout = \"5s\"", "unknown key `upstream_timout`"),
        (
            "secret = \"x\"",
            "did you mean `webhook.secret` or `stytch.secret`?",
        ),
        ("[stytch]\nsecrett = \"x\"", "unknown key `stytch.secrett`"),
        ("upstream_timeout = \"soon\"", "`upstream_timeout`"),
        ("upstream_timeout = \"0s\"", "must be greater than zero"),
        ("no_jwt = \"yes\"", "`no_jwt` must be true or false"),
        (
            "listen = [\"127.0.0.1:1\", \"127.0.0.1:2\"]",
            "`listen` takes one value",
        ),
        (
            "trusted_proxy = [\"10.0.0.0/8\", \"nowhere\"]",
            "`trusted_proxy`",
        ),
        ("stytch = \"x\"", "`stytch` must be a table"),
        ("public = [{ a = 1 }]", "`public` must be a string"),
        ("upstream = ", "line 1"),
    ];
    for (text, needle) in cases {
        let line = error_of(text);
        assert!(line.contains(needle), "{text}: {line}");
    }
    let missing = serve(Path::new("/nonexistent/gateway.toml"), &[]).unwrap_err();
    assert!(crate::error::chain(&missing).contains("cannot be read"));
}

#[test]
fn a_secrets_refused_value_is_never_repeated() {
    // If this broke, a mistyped secret (or a secret pasted under the wrong key) would be
    // printed in the error that refuses it.
    let misplaced = error_of(&format!("password = \"{SECRET}\"\n{BASE}"));
    assert!(misplaced.contains("unknown key `password`"), "{misplaced}");
    assert!(!misplaced.contains(SECRET), "{misplaced}");
    let dir = Dir::with(&format!(
        "{BASE}[webhook]\npath = \"/h\"\nsecret = \"{SECRET}\""
    ));
    let err = ServeOptions::try_from(serve(&dir.file(), &[]).unwrap()).unwrap_err();
    let line = crate::error::chain(&err);
    assert!(
        line.contains("webhook secret") && !line.contains(SECRET),
        "{line}"
    );
}

#[test]
fn routes_live_in_the_file_and_in_one_place_only() {
    // If this broke, the file's [[route]] tables would be ignored (routes open that the
    // operator meant to protect), or two sources of routes would be merged silently.
    let routes = r#"
[[route]]
match = "GET /api/orgs/{organization_id}/documents"
permission = { resource = "documents", action = "read" }
organization = "organization_id"
"#;
    let dir = Dir::with(&format!("{BASE}{routes}"));
    let options = ServeOptions::try_from(serve(&dir.file(), &[]).unwrap()).unwrap();
    assert_eq!(options.routes.len(), 1);
    assert_eq!(options.routes_file.as_deref(), Some(dir.file().as_path()));

    let line = error_of(&format!("routes = \"r.toml\"\n{BASE}{routes}"));
    assert!(line.contains("keep one"), "{line}");
    let err = serve(&dir.file(), &["--routes", "/elsewhere.toml"]).unwrap_err();
    assert!(crate::error::chain(&err).contains("--routes"), "{err}");
    let bad = error_of(&format!("{BASE}[[route]]\nmatch = \"GET /x\"\n"));
    assert!(
        bad.contains("route #1") && bad.contains("asks for nothing"),
        "{bad}"
    );
}

#[test]
fn a_relative_path_is_relative_to_the_file() {
    // If this broke, `routes = "routes.toml"` next to the config file would be looked for in
    // the working directory (systemd's is /), and the gateway would not start.
    let dir = Dir::with(&format!("routes = \"routes.toml\"\n{BASE}"));
    std::fs::write(
        dir.0.join("routes.toml"),
        "[[route]]\nmatch = \"GET /billing\"\nmfa = true\n",
    )
    .unwrap();
    let options = ServeOptions::try_from(serve(&dir.file(), &[]).unwrap()).unwrap();
    assert_eq!(options.routes.len(), 1);
    assert_eq!(options.routes_file, Some(dir.0.join("routes.toml")));
}

#[test]
fn check_config_prints_each_value_with_its_source_and_no_secret() {
    // If this broke, check-config would print the project secret, the webhook secret or a
    // Redis password to a terminal (or a CI log), or not say where a value came from.
    let dir = Dir::with(&format!(
        r#"{BASE}[redis]
url = "redis://:{REDIS_PASSWORD}@127.0.0.1:6379/"
[webhook]
path = "/stytch/webhooks"
secret = "{WEBHOOK_SECRET}"

[[route]]
match = "GET /billing"
mfa = true
"#
    ));
    let printed = checked_config(&dir.file()).unwrap();
    for secret in [SECRET, REDIS_PASSWORD, WEBHOOK_SECRET, "ZTJlLXdlYmhvb2st"] {
        assert!(!printed.contains(secret), "{printed}");
    }
    for line in [
        "upstream = \"http://127.0.0.1:3000\"  # file",
        "upstream_timeout = \"30s\"  # default",
        "no_jwt = false  # default",
        "secret = \"<redacted>\"  # file",
        "url = \"redis://***@127.0.0.1:6379/\"  # file",
        "# upstream_ca (unset)",
        "[stytch]",
        "# authorization routes: 1",
        "#   route #1: GET /billing",
    ] {
        assert!(printed.contains(line), "{line} not in:\n{printed}");
    }
    assert!(
        printed.lines().next().unwrap().ends_with("valid"),
        "{printed}"
    );
}
