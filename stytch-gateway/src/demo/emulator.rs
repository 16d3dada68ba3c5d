//! `stytch-gateway emulator`: the Stytch emulator on its own, for local development, tests
//! and the load runs.

use std::future::Future;
use std::net::SocketAddr;

use clap::Args;
use stytch_emulator::{Emulator, EmulatorConfig, WebhookEndpoint, WebhookSecret};

use crate::error::GatewayError;

/// `emulator`'s flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct EmulatorArgs {
    /// Address the emulator listens on.
    #[arg(
        long,
        env = "EMULATOR_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:4010"
    )]
    pub(crate) listen: SocketAddr,
    /// Project id the emulator accepts (default: the emulator's built-in test project).
    #[arg(long, value_name = "ID")]
    pub(crate) project_id: Option<String>,
    /// Project secret the emulator accepts (default: the built-in test project's secret).
    #[arg(long, value_name = "SECRET")]
    pub(crate) secret: Option<String>,
    /// URL the emulator sends its Svix-signed webhooks to (repeatable), e.g. the gateway's
    /// `http://127.0.0.1:8080/stytch/webhooks`.
    #[arg(long = "webhook-url", value_name = "URL")]
    pub(crate) webhook_urls: Vec<String>,
    /// Secret the emulator signs webhooks with (`whsec_…`; default: a fresh one, printed).
    #[arg(
        long,
        env = "STYTCH_EMULATOR_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub(crate) webhook_secret: Option<String>,
}

/// Runs the emulator until `shutdown`, after printing how to point a gateway at it.
///
/// # Errors
///
/// When the address cannot be bound, or a webhook setting is invalid.
pub(crate) async fn run_emulator(
    args: EmulatorArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let listen = args.listen;
    let config = config(args)?;
    let emulator = Emulator::start(config.listen(listen))
        .await
        .map_err(|source| GatewayError::Bind {
            addr: listen,
            source,
        })?;
    print_banner(&emulator);
    tracing::info!(addr = %emulator.local_addr(), "emulator running; ctrl-c to stop");
    shutdown.await;
    emulator.shutdown().await;
    Ok(())
}

/// The emulator's configuration from the flags.
fn config(args: EmulatorArgs) -> Result<EmulatorConfig, GatewayError> {
    let mut config = EmulatorConfig::new();
    if let Some(id) = args.project_id {
        config = config.project_id(id);
    }
    if let Some(secret) = args.secret {
        config = config.secret(secret);
    }
    for url in args.webhook_urls {
        let endpoint = WebhookEndpoint::new(url).map_err(|source| GatewayError::Emulator {
            name: "webhook-url",
            source,
        })?;
        config = config.webhook_endpoint(endpoint);
    }
    if let Some(secret) = args.webhook_secret {
        // The error never repeats the value: it is a secret.
        let secret = WebhookSecret::parse(&secret).map_err(|source| GatewayError::Emulator {
            name: "webhook-secret",
            source,
        })?;
        config = config.webhook_secret(secret);
    }
    Ok(config)
}

/// Where the emulator is, its project's credentials, and how to point a gateway at it.
fn print_banner(emulator: &Emulator) {
    println!("Stytch emulator listening");
    println!("  base URL:   {}", emulator.base_url());
    println!("  project id: {}", emulator.project_id());
    println!("  secret:     {}", emulator.secret());
    println!(
        "  webhook signing secret: {}",
        emulator.webhook_secret().expose_secret()
    );
    for endpoint in emulator.webhook_endpoints() {
        println!("  webhooks to {}", endpoint.url());
    }
    println!();
    println!("Point a gateway at it with:");
    println!(
        "  STYTCH_PROJECT_ID={} STYTCH_SECRET={} STYTCH_BASE_URL={} stytch-gateway serve --upstream http://127.0.0.1:8081",
        emulator.project_id(),
        emulator.secret(),
        emulator.base_url()
    );
}
