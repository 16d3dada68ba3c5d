//! What of the client's credentials reaches the upstream: by default none that the auth layer
//! reads (the upstream gets identity headers, not credentials), and the client's cookies as
//! one `Cookie` header, the form HTTP/1.1 upstreams expect.

use http::header::{COOKIE, HeaderMap, HeaderValue};
use tower_stytch::extract::{CredentialSource, strip_credentials};

/// What the proxy does with the credentials the auth layer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// Removed before forwarding (the default): each `Authorization: Bearer` header and
    /// each cookie these sources name; the app's other cookies and other schemes stay.
    Strip(Vec<CredentialSource>),
    /// Forwarded as the client sent them (`--pass-credentials`).
    Pass,
}

impl Default for Credentials {
    /// Stytch's credential sources stripped: the command line's default.
    fn default() -> Self {
        Self::Strip(CredentialSource::defaults())
    }
}

impl Credentials {
    /// Joins the cookie crumbs, then removes the credentials unless they pass.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        join_cookie_crumbs(headers);
        if let Self::Strip(sources) = self {
            strip_credentials(headers, sources);
        }
    }
}

/// Joins every `Cookie` header into one, `a=1; b=2` (RFC 9113 §8.2.3: an HTTP/2 client may
/// split cookies into crumbs, one header each; an HTTP/1.1 upstream expects one header).
pub(crate) fn join_cookie_crumbs(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(COOKIE).iter();
    let (Some(first), Some(_)) = (crumbs.next(), crumbs.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for crumb in headers.get_all(COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(crumb.as_bytes());
    }
    // Valid header values joined by "; " make a valid header value.
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crumbs_become_one_header_and_credentials_go() {
        // If this broke, an HTTP/1.1 upstream would see several Cookie headers (and keep one),
        // or the member's Stytch cookie and bearer token would reach it.
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1"));
        h.append(COOKIE, HeaderValue::from_static("stytch_session=tok"));
        h.append(COOKIE, HeaderValue::from_static("b=2"));
        h.insert("authorization", HeaderValue::from_static("Bearer tok"));
        let mut passed = h.clone();
        Credentials::Strip(CredentialSource::defaults()).apply(&mut h);
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        assert_eq!(h[COOKIE], "a=1; b=2");
        assert!(!h.contains_key("authorization"));
        Credentials::Pass.apply(&mut passed);
        assert_eq!(passed[COOKIE], "a=1; stytch_session=tok; b=2");
        assert_eq!(passed["authorization"], "Bearer tok");
        let mut one = HeaderMap::new();
        one.insert(COOKIE, HeaderValue::from_static("a=1"));
        join_cookie_crumbs(&mut one);
        assert_eq!(one[COOKIE], "a=1");
    }
}
