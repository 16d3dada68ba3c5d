//! Route patterns: an optional method and a path with `{name}` captures and a trailing
//! `{*rest}` wildcard, e.g. `DELETE /api/members/{member_id}` or `GET /assets/{*path}`.

use http::Method;

use crate::error::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
    Rest,
}

/// A parsed route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutePattern {
    raw: String,
    method: Option<Method>,
    segments: Vec<Segment>,
    prefix: bool,
}

/// Captures of a matched pattern, in pattern order.
pub(crate) type Captures = Vec<(String, String)>;

impl RoutePattern {
    /// Parses `"[METHOD ]/path"`.
    pub(crate) fn parse(raw: &str) -> Result<Self, ConfigError> {
        let bad = |reason: &'static str| ConfigError::InvalidRoute {
            pattern: raw.to_owned(),
            reason,
        };
        let trimmed = raw.trim();
        let (method, path) = match trimmed.split_once(char::is_whitespace) {
            // `*`: any method, as no method at all.
            Some(("*", p)) => (None, p.trim()),
            Some((m, p)) => {
                let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| bad("invalid method"))?;
                (Some(method), p.trim())
            }
            None => (None, trimmed),
        };
        if !path.starts_with('/') {
            return Err(bad("the path must start with '/'"));
        }
        let mut segments = Vec::new();
        let parts: Vec<&str> = path[1..].split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            if let Some(name) = part.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
                if i + 1 != parts.len() {
                    return Err(bad("a {*wildcard} must be the last segment"));
                }
                if name.is_empty() {
                    return Err(bad("a wildcard needs a name"));
                }
                segments.push(Segment::Rest);
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(bad("a capture name must be [A-Za-z0-9_]+"));
                }
                segments.push(Segment::Capture(name.to_owned()));
            } else if part.contains(['{', '}', '?', '#']) {
                return Err(bad("unexpected '{', '}', '?' or '#'"));
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        Ok(Self {
            raw: trimmed.to_owned(),
            method,
            segments,
            prefix: false,
        })
    }

    /// Every path starting with `prefix` (any method).
    pub(crate) fn prefix(prefix: &str) -> Result<Self, ConfigError> {
        if !prefix.starts_with('/') {
            return Err(ConfigError::InvalidRoute {
                pattern: prefix.to_owned(),
                reason: "the prefix must start with '/'",
            });
        }
        Ok(Self {
            raw: prefix.to_owned(),
            method: None,
            segments: vec![Segment::Literal(prefix.to_owned())],
            prefix: true,
        })
    }

    /// The pattern as configured.
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// The names of the captures, in order.
    pub(crate) fn capture_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Capture(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Whether the pattern names one method (not none, not `*`).
    pub(crate) fn has_method(&self) -> bool {
        self.method.is_some()
    }

    /// Whether the method matches (a pattern without method matches all).
    pub(crate) fn method_matches(&self, method: &Method) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
    }

    /// Matches the path only; `None` when it does not match. Captures are raw (not
    /// percent-decoded): callers validate them.
    pub(crate) fn match_path(&self, path: &str) -> Option<Captures> {
        if self.prefix {
            let Segment::Literal(prefix) = &self.segments[0] else {
                return None;
            };
            return path.starts_with(prefix.as_str()).then(Vec::new);
        }
        let rest = path.strip_prefix('/')?;
        // Most paths differ from a pattern in its first segment: told without splitting (a
        // request's path is matched against every admin route's pattern).
        if let Some(Segment::Literal(first)) = self.segments.first() {
            match rest.strip_prefix(first.as_str()) {
                Some(after) if after.is_empty() || after.starts_with('/') => {}
                _ => return None,
            }
        }
        let mut parts = rest.split('/');
        let mut captures = Vec::new();
        for segment in &self.segments {
            match segment {
                Segment::Rest => return Some(captures),
                Segment::Literal(lit) => {
                    if parts.next()? != lit {
                        return None;
                    }
                }
                Segment::Capture(name) => {
                    let value = parts.next()?;
                    if value.is_empty() {
                        return None;
                    }
                    captures.push((name.clone(), value.to_owned()));
                }
            }
        }
        parts.next().is_none().then_some(captures)
    }

    /// Matches already split (and decoded) path segments, the way a lenient router does:
    /// the pattern's empty segments (a trailing slash) are ignored, as the caller dropped the
    /// path's. Literal segments are compared ASCII case-insensitively, the way Express,
    /// ASP.NET and IIS route (a case-sensitive app answers a path of another case 404);
    /// captures are the segments as given.
    pub(crate) fn match_segments_ignore_case<S: AsRef<str>>(&self, path: &[S]) -> Option<Captures> {
        self.match_segments_by(path, str::eq_ignore_ascii_case)
    }

    fn match_segments_by<S: AsRef<str>>(
        &self,
        path: &[S],
        eq: impl Fn(&str, &str) -> bool,
    ) -> Option<Captures> {
        if self.prefix {
            return None;
        }
        let mut parts = path.iter().map(AsRef::as_ref);
        let mut captures = Vec::new();
        for segment in &self.segments {
            match segment {
                Segment::Rest => return Some(captures),
                Segment::Literal(lit) if lit.is_empty() => {}
                Segment::Literal(lit) => {
                    if !eq(parts.next()?, lit) {
                        return None;
                    }
                }
                Segment::Capture(name) => {
                    captures.push((name.clone(), parts.next()?.to_owned()));
                }
            }
        }
        parts.next().is_none().then_some(captures)
    }

    /// [`match_segments_ignore_case`](Self::match_segments_ignore_case) on `path` read the
    /// way a lenient router reads it (empty segments dropped, each percent-decoded once),
    /// without collecting its segments: the request path's form of it. `Some(capture)` when
    /// the path matches, with the value of the capture named `wanted`, if asked.
    pub(crate) fn match_router_path(
        &self,
        path: &str,
        wanted: Option<&str>,
    ) -> Option<Option<String>> {
        if self.prefix {
            return None;
        }
        let mut parts = path.split('/').filter(|s| !s.is_empty()).map(decoded);
        let mut captured = None;
        for segment in &self.segments {
            match segment {
                Segment::Rest => return Some(captured),
                Segment::Literal(lit) if lit.is_empty() => {}
                Segment::Literal(lit) => {
                    if !parts.next()?.eq_ignore_ascii_case(lit) {
                        return None;
                    }
                }
                Segment::Capture(name) => {
                    let part = parts.next()?;
                    if wanted == Some(name.as_str()) {
                        captured = Some(part.into_owned());
                    }
                }
            }
        }
        parts.next().is_none().then_some(captured)
    }

    /// Matches method and path.
    pub(crate) fn matches(&self, method: &Method, path: &str) -> Option<Captures> {
        if !self.method_matches(method) {
            return None;
        }
        self.match_path(path)
    }
}

/// A path segment percent-decoded once (invalid UTF-8 replaced), borrowed when it holds no
/// escape.
fn decoded(segment: &str) -> std::borrow::Cow<'_, str> {
    if segment.contains('%') {
        percent_encoding::percent_decode(segment.as_bytes()).decode_utf8_lossy()
    } else {
        std::borrow::Cow::Borrowed(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_paths_matching_equals_matching_the_routers_segments() {
        // If this broke, an authorization rule would match (or miss) a path differently from
        // the hooks and from how the app's router reads it, and could be dodged.
        let patterns = [
            "DELETE /api/orgs/{organization_id}/documents/{document_id}",
            "* /api/admin/{*rest}",
            "GET /a/",
        ];
        let paths = [
            "/api/orgs/o1/documents/d1",
            "/API/orgs/o%2D1/Documents/d1/",
            "//api//orgs/o1/documents/d1",
            "/api/orgs/o1/documents",
            "/api/orgs/o1/documents/d1/x",
            "/api/admin",
            "/api/admin/x/y",
            "/a",
            "/a/",
            "/b",
            "/api/orgs/%ff/documents/d",
        ];
        for raw in patterns {
            let p = RoutePattern::parse(raw).unwrap();
            for path in paths {
                let segments = crate::routing::path::router_segments(path);
                let slow = p.match_segments_ignore_case(&segments).map(|captures| {
                    captures
                        .into_iter()
                        .find(|(n, _)| n == "organization_id")
                        .map(|(_, v)| v)
                });
                assert_eq!(
                    p.match_router_path(path, Some("organization_id")),
                    slow,
                    "{raw} on {path}"
                );
            }
        }
    }

    #[test]
    fn matches_methods_literals_captures_and_wildcards() {
        // If this broke, admin and hook routes would not be intercepted (or the wrong ones would).
        let p = RoutePattern::parse("DELETE /api/members/{member_id}").unwrap();
        assert_eq!(
            p.matches(&Method::DELETE, "/api/members/member-test-1"),
            Some(vec![("member_id".into(), "member-test-1".into())])
        );
        assert_eq!(p.matches(&Method::GET, "/api/members/member-test-1"), None);
        assert_eq!(p.matches(&Method::DELETE, "/api/members/"), None);
        assert_eq!(p.matches(&Method::DELETE, "/api/members/a/b"), None);
        assert_eq!(p.capture_names().collect::<Vec<_>>(), vec!["member_id"]);

        let any = RoutePattern::parse("/health").unwrap();
        assert!(any.matches(&Method::POST, "/health").is_some());
        assert!(any.matches(&Method::POST, "/health/x").is_none());

        let rest = RoutePattern::parse("get /assets/{*path}").unwrap();
        assert!(rest.matches(&Method::GET, "/assets/a/b.css").is_some());
        assert!(rest.matches(&Method::GET, "/assets/").is_some());
        assert!(rest.matches(&Method::GET, "/assetsx").is_none());

        let prefix = RoutePattern::prefix("/public/").unwrap();
        assert!(prefix.matches(&Method::PUT, "/public/x").is_some());
        assert!(prefix.matches(&Method::PUT, "/publicx").is_none());
    }

    #[test]
    fn matches_decoded_segments_like_a_lenient_router() {
        // If this broke, a forced sign-out hook would miss a path the app's router accepts.
        let p = RoutePattern::parse("DELETE /api/members/{member_id}/").unwrap();
        assert_eq!(
            p.match_segments_ignore_case(&["api", "members", "member-test-1"]),
            Some(vec![("member_id".into(), "member-test-1".into())])
        );
        assert_eq!(p.match_segments_ignore_case(&["api", "members"]), None);
        assert_eq!(
            p.match_segments_ignore_case(&["api", "members", "a", "b"]),
            None
        );
        assert_eq!(p.match_segments_ignore_case(&["api", "users", "a"]), None);
        let rest = RoutePattern::parse("POST /orgs/{member_id}/{*rest}").unwrap();
        assert!(
            rest.match_segments_ignore_case(&["orgs", "m", "x", "y"])
                .is_some()
        );
        let prefix = RoutePattern::prefix("/api/").unwrap();
        assert_eq!(prefix.match_segments_ignore_case(&["api"]), None);
    }

    #[test]
    fn refuses_bad_patterns() {
        // If this broke, a typo in configuration would silently protect nothing.
        for bad in [
            "members",
            "/a/{*rest}/b",
            "/a/{}",
            "/a/{x-y}",
            "/a/b?c",
            "B@D /x",
        ] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad}");
        }
        assert!(RoutePattern::prefix("x").is_err());
    }
}
