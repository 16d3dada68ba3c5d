//! HTTP/1.1 `Upgrade` (WebSocket) through the proxy: which requests are upgrades, which of
//! them are tunnelled ([`Upgrades`]), which headers they keep, and the tunnel that copies
//! bytes both ways once both sides switched.
//!
//! An upgrade request is authenticated like any other (the auth layer ran before the proxy).
//! Only the allowed protocols (`--upgrade-protocol`, WebSocket by default) are tunnelled,
//! never HTTP/2 (`h2c`): an upstream that switched to HTTP/2 would take requests for any
//! path with any headers straight from the client, past the gateway. A request asking for
//! other protocols only is forwarded as an ordinary request, its `Upgrade` and
//! `HTTP2-Settings` dropped (as Envoy does). An allowed upgrade is tunnelled only for a
//! request the layer authenticated, unless `--public-upgrades`: elsewhere it is refused (403).
//! The handshake is forwarded with `Upgrade` (the allowed protocols only) and
//! `Connection: upgrade` kept (every other hop-by-hop header still goes), and when the
//! upstream answers `101 Switching Protocols` to one of them both connections are taken over
//! from hyper and joined by [`tunnel`]. Any other answer is an ordinary response.

use std::future::Future;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower_stytch::MemberSession;

use crate::error::{GatewayError, chain};
use crate::ws_close::{CLOSE_ANSWER, Downstream, FINISH_FRAME, GOING_AWAY, SESSION_REVOKED};

/// The protocol tunnelled when none is configured.
pub(crate) const DEFAULT_UPGRADE_PROTOCOL: &str = "websocket";

/// Protocol names that mean HTTP/2, refused as `--upgrade-protocol` values.
const HTTP2_NAMES: [&str; 3] = ["h2c", "h2", "http"];

/// Which upgrades the proxy tunnels, and on which routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upgrades {
    /// Allowed protocol names, lowercase (no version: `websocket` allows `websocket/13`).
    protocols: Vec<String>,
    /// Whether a request the layer did not authenticate (public routes, optional ones
    /// without a credential) may be tunnelled too.
    public: bool,
}

impl Default for Upgrades {
    fn default() -> Self {
        Self {
            protocols: vec![DEFAULT_UPGRADE_PROTOCOL.to_owned()],
            public: false,
        }
    }
}

/// What the proxy does with a request, as far as upgrades go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// An ordinary request (not an upgrade, or none of its protocols allowed: the `Upgrade`
    /// header goes with the other hop-by-hop headers).
    Ordinary,
    /// Tunnelled if the upstream switches: the `Upgrade` value to forward.
    Tunnel(HeaderValue),
    /// An allowed upgrade on a route the layer did not authenticate: refused (403).
    Refused,
}

impl Upgrades {
    /// Tunnels `protocols` (names, any case; `none` alone: no upgrade at all), on
    /// authenticated routes only unless `public`.
    ///
    /// # Errors
    ///
    /// [`GatewayError::UpgradeProtocol`] for an HTTP/2 name (`h2c`, `h2`) or one that is not
    /// an HTTP token.
    pub(crate) fn new(protocols: &[String], public: bool) -> Result<Self, GatewayError> {
        let mut names = Vec::new();
        for raw in protocols {
            let name = raw.trim().to_ascii_lowercase();
            let invalid = |reason: &'static str| GatewayError::UpgradeProtocol {
                name: raw.clone(),
                reason,
            };
            if name == "none" {
                if protocols.len() > 1 {
                    return Err(invalid("`none` tunnels nothing: it cannot be combined"));
                }
                break;
            }
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(invalid("not a protocol name (a token like `websocket`)"));
            }
            if HTTP2_NAMES.contains(&protocol_name(&name)) {
                return Err(invalid(
                    "HTTP/2 is never tunnelled: an upstream speaking it to the client would take requests for any path, with any identity headers, past the gateway",
                ));
            }
            names.push(protocol_name(&name).to_owned());
        }
        Ok(Self {
            protocols: names,
            public,
        })
    }

    /// What to do with `req` (see [`Decision`]).
    pub(crate) fn decide<B>(&self, req: &Request<B>) -> Decision {
        let Some(asked) = upgrade_protocol(req) else {
            return Decision::Ordinary;
        };
        let Some(allowed) = self.allowed(&asked) else {
            tracing::debug!(path = %req.uri().path(), "upgrade to a protocol not allowed dropped");
            return Decision::Ordinary;
        };
        if !self.public && req.extensions().get::<MemberSession>().is_none() {
            tracing::info!(path = %req.uri().path(), "upgrade refused on a route without a session");
            return Decision::Refused;
        }
        Decision::Tunnel(allowed)
    }

    /// The protocols of the `Upgrade` value `asked` that are allowed, as one value.
    fn allowed(&self, asked: &HeaderValue) -> Option<HeaderValue> {
        let kept: Vec<&str> = asked
            .to_str()
            .ok()?
            .split(',')
            .map(str::trim)
            .filter(|p| self.allows(p))
            .collect();
        if kept.is_empty() {
            return None;
        }
        HeaderValue::from_str(&kept.join(", ")).ok()
    }

    /// Whether `protocol` (`name[/version]`, any case) is allowed.
    fn allows(&self, protocol: &str) -> bool {
        let protocol = protocol.to_ascii_lowercase();
        self.protocols.iter().any(|p| p == protocol_name(&protocol))
    }

    /// Whether the upstream's `101` switched to a protocol that was asked for (`tunnelled`,
    /// the `Upgrade` value forwarded): anything else is not tunnelled.
    pub(crate) fn switched_as_asked(
        &self,
        answer: Option<&HeaderValue>,
        asked: &HeaderValue,
    ) -> bool {
        let (Some(answer), Ok(asked)) = (answer.and_then(|a| a.to_str().ok()), asked.to_str())
        else {
            return false;
        };
        let answer = answer.trim();
        self.allows(answer)
            && asked.split(',').any(|p| {
                protocol_name(&p.trim().to_ascii_lowercase())
                    == protocol_name(&answer.to_ascii_lowercase())
            })
    }
}

/// Whether an `Upgrade` value names WebSocket.
pub(crate) fn is_websocket(protocol: &HeaderValue) -> bool {
    protocol
        .to_str()
        .is_ok_and(|p| protocol_name(p.trim()).eq_ignore_ascii_case(DEFAULT_UPGRADE_PROTOCOL))
}

/// The name of `protocol` (`name/version`).
fn protocol_name(protocol: &str) -> &str {
    protocol.split('/').next().unwrap_or_default()
}

/// RFC 9110 `tchar`, and `/` between a protocol's name and version.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b)
}

/// The `Upgrade` header of an HTTP/1.1 upgrade request (`Connection` lists `upgrade` and
/// `Upgrade` names a protocol), or `None` for any other request.
pub(crate) fn upgrade_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let headers = req.headers();
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = headers.get(header::UPGRADE)?;
    (connection_upgrade && !protocol.is_empty()).then(|| protocol.clone())
}

/// Puts back the two hop-by-hop headers an upgrade needs on the next hop, after every
/// hop-by-hop header was removed.
pub(crate) fn keep_upgrade_headers(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TunnelEnd {
    /// One side closed; the other was shut down after it.
    Closed,
    /// `stop` completed (the session was revoked, or the gateway is shutting down): both
    /// sides were shut down, a WebSocket client after a close frame saying why.
    Stopped,
    /// A side failed to upgrade, or a copy failed.
    Failed,
}

/// Why the gateway stops a tunnel itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The session was revoked (a WebSocket gets `1008 session revoked`).
    Revoked,
    /// The gateway is shutting down (a WebSocket gets `1001 gateway shutting down`).
    ShuttingDown,
}

/// Waits for both sides to switch protocols, then copies bytes both ways until both sides
/// closed or `stop` completes; then shuts both sides down. A `websocket` client is sent a
/// close frame saying why first ([`ws_close`](crate::ws_close)).
pub(crate) async fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    stop: impl Future<Output = Stop>,
    websocket: bool,
) -> TunnelEnd {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(sides) => sides,
        Err(err) => {
            tracing::debug!(error = %chain(&err), "upgrade failed");
            return TunnelEnd::Failed;
        }
    };
    let (mut client_rx, mut client_tx) = tokio::io::split(TokioIo::new(client));
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(TokioIo::new(upstream));
    let mut down = Downstream::new();
    let copies = async {
        let up = async {
            let copied = tokio::io::copy(&mut client_rx, &mut upstream_tx).await;
            let _ = upstream_tx.shutdown().await;
            copied
        };
        let down = async {
            let copied = down.copy(&mut upstream_rx, &mut client_tx).await;
            let _ = client_tx.shutdown().await;
            copied
        };
        tokio::join!(up, down)
    };
    let stopped = tokio::select! {
        copied = copies => match copied {
            (Ok(up), Ok(down)) => {
                tracing::debug!(bytes_up = up, bytes_down = down, "upgraded connection closed");
                return TunnelEnd::Closed;
            }
            (Err(err), _) | (_, Err(err)) => {
                tracing::debug!(error = %err, "upgraded connection failed");
                return TunnelEnd::Failed;
            }
        },
        stop = stop => stop,
    };
    if websocket {
        let close = match stopped {
            Stop::Revoked => SESSION_REVOKED,
            Stop::ShuttingDown => GOING_AWAY,
        };
        let closing = down.close(&mut upstream_rx, &mut client_tx, close);
        if matches!(
            tokio::time::timeout(FINISH_FRAME, closing).await,
            Ok(Ok(()))
        ) {
            // The client answers with its own close frame: then (or soon) the connection goes.
            let mut answer = [0u8; 64];
            let _ = tokio::time::timeout(CLOSE_ANSWER, client_rx.read(&mut answer)).await;
        }
    }
    // Shutting the sides down sends FIN after whatever was buffered; dropping closes them.
    let _ = client_tx.shutdown().await;
    let _ = upstream_tx.shutdown().await;
    TunnelEnd::Stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut req = Request::get("/ws").version(version);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap()
    }

    #[test]
    fn only_http11_requests_with_connection_upgrade_and_a_protocol_are_upgrades() {
        // If this broke, WebSocket handshakes would reach the upstream without their Upgrade
        // header (and fail), or ordinary requests would be treated as tunnels.
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        assert_eq!(
            upgrade_protocol(&request(Version::HTTP_11, &ws)).unwrap(),
            "websocket"
        );
        assert!(upgrade_protocol(&request(Version::HTTP_10, &ws)).is_none());
        assert!(upgrade_protocol(&request(Version::HTTP_2, &ws)).is_none());
        assert!(
            upgrade_protocol(&request(Version::HTTP_11, &[("upgrade", "websocket")])).is_none()
        );
        assert!(
            upgrade_protocol(&request(Version::HTTP_11, &[("connection", "upgrade")])).is_none()
        );
        assert!(
            upgrade_protocol(&request(
                Version::HTTP_11,
                &[("connection", "upgraded"), ("upgrade", "websocket")]
            ))
            .is_none()
        );
    }

    #[test]
    fn h2c_is_never_tunnelled_and_other_protocols_only_when_allowed() {
        // If this broke, `Upgrade: h2c` would be tunnelled and the client would speak HTTP/2
        // straight to the upstream (any path, forged identity headers), or a WebSocket would
        // be tunnelled for a request without a session.
        for refused in ["h2c", "H2C", "h2", "HTTP/2.0", "web socket", ""] {
            let err = Upgrades::new(&[refused.to_owned()], false).unwrap_err();
            assert!(err.is_config(), "{refused}");
        }
        let both = ["none".to_owned(), "websocket".to_owned()];
        assert!(Upgrades::new(&both, false).is_err());
        let upgrades = Upgrades::default();
        let ask = |upgrade: &str, session: bool| {
            let mut req = request(
                Version::HTTP_11,
                &[
                    ("connection", "Upgrade, HTTP2-Settings"),
                    ("upgrade", upgrade),
                ],
            );
            if session {
                let session: MemberSession = serde_json::from_value(serde_json::json!({
                    "member_session_id": "s", "member_id": "m", "organization_id": "o",
                    "roles": [], "expires_at": "2099-01-01T00:00:00Z"
                }))
                .unwrap();
                req.extensions_mut().insert(session);
            }
            upgrades.decide(&req)
        };
        assert_eq!(ask("h2c", true), Decision::Ordinary);
        assert_eq!(ask("h2c", false), Decision::Ordinary);
        assert_eq!(
            ask("h2c, WebSocket", true),
            Decision::Tunnel(HeaderValue::from_static("WebSocket"))
        );
        assert_eq!(ask("websocket", false), Decision::Refused);
        let public = Upgrades::new(&["websocket".to_owned()], true).unwrap();
        let req = request(
            Version::HTTP_11,
            &[("connection", "upgrade"), ("upgrade", "websocket")],
        );
        assert!(matches!(public.decide(&req), Decision::Tunnel(_)));
        let none = Upgrades::new(&["none".to_owned()], true).unwrap();
        assert_eq!(none.decide(&req), Decision::Ordinary);
        let asked = HeaderValue::from_static("websocket");
        let h2c = HeaderValue::from_static("h2c");
        assert!(!upgrades.switched_as_asked(Some(&h2c), &asked));
        assert!(upgrades.switched_as_asked(Some(&HeaderValue::from_static("WebSocket")), &asked));
        assert!(!upgrades.switched_as_asked(None, &asked));
    }
}
