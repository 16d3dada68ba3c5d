//! Stytch's official Python SDK (`stytch` on PyPI, pinned in `tests/sdk/setup.sh`) judging the
//! emulator's session JWTs and M2M tokens with its **local** checks, through
//! `tests/sdk/verdict.py`: it fetches the JWKS, the RBAC policy and the organizations'
//! policies from the emulator itself and decides as it would in production.
//!
//! The session verdicts must equal what the emulator answers remotely
//! (`POST /v1/b2b/sessions/authenticate` with `authorization_check`), over a matrix of default,
//! demo, project-custom (`*` actions) and organization-custom roles, in and out of the
//! session's organization. If they differ, the emulator's policy, JWT claims or remote RBAC
//! is not what Stytch's SDK understands, and the library (which must agree with the SDKs)
//! would be tested against a wrong oracle.
//!
//! Needs python3 and PyPI (setup.sh makes a venv under the cargo target dir). Without them
//! the test is skipped with a message, unless `CI` is set: then it fails.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use stytch_emulator::{NewM2mClient, RbacPermission, RbacRole, SessionInfo};

use crate::rbac::{Rbac, start};

/// The venv's python, or `None` (skip) when the harness cannot be set up outside CI.
fn sdk_python() -> Option<PathBuf> {
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk/setup.sh");
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

/// Runs verdict.py over `cases` and returns the verdicts, in order.
fn sdk_verdicts(python: &Path, r: &Rbac, cases: &[Value]) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk/verdict.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(["--base-url", &r.emu.base_url()])
        .args(["--project-id", r.emu.project_id()])
        .env("STYTCH_SECRET", r.emu.secret())
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
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), cases.len(), "one verdict per case");
    lines
        .iter()
        .enumerate()
        .map(|(i, v)| {
            assert_eq!(v["index"], i);
            v["verdict"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The emulator's remote verdict, in verdict.py's words.
async fn remote_verdict(
    r: &Rbac,
    s: &SessionInfo,
    org: &str,
    resource: &str,
    action: &str,
) -> String {
    match r.check(s, org, resource, action).await {
        Ok(_) => "allowed".to_owned(),
        Err((403, kind)) if kind == "session_authorization_tenancy_error" => {
            "tenancy_mismatch".to_owned()
        }
        Err((403, kind)) if kind == "session_authorization_error" => "permission_denied".to_owned(),
        Err(other) => panic!("unexpected remote answer {other:?}"),
    }
}

/// One organization role, one project role with `*`, and members holding each kind of role.
fn sessions(r: &Rbac) -> Vec<(&'static str, SessionInfo)> {
    r.emu.create_role(&r.org, "owner", &[("documents", &["*"])]);
    r.emu.set_project_role(RbacRole::new(
        "manager",
        vec![
            RbacPermission::new("documents", &["*"]),
            RbacPermission::new("stytch.member", &["revoke-sessions"]),
        ],
    ));
    vec![
        ("member", r.session(&r.org, "member@acme.test", &[])),
        (
            "admin",
            r.session(&r.org, "admin@acme.test", &["stytch_admin"]),
        ),
        ("editor", r.session(&r.org, "editor@acme.test", &["editor"])),
        ("viewer", r.session(&r.org, "viewer@acme.test", &["viewer"])),
        ("owner", r.session(&r.org, "owner@acme.test", &["owner"])),
        (
            "manager",
            r.session(&r.org, "manager@acme.test", &["manager"]),
        ),
        // `owner` is acme's role: in globex it grants nothing.
        (
            "globex owner",
            r.session(&r.other_org, "owner@globex.test", &["owner", "viewer"]),
        ),
    ]
}

const CHECKS: [(&str, &str); 7] = [
    ("stytch.self", "revoke-sessions"),
    ("stytch.member", "revoke-sessions"),
    ("stytch.organization", "delete"),
    ("documents", "read"),
    ("documents", "create"),
    ("documents", "delete"),
    ("documents.archive", "read"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_agrees_with_the_emulators_rbac_verdicts() {
    // If this failed, the Python SDK, reading the emulator's policy and JWTs locally, would
    // decide otherwise than the emulator does remotely: the emulator would not be Stytch.
    let Some(python) = tokio::task::spawn_blocking(sdk_python).await.unwrap() else {
        return;
    };
    let r = start().await;
    let sessions = sessions(&r);
    let mut cases = Vec::new();
    let mut remote = Vec::new();
    let mut labels = Vec::new();
    for (who, session) in &sessions {
        for org in [&r.org, &r.other_org] {
            for (resource, action) in CHECKS {
                cases.push(json!({
                    "kind": "session", "session_jwt": session.session_jwt.expose_secret(),
                    "organization_id": org, "resource_id": resource, "action": action,
                }));
                remote.push(remote_verdict(&r, session, org, resource, action).await);
                labels.push(format!("{who} in {org}: {action} on {resource}"));
            }
        }
    }
    let mut tampered = sessions[0].1.session_jwt.expose_secret().to_owned();
    tampered.push('A');
    cases.push(json!({"kind": "session", "session_jwt": tampered,
        "organization_id": r.org, "resource_id": "stytch.self", "action": "delete"}));
    remote.push("invalid_token".to_owned());
    labels.push("a tampered JWT".to_owned());

    let local = tokio::task::spawn_blocking(move || sdk_verdicts(&python, &r, &cases))
        .await
        .unwrap();
    for ((label, want), got) in labels.iter().zip(&remote).zip(&local) {
        assert_eq!(
            got, want,
            "{label}: the SDK says {got}, the emulator {want}"
        );
    }
    for verdict in ["allowed", "tenancy_mismatch", "permission_denied"] {
        assert!(
            remote.iter().any(|v| v == verdict),
            "the matrix covers {verdict}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_accepts_the_emulators_m2m_tokens_with_its_scope_rules() {
    // If this failed, the emulator's M2M tokens (keys, claims, `scope` format) would not be
    // what Stytch's SDK accepts, or the scope wildcards would be misread: `read:*` grants
    // `read` on any resource, `*:documents` is only the literal scope (python
    // `stytch/shared/m2m_authorization.py`).
    let Some(python) = tokio::task::spawn_blocking(sdk_python).await.unwrap() else {
        return;
    };
    let r = start().await;
    let token = |scopes: &[&str]| {
        let creds = r.emu.create_m2m_client(NewM2mClient::new(scopes)).unwrap();
        let token = r
            .emu
            .m2m_token(&creds.client_id, &creds.client_secret, None)
            .unwrap();
        (creds.client_id, token.expose_secret().to_owned())
    };
    let (_, exact) = token(&["read:documents"]);
    let (_, any_resource) = token(&["read:*"]);
    let (_, star_action) = token(&["*:documents"]);
    let (deleted, two) = token(&["read:documents", "create:documents"]);
    r.emu.delete_m2m_client(&deleted).unwrap();
    let (a, d) = ("allowed", "scope_denied");
    let table: [(&str, &[&str], [&str; 4]); 6] = [
        ("read", &["read:documents"], [a, a, d, a]),
        ("create", &["create:documents"], [d, d, d, a]),
        ("other resource", &["read:invoices"], [d, a, d, d]),
        ("literal star", &["*:documents"], [d, d, a, d]),
        (
            "both",
            &["read:documents", "create:documents"],
            [d, d, d, a],
        ),
        ("none", &[], [a, a, a, a]),
    ];
    let tokens = [&exact, &any_resource, &star_action, &two];
    let mut cases = Vec::new();
    let mut want = Vec::new();
    for (label, required, verdicts) in table {
        for (token, verdict) in tokens.iter().zip(verdicts) {
            cases.push(json!({"kind": "m2m", "access_token": token, "required_scopes": required}));
            want.push((label, verdict.to_owned()));
        }
    }
    cases.push(json!({"kind": "m2m", "access_token": format!("{exact}A"), "required_scopes": []}));
    want.push(("tampered", "invalid_token".to_owned()));

    let got = tokio::task::spawn_blocking(move || sdk_verdicts(&python, &r, &cases))
        .await
        .unwrap();
    for ((label, want), got) in want.iter().zip(&got) {
        assert_eq!(got, want, "{label}");
    }
}
