//! The routes file's parser: a good file, and each error naming the file, the route and the
//! problem.

use std::path::Path;
use std::time::Duration;

use tower_stytch::config::{Principals, Rule};
use tower_stytch::{StytchAuthLayer, StytchClient, StytchConfig};

use super::*;
use crate::error::chain;

const FILE: &str = "/etc/gateway/routes.toml";

fn parse_ok(text: &str) -> Vec<(String, Rule)> {
    parse(Path::new(FILE), text).unwrap_or_else(|err| panic!("{}", chain(&err)))
}

/// The one-line error a bad file gives.
fn parse_err(text: &str) -> String {
    let err = parse(Path::new(FILE), text).expect_err("a bad file was accepted");
    assert!(err.is_config(), "not a configuration error (exit 2)");
    let line = chain(&err);
    assert!(!line.contains('\n'), "more than one line: {line}");
    line
}

#[test]
fn a_good_file_gives_one_rule_per_route_in_file_order() {
    // If this broke, the gateway would enforce other rules than the file says, or try them in
    // another order (the first matching rule applies).
    let routes = parse_ok(
        r#"
        # Documents
        [[route]]
        match = "GET /api/orgs/{organization_id}/documents"
        permission = { resource = "documents", action = "read" }
        organization = "organization_id"

        [[route]]
        match = "DELETE /api/orgs/{organization_id}/documents/{document_id}"
        permission = { resource = "documents", action = "delete" }
        organization = "organization_id"
        mfa = true
        max_age = "10m"
        step_up = "/step-up"
        principals = ["members"]

        [[route]]
        match = "  * /api/secure/{*rest}  "
        mfa = true

        [[route]]
        match = "GET /api/reports"
        permission = { resource = "reports", action = "read" }
        principals = ["machines"]

        [[route]]
        match = "GET /api/documents"
        permission = { resource = "documents", action = "read" }
        principals = ["machines", "members"]
        "#,
    );
    let patterns: Vec<&str> = routes.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        patterns,
        [
            "GET /api/orgs/{organization_id}/documents",
            "DELETE /api/orgs/{organization_id}/documents/{document_id}",
            "* /api/secure/{*rest}",
            "GET /api/reports",
            "GET /api/documents",
        ]
    );
    assert_eq!(
        routes[0].1,
        Rule::new()
            .permission("documents", "read")
            .organization("organization_id")
    );
    assert_eq!(
        routes[1].1,
        Rule::new()
            .permission("documents", "delete")
            .organization("organization_id")
            .mfa()
            .max_age(Duration::from_secs(600))
            .step_up_page("/step-up")
    );
    assert_eq!(routes[2].1, Rule::new().mfa());
    assert_eq!(
        routes[3].1,
        Rule::new()
            .permission("reports", "read")
            .principals(Principals::Machines)
    );
    assert_eq!(
        routes[4].1,
        Rule::new()
            .permission("documents", "read")
            .principals(Principals::Both)
    );
}

#[test]
fn each_route_error_names_the_file_the_route_its_pattern_and_the_problem() {
    // If this broke, a typo in the routes file would be ignored (a rule silently weaker than
    // written: an unknown key, a `principals` the gateway cannot enforce) or reported without
    // saying which route to fix.
    let good = "[[route]]\nmatch = \"GET /ok\"\nmfa = true\n";
    let cases = [
        ("mfa = true\nmfaa = true", "unknown field `mfaa`"),
        ("mfa = true\nmax_age = 600", "invalid type: integer"),
        (
            "permission = { resource = \"documents\", verb = \"read\" }",
            "unknown field `verb`",
        ),
        (
            "permission = { resource = \"documents\", action = \" \" }",
            "permission needs a non-empty resource and action",
        ),
        ("mfa = false", "the route asks for nothing"),
        (
            "step_up = \"/step-up\"",
            "step_up needs mfa = true or max_age",
        ),
        (
            "permission = { resource = \"documents\", action = \"read\" }\nstep_up = \"/s\"",
            "step_up needs mfa = true or max_age",
        ),
        (
            "mfa = true\nstep_up = \"https://evil.test/\"",
            "must be a local path",
        ),
        (
            "mfa = true\nstep_up = \"//evil.test/\"",
            "must be a local path",
        ),
        ("max_age = \"soon\"", "max_age = \"soon\" is not a duration"),
        ("max_age = \"0s\"", "max_age must be greater than zero"),
        (
            "organization = \"org\"",
            "organization = \"org\" is not a {org} capture",
        ),
        (
            "mfa = true\nprincipals = [\"robots\"]",
            "principals: \"robots\" is neither \"members\" nor \"machines\"",
        ),
        ("mfa = true\nprincipals = []", "principals is empty"),
    ];
    for (body, problem) in cases {
        let text = format!("{good}\n[[route]]\nmatch = \"DELETE /api/x/{{id}}\"\n{body}\n");
        let line = parse_err(&text);
        let want = format!("routes file {FILE}: route #2 (\"DELETE /api/x/{{id}}\"): ");
        assert!(line.starts_with(&want), "{body}: {line}");
        assert!(line.contains(problem), "{body}: {line}");
    }
    let line = parse_err(&format!("{good}[[route]]\nmfa = true\n"));
    assert!(line.contains("route #2: missing field `match`"), "{line}");
    let line = parse_err(&format!("{good}[[route]]\nmatch = \" \"\nmfa = true\n"));
    assert!(line.contains("match is empty"), "{line}");
}

#[test]
fn a_file_that_is_not_a_routes_file_is_refused_with_its_line() {
    // If this broke, `[[routes]]` (a typo) or a syntax error would leave the gateway running
    // with no rule at all, or the error would not say where to look.
    for (text, problem) in [
        (
            "[[routes]]\nmatch = \"GET /x\"\nmfa = true\n",
            "unknown field `routes`",
        ),
        (
            "[[route]]\nmatch = \"GET /x\"\nmfa = true\n\n[[route]\n",
            "line 5: ",
        ),
        ("route = 5\n", "invalid type: integer"),
        ("# nothing yet\n", "no [[route]] table"),
    ] {
        let line = parse_err(text);
        assert!(line.starts_with(&format!("routes file {FILE}: ")), "{line}");
        assert!(line.contains(problem), "{text:?}: {line}");
    }
    let err = load(Path::new("/nonexistent/routes.toml")).unwrap_err();
    assert!(err.is_config());
    assert!(
        chain(&err).starts_with("routes file /nonexistent/routes.toml: cannot be read"),
        "{}",
        chain(&err)
    );
}

fn client() -> StytchClient {
    let config = StytchConfig::builder(
        "project-test-11111111-2222-4333-8444-555555555555",
        "secret-test-routes-unit-aaaaaaaaaaaaaaaaaaaa",
    )
    .base_url("http://127.0.0.1:9/")
    .build()
    .unwrap();
    StytchClient::new(config).unwrap()
}

/// The error building the layer with `routes` (and `allowlist`) gives.
fn build_err(routes: &[(String, Rule)], allowlist: &[String]) -> String {
    let builder = apply(
        StytchAuthLayer::builder(client()),
        routes,
        Duration::from_secs(300),
        allowlist,
    );
    let err = builder.build().expect_err("an invalid route was accepted");
    let err = attribute(err, routes, Some(Path::new(FILE)));
    assert!(err.is_config());
    chain(&err)
}

#[test]
fn what_only_the_layer_checks_is_still_reported_against_the_route() {
    // If this broke, a bad pattern or a step-up page off the redirect allowlist would be
    // reported without the route it is about (the layer knows only the pattern).
    let routes = parse_ok(
        "[[route]]\nmatch = \"GET /billing\"\nmfa = true\nstep_up = \"/step-up\"\n\
         [[route]]\nmatch = \"GET /a/{x\"\nmfa = true\n",
    );
    let line = build_err(&routes, &["/step-up".to_owned()]);
    assert!(
        line.starts_with(&format!("routes file {FILE}: route #2 (\"GET /a/{{x\"): ")),
        "{line}"
    );
    let line = build_err(&routes[..1], &["/account/".to_owned()]);
    assert!(
        line.starts_with(&format!(
            "routes file {FILE}: route #1 (\"GET /billing\"): "
        )),
        "{line}"
    );
    assert!(line.contains("redirect allowlist"), "{line}");
}

#[tokio::test]
async fn a_valid_file_builds_a_layer() {
    // If this broke, a routes file the parser accepts would still stop the gateway at start.
    let routes = parse_ok(
        "[[route]]\nmatch = \"GET /billing\"\nmfa = true\nstep_up = \"/step-up\"\n\
         [[route]]\nmatch = \"DELETE /api/orgs/{org}/documents/{id}\"\n\
         permission = { resource = \"documents\", action = \"delete\" }\norganization = \"org\"\n",
    );
    let builder = apply(
        StytchAuthLayer::builder(client()),
        &routes,
        Duration::from_secs(1),
        &["/step-up".to_owned()],
    );
    assert!(builder.build().is_ok());
}

#[test]
// Without the `demo` feature, `serve` is the only command.
#[cfg_attr(not(feature = "demo"), allow(irrefutable_let_patterns))]
fn the_flags_reach_the_options() {
    // If this broke, `--routes`, `--policy-refresh` or `--redirect-allowlist` would be
    // parsed and then dropped: the gateway would run with no rule, the default refresh, or
    // no step-up page allowed.
    use clap::Parser as _;

    use crate::cli::{Cli, Command};
    use crate::options::ServeOptions;

    let file = std::env::temp_dir().join(format!("routes-flags-{}.toml", std::process::id()));
    std::fs::write(&file, "[[route]]\nmatch = \"GET /billing\"\nmfa = true\n").unwrap();
    let parse = |extra: &[&str]| {
        let mut args = vec![
            "stytch-gateway",
            "serve",
            "--upstream",
            "http://127.0.0.1:1",
            "--project-id",
            "project-test-11111111-2222-4333-8444-555555555555",
            "--secret",
            "secret-test-routes-unit-aaaaaaaaaaaaaaaaaaaa",
        ];
        args.extend_from_slice(extra);
        let Command::Serve(args) = Cli::try_parse_from(args).unwrap().command else {
            panic!("not serve")
        };
        ServeOptions::try_from(*args).unwrap()
    };
    let defaults = parse(&[]);
    assert!(defaults.routes.is_empty() && defaults.routes_file.is_none());
    assert_eq!(defaults.policy_refresh, Duration::from_secs(300));
    assert!(defaults.redirect_allowlist.is_empty());
    let given = parse(&[
        "--routes",
        file.to_str().unwrap(),
        "--policy-refresh",
        "30s",
        "--redirect-allowlist",
        "/step-up",
        "--redirect-allowlist",
        "https://app.example.com/",
    ]);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        given.routes,
        [("GET /billing".to_owned(), Rule::new().mfa())]
    );
    assert_eq!(given.routes_file.as_deref(), Some(file.as_path()));
    assert_eq!(given.policy_refresh, Duration::from_secs(30));
    assert_eq!(
        given.redirect_allowlist,
        ["/step-up", "https://app.example.com/"]
    );
}
