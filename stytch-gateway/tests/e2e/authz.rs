//! Authorization through the binary: `serve --routes FILE` against the emulator process
//! (its seeded policy: `documents` with `editor` (read, create) and `viewer` (read)), the
//! refusals' answers, the step-up, the fail-closed start, the metrics, and bad routes files.

use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;
use reqwest::Method;

use super::{
    Gateway, PROJECT_ID, Proc, SECRET, Stytch, bounded, free_port, http, metrics_text, upstream,
    within,
};

/// The routes file of these tests.
const ROUTES: &str = r#"
[[route]]
match = "GET /api/orgs/{organization_id}/documents"
permission = { resource = "documents", action = "read" }
organization = "organization_id"

[[route]]
match = "DELETE /api/orgs/{organization_id}/documents/{document_id}"
permission = { resource = "documents", action = "delete" }
organization = "organization_id"

[[route]]
match = "GET /api/secure/{*rest}"
mfa = true

[[route]]
match = "GET /billing"
mfa = true
step_up = "/step-up"
"#;

/// A file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "stytch-gateway-e2e-{}-{}-{name}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A member of `org` holding `roles`, with a live session: (member_session_id, token).
async fn member(stytch: &Stytch, org: &str, email: &str, roles: &[&str]) -> (String, String) {
    let v = stytch
        .control(
            "members",
            serde_json::json!({"organization_id": org, "email_address": email, "roles": roles}),
        )
        .await;
    let s = stytch
        .control("sessions", serde_json::json!({"member_id": v["member_id"]}))
        .await;
    let field = |name: &str| s[name].as_str().unwrap().to_owned();
    (field("member_session_id"), field("session_token"))
}

/// `method path` with `credential`: the status, `WWW-Authenticate` and the JSON body (null
/// when not JSON).
async fn ask(
    gw: &Gateway,
    method: Method,
    path: &str,
    credential: &str,
) -> (StatusCode, String, serde_json::Value) {
    let res = http()
        .request(method, format!("{}{path}", gw.base))
        .bearer_auth(credential)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = res.json().await.unwrap_or(serde_json::Value::Null);
    (status, challenge, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routes_file_enforces_permissions_organizations_and_mfa_with_metrics() {
    // If this broke, the shipped binary would ignore its routes file (an editor could delete
    // documents, or a member read another organization's), a route asking for MFA would let a
    // one-factor session through (or never let a stepped-up one in), operators would not see
    // the decisions in /metrics, or a role changed at Stytch would not reach the gateway at
    // the --policy-refresh interval.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let routes = TempFile::new("routes.toml", ROUTES);
        // Two different ports (a port just released may be handed out again).
        let listen = free_port();
        let metrics = std::iter::repeat_with(free_port)
            .find(|port| *port != listen)
            .map(|port| format!("127.0.0.1:{port}"))
            .unwrap();
        let gw = Gateway::start_on(
            std::net::SocketAddr::from(([127, 0, 0, 1], listen)),
            &stytch,
            &format!("http://{}", up.addr),
            &[
                "--routes",
                routes.path(),
                "--metrics-listen",
                &metrics,
                "--policy-refresh",
                "300ms",
                "--redirect-allowlist",
                "/step-up",
            ],
            &[],
        )
        .await;
        let org = stytch.organization("acme").await;
        let other = stytch.organization("globex").await;
        let (session_id, editor) = member(&stytch, &org, "ed@acme.test", &["editor"]).await;
        let docs = format!("/api/orgs/{org}/documents");

        let (status, _, _) = ask(&gw, Method::GET, &docs, &editor).await;
        assert_eq!(status, StatusCode::OK, "an editor reads documents");
        let (status, _, body) = ask(&gw, Method::DELETE, &format!("{docs}/d1"), &editor).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "an editor may not delete");
        assert_eq!(body["error"], "insufficient_permission");
        assert_eq!(body["error_type"], "session_authorization_error");
        let elsewhere = format!("/api/orgs/{other}/documents");
        let (status, _, body) = ask(&gw, Method::GET, &elsewhere, &editor).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "another organization");
        assert_eq!(body["error_type"], "session_authorization_tenancy_error");
        assert_eq!(up.seen.lock().unwrap().len(), 1, "only the allowed reached");

        mfa_until_stepped_up(&stytch, &gw, &session_id, &editor).await;
        assert_eq!(up.seen.lock().unwrap().len(), 2);

        let text = metrics_text(&metrics).await;
        let denied = text.lines().any(|l| {
            l.starts_with("stytch_authz_decisions_total{")
                && l.contains("outcome=\"permission_denied\"")
                && l.contains("rule=\"DELETE /api/orgs/{organization_id}/documents/{document_id}\"")
        });
        assert!(denied, "no permission_denied decision in:\n{text}");
        assert!(text.contains("outcome=\"mfa_required\""), "{text}");
        assert!(text.contains("stytch_authz_policy_age_seconds"), "{text}");
        policy_change_seen(&stytch, &gw, &format!("{docs}/d1"), &editor).await;
        gw.assert_logs_clean(&[&editor]);
    })
    .await;
}

/// The MFA route answers RFC 9470's 401 to `token`'s one-factor session (a browser is sent
/// to the step-up page); once the session has a TOTP factor (the emulator's control API),
/// its fresh JWT passes.
async fn mfa_until_stepped_up(stytch: &Stytch, gw: &Gateway, session_id: &str, token: &str) {
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = browser
        .get(format!("{}/billing", gw.base))
        .header("accept", "text/html,application/xhtml+xml")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/step-up?return_to=%2Fbilling");
    let (status, challenge, _) = ask(gw, Method::GET, "/api/secure/report", token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains("error=\"insufficient_user_authentication\""),
        "{challenge}"
    );
    let stepped = stytch
        .control(
            &format!("sessions/{session_id}/factors"),
            serde_json::json!({"type": "totp", "delivery_method": "authenticator_app"}),
        )
        .await;
    let jwt = stepped["session_jwt"].as_str().unwrap();
    let (status, _, _) = ask(gw, Method::GET, "/api/secure/report", jwt).await;
    assert_eq!(status, StatusCode::OK, "the stepped-up JWT passes");
}

/// Stytch grants editors `documents:delete`: with `--policy-refresh 300ms` the gateway sees
/// it within seconds, and `token`'s delete at `path` passes.
async fn policy_change_seen(stytch: &Stytch, gw: &Gateway, path: &str, token: &str) {
    let editor = serde_json::json!({
        "role_id": "editor",
        "permissions": [{"resource_id": "documents", "actions": ["read", "create", "delete"]}],
    });
    stytch.control("rbac/roles", editor).await;
    let seen = within(Duration::from_secs(5), || async {
        gw.call(Method::DELETE, path, token).await == StatusCode::OK
    })
    .await;
    assert!(seen, "the changed policy was never fetched again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_never_loaded_answers_503_and_nothing_reaches_the_upstream() {
    // If this broke, a Stytch outage when the gateway starts would let every request through
    // the routes with a permission rule (fail open), or close the routes without one.
    bounded(async {
        let stytch = Stytch::start();
        stytch
            .control(
                "faults",
                serde_json::json!({
                    "endpoint": "rbac_policy",
                    "fault": {"type": "status", "status": 503},
                    "percent": 100,
                }),
            )
            .await;
        let up = upstream().await;
        let routes = TempFile::new("routes.toml", ROUTES);
        let args = [
            "--routes",
            routes.path(),
            "--redirect-allowlist",
            "/step-up",
        ];
        let gw = Gateway::start(&stytch, up.addr, &args).await;
        let org = stytch.organization("acme").await;
        let (_, editor) = member(&stytch, &org, "ed@acme.test", &["editor"]).await;
        let docs = format!("/api/orgs/{org}/documents");
        for _ in 0..3 {
            let (status, _, _) = ask(&gw, Method::GET, &docs, &editor).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        }
        assert!(up.seen.lock().unwrap().is_empty(), "a request reached");
        // A route without a rule is not affected; once Stytch answers, the rule applies.
        assert_eq!(
            gw.call(Method::GET, "/whoami", &editor).await,
            StatusCode::OK
        );
        stytch
            .control_with(Method::DELETE, "faults", serde_json::json!({}))
            .await;
        let recovered = within(Duration::from_secs(10), || async {
            gw.call(Method::GET, &docs, &editor).await == StatusCode::OK
        })
        .await;
        assert!(recovered, "the policy never loaded after Stytch came back");
    })
    .await;
}

#[test]
fn a_bad_routes_file_exits_2_naming_the_file_the_route_and_the_problem() {
    // If this broke, a typo in the routes file would start a gateway enforcing less than
    // the file says, or stop it with an error that does not say what to fix.
    let unknown = TempFile::new(
        "unknown.toml",
        "[[route]]\nmatch = \"GET /a\"\nmfa = true\n[[route]]\nmatch = \"GET /b\"\nmfaa = true\n",
    );
    let machines = TempFile::new(
        "machines.toml",
        "[[route]]\nmatch = \"GET /a\"\nmfa = true\nprincipals = [\"machines\"]\n",
    );
    let step_up = TempFile::new(
        "step-up.toml",
        "[[route]]\nmatch = \"GET /billing\"\nmfa = true\nstep_up = \"/step-up\"\n",
    );
    let pattern = TempFile::new(
        "pattern.toml",
        "[[route]]\nmatch = \"GET /a/{x\"\nmfa = true\n",
    );
    let cases: [(&TempFile, bool, &str); 4] = [
        (
            &unknown,
            false,
            "route #2 (\"GET /b\"): unknown field `mfaa`",
        ),
        (
            &machines,
            false,
            "route #1 (\"GET /a\"): a rule admitting machines can ask only for a permission",
        ),
        (
            &step_up,
            false,
            "route #1 (\"GET /billing\"): the step-up page is not on the redirect allowlist",
        ),
        (&pattern, true, "route #1 (\"GET /a/{x\"): "),
    ];
    for (file, by_env, problem) in cases {
        let mut args = vec!["serve", "--upstream", "http://127.0.0.1:9"];
        // Operators' default log level: the error is the one line on stderr.
        let mut env = vec![
            ("STYTCH_PROJECT_ID", PROJECT_ID),
            ("STYTCH_SECRET", SECRET),
            ("RUST_LOG", "info"),
        ];
        if by_env {
            env.push(("GATEWAY_ROUTES", file.path()));
        } else {
            args.extend(["--routes", file.path()]);
        }
        let mut p = Proc::spawn("badroutes", &args, &env);
        let status = p.wait(Duration::from_secs(10));
        let stderr = p.stderr();
        assert_eq!(status.code(), Some(2), "{problem}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let want = format!("stytch-gateway: routes file {}: {problem}", file.path());
        assert!(stderr.starts_with(&want), "{stderr}");
    }
    let mut p = Proc::spawn(
        "noroutes",
        &[
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--routes",
            "/nonexistent.toml",
        ],
        &[("STYTCH_PROJECT_ID", PROJECT_ID), ("STYTCH_SECRET", SECRET)],
    );
    assert_eq!(p.wait(Duration::from_secs(10)).code(), Some(2));
    assert!(
        p.stderr()
            .contains("routes file /nonexistent.toml: cannot be read")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_token_reaches_the_upstream_as_its_client_only_on_a_route_admitting_machines() {
    // If this broke, the upstream could not tell which M2M client called (or a client could
    // forge `X-Stytch-Client-Id` / `X-Stytch-Scopes`), or a machine token would pass where
    // the routes file says members only.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let routes = TempFile::new(
            "machines.toml",
            "[[route]]\nmatch = \"GET /api/reports\"\npermission = { resource = \"reports\", action = \"read\" }\nprincipals = [\"machines\"]\n",
        );
        let metrics = format!("127.0.0.1:{}", free_port());
        let gw = Gateway::start(
            &stytch,
            up.addr,
            &["--routes", routes.path(), "--metrics-listen", &metrics],
        )
        .await;
        let client = stytch
            .control("m2m/clients", serde_json::json!({"scopes": ["read:reports"]}))
            .await;
        let client = &client["m2m_client"];
        let (client_id, secret) = (
            client["client_id"].as_str().unwrap().to_owned(),
            client["client_secret"].as_str().unwrap().to_owned(),
        );
        let token: serde_json::Value = http()
            .post(format!("{}v1/public/{PROJECT_ID}/oauth2/token", stytch.base_url))
            .json(&serde_json::json!({
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        let r = http()
            .get(format!("{}/api/reports", gw.base))
            .bearer_auth(&token)
            .header("x-stytch-client-id", "m2m-client-evil")
            .header("x-stytch-scopes", "write:*")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // A members-only route: refused.
        let r = http()
            .get(format!("{}/whoami", gw.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let seen = up.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "the members-only request reached the upstream");
        assert_eq!(seen[0]["x-stytch-client-id"], client_id.as_str());
        assert_eq!(seen[0]["x-stytch-scopes"], "read:reports");
        assert!(seen[0].get("x-stytch-member-id").is_none());
        assert!(seen[0].get("authorization").is_none(), "the token reached the upstream");
        // Counted as a machine, not as a member.
        let text = metrics_text(&metrics).await;
        assert!(
            text.contains("stytch_auth_principals_total{principal=\"machine\"} 1"),
            "{text}"
        );
        assert!(!text.contains("principal=\"member\""), "{text}");
    })
    .await;
}
