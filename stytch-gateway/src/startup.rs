//! The start-up check of Stytch: reachable, and accepting the project's credentials.
//!
//! A wrong `STYTCH_SECRET` (or project id, or base URL) must not look like an outage: when
//! Stytch answers the check with a refusal of the project's credentials (`401
//! unauthorized_credentials` and kin), the gateway says so at ERROR with the fix and stops
//! (exit 2, a configuration error). When Stytch cannot be reached at start, the gateway
//! still starts, not ready (`/readyz` 503 until Stytch answers).
//!
//! The check makes two calls: the JWKS (what readiness needs) and the RBAC policy, a call
//! that always needs the secret (Stytch's JWKS may be readable without it, as its SDKs read
//! it).

use tower_stytch::{StytchAuthLayer, StytchConfig, StytchError};

use crate::error::cause;

/// What Stytch made of the gateway at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartCheck {
    /// Reachable, credentials accepted.
    Ready,
    /// Not reachable (or failing) yet: the gateway runs, not ready.
    Unreachable,
    /// Stytch refused the project's credentials: a configuration error.
    CredentialsRefused,
}

/// Runs the check against the layer's Stytch project and logs its verdict.
pub(crate) async fn check_stytch(layer: &StytchAuthLayer) -> StartCheck {
    let verdict = match layer.ready().await {
        // A refusal of the credentials is all that matters here: any other failure of the
        // policy call (an outage just begun) is the authorization cache's to report.
        Ok(()) => match layer.client().rbac_policy().await {
            Err(err) if err.is_misconfigured() => Err(err),
            _ => Ok(()),
        },
        Err(err) => Err(err),
    };
    let config = layer.client().config();
    match verdict {
        Ok(()) => {
            tracing::info!("Stytch reachable; ready");
            StartCheck::Ready
        }
        Err(err) if err.is_misconfigured() => {
            tracing::error!(
                project_id = config.project_id(),
                stytch = %config.base_url(),
                endpoint = err.endpoint().as_str(),
                status = err.status().map(|s| s.as_u16()),
                error_type = err.error_type(),
                "Stytch refused the project's credentials: check STYTCH_PROJECT_ID / STYTCH_SECRET \
                 (and STYTCH_BASE_URL); stopping"
            );
            StartCheck::CredentialsRefused
        }
        Err(err) => {
            tracing::warn!(
                cause = %stytch_cause(&err, config),
                "Stytch not reachable yet; /readyz answers 503 until it is"
            );
            StartCheck::Unreachable
        }
    }
}

/// Why a call to the Stytch of `config` failed, on one line ([`cause`]).
pub(crate) fn stytch_cause(err: &StytchError, config: &StytchConfig) -> String {
    let url = config.base_url();
    let host = url.host_str().unwrap_or("stytch");
    let peer = match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    cause(err, &peer)
}
