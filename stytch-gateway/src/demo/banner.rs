//! What the demo prints at start: where everything is, the seeded members, each step as a
//! curl command, and how to see a revocation made outside the app.

use super::stack::{Running, WEBHOOK_PATH};
use super::steps::DemoStep;

/// Prints the banner of `run`, with `steps` as curl commands.
pub(crate) fn print_banner(run: &Running, steps: &[DemoStep]) {
    let base = format!("http://{}", run.gateway_addr);
    print_components(run, &base);
    print_members(run);
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
    println!("and watch the live panel close when the session is revoked from another tab.");
    println!();
}

/// The seeded organizations and members.
fn print_members(run: &Running) {
    let s = &run.seed;
    println!("Organization Acme ({}):", s.organization_id);
    println!("  alice  stytch_admin  member {}", s.admin.member_id);
    println!("  bob    member        member {}", s.bob.member_id);
    println!("  carol  member        member {}", s.carol.member_id);
    println!("Organization Globex ({}):", s.other_organization_id);
    println!("  dave   stytch_admin  member {}", s.other_admin.member_id);
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
