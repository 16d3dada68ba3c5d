//! The layer's authorization verdicts against Stytch's official Python SDK's (`stytch` on
//! PyPI, run by `tests/sdk/verdict.py`), case by case, over a matrix of members (default,
//! demo, project-custom roles with `*` actions, an organization's custom role, several
//! roles, an unknown role), resources (Stytch's reserved ones and custom ones), actions and
//! organizations (the member's own and another). Both judge the same session JWTs against
//! the same emulator: the SDK with its local check (`authenticate_jwt_local` with an
//! `authorization_check`), the layer with the `Authorizer` of a served app.
//!
//! If a verdict differs, the layer allows (or refuses) what Stytch's own SDK would not.
//!
//! Needs python3 and PyPI (`tests/sdk/setup.sh` makes a venv under the cargo target dir).
//! Without them the test is skipped with a message, unless `CI` is set: then it fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use serde_json::{Value, json};
use stytch_emulator::{RbacPermission, RbacRole};
use tower_stytch::MemberSession;
use tower_stytch::authz::{Authorizer, Denied};

use crate::support::{World, serve};

/// The venv's python, or `None` (skip) when the harness cannot be set up outside CI.
fn sdk_python() -> Option<PathBuf> {
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/setup.sh");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-venv");
    let why = match Command::new("bash").arg(&setup).arg(&venv).output() {
        Ok(out) if out.status.success() => {
            let python = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            return Some(PathBuf::from(python));
        }
        Ok(out) => format!(
            "{} failed ({}): {}",
            setup.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(error) => format!("cannot run bash {}: {error}", setup.display()),
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the Python SDK check: {why}"
    );
    eprintln!("skipping the Python SDK check: {why}");
    None
}

/// The SDK's verdicts on `cases`, in order.
/// Blocking: call it off the runtime that serves the emulator.
fn sdk_verdicts(
    python: &Path,
    base_url: &str,
    project_id: &str,
    secret: &str,
    cases: &[Value],
) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/verdict.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(["--base-url", base_url])
        .args(["--project-id", project_id])
        .env("STYTCH_SECRET", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run verdict.py");
    let input = serde_json::to_vec(cases).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "verdict.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            v["verdict"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct Check {
    organization: String,
    resource: String,
    action: String,
}

/// `GET /check?organization=&resource=&action=`: the layer's verdict, in the SDK's words.
fn judge() -> Router {
    Router::new().route(
        "/check",
        get(
            |session: MemberSession, authorizer: Authorizer, Query(c): Query<Check>| async move {
                match authorizer
                    .check_in(&session, &c.organization, &c.resource, &c.action)
                    .await
                {
                    Ok(()) => "allowed".to_owned(),
                    Err(Denied::Organization) => "tenancy_mismatch".to_owned(),
                    Err(Denied::Permission { .. }) => "permission_denied".to_owned(),
                    Err(other) => format!("error:{other}"),
                }
            },
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_layers_rbac_verdicts_equal_stytchs_python_sdk_case_by_case() {
    let Some(python) = sdk_python() else { return };
    let w = World::new().await;
    w.emulator.set_project_role(RbacRole::new(
        "reports_admin",
        vec![
            RbacPermission::new("reports", &["*"]),
            RbacPermission::new("documents", &["read"]),
        ],
    ));
    w.emulator
        .set_organization_roles(
            &w.org,
            vec![RbacRole::new(
                "librarian",
                vec![RbacPermission::new("documents", &["delete", "read"])],
            )],
        )
        .unwrap();
    let members: Vec<(&str, Vec<&str>)> = vec![
        ("plain@acme.test", vec![]),
        ("admin2@acme.test", vec!["stytch_admin"]),
        ("editor@acme.test", vec!["editor"]),
        ("viewer@acme.test", vec!["viewer"]),
        ("both@acme.test", vec!["editor", "viewer"]),
        ("reports@acme.test", vec!["reports_admin"]),
        ("librarian@acme.test", vec!["librarian"]),
        ("ghost@acme.test", vec!["no_such_role"]),
    ];
    let sessions: Vec<_> = members
        .iter()
        .map(|(email, roles)| {
            let id = w.emulator.create_member(&w.org, email, roles);
            w.emulator.create_session(&id)
        })
        .collect();
    let resources = [
        "documents",
        "reports",
        "stytch.member",
        "stytch.self",
        "stytch.organization",
    ];
    let actions = ["read", "delete", "create", "revoke-sessions", "*"];
    let organizations = [w.org.clone(), w.other_org.clone()];
    let mut cases = Vec::new();
    for session in &sessions {
        for resource in resources {
            for action in actions {
                for organization in &organizations {
                    cases.push(json!({
                        "kind": "session",
                        "session_jwt": session.session_jwt.expose_secret(),
                        "organization_id": organization,
                        "resource_id": resource,
                        "action": action,
                    }));
                }
            }
        }
    }
    let (base_url, project_id, secret) = (
        w.emulator.base_url(),
        w.emulator.project_id().to_owned(),
        w.emulator.secret().to_owned(),
    );
    let sdk_cases = cases.clone();
    let sdk = tokio::task::spawn_blocking(move || {
        sdk_verdicts(&python, &base_url, &project_id, &secret, &sdk_cases)
    })
    .await
    .unwrap();
    let s = serve(w.builder().build().unwrap(), judge()).await;
    let mut allowed = 0;
    for (case, sdk) in cases.iter().zip(&sdk) {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("organization", case["organization_id"].as_str().unwrap())
            .append_pair("resource", case["resource_id"].as_str().unwrap())
            .append_pair("action", case["action"].as_str().unwrap())
            .finish();
        let res = s
            .http
            .get(s.url(&format!("/check?{query}")))
            .bearer_auth(case["session_jwt"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        let ours = res.text().await.unwrap();
        assert_eq!(
            &ours,
            sdk,
            "{} {} on {} in {}",
            case["session_jwt"].as_str().unwrap().len(),
            case["action"],
            case["resource_id"],
            case["organization_id"]
        );
        allowed += usize::from(ours == "allowed");
    }
    // The matrix is not trivially one-sided.
    assert!(
        allowed > 20 && allowed < cases.len() / 2,
        "{allowed} of {}",
        cases.len()
    );
    eprintln!(
        "sdk_verdicts: {} cases, {allowed} allowed, all equal to the Python SDK's",
        cases.len()
    );
}

/// The required `(resource, action)` pairs of the M2M matrix: one route each.
const REQUIRED: [(&str, &str); 7] = [
    ("documents", "read"),
    ("documents", "write"),
    ("reports", "read"),
    ("documents", "*"),
    ("*", "read"),
    ("reports", "delete"),
    ("documents", "delete"),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_layers_m2m_scope_verdicts_equal_stytchs_python_sdk_case_by_case() {
    use stytch_emulator::NewM2mClient;
    use tower_stytch::config::{Principals, Rule};
    let Some(python) = sdk_python() else { return };
    let w = World::new().await;
    let clients: [&[&str]; 9] = [
        &["read:documents"],
        &["read:*"],
        &["*:documents"],
        &["write:documents", "read:reports"],
        &["read"],
        &["*"],
        &["read:documents", "write:*"],
        &["delete:reports", "delete:documents"],
        &["read:doc"],
    ];
    let tokens: Vec<String> = clients
        .iter()
        .map(|scopes| {
            let creds = w
                .emulator
                .create_m2m_client(NewM2mClient::new(scopes))
                .unwrap();
            let token = w
                .emulator
                .m2m_token(&creds.client_id, &creds.client_secret, None);
            token.unwrap().expose_secret().to_owned()
        })
        .collect();
    let mut cases = Vec::new();
    for token in &tokens {
        for (resource, action) in REQUIRED {
            cases.push(json!({
                "kind": "m2m",
                "access_token": token,
                "required_scopes": [format!("{action}:{resource}")],
            }));
        }
    }
    let (base_url, project_id, secret) = (
        w.emulator.base_url(),
        w.emulator.project_id().to_owned(),
        w.emulator.secret().to_owned(),
    );
    let sdk_cases = cases.clone();
    let sdk = tokio::task::spawn_blocking(move || {
        sdk_verdicts(&python, &base_url, &project_id, &secret, &sdk_cases)
    })
    .await
    .unwrap();
    let mut builder = w.builder();
    for (n, (resource, action)) in REQUIRED.iter().enumerate() {
        builder = builder.authorize(
            &format!("GET /check/{n}"),
            Rule::new()
                .permission(*resource, *action)
                .principals(Principals::Machines),
        );
    }
    let router = Router::new().route("/check/{n}", get(|| async { "allowed" }));
    let s = serve(builder.build().unwrap(), router).await;
    let mut allowed = 0;
    for (i, (case, sdk)) in cases.iter().zip(&sdk).enumerate() {
        let route = i % REQUIRED.len();
        let token = case["access_token"].as_str().unwrap();
        let res = s.get_as(&format!("/check/{route}"), token).await;
        let ours = match res.status().as_u16() {
            200 => "allowed",
            403 => "scope_denied",
            401 => "invalid_token",
            other => panic!("unexpected {other}"),
        };
        assert_eq!(
            ours,
            sdk,
            "{} for {}",
            case["required_scopes"],
            clients[i / REQUIRED.len()].join(" ")
        );
        allowed += usize::from(ours == "allowed");
    }
    assert!(
        allowed > 5 && allowed < cases.len() / 2,
        "{allowed} of {}",
        cases.len()
    );
    eprintln!(
        "sdk_verdicts: {} M2M cases, {allowed} allowed, all equal to the Python SDK's",
        cases.len()
    );
}
