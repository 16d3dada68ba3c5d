//! [`Proxy`]: forwards a request to the upstream over a pooled hyper-util client.
//!
//! The proxy streams bodies both ways (nothing is buffered), removes hop-by-hop headers in
//! both directions, removes the credentials the auth layer read unless they pass
//! ([`Credentials`]), replaces client-sent identity headers with the ones of the request's
//! [`MemberSession`] (if any), sets the forwarding headers (replacing the client's unless
//! the peer is a [trusted proxy](TrustedProxies)), and answers 502 when the upstream cannot
//! be reached and 504 when it does not answer within the timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::credentials::Credentials;
use super::forwarded::{TrustedProxies, set_forwarding_headers};
use super::identity::{insert_identity_headers, strip_identity_headers};
use super::{Body, BoxError, GatewayError, metrics as gw_metrics, text_response};
use tower_stytch::MemberSession;

/// Default time the upstream has to send its response headers.
pub(crate) const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The address of the client that opened the connection, inserted into every request's
/// extensions by [`serve`](super::server::serve).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerAddr(pub SocketAddr);

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

/// The upstream a [`Proxy`] forwards to: an `http://host[:port][/prefix]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upstream {
    authority: Authority,
    host_header: HeaderValue,
    prefix: String,
}

impl Upstream {
    /// Parses and checks an upstream URL. Only plain `http` is supported (TLS towards the
    /// upstream is not); a path becomes a prefix of every forwarded path.
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
        match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => {}
            Some(s) if *s == Scheme::HTTPS => {
                return Err(invalid("https upstreams are not supported, use http"));
            }
            _ => return Err(invalid("the scheme must be http")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?.clone();
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are not allowed"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query is not allowed"));
        }
        let host_header =
            HeaderValue::from_str(authority.as_str()).map_err(|_| invalid("invalid host"))?;
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            authority,
            host_header,
            prefix,
        })
    }

    /// The URI a request for `path_and_query` goes to.
    fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path_and_query}", self.prefix))
            .build()
    }
}

/// The reverse proxy towards one upstream. Cheap to clone (one shared connection pool).
///
/// As a `tower_service::Service` it never fails: upstream errors become 502 / 504 responses.
#[derive(Clone)]
pub(crate) struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpConnector, Body>,
    upstream: Upstream,
    timeout: Duration,
    forwarding: Forwarding,
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
    /// A proxy to `upstream` whose response headers must arrive within `timeout`, handing
    /// it credentials and forwarding headers as `forwarding` says.
    ///
    /// # Errors
    ///
    /// [`GatewayError::InvalidUpstream`] for a bad URL, [`GatewayError::ZeroTimeout`] for a
    /// zero timeout.
    pub(crate) fn new(
        upstream: &str,
        timeout: Duration,
        forwarding: Forwarding,
    ) -> Result<Self, GatewayError> {
        let upstream = Upstream::parse(upstream)?;
        if timeout.is_zero() {
            return Err(GatewayError::ZeroTimeout {
                name: "upstream-timeout",
            });
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                upstream,
                timeout,
                forwarding,
            }),
        })
    }

    /// Forwards `req` and returns the upstream's response (body streamed), or a plain-text
    /// 502 / 504.
    pub(crate) async fn forward<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let upstream_req = match self.prepare(req) {
            Ok(req) => req,
            Err(_) => return text_response(StatusCode::BAD_REQUEST, "bad request target\n"),
        };
        let result =
            tokio::time::timeout(self.inner.timeout, self.inner.client.request(upstream_req)).await;
        let elapsed = started.elapsed();
        match result {
            Ok(Ok(response)) => {
                gw_metrics::record_upstream(response.status(), elapsed);
                tracing::debug!(%method, path, status = response.status().as_u16(),
                    elapsed_ms = elapsed.as_millis() as u64, "proxied");
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop_headers(&mut parts.headers);
                Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
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

    /// Rewrites the request for the upstream: URI, version, headers.
    fn prepare<B>(&self, req: Request<B>) -> Result<Request<Body>, http::Error>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let headers = &mut parts.headers;
        remove_hop_by_hop_headers(headers);
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
        parts.uri = self.inner.upstream.uri_for(&path_and_query)?;
        parts.version = Version::HTTP_11;
        let body = body.map_err(Into::into).boxed_unsync();
        Ok(Request::from_parts(parts, body))
    }
}

impl<B> tower_service::Service<Request<B>> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = super::ServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let proxy = self.clone();
        Box::pin(async move { Ok(proxy.forward(req).await) })
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
        let u = Upstream::parse("http://127.0.0.1:8081/app/").unwrap();
        assert_eq!(
            u.uri_for("/x?y=1").unwrap().to_string(),
            "http://127.0.0.1:8081/app/x?y=1"
        );
        let u = Upstream::parse("http://localhost:9").unwrap();
        assert_eq!(u.uri_for("/").unwrap().to_string(), "http://localhost:9/");
        for bad in [
            "https://x",
            "127.0.0.1:80",
            "http://u:p@x/",
            "http://x/?q",
            "nope nope",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}
