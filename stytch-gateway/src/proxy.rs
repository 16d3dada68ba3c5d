//! [`Proxy`]: forwards a request to the upstream over the worker's pooled connections
//! ([`upstream`](crate::upstream)).
//!
//! The proxy streams bodies both ways (nothing is buffered), removes hop-by-hop headers in
//! both directions, removes the credentials the auth layer read unless they pass
//! ([`Credentials`]), replaces client-sent identity headers with the ones of the request's
//! [`MemberSession`] (if any), sets the forwarding headers (replacing the client's unless
//! the peer is a [trusted proxy](TrustedProxies)), and answers 502 when the upstream cannot
//! be reached and 504 when it does not answer within the timeout. `https://` upstreams are
//! reached over rustls (HTTP/2 when ALPN picks it), and the allowed HTTP/1.1 upgrades
//! (WebSocket) are tunnelled ([`upgrade`](crate::upgrade)).
//!
//! Before a request leaves, the headers with `_` in their names go
//! ([`underscore`](crate::underscore)), the path is resolved under the upstream's prefix
//! ([`target`](crate::target)), and the client's body is read under the body timeout
//! ([`request_body`](crate::request_body): 408 when the client stops sending it).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tower_stytch::live::SessionLiveness;

use crate::access_log::UpstreamTime;
use crate::body::{Body, BoxError, full_body, text_response};
use crate::credentials::Credentials;
use crate::error::{GatewayError, cause};
use crate::form::restore_client_overrides;
use crate::forwarded::{TrustedProxies, set_forwarding_headers};
use crate::identity::{insert_identity, strip_identity_headers};
use crate::live::{DEFAULT_REVOCATION_GRACE, LiveSeed, Streams, revocable, revoked_past};
use crate::metrics as gw_metrics;
use crate::request_body::{DEFAULT_BODY_TIMEOUT, is_body_timeout, timed};
use crate::server::PeerAddr;
use crate::service::Handler;
use crate::target::{BadTarget, Upstream};
use crate::tls::{UpstreamRoots, client_config};
use crate::underscore::UnderscoreHeaders;
use crate::upgrade::{Decision, Stop, Upgrades, is_websocket, keep_upgrade_headers, tunnel};
use crate::upstream::{Connections, Lease, Leased, UpstreamError};

/// Default time the upstream has to send its response headers.
pub(crate) const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
/// `HTTP2-Settings` is one too (RFC 9113 §3.2.1: h2c's upgrade, never tunnelled).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    HeaderName::from_static("http2-settings"),
];

/// Whether `name` is hop-by-hop whatever `Connection` says: the fixed list and `Upgrade`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::UPGRADE || HOP_BY_HOP.contains(name)
}

/// Removes hop-by-hop headers: the fixed list, `Upgrade`, and every header named in
/// `Connection`. One pass over the names finds whether there is any (most requests and
/// responses have none: `Connection` comes with any header it names).
pub(crate) fn remove_hop_by_hop_headers(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// How the proxy reaches the upstream: which roots an `https://` upstream's certificate
/// must chain to, and whether a plain `http://` upstream speaks HTTP/2 (prior knowledge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Transport {
    /// The trust anchors of an `https://` upstream.
    pub(crate) roots: UpstreamRoots,
    /// HTTP/2 without TLS (h2c, prior knowledge) to an `http://` upstream.
    pub(crate) h2c: bool,
}

/// The reverse proxy towards one upstream. Cheap to clone (the connections are each worker
/// thread's own: [`Connections`]).
///
/// As a [`Handler`] it never fails: upstream errors become 502 / 504 responses.
#[derive(Clone)]
pub(crate) struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    /// The connections to the upstream: HTTP/2 where the upstream negotiates it (ALPN `h2`,
    /// or `--upstream-h2c`), HTTP/1.1 otherwise; upgrades on HTTP/1.1 connections of their
    /// own.
    connections: Connections,
    upstream: Upstream,
    timeout: Duration,
    forwarding: Forwarding,
    /// Turns true when upgraded connections must close (shutdown).
    closing: tokio::sync::watch::Sender<bool>,
}

/// What the proxy lets through from the client, and how long it waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forwarding {
    /// What happens to the credentials the auth layer reads.
    pub(crate) credentials: Credentials,
    /// Peers whose forwarding headers are kept.
    pub(crate) trusted_proxies: TrustedProxies,
    /// The request headers with `_` in their names that pass (all others go).
    pub(crate) underscore_headers: UnderscoreHeaders,
    /// Which upgrades are tunnelled, and where.
    pub(crate) upgrades: Upgrades,
    /// The longest wait for the next piece of the client's request body (408 after).
    pub(crate) body_timeout: Duration,
    /// How long a response of unknown length, or a long poll, of a revoked session may
    /// still run ([`live`](crate::live)).
    pub(crate) revocation_grace: Duration,
}

impl Default for Forwarding {
    /// The command line's defaults.
    fn default() -> Self {
        Self {
            credentials: Credentials::default(),
            trusted_proxies: TrustedProxies::default(),
            underscore_headers: UnderscoreHeaders::default(),
            upgrades: Upgrades::default(),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            revocation_grace: DEFAULT_REVOCATION_GRACE,
        }
    }
}

/// What the upstream made of a request.
enum Sent {
    /// It answered (response headers), on a connection lent until the body's end.
    Answered(Response<Incoming>, Option<Lease>),
    /// It could not be reached, or the request failed (the client's body too).
    Failed(UpstreamError),
    /// No response headers within the upstream timeout.
    TimedOut,
    /// A long poll whose session was revoked past the grace period.
    Revoked,
}

/// What a request's log lines and answer need to know of it.
struct Sending {
    method: Method,
    version: Version,
    target: Option<PathAndQuery>,
    started: Instant,
    /// The `Upgrade` value forwarded and the client's side, for a tunnelled upgrade.
    upgrade: Option<(HeaderValue, OnUpgrade)>,
    liveness: Option<SessionLiveness>,
    seed: Option<LiveSeed>,
    /// When the request was sent upstream.
    sent_at: tokio::time::Instant,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.inner.upstream)
            .field("timeout", &self.inner.timeout)
            .field("forwarding", &self.inner.forwarding)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy to `upstream`, reached as `transport` says, whose response headers must
    /// arrive within `timeout`, handing it credentials and forwarding headers as `forwarding`
    /// says.
    ///
    /// # Errors
    ///
    /// [`GatewayError::InvalidUpstream`] for a bad URL (or h2c asked of an `https://` one),
    /// [`GatewayError::ZeroTimeout`] for a zero timeout, the errors of
    /// [`tls::client_config`](crate::tls::client_config) for the TLS settings.
    pub(crate) fn new(
        upstream: &str,
        timeout: Duration,
        forwarding: Forwarding,
        transport: &Transport,
    ) -> Result<Self, GatewayError> {
        let upstream = Upstream::parse(upstream)?;
        if timeout.is_zero() {
            return Err(GatewayError::ZeroTimeout {
                name: "upstream-timeout",
            });
        }
        if forwarding.body_timeout.is_zero() {
            return Err(GatewayError::ZeroTimeout {
                name: "client-body-timeout",
            });
        }
        if transport.h2c && upstream.is_https() {
            return Err(GatewayError::InvalidUpstream {
                url: upstream.origin(),
                reason: "--upstream-h2c is for http:// upstreams (https negotiates HTTP/2 itself)",
            });
        }
        let tls = client_config(&transport.roots)?;
        let connections = Connections::new(
            upstream.scheme().clone(),
            upstream.authority_parsed().clone(),
            &tls,
            transport.h2c,
            timeout,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                connections,
                upstream,
                timeout,
                forwarding,
                closing: tokio::sync::watch::Sender::new(false),
            }),
        })
    }

    /// Forwards `req` and returns the upstream's response (body streamed), or the proxy's
    /// own answer: 400 (no target at the upstream), 403 (an upgrade without a session),
    /// 408 (the client's body stopped coming), 401 (a long poll of a revoked session), 502,
    /// 504. A response after a try of the upstream carries its [`UpstreamTime`].
    pub(crate) async fn forward<B>(&self, mut req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let upgrade = match self.inner.forwarding.upgrades.decide(&req) {
            Decision::Ordinary => None,
            Decision::Refused => {
                let refusal = "upgrades need a session on this route\n";
                return text_response(StatusCode::FORBIDDEN, refusal);
            }
            // An upgrade takes the client's connection over from hyper once answered 101.
            Decision::Tunnel(protocol) => Some((protocol, hyper::upgrade::on(&mut req))),
        };
        // An upgrade is watched from the handshake on (a revocation meanwhile closes it).
        let liveness = upgrade
            .as_ref()
            .and_then(|_| SessionLiveness::from_extensions(req.extensions()));
        let (method, version) = (req.method().clone(), req.version());
        // For the log lines: a reference-counted clone, not a copy.
        let target = req.uri().path_and_query().cloned();
        let protocol = upgrade.as_ref().map(|(protocol, _)| protocol.clone());
        let (upstream_req, seed) = match self.prepare(req, protocol) {
            Ok(prepared) => prepared,
            Err(bad) => return text_response(StatusCode::BAD_REQUEST, format!("{bad}\n")),
        };
        let sending = Sending {
            method,
            version,
            target,
            started,
            upgrade,
            liveness,
            seed,
            sent_at: tokio::time::Instant::now(),
        };
        let long_poll = sending.seed.as_ref().filter(|_| {
            sending.upgrade.is_none() && matches!(sending.method, Method::GET | Method::HEAD)
        });
        let asked = Instant::now();
        let sent = self
            .send(upstream_req, sending.upgrade.is_some(), long_poll)
            .await;
        let upstream_time = UpstreamTime(asked.elapsed());
        let mut response = self.answer(sent, sending);
        response.extensions_mut().insert(upstream_time);
        response
    }

    /// Sends `req` (an `upgrade` handshake on a connection of its own) and waits for the
    /// response headers, at most the upstream timeout; for a `long_poll`, only until its
    /// session is revoked past the grace period.
    async fn send(&self, req: Request<Body>, upgrade: bool, long_poll: Option<&LiveSeed>) -> Sent {
        let connections = &self.inner.connections;
        let request = async {
            let sent = async {
                if upgrade {
                    connections.send_upgrade(req).await.map(|r| (r, None))
                } else {
                    connections.send(req).await
                }
            };
            match tokio::time::timeout(self.inner.timeout, sent).await {
                Ok(Ok((response, lease))) => Sent::Answered(response, lease),
                Ok(Err(err)) => Sent::Failed(err),
                Err(_) => Sent::TimedOut,
            }
        };
        let Some(seed) = long_poll else {
            return request.await;
        };
        tokio::select! {
            sent = request => sent,
            () = revoked_past(seed, self.inner.forwarding.revocation_grace) => Sent::Revoked,
        }
    }

    /// The client's answer to what the upstream made of the request.
    fn answer(&self, sent: Sent, sending: Sending) -> Response<Body> {
        let Sending {
            method,
            version,
            target,
            started,
            upgrade,
            liveness,
            seed,
            sent_at,
        } = sending;
        let elapsed = started.elapsed();
        let path = target.as_ref().map_or("/", PathAndQuery::path);
        let (response, lease) = match sent {
            Sent::Answered(response, lease) => (response, lease),
            Sent::Failed(err) if is_body_timeout(&err) => {
                gw_metrics::record_body_timeout();
                tracing::info!(%method, path, "the client stopped sending the request body");
                let mut timed_out =
                    text_response(StatusCode::REQUEST_TIMEOUT, "request body timed out\n");
                if version < Version::HTTP_2 {
                    let close = HeaderValue::from_static("close");
                    timed_out.headers_mut().insert(header::CONNECTION, close);
                }
                return timed_out;
            }
            Sent::Failed(err) => {
                gw_metrics::record_upstream_failure("unavailable", elapsed);
                let cause = cause(&err, self.inner.upstream.authority());
                tracing::warn!(%method, path, %cause, "upstream unavailable");
                return text_response(StatusCode::BAD_GATEWAY, "upstream unavailable\n");
            }
            Sent::TimedOut => {
                gw_metrics::record_upstream_failure("timeout", elapsed);
                tracing::warn!(%method, path, timeout_ms = self.inner.timeout.as_millis() as u64,
                    "upstream timed out");
                return text_response(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n");
            }
            Sent::Revoked => {
                tracing::info!(%method, path, "long poll ended: the session was revoked");
                return text_response(StatusCode::UNAUTHORIZED, "the session was revoked\n");
            }
        };
        gw_metrics::record_upstream(response.status(), elapsed);
        tracing::debug!(%method, path, status = response.status().as_u16(),
            elapsed_ms = elapsed.as_millis() as u64, "proxied");
        let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let streams = Streams {
            sent: sent_at,
            grace: self.inner.forwarding.revocation_grace,
        };
        match upgrade {
            Some((asked, client_side)) if switched => {
                let upgrades = &self.inner.forwarding.upgrades;
                if !upgrades.switched_as_asked(response.headers().get(header::UPGRADE), &asked) {
                    tracing::warn!(path, "the upstream switched to a protocol not asked for");
                    return text_response(StatusCode::BAD_GATEWAY, "upstream switched protocols\n");
                }
                self.switch_protocols(client_side, response, liveness)
            }
            // A 101 to a request that was not a tunnelled upgrade: never passed on.
            _ if switched => {
                tracing::warn!(path, "the upstream switched protocols unasked");
                text_response(StatusCode::BAD_GATEWAY, "upstream switched protocols\n")
            }
            _ => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop_headers(&mut parts.headers);
                // The client is answered in its own HTTP version, whatever the upstream
                // speaks: an HTTP/1.0 upstream's answer would otherwise reach an HTTP/1.1
                // client as `HTTP/1.0` and close its connection after every request.
                parts.version = version;
                let body = Leased::new(body, lease).boxed_unsync();
                let body = revocable(body, &parts.headers, seed, streams);
                Response::from_parts(parts, body)
            }
        }
    }

    /// The upstream switched protocols: answers the client 101 with the upstream's
    /// `Upgrade`, and joins the two connections in a task of their own once hyper hands
    /// them over. The tunnel ends when either side closes, the session (`liveness`, on an
    /// authenticated route) is revoked, or the gateway shuts down.
    fn switch_protocols(
        &self,
        client_side: OnUpgrade,
        mut response: Response<Incoming>,
        liveness: Option<SessionLiveness>,
    ) -> Response<Body> {
        let upstream_side = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        let protocol = parts.headers.get(header::UPGRADE).cloned();
        let websocket = protocol.as_ref().is_some_and(is_websocket);
        remove_hop_by_hop_headers(&mut parts.headers);
        if let Some(protocol) = protocol {
            keep_upgrade_headers(&mut parts.headers, protocol);
        }
        let mut closing = self.inner.closing.subscribe();
        let stop = async move {
            let revoked = async {
                match &liveness {
                    Some(liveness) => liveness.revoked().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = closing.wait_for(|closing| *closing) => Stop::ShuttingDown,
                () = revoked => {
                    tracing::info!(
                        member_session_id = liveness.as_ref().map(SessionLiveness::member_session_id),
                        "upgraded connection closed: the session was revoked"
                    );
                    Stop::Revoked
                }
            }
        };
        // Held by the tunnel until it ends: shutdown waits for the last one to go.
        let alive = self.inner.closing.subscribe();
        tokio::spawn(async move {
            let end = tunnel(client_side, upstream_side, stop, websocket).await;
            drop(alive);
            end
        });
        Response::from_parts(parts, full_body(Bytes::new()))
    }

    /// Closes every upgraded connection (at shutdown, once in-flight requests finished), and
    /// waits for them to be closed, at most `within`.
    pub(crate) async fn close_tunnels(&self, within: Duration) {
        self.inner.closing.send_replace(true);
        let _ = tokio::time::timeout(within, self.inner.closing.closed()).await;
    }

    /// Rewrites the request for the upstream: URI, version, headers (`Upgrade` and
    /// `Connection: upgrade` kept for an upgrade to `protocol`), the body under the body
    /// timeout, and what the response's liveness is made of on an authenticated route; or
    /// why the request has no target at the upstream.
    fn prepare<B>(
        &self,
        req: Request<B>,
        protocol: Option<HeaderValue>,
    ) -> Result<(Request<Body>, Option<LiveSeed>), BadTarget>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        // HTTP/1.1's origin form; HTTP/2 gets the scheme and authority when sent.
        parts.uri = self
            .inner
            .upstream
            .path_for(parts.uri.path_and_query().cloned())
            .map(Uri::from)
            .inspect_err(|bad| {
                if let BadTarget::EscapesPrefix(_) = bad {
                    tracing::info!(
                        path = parts.uri.path(),
                        "path above the upstream's prefix refused"
                    );
                }
            })?;
        restore_client_overrides(&mut parts.headers, &mut parts.extensions);
        let headers = &mut parts.headers;
        remove_hop_by_hop_headers(headers);
        if let Some(protocol) = protocol {
            keep_upgrade_headers(headers, protocol);
        }
        let forwarding = &self.inner.forwarding;
        forwarding.underscore_headers.strip(headers);
        strip_identity_headers(headers);
        forwarding.credentials.apply(headers);
        insert_identity(headers, &parts.extensions);
        let peer = parts
            .extensions
            .get::<PeerAddr>()
            .map(|PeerAddr(peer)| peer.ip());
        set_forwarding_headers(headers, peer, &forwarding.trusted_proxies, original_host);
        headers.insert(header::HOST, self.inner.upstream.host_header().clone());
        parts.version = Version::HTTP_11;
        let seed = LiveSeed::take(&parts.extensions);
        let body = timed(
            body.map_err(Into::into).boxed_unsync(),
            forwarding.body_timeout,
        );
        Ok((Request::from_parts(parts, body), seed))
    }
}

impl<B> Handler<B> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn handle(&self, req: Request<B>) -> impl Future<Output = Response<Body>> + Send + 'static {
        let proxy = self.clone();
        async move { proxy.forward(req).await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_connection_listed_ones_go() {
        // If this broke, connection-level headers would leak between client and upstream.
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop_headers(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }
}
