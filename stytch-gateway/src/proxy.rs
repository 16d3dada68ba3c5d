//! [`Proxy`]: forwards a request to the upstream over a pooled hyper-util client.
//!
//! The proxy streams bodies both ways (nothing is buffered), removes hop-by-hop headers in
//! both directions, removes the credentials the auth layer read unless they pass
//! ([`Credentials`]), replaces client-sent identity headers with the ones of the request's
//! [`MemberSession`] (if any), sets the forwarding headers (replacing the client's unless
//! the peer is a [trusted proxy](TrustedProxies)), and answers 502 when the upstream cannot
//! be reached and 504 when it does not answer within the timeout. `https://` upstreams are
//! reached over rustls (HTTP/2 when ALPN picks it), and HTTP/1.1 upgrades (WebSocket) are
//! tunnelled ([`upgrade`](crate::upgrade)).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_stytch::{MemberSession, live::SessionLiveness};

use crate::body::{Body, BoxError, full_body, text_response};
use crate::credentials::Credentials;
use crate::error::GatewayError;
use crate::forwarded::{TrustedProxies, set_forwarding_headers};
use crate::identity::{insert_identity_headers, strip_identity_headers};
use crate::live::{LiveSeed, revocable};
use crate::metrics as gw_metrics;
use crate::server::PeerAddr;
use crate::service::Handler;
use crate::tls::{UpstreamRoots, client_config};
use crate::upgrade::{keep_upgrade_headers, tunnel, upgrade_protocol};

/// Default time the upstream has to send its response headers.
pub(crate) const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers: the fixed list, `Upgrade`, and every header named in
/// `Connection`.
pub(crate) fn remove_hop_by_hop_headers(headers: &mut HeaderMap) {
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

/// The upstream a [`Proxy`] forwards to: an `http://` or `https://` `host[:port][/prefix]`
/// URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upstream {
    scheme: Scheme,
    authority: Authority,
    host_header: HeaderValue,
    prefix: String,
}

impl Upstream {
    /// Parses and checks an upstream URL: `http` or `https`, a host, no credentials, no
    /// query; a path becomes a prefix of every forwarded path.
    ///
    /// # Errors
    ///
    /// [`GatewayError::InvalidUpstream`] naming the URL and the reason.
    pub(crate) fn parse(raw: &str) -> Result<Self, GatewayError> {
        let invalid = |reason: &'static str| GatewayError::InvalidUpstream {
            url: raw.to_owned(),
            reason,
        };
        let uri: Uri = raw.trim().parse().map_err(|_| invalid("not a URL"))?;
        let scheme = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => s.clone(),
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?.clone();
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not allowed"));
        }
        if authority.host().is_empty() {
            return Err(invalid("no host"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query is not allowed"));
        }
        let host_header =
            HeaderValue::from_str(authority.as_str()).map_err(|_| invalid("invalid host"))?;
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            authority,
            host_header,
            prefix,
        })
    }

    /// Whether the upstream is reached over TLS.
    pub(crate) fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// The URI a request for `path_and_query` (`/` when `None`) goes to. Without a prefix
    /// the request's own path and query are reused as they are (no copy, no parse).
    fn uri_for(&self, path_and_query: Option<PathAndQuery>) -> Result<Uri, http::Error> {
        let path_and_query = match path_and_query {
            Some(pq) if self.prefix.is_empty() => pq,
            pq => {
                let pq = pq.as_ref().map_or("/", PathAndQuery::as_str);
                PathAndQuery::try_from(format!("{}{pq}", self.prefix))?
            }
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
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

/// The reverse proxy towards one upstream. Cheap to clone (one shared connection pool).
///
/// As a [`Handler`] it never fails: upstream errors become 502 / 504 responses.
#[derive(Clone)]
pub(crate) struct Proxy {
    inner: Arc<Inner>,
}

/// The connector of both clients: TCP, then TLS for `https://` URIs (ALPN decides the
/// HTTP version over TLS).
type Connector = HttpsConnector<HttpConnector>;

struct Inner {
    /// Every request but upgrades: HTTP/2 where the upstream negotiates it (ALPN `h2`, or
    /// `--upstream-h2c`), HTTP/1.1 otherwise.
    client: Client<Connector, Body>,
    /// Upgrade handshakes: HTTP/1.1 only, since an HTTP/2 connection cannot carry an
    /// HTTP/1.1 `Upgrade`.
    upgrade_client: Client<Connector, Body>,
    upstream: Upstream,
    timeout: Duration,
    forwarding: Forwarding,
    /// Turns true when upgraded connections must close (shutdown).
    closing: tokio::sync::watch::Sender<bool>,
}

/// What the proxy hands the upstream besides the request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forwarding {
    /// What happens to the credentials the auth layer reads.
    pub(crate) credentials: Credentials,
    /// Peers whose forwarding headers are kept.
    pub(crate) trusted_proxies: TrustedProxies,
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
        if transport.h2c && upstream.is_https() {
            return Err(GatewayError::InvalidUpstream {
                url: format!("{}://{}", upstream.scheme, upstream.authority),
                reason: "--upstream-h2c is for http:// upstreams (https negotiates HTTP/2 itself)",
            });
        }
        let tls = client_config(&transport.roots)?;
        let connector = |http2: bool| {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.set_connect_timeout(Some(timeout));
            // The TLS connector owns the scheme check: `https://` URIs get TLS.
            http.enforce_http(false);
            let builder = HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
                .enable_http1();
            if http2 {
                builder.enable_http2().wrap_connector(http)
            } else {
                builder.wrap_connector(http)
            }
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256);
        let upgrade_client = builder.clone().build(connector(false));
        if transport.h2c {
            builder.http2_only(true);
        }
        let client = builder.build(connector(true));
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                upgrade_client,
                upstream,
                timeout,
                forwarding,
                closing: tokio::sync::watch::Sender::new(false),
            }),
        })
    }

    /// Forwards `req` and returns the upstream's response (body streamed), or a plain-text
    /// 502 / 504.
    pub(crate) async fn forward<B>(&self, mut req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let method = req.method().clone();
        // For the log lines: a reference-counted clone, not a copy.
        let target = req.uri().path_and_query().cloned();
        let path = target.as_ref().map_or("/", PathAndQuery::path);
        // An upgrade takes the client's connection over from hyper once answered 101.
        let upgrade = upgrade_protocol(&req).map(|protocol| {
            let on_upgrade = hyper::upgrade::on(&mut req);
            (protocol, on_upgrade)
        });
        let protocol = upgrade.as_ref().map(|(protocol, _)| protocol.clone());
        // An upgrade is watched from the handshake on (a revocation meanwhile closes it).
        let liveness = upgrade
            .as_ref()
            .and_then(|_| SessionLiveness::from_extensions(req.extensions()));
        let client = match upgrade {
            Some(_) => &self.inner.upgrade_client,
            None => &self.inner.client,
        };
        let (upstream_req, seed) = match self.prepare(req, protocol) {
            Ok(prepared) => prepared,
            Err(_) => return text_response(StatusCode::BAD_REQUEST, "bad request target\n"),
        };
        let result = tokio::time::timeout(self.inner.timeout, client.request(upstream_req)).await;
        let elapsed = started.elapsed();
        match result {
            Ok(Ok(response)) => {
                gw_metrics::record_upstream(response.status(), elapsed);
                tracing::debug!(%method, path, status = response.status().as_u16(),
                    elapsed_ms = elapsed.as_millis() as u64, "proxied");
                match upgrade {
                    Some((_, client_side))
                        if response.status() == StatusCode::SWITCHING_PROTOCOLS =>
                    {
                        self.switch_protocols(client_side, response, liveness)
                    }
                    _ => {
                        let (mut parts, body) = response.into_parts();
                        remove_hop_by_hop_headers(&mut parts.headers);
                        let body = body.map_err(BoxError::from).boxed_unsync();
                        Response::from_parts(parts, revocable(body, seed))
                    }
                }
            }
            Ok(Err(err)) => {
                gw_metrics::record_upstream_failure("unavailable", elapsed);
                tracing::warn!(%method, path, error = %err, source = ?std::error::Error::source(&err).map(ToString::to_string),
                    "upstream unavailable");
                text_response(StatusCode::BAD_GATEWAY, "upstream unavailable\n")
            }
            Err(_) => {
                gw_metrics::record_upstream_failure("timeout", elapsed);
                tracing::warn!(%method, path, timeout_ms = self.inner.timeout.as_millis() as u64,
                    "upstream timed out");
                text_response(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
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
                _ = closing.wait_for(|closing| *closing) => {}
                () = revoked => tracing::info!(
                    member_session_id = liveness.as_ref().map(SessionLiveness::member_session_id),
                    "upgraded connection closed: the session was revoked"
                ),
            }
        };
        tokio::spawn(tunnel(client_side, upstream_side, stop));
        Response::from_parts(parts, full_body(Bytes::new()))
    }

    /// Closes every upgraded connection (at shutdown, once in-flight requests finished).
    pub(crate) fn close_tunnels(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Rewrites the request for the upstream: URI, version, headers (`Upgrade` and
    /// `Connection: upgrade` kept for an upgrade to `protocol`), and what the response's
    /// liveness is made of on an authenticated route.
    fn prepare<B>(
        &self,
        req: Request<B>,
        protocol: Option<HeaderValue>,
    ) -> Result<(Request<Body>, Option<LiveSeed>), http::Error>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        let path_and_query = parts.uri.path_and_query().cloned();
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let headers = &mut parts.headers;
        remove_hop_by_hop_headers(headers);
        if let Some(protocol) = protocol {
            keep_upgrade_headers(headers, protocol);
        }
        strip_identity_headers(headers);
        self.inner.forwarding.credentials.apply(headers);
        if let Some(session) = parts.extensions.get::<MemberSession>() {
            insert_identity_headers(headers, session);
        }
        let peer = parts
            .extensions
            .get::<PeerAddr>()
            .map(|PeerAddr(peer)| peer.ip());
        let trusted = &self.inner.forwarding.trusted_proxies;
        set_forwarding_headers(headers, peer, trusted, original_host);
        headers.insert(header::HOST, self.inner.upstream.host_header.clone());
        parts.uri = self.inner.upstream.uri_for(path_and_query)?;
        parts.version = Version::HTTP_11;
        let seed = LiveSeed::take(&mut parts.extensions);
        let body = body.map_err(Into::into).boxed_unsync();
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

    #[test]
    fn upstream_urls_are_checked() {
        // If this broke, a typo in --upstream would only show up at the first request.
        let pq = |raw: &'static str| Some(PathAndQuery::from_static(raw));
        let u = Upstream::parse("http://127.0.0.1:8081/app/").unwrap();
        assert_eq!(
            u.uri_for(pq("/x?y=1")).unwrap().to_string(),
            "http://127.0.0.1:8081/app/x?y=1"
        );
        assert_eq!(
            u.uri_for(None).unwrap().to_string(),
            "http://127.0.0.1:8081/app/"
        );
        let u = Upstream::parse("http://localhost:9").unwrap();
        assert_eq!(
            u.uri_for(pq("/")).unwrap().to_string(),
            "http://localhost:9/"
        );
        assert_eq!(
            u.uri_for(pq("/a/b?c=d&e")).unwrap().to_string(),
            "http://localhost:9/a/b?c=d&e"
        );
        assert_eq!(u.uri_for(None).unwrap().to_string(), "http://localhost:9/");
        let u = Upstream::parse("https://app.internal:8443").unwrap();
        assert!(u.is_https());
        assert_eq!(
            u.uri_for(pq("/")).unwrap().to_string(),
            "https://app.internal:8443/"
        );
        for bad in [
            "ftp://x",
            "127.0.0.1:80",
            "http://u:p@x/",
            "http://x/?q",
            "nope nope",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}
