//! [`GatewayError`]: why the gateway could not start or run.

use std::error::Error as StdError;
use std::net::SocketAddr;

use tower_stytch::ConfigError;

/// Why the gateway could not start or run. Never holds the project secret or a credential.
///
/// `Display` says what failed, once; the cause, when there is one, is the
/// [`source`](StdError::source) (the command line prints the whole chain on one line).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The Stytch or layer configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The upstream URL cannot be used.
    #[error("invalid upstream URL {url:?}: {reason}")]
    InvalidUpstream {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The CA file of `--upstream-ca` cannot be used.
    #[error("invalid upstream CA file {path:?}: {reason}")]
    UpstreamCa {
        /// The file as given.
        path: std::path::PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// TLS towards the upstream cannot be set up (no usable crypto or system verifier).
    #[error("cannot set up TLS towards the upstream")]
    Tls(#[source] rustls::Error),
    /// A required setting is missing.
    #[error("missing setting: {setting}")]
    Missing {
        /// The setting, as its environment variable and flag.
        setting: &'static str,
    },
    /// A path setting does not start with `/`.
    #[error("invalid {name} {path:?}: it must start with '/'")]
    InvalidPath {
        /// The setting (flag) name.
        name: &'static str,
        /// The path as given.
        path: String,
    },
    /// An emulator setting (`--webhook-url`, `--webhook-secret`) is invalid; the message
    /// never repeats a secret.
    #[cfg(feature = "demo")]
    #[cfg_attr(docsrs, doc(cfg(feature = "demo")))]
    #[error("invalid emulator --{name}")]
    Emulator {
        /// The flag's name.
        name: &'static str,
        /// Why it was refused.
        #[source]
        source: stytch_emulator::EmulatorError,
    },
    /// An `--upgrade-protocol` value cannot be tunnelled.
    #[error("invalid --upgrade-protocol {name:?}: {reason}")]
    UpgradeProtocol {
        /// The value as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An `--allow-underscore-header` value cannot be let through.
    #[error("invalid --allow-underscore-header {name:?}: {reason}")]
    UnderscoreHeader {
        /// The value as given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A size setting is zero.
    #[error("{name} must be greater than zero")]
    ZeroSize {
        /// The setting (flag) name.
        name: &'static str,
    },
    /// A timeout is zero.
    #[error("{name} must be greater than zero")]
    ZeroTimeout {
        /// The setting (flag) name.
        name: &'static str,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker's thread or its runtime could not be started.
    #[error("cannot start a worker")]
    Runtime(#[source] std::io::Error),
    /// The address of a bound listener could not be read.
    #[error("cannot read a listener's address")]
    LocalAddr(#[source] std::io::Error),
    /// The Prometheus metrics recorder could not be installed (another `metrics` recorder
    /// is installed already).
    #[error("cannot install the Prometheus metrics recorder")]
    Metrics(#[source] metrics_exporter_prometheus::BuildError),
    /// The demo's gateway cannot reach the demo's emulator.
    #[cfg(feature = "demo")]
    #[cfg_attr(docsrs, doc(cfg(feature = "demo")))]
    #[error("the demo gateway is not ready")]
    NotReady(#[source] tower_stytch::StytchError),
    /// A demo request could not be sent or its answer read.
    #[cfg(feature = "demo")]
    #[cfg_attr(docsrs, doc(cfg(feature = "demo")))]
    #[error("the demo request failed")]
    DemoRequest(#[source] tower_stytch::service::BoxError),
    /// A demo request got no answer in time.
    #[cfg(feature = "demo")]
    #[cfg_attr(docsrs, doc(cfg(feature = "demo")))]
    #[error("the demo request timed out")]
    DemoTimeout,
    /// The Redis URL or a bus setting is invalid (the message holds no password).
    #[error(transparent)]
    Bus(#[from] tower_stytch::bus::BusError),
    /// A task of the gateway panicked or was cancelled.
    #[error("a gateway task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The routes file (`--routes`) cannot be read, or is not a routes file.
    #[error("routes file {}: {problem}", .file.display())]
    RoutesFile {
        /// The file as given.
        file: std::path::PathBuf,
        /// What is wrong (a TOML error names its line).
        problem: String,
    },
    /// The configuration file (`serve --config`) cannot be read, or a key of it is unknown
    /// or has a value its flag refuses (never a secret's value).
    #[error("config file {}: {problem}", .file.display())]
    ConfigFile {
        /// The file as given.
        file: std::path::PathBuf,
        /// What is wrong (a TOML error names its line; a key's problem names the key).
        problem: String,
    },
    /// An authorization route is invalid.
    #[error("{}route #{index}{}: {problem}", routes_origin(.file.as_deref()), pattern_label(.pattern.as_deref()))]
    InvalidRoute {
        /// The routes file, when the route was read from one.
        file: Option<std::path::PathBuf>,
        /// The route's position, counted from 1 in file order.
        index: usize,
        /// The route's `match`, when it has one.
        pattern: Option<String>,
        /// What is wrong.
        problem: String,
    },
}

/// `routes file F: ` before a route's error, when it was read from a file.
fn routes_origin(file: Option<&std::path::Path>) -> String {
    file.map(|f| format!("routes file {}: ", f.display()))
        .unwrap_or_default()
}

/// ` ("GET /x")` after a route's number, when it has a pattern.
fn pattern_label(pattern: Option<&str>) -> String {
    pattern.map(|p| format!(" ({p:?})")).unwrap_or_default()
}

impl GatewayError {
    /// Whether the error is a configuration problem (exit code 2) rather than a run-time
    /// failure (exit code 1).
    pub fn is_config(&self) -> bool {
        match self {
            Self::Config(_)
            | Self::Missing { .. }
            | Self::InvalidUpstream { .. }
            | Self::UpstreamCa { .. }
            | Self::InvalidPath { .. }
            | Self::ZeroTimeout { .. }
            | Self::UpgradeProtocol { .. }
            | Self::UnderscoreHeader { .. }
            | Self::ZeroSize { .. }
            | Self::Bus(_)
            | Self::RoutesFile { .. }
            | Self::ConfigFile { .. }
            | Self::InvalidRoute { .. } => true,
            #[cfg(feature = "demo")]
            Self::Emulator { .. } => true,
            _ => false,
        }
    }
}

/// `err` and each of its causes, joined with `: ` on one line; a cause whose text the line
/// already holds (an error that prints its source itself) is not repeated.
pub(crate) fn chain(err: &dyn StdError) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// Why a call to `peer` (`host:port`) failed, on one line an operator reads at once: the
/// OS error of the connection when the chain of `err` holds one (`connection refused to
/// 127.0.0.1:9000`), else the whole [`chain`] (a TLS or protocol error names itself).
pub(crate) fn cause(err: &(dyn StdError + 'static), peer: &str) -> String {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(what) = connection_failure(io.kind())
        {
            return format!("{what} to {peer}");
        }
        source = current.source();
    }
    format!("{} (to {peer})", chain(err))
}

/// The words for an OS error of a connection, when `kind` is one.
fn connection_failure(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::TimedOut => "connection timed out",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::NetworkDown => "network down",
        K::AddrNotAvailable => "address not available",
        K::BrokenPipe => "connection closed while sending",
        K::UnexpectedEof => "connection closed early",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_printed_once() {
        // If this broke, operators would read the OS error twice, or not at all.
        let err = GatewayError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 80)),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        assert_eq!(err.to_string(), "cannot listen on 127.0.0.1:80");
        assert_eq!(chain(&err), "cannot listen on 127.0.0.1:80: denied");
    }

    /// An error that prints its source in its own message, as some libraries do.
    #[derive(Debug, thiserror::Error)]
    #[error("request failed: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        // If this broke, a log line would read "request failed: reset: reset".
        let err = Repeats(std::io::Error::other("reset"));
        assert_eq!(chain(&err), "request failed: reset");
    }

    #[test]
    fn a_connection_failure_reads_as_what_happened_to_whom() {
        // If this broke, an operator would read `client error (Connect)` and
        // `Some("tcp connect error")` instead of "connection refused to 127.0.0.1:9000".
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = GatewayError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 9000)),
            source: refused,
        };
        assert_eq!(
            cause(&err, "127.0.0.1:9000"),
            "connection refused to 127.0.0.1:9000"
        );
        let other = GatewayError::LocalAddr(std::io::Error::other("certificate expired"));
        assert_eq!(
            cause(&other, "app.internal:443"),
            "cannot read a listener's address: certificate expired (to app.internal:443)"
        );
    }
}
