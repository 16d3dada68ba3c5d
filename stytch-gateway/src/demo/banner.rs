//! What the demo prints at start: where everything is, the seeded members, each step as a
//! curl command, and how to see a revocation made outside the app.

use super::seed::ROLES;
use super::stack::{ROUTES_TOML, Running, WEBHOOK_PATH};
use super::steps::DemoStep;

/// Prints the banner of `run`, with `steps` as curl commands.
pub(crate) fn print_banner(run: &Running, steps: &[DemoStep]) {
    let base = format!("http://{}", run.gateway_addr);
    print_components(run, &base);
    print_members(run);
    print_routes();
    for (i, step) in steps.iter().enumerate() {
        println!(
            "{}. {} (expect {}):",
            i + 1,
            step.title,
            step.expected_text()
        );
        println!("   {}", step.curl(&base));
    }
    println!();
    print_webhook_steps(run, &base);
}

/// Where the emulator, the app, the gateway and its endpoints are.
fn print_components(run: &Running, base: &str) {
    println!("stytch-gateway demo: everything on 127.0.0.1");
    println!(
        "  Stytch emulator  {}  (project {})",
        run.emulator.base_url(),
        run.emulator.project_id()
    );
    println!("  upstream app     http://{}/", run.upstream_addr);
    println!("  gateway          {base}/   (auth-only endpoint: {base}/auth)");
    if let Some(metrics) = run.metrics_addr {
        println!("  metrics          http://{metrics}/metrics");
    }
    println!("  probes           {base}/healthz  {base}/readyz");
    println!();
    println!("Open {base}/ in a browser: sign in as a demo member, log out, force a member out,");
    println!("and watch the live panel close when the session is revoked from another tab;");
    println!("read and delete documents (as the member's roles allow), and open the billing page,");
    println!(
        "which asks for a second factor. To watch a forced sign-out from one browser, sign in"
    );
    println!(
        "as Alice and open the member view from her page: the same demo on localhost instead of"
    );
    println!("127.0.0.1, whose cookies the browser keeps apart.");
    println!();
}

/// The seeded organizations and members, with their roles.
fn print_members(run: &Running) {
    let s = &run.seed;
    let roles = |name: &str| {
        ROLES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(String::new(), |(_, roles)| roles.join(","))
    };
    let line = |name: &str, id: &str| println!("  {name:<6} {:<30} member {id}", roles(name));
    println!("Organization Acme ({}):", s.organization_id);
    line("alice", &s.admin.member_id);
    line("bob", &s.bob.member_id);
    line("carol", &s.carol.member_id);
    println!("Organization Globex ({}):", s.other_organization_id);
    line("dave", &s.other_admin.member_id);
    println!(
        "Roles: viewer reads documents; editor reads and creates; documents_admin (a project role the demo"
    );
    println!(
        "adds) and Globex's custom role archivist also delete; stytch_admin alone grants nothing on documents."
    );
    println!();
}

/// The demo gateway's authorization rules (its routes file, without the comments).
fn print_routes() {
    println!("Authorization rules (the demo's routes file, as `serve --routes FILE` reads it):");
    for line in ROUTES_TOML
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        println!("  {line}");
    }
    println!();
}

/// A member deleted at the emulator (as in Stytch's dashboard) is signed out through its
/// webhook.
fn print_webhook_steps(run: &Running, base: &str) {
    let emulator = run.emulator.base_url();
    let dave = &run.seed.other_admin;
    println!(
        "Revocations made outside the app: the emulator sends Stytch's webhooks to {base}{WEBHOOK_PATH}."
    );
    println!("Delete dave in the emulator, as in Stytch's dashboard:");
    println!(
        "   curl -u {}:{} -X DELETE -H 'Content-Type: application/json' -d '{{\"source\":\"DASHBOARD\"}}' {emulator}emulator/v1/members/{}",
        run.emulator.project_id(),
        run.emulator.secret(),
        dave.member_id
    );
    println!("and his token is refused within a second (expect 401):");
    println!(
        "   curl -i -H 'Authorization: Bearer {}' {base}/whoami",
        dave.session_token.expose_secret()
    );
    println!();
}
