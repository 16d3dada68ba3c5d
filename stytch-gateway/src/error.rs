//! [`GatewayError`]: why the gateway could not start or run.

/// Why the gateway could not start or run. Never holds the project secret or a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The Stytch or layer configuration is invalid.
    #[error(transparent)]
    Config(#[from] tower_stytch::ConfigError),
    /// The upstream URL cannot be used.
    #[error("invalid upstream URL {url:?}: {reason}")]
    InvalidUpstream {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A required setting is missing.
    #[error("missing setting: {setting}")]
    Missing {
        /// The setting, as its environment variable and flag.
        setting: &'static str,
    },
    /// Some other setting is invalid.
    #[error("invalid {name}: {reason}")]
    InvalidSetting {
        /// The setting (flag) name.
        name: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics recorder could not be installed.
    #[error("metrics: {0}")]
    Metrics(String),
    /// Something failed while running (demo seeding, self-test transport).
    #[error("{0}")]
    Runtime(String),
}

impl GatewayError {
    /// Whether the error is a configuration problem (exit code 2) rather than a run-time
    /// failure (exit code 1).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::Missing { .. }
                | Self::InvalidUpstream { .. }
                | Self::InvalidSetting { .. }
        )
    }
}
