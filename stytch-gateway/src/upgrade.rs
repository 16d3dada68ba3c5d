//! HTTP/1.1 `Upgrade` (WebSocket) through the proxy: which requests are upgrades, which
//! headers they keep, and the tunnel that copies bytes both ways once both sides switched.
//!
//! An upgrade request is authenticated like any other (the auth layer ran before the proxy),
//! its handshake is forwarded with `Upgrade` and `Connection: upgrade` kept (every other
//! hop-by-hop header still goes), and when the upstream answers `101 Switching Protocols`
//! both connections are taken over from hyper and joined by [`tunnel`]. Any other answer is
//! an ordinary response.

use std::future::Future;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;

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
    /// sides were shut down.
    Stopped,
    /// A side failed to upgrade, or a copy failed.
    Failed,
}

/// Waits for both sides to switch protocols, then copies bytes both ways until one side
/// closes or `stop` completes; then shuts both sides down.
pub(crate) async fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    stop: impl Future<Output = ()>,
) -> TunnelEnd {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(sides) => sides,
        Err(err) => {
            tracing::debug!(error = %err, "upgrade failed");
            return TunnelEnd::Failed;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let end = tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
            Ok((up, down)) => {
                tracing::debug!(bytes_up = up, bytes_down = down, "upgraded connection closed");
                TunnelEnd::Closed
            }
            Err(err) => {
                tracing::debug!(error = %err, "upgraded connection failed");
                TunnelEnd::Failed
            }
        },
        () = stop => TunnelEnd::Stopped,
    };
    // Dropping the sides closes the sockets; shutting them down first sends FIN after
    // whatever was buffered.
    let _ = client.shutdown().await;
    let _ = upstream.shutdown().await;
    end
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
}
