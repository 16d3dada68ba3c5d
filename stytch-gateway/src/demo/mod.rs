//! The `demo` feature: `stytch-gateway emulator`, `stytch-gateway demo`, and the hidden
//! `upstream` command of the load runs. Nothing of it is in the proxy built without the
//! feature (`--no-default-features`), and the Stytch emulator is linked only here.
//!
//! The demo starts, all on 127.0.0.1: the Stytch emulator with two seeded organizations, the
//! [`DemoApp`](app::DemoApp) (a web page to open in a browser, and the echo JSON page for
//! everything else), and the gateway in front of it. It prints the URL to open and
//! ready-to-paste curl commands; with `--self-test` it runs them itself and exits 0 only when
//! every answer is the expected one.
//!
//! Its modules, each using only those listed before it (and the gateway's own modules):
//! `upstream` (the echo app, and the `upstream` command), `app` (the demo web app),
//! `seed` (the demo's organizations, roles, members and sessions), `steps` (the curl steps),
//! `stack` (the running emulator, app and gateway), `banner` (what the demo prints),
//! `self_test` (`--self-test`), `emulator` (the `emulator` command).

mod app;
mod banner;
mod emulator;
mod seed;
mod self_test;
mod stack;
mod steps;
mod upstream;

use std::future::Future;

use clap::Args;

use crate::error::GatewayError;

pub(crate) use self::emulator::{EmulatorArgs, run_emulator};
pub(crate) use self::upstream::{UpstreamArgs, run_upstream};

/// `demo`: everything on loopback, with curl commands.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Run the demo's steps against itself, print each status, and exit 0 only if all are as
    /// expected.
    #[arg(long)]
    pub(crate) self_test: bool,
}

/// `stytch-gateway demo`: runs until `shutdown` (or, with `--self-test`, until the steps
/// ran). Returns whether the self-test passed (always true without it).
///
/// # Errors
///
/// When a component cannot start.
pub(crate) async fn run_demo(
    args: DemoArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<bool, GatewayError> {
    let run = stack::Running::start().await?;
    let steps = steps::steps(&run.seed);
    banner::print_banner(&run, &steps);
    let ok = if args.self_test {
        self_test::self_test(run.gateway_addr, &steps).await
    } else {
        println!("Ready. Press ctrl-c to stop.");
        shutdown.await;
        true
    };
    let report = run.stop().await?;
    tracing::debug!(?report, "demo stopped");
    Ok(ok)
}
