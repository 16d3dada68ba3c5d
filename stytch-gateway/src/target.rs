//! [`Upstream`]: the upstream's URL, and the target each request gets at it.
//!
//! An upstream with a prefix (`--upstream http://host/app`) gets the request's path with
//! dot segments resolved, in every encoding, before the prefix is put in front; a path that
//! would climb above the prefix is refused (400), as nginx's `proxy_pass` with a URI does.
//!
//! Without this, `/../internal/admin` or `/%2e%2e/internal/admin` would be forwarded as
//! `/app/../internal/admin`, which nginx, Tomcat or Spring in front of (or inside) the
//! upstream normalise to `/internal/admin`: a path outside the prefix the gateway was set up
//! to expose. "Every encoding" is every reading some server makes of a path: as sent, and
//! percent-decoded once or until nothing changes, each with `\` read as `/` (IIS) and `;`
//! parameters cut (Tomcat's `..;`); if any reading climbs above the root, the request is
//! refused. Otherwise the path sent is the client's with its dot segments (`.`, `..`, and
//! their percent-encodings, `%2e`, `%252e`…) resolved, every other segment left as sent.

use std::borrow::Cow;

use http::HeaderValue;
use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use percent_encoding::percent_decode;

use crate::error::GatewayError;

/// The upstream a [`Proxy`](crate::proxy::Proxy) forwards to: an `http://` or `https://` `host[:port][/prefix]`
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

    /// The URI a request for `path_and_query` (`/` when `None`) goes to: scheme, authority
    /// and [`path_for`](Self::path_for).
    ///
    /// # Errors
    ///
    /// Those of [`path_for`](Self::path_for).
    #[cfg(test)]
    pub(crate) fn uri_for(&self, path_and_query: Option<PathAndQuery>) -> Result<Uri, BadTarget> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(self.path_for(path_and_query)?)
            .build()
            .map_err(|_| BadTarget::Invalid)
    }

    /// The path and query a request for `path_and_query` (`/` when `None`) gets at the
    /// upstream. Without a prefix the request's own are reused as they are (no copy, no
    /// parse); with one, the path's dot segments are resolved first ([`under_prefix`]).
    ///
    /// # Errors
    ///
    /// [`BadTarget::EscapesPrefix`] for a path climbing above the prefix,
    /// [`BadTarget::Invalid`] for one that makes no URI.
    pub(crate) fn path_for(
        &self,
        path_and_query: Option<PathAndQuery>,
    ) -> Result<PathAndQuery, BadTarget> {
        match path_and_query {
            Some(pq) if self.prefix.is_empty() => Ok(pq),
            pq => {
                let pq = pq.unwrap_or_else(|| PathAndQuery::from_static("/"));
                let path = under_prefix(pq.path())?;
                let joined = match pq.query() {
                    Some(query) => format!("{}{path}?{query}", self.prefix),
                    None => format!("{}{path}", self.prefix),
                };
                PathAndQuery::try_from(joined).map_err(|_| BadTarget::Invalid)
            }
        }
    }

    /// The upstream's scheme (`http` or `https`).
    pub(crate) fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The upstream's `host[:port]`.
    pub(crate) fn authority_parsed(&self) -> &Authority {
        &self.authority
    }

    /// The `Host` header the upstream gets.
    pub(crate) fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// The upstream's `host[:port]`, for messages.
    pub(crate) fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The URL without its prefix, for messages.
    pub(crate) fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// Why a request has no target at the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadTarget {
    /// A reading of the path climbs above the upstream's prefix.
    #[error(transparent)]
    EscapesPrefix(#[from] EscapesPrefix),
    /// The path and query make no URI.
    #[error("invalid request target")]
    Invalid,
}

/// A path that some server would read as climbing above the upstream's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the path climbs above the upstream's prefix")]
pub(crate) struct EscapesPrefix;

/// `path` (as the client sent it, starting with `/`) with its dot segments resolved, to be
/// put after the upstream's prefix.
///
/// # Errors
///
/// [`EscapesPrefix`] when a reading of `path` climbs above the root.
pub(crate) fn under_prefix(path: &str) -> Result<Cow<'_, str>, EscapesPrefix> {
    // Fast path: nothing that could be or become a dot segment, a backslash or a parameter.
    if !path
        .bytes()
        .any(|b| matches!(b, b'.' | b'%' | b'\\' | b';'))
    {
        return Ok(Cow::Borrowed(path));
    }
    if any_reading_climbs(path.as_bytes()) {
        return Err(EscapesPrefix);
    }
    resolve_dot_segments(path).map(Cow::Owned)
}

/// Whether the path read as sent, or percent-decoded once or repeatedly (each with `\` as
/// `/`, `;` parameters cut, empty segments merged), climbs above the root.
fn any_reading_climbs(raw: &[u8]) -> bool {
    let mut bytes = Cow::Borrowed(raw);
    loop {
        if climbs(&bytes) {
            return true;
        }
        let next: Cow<'_, [u8]> = percent_decode(&bytes).into();
        if next == bytes {
            return false;
        }
        bytes = Cow::Owned(next.into_owned());
    }
}

fn climbs(path: &[u8]) -> bool {
    let mut depth = 0usize;
    for segment in path.split(|b| matches!(b, b'/' | b'\\')) {
        let segment = segment.split(|&b| b == b';').next().unwrap_or_default();
        match segment {
            b"" | b"." => {}
            b".." => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
}

/// Whether a segment is `.` or `..` once percent-decoded until nothing changes.
fn dot_segment(segment: &str) -> Option<&'static str> {
    let mut bytes = Cow::Borrowed(segment.as_bytes());
    loop {
        match &*bytes {
            b"." => return Some("."),
            b".." => return Some(".."),
            _ => {}
        }
        let next: Cow<'_, [u8]> = percent_decode(&bytes).into();
        if next == bytes {
            return None;
        }
        bytes = Cow::Owned(next.into_owned());
    }
}

/// RFC 3986's `remove_dot_segments` over `path`'s raw segments, a segment being a dot
/// segment when it decodes to one.
fn resolve_dot_segments(path: &str) -> Result<String, EscapesPrefix> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = false;
        match dot_segment(segment) {
            Some(".") => trailing_slash = true,
            Some(_) => {
                kept.pop().ok_or(EscapesPrefix)?;
                trailing_slash = true;
            }
            _ => kept.push(segment),
        }
    }
    let mut resolved = String::with_capacity(path.len());
    for segment in &kept {
        resolved.push('/');
        resolved.push_str(segment);
    }
    if trailing_slash || resolved.is_empty() {
        resolved.push('/');
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_upstream_prefix_gets_the_resolved_path_and_never_a_path_above_it() {
        // If this broke, `/%2e%2e/internal/admin` would reach `/internal/admin` through
        // `--upstream http://host/app` on an upstream that normalises paths.
        let pq = |raw: &'static str| Some(PathAndQuery::from_static(raw));
        let u = Upstream::parse("http://127.0.0.1:8081/app").unwrap();
        assert_eq!(
            u.uri_for(pq("/a/%2e%2e/b?_method=x")).unwrap().to_string(),
            "http://127.0.0.1:8081/app/b?_method=x"
        );
        for escaping in ["/../internal/admin", "/%2e%2e/internal/admin?x=1"] {
            assert_eq!(
                u.uri_for(pq(escaping)),
                Err(BadTarget::EscapesPrefix(EscapesPrefix)),
                "{escaping}"
            );
        }
        // Without a prefix the path goes as sent: the upstream's root is the top already.
        let u = Upstream::parse("http://127.0.0.1:8081").unwrap();
        assert_eq!(
            u.uri_for(pq("/a/../b")).unwrap().to_string(),
            "http://127.0.0.1:8081/a/../b"
        );
    }

    #[test]
    fn a_path_climbing_above_the_prefix_in_any_encoding_is_refused() {
        // If this broke, `--upstream http://host/app` would let `/../internal/admin` (or an
        // encoded `..`) reach `/internal/admin` on an upstream that normalises paths.
        for escaping in [
            "/../internal/admin",
            "/%2e%2e/internal/admin",
            "/%2E./internal/admin",
            "/.%2e/internal/admin",
            "/%252e%252e/internal/admin",
            "/a/../../internal",
            "/a/%2e%2e/%2e%2e/internal",
            "/..;/internal/admin",
            "/a/..;/..;/internal",
            "/..\\internal",
            "/a%2f..%2f..%2finternal",
            "/a%5c..%5c..%5cinternal",
            "/./../x",
            "/..",
        ] {
            assert_eq!(under_prefix(escaping), Err(EscapesPrefix), "{escaping}");
        }
    }

    #[test]
    fn dot_segments_inside_the_prefix_are_resolved_and_the_rest_is_left_as_sent() {
        // If this broke, the upstream would get dot segments to resolve itself (and may
        // resolve them differently), or ordinary paths would be rewritten.
        for (sent, forwarded) in [
            ("/", "/"),
            ("/x", "/x"),
            ("/assets/app.js", "/assets/app.js"),
            ("/a/../b", "/b"),
            ("/a/%2e%2e/b", "/b"),
            ("/a/%252E%252e/b", "/b"),
            ("/a/./b/", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a/..", "/"),
            ("/caf%C3%A9/%2e/x%20y", "/caf%C3%A9/x%20y"),
            ("/a/..;/x", "/a/..;/x"),
            ("/a/b;v=1/../c", "/a/c"),
            ("/a//b", "/a//b"),
        ] {
            assert_eq!(under_prefix(sent).unwrap(), forwarded, "{sent}");
        }
    }
}
