//! Issue #27's logs: the access log's line per request (its fields, parsed), request ids,
//! no colour in a pipe or under `NO_COLOR`, and an upstream failure's cause in words.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::StatusCode;
use serde_json::Value as Json;

use super::{
    BIN, Gateway, PROJECT_ID, SECRET, Stytch, bounded, free_port, http, last_seen, upstream, within,
};

/// The access log's lines in `logs` (JSON, one object per line).
fn access_lines(logs: &str) -> Vec<Json> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|l| l["target"] == "stytch_gateway::access")
        .collect()
}

/// The access log line of the request whose path is `path`, once written.
async fn line_for(gw: &Gateway, path: &str) -> Json {
    let mut found = None;
    let written = within(Duration::from_secs(10), || {
        found = access_lines(&gw.proc.stderr())
            .into_iter()
            .find(|l| l["path"] == path);
        std::future::ready(found.is_some())
    })
    .await;
    assert!(
        written,
        "no access log line for {path}:\n{}",
        gw.proc.stderr()
    );
    found.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_has_one_line_per_request_with_its_fields_and_no_credential() {
    // If this broke, operators would lose the one line per request they search by status,
    // path, member or request id (or find a query string, token or cookie in it), or the
    // upstream's logs and the gateway's would not share a request id.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &["--log-format", "json"]).await;
        let org = stytch.organization("acme").await;
        let (member_id, token) = stytch.member(&org, "bob@acme.test", &[]).await;

        let answer = http()
            .get(format!("{}/orders?token={token}&page=2", gw.base))
            .header("cookie", format!("stytch_session={token}"))
            .header("x-request-id", "client-chosen-id")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let returned = answer.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let seen = last_seen(&up);
        assert_eq!(seen["x-request-id"], returned.as_str());
        assert_ne!(
            returned, "client-chosen-id",
            "an untrusted client's id is replaced"
        );

        let line = line_for(&gw, "/orders").await;
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["status"], 200);
        assert_eq!(line["version"], "HTTP/1.1");
        assert_eq!(line["request_id"], returned.as_str());
        assert_eq!(line["member_id"], member_id.as_str());
        assert_eq!(
            line["member_session_id"],
            seen["x-stytch-member-session-id"].to_str().unwrap()
        );
        assert_eq!(line["bytes"], "upstream\n".len());
        let (total, upstream_ms) = (&line["duration_ms"], &line["upstream_ms"]);
        assert!(
            total.as_f64().unwrap() >= upstream_ms.as_f64().unwrap(),
            "{line}"
        );
        assert!(line.get("refused").is_none() && line.get("aborted").is_none());

        let refused = http()
            .get(format!("{}/private", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(refused.headers().contains_key("x-request-id"));
        let line = line_for(&gw, "/private").await;
        assert_eq!(line["status"], 401);
        assert_eq!(line["refused"], "missing_credential");
        assert!(line.get("member_id").is_none() && line.get("upstream_ms").is_none());

        let logs = gw.proc.stderr();
        assert!(!logs.contains("page=2"), "a query string reached the logs");
        gw.assert_logs_clean(&[&token]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxys_request_id_is_kept_and_the_access_log_can_be_off() {
    // If this broke, a load balancer's request id would not follow the request into the
    // upstream, or `--access-log off` would still write a line per request.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let args = [
            "--log-format",
            "json",
            "--access-log",
            "off",
            "--trusted-proxy",
            "127.0.0.1",
        ];
        let gw = Gateway::start(&stytch, up.addr, &args).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let answer = http()
            .get(format!("{}/traced", gw.base))
            .bearer_auth(&token)
            .header("x-request-id", "lb-5f2c-11ee")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()["x-request-id"], "lb-5f2c-11ee");
        assert_eq!(last_seen(&up)["x-request-id"], "lb-5f2c-11ee");
        let forged = http()
            .get(format!("{}/traced", gw.base))
            .bearer_auth(&token)
            .header("x-request-id", "two words")
            .send()
            .await
            .unwrap();
        assert_ne!(forged.headers()["x-request-id"], "two words");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(access_lines(&gw.proc.stderr()).is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_upstream_is_logged_as_connection_refused() {
    // If this broke, a 502's log line would read `client error (Connect)` and
    // `Some("tcp connect error")` instead of naming the refused address.
    bounded(async {
        let stytch = Stytch::start();
        let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let gw = Gateway::start(&stytch, closed, &[]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        assert_eq!(
            gw.call(reqwest::Method::GET, "/x", &token).await,
            StatusCode::BAD_GATEWAY
        );
        let logs = gw.proc.stderr();
        let line = logs
            .lines()
            .find(|l| l.contains("upstream unavailable"))
            .unwrap_or_else(|| panic!("{logs}"));
        assert!(
            line.contains(&format!("connection refused to {closed}")),
            "{line}"
        );
        assert!(
            !line.contains("client error") && !line.contains("Some("),
            "{line}"
        );
        let written = within(Duration::from_secs(5), || async {
            gw.proc.stderr().lines().any(|l| {
                l.contains("stytch_gateway::access")
                    && l.contains(r#"path="/x""#)
                    && l.contains("status=502")
            })
        })
        .await;
        assert!(
            written,
            "no access log line for the 502:\n{}",
            gw.proc.stderr()
        );
    })
    .await;
}

/// Runs the gateway with a wrong secret (it logs at INFO and ERROR, then exits) under a
/// pseudo-terminal (`script`), `NO_COLOR` set to `no_color` if any; what the terminal got.
fn on_a_terminal(stytch: &Stytch, no_color: Option<&str>) -> String {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let command = format!("{BIN} serve --listen {listen} --upstream http://127.0.0.1:9");
    let mut script = Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .env("RUST_LOG", "info")
        .env("STYTCH_PROJECT_ID", PROJECT_ID)
        .env(
            "STYTCH_SECRET",
            "secret-test-wrong-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        )
        .env("STYTCH_BASE_URL", &stytch.base_url)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let out = script.output().expect("script(1) from util-linux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colours_only_on_a_terminal_and_never_with_no_color_or_in_a_pipe() {
    // If this broke, log files and `| grep` would fill with escape codes, or NO_COLOR
    // (https://no-color.org) would be ignored on a terminal.
    let stytch = Stytch::start();
    let coloured = on_a_terminal(&stytch, None);
    assert!(coloured.contains("gateway listening"), "{coloured}");
    assert!(
        coloured.contains('\u{1b}'),
        "no colour on a terminal:\n{coloured}"
    );
    let plain = on_a_terminal(&stytch, Some("1"));
    assert!(plain.contains("gateway listening"), "{plain}");
    assert!(
        !plain.contains('\u{1b}'),
        "colour despite NO_COLOR:\n{plain}"
    );
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port())).to_string();
    let piped = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &listen,
            "--upstream",
            "http://127.0.0.1:9",
        ])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env("STYTCH_PROJECT_ID", PROJECT_ID)
        .env("STYTCH_SECRET", format!("{SECRET}-wrong"))
        .env("STYTCH_BASE_URL", &stytch.base_url)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let piped = String::from_utf8_lossy(&piped.stderr);
    assert!(piped.contains("gateway listening"), "{piped}");
    assert!(!piped.contains('\u{1b}'), "colour in a pipe:\n{piped}");
}
