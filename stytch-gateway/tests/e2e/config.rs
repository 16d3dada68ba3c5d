//! Issue #27's configuration file through the binary: `serve --config FILE` with the
//! environment overriding the file, routes and logging settings in it; `check-config FILE`
//! exiting 0 with the effective configuration (no secret) or 2 with the problem.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use http::StatusCode;

use super::{BIN, Gateway, PROJECT_ID, Proc, SECRET, Stytch, bounded, free_port, upstream};

/// A configuration file in a directory of its own, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "stytch-gateway-e2e-config-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("gateway.toml"), text).unwrap();
        Self(dir)
    }

    fn path(&self) -> String {
        self.0.join("gateway.toml").display().to_string()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_reads_its_config_file_and_the_environment_overrides_it() {
    // If this broke, a deployment configured by file would run on other settings than
    // written (or than its environment says, the usual way to override one value), its
    // routes would not be enforced, or its logging settings would be ignored.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let in_file = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let from_env = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = ConfigFile::new(&format!(
            r#"listen = "{in_file}"
upstream = "http://{}"
log_format = "json"
access_log = "off"

[stytch]
project_id = "{PROJECT_ID}"
base_url = "{}"

[[route]]
match = "GET /billing"
mfa = true
"#,
            up.addr, stytch.base_url
        ));
        let env = [
            ("GATEWAY_LISTEN", from_env.to_string()),
            ("STYTCH_SECRET", SECRET.to_owned()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let proc = Proc::spawn("config", &["serve", "--config", &config.path()], &env);
        let gw = Gateway::ready(proc, format!("http://{from_env}")).await;
        assert!(
            std::net::TcpStream::connect(in_file).is_err(),
            "the file's listen address was used"
        );
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let billing = gw.call(reqwest::Method::GET, "/billing", &token).await;
        assert_eq!(billing, StatusCode::UNAUTHORIZED, "the file's MFA route");
        assert_eq!(
            gw.call(reqwest::Method::GET, "/x", &token).await,
            StatusCode::OK
        );
        let logs = gw.proc.stderr();
        let first = logs.lines().next().unwrap_or_default();
        assert!(
            serde_json::from_str::<serde_json::Value>(first).is_ok(),
            "{first}"
        );
        assert!(!logs.contains("stytch_gateway::access"), "access_log = off");
        gw.assert_logs_clean(&[&token]);
    })
    .await;
}

/// `check-config FILE` with `env`: its exit code, stdout and stderr.
fn check_config(file: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(["check-config", file])
        .env_remove("STYTCH_PROJECT_ID")
        .env_remove("STYTCH_SECRET")
        .env_remove("GATEWAY_UPSTREAM");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn check_config_prints_the_effective_configuration_or_exits_2_naming_the_problem() {
    // If this broke, an operator could not validate a file before a deploy, would see the
    // project secret printed, or could not tell which value came from where.
    let config = ConfigFile::new(&format!(
        "upstream = \"http://127.0.0.1:3000\"\n[stytch]\nproject_id = \"{PROJECT_ID}\"\n"
    ));
    let env = [
        ("STYTCH_SECRET", SECRET),
        ("GATEWAY_KEEPALIVE_TIMEOUT", "20s"),
    ];
    let (code, stdout, stderr) = check_config(&config.path(), &env);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("upstream = \"http://127.0.0.1:3000\"  # file"),
        "{stdout}"
    );
    assert!(stdout.contains("keepalive_timeout = \"20s\"  # env GATEWAY_KEEPALIVE_TIMEOUT"));
    assert!(stdout.contains("secret = \"<redacted>\"  # env STYTCH_SECRET"));
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));

    let (code, _, stderr) = check_config(&config.path(), &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("STYTCH_SECRET"), "{stderr}");
    let typo = ConfigFile::new("upstream = \"http://127.0.0.1:3000\"\nkeepalive = \"20s\"\n");
    let (code, stdout, stderr) = check_config(&typo.path(), &env);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&typo.path()) && stderr.contains("unknown key `keepalive`"),
        "{stderr}"
    );
}
