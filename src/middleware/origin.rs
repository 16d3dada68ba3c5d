//! Where a state-changing request comes from, and where logout may send the browser next:
//! the cross-site request forgery check ([`SiteRule`], [`allows`]) and the `return_to`
//! redirect allowlist.
//!
//! # The request's own origin
//!
//! A request's own origin is its authority: the URI's (HTTP/2 `:authority`, or an
//! absolute-form HTTP/1.1 target), else the `Host` header. An `Origin` matches it when the
//! hosts are equal (ASCII case-insensitively) and so are the ports, a missing port standing
//! for the scheme's default (`Origin`) or for either default, 80 or 443 (`Host`). The scheme
//! is not compared: behind a TLS-terminating proxy the layer sees plain http while the
//! browser's `Origin` says `https`, and a proxy that keeps `Host` keeps the match. (A page on
//! `http://` of the same host thus passes the `Origin` check; browsers that send
//! `Sec-Fetch-Site`, every current one, call that request `same-site` or `cross-site`, which
//! is refused.) A proxy that rewrites `Host` needs the public origin among the
//! [trusted origins](super::StytchAuthLayerBuilder::trusted_origins).

use http::{Method, Request, Uri, header};

use super::route_table::Route;

/// What a route asks of where a browser request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SiteRule {
    /// Nothing: the route changes nothing by itself (public, optional, protected: the app
    /// guards its own routes), or proves its caller otherwise. Webhook routes belong here:
    /// they are gated by their Svix signature alone, and Stytch's servers send no browser
    /// headers.
    Any,
    /// The route has a side effect: a browser request from another site or origin is
    /// refused (`Sec-Fetch-Site: cross-site | same-site`, or an `Origin` neither the
    /// request's own nor trusted). A request without either header (an API client) passes.
    NotCrossOrigin,
    /// The route has a side effect and a method any page can trigger without the browser
    /// sending `Origin` (`<img src>`, a link): a positive same-origin signal is needed,
    /// `Sec-Fetch-Site: same-origin | none`, or an `Origin` that is the request's own or
    /// trusted.
    SameOrigin,
}

impl SiteRule {
    /// The rule of `route` requested with `method`.
    pub(crate) fn of(route: &Route, method: &Method) -> Self {
        match route {
            Route::Logout { .. } | Route::Admin(_) | Route::AdminClient(_) | Route::Hook(_)
                if method.is_safe() =>
            {
                Self::SameOrigin
            }
            Route::Logout { .. } | Route::Admin(_) | Route::AdminClient(_) | Route::Hook(_) => {
                Self::NotCrossOrigin
            }
            Route::MethodNotAllowed(_)
            | Route::Refused(_)
            | Route::Public
            | Route::Optional
            | Route::Protected => Self::Any,
        }
    }
}

/// Whether `req` may reach a route with `rule`. An `Origin` among `trusted` passes whatever
/// `Sec-Fetch-Site` says (a trusted sibling origin's requests are `same-site`); otherwise
/// every `Sec-Fetch-Site` must be `same-origin` or `none` and the `Origin`, if any, the
/// request's own (see the [module docs](self)).
pub(crate) fn allows<B>(rule: SiteRule, req: &Request<B>, trusted: &[String]) -> bool {
    if rule == SiteRule::Any {
        return true;
    }
    let headers = req.headers();
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let origin = match (origins.next(), origins.next()) {
        (None, _) => None,
        (Some(origin), None) => match origin.to_str() {
            Ok(origin) => Some(origin.trim()),
            Err(_) => return false,
        },
        // No browser sends two.
        (Some(_), Some(_)) => return false,
    };
    if let Some(origin) = origin {
        if trusted.iter().any(|t| t.eq_ignore_ascii_case(origin)) {
            return true;
        }
        if !own_authority(req).is_some_and(|own| is_own_origin(origin, own)) {
            return false;
        }
    }
    let mut sites = headers.get_all("sec-fetch-site").iter().peekable();
    if sites.peek().is_some() {
        return sites.all(|site| matches!(site.as_bytes(), b"same-origin" | b"none"));
    }
    // Neither header: an API client, unless the route needs a positive signal.
    origin.is_some() || rule == SiteRule::NotCrossOrigin
}

/// The request's own authority: the URI's (HTTP/2 `:authority`, absolute-form target), else
/// the `Host` header.
fn own_authority<B>(req: &Request<B>) -> Option<&str> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str());
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().ok(),
        _ => None,
    }
}

/// Whether the serialized origin `origin` (`scheme://host[:port]`) is `own` (`host[:port]`),
/// schemes aside (see the [module docs](self)).
fn is_own_origin(origin: &str, own: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let (Ok(origin), Ok(own)) = (
        authority.parse::<http::uri::Authority>(),
        own.parse::<http::uri::Authority>(),
    ) else {
        return false;
    };
    if authority.contains(['@', '/']) || !origin.host().eq_ignore_ascii_case(own.host()) {
        return false;
    }
    let origin_port = origin.port_u16().unwrap_or(default_port);
    match own.port_u16() {
        Some(port) => port == origin_port,
        None => matches!(origin_port, 80 | 443),
    }
}

/// The `return_to` query parameter, if any.
pub(crate) fn return_to(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
}

/// Whether `target` may be redirected to: a local path under an allowed local prefix, or an
/// absolute http(s) URL under an allowed absolute prefix. No scheme-relative `//host`, no
/// backslashes, no control characters, no userinfo.
pub(crate) fn is_allowed_redirect(target: &str, allowlist: &[String]) -> bool {
    if target.is_empty()
        || target.chars().any(|c| c.is_control() || c == '\\')
        || target.starts_with("//")
    {
        return false;
    }
    if target.starts_with('/') {
        return allowlist
            .iter()
            .filter(|a| a.starts_with('/') && !a.starts_with("//"))
            .any(|a| under(target, a));
    }
    let Ok(url) = reqwest::Url::parse(target) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return false;
    }
    allowlist
        .iter()
        .filter_map(|a| reqwest::Url::parse(a).ok())
        .any(|allowed| allowed.origin() == url.origin() && under(url.path(), allowed.path()))
}

/// `path` equals `prefix` or lies under it (segment-wise).
fn under(path: &str, prefix: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path == prefix
        || (prefix.ends_with('/') && path.starts_with(prefix))
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn req(method: Method, pairs: &[(&'static str, &'static str)]) -> Request<()> {
        let mut req = Request::builder()
            .method(method)
            .uri("/logout")
            .body(())
            .unwrap();
        for (k, v) in pairs {
            req.headers_mut().append(*k, HeaderValue::from_static(v));
        }
        req
    }

    fn post(pairs: &[(&'static str, &'static str)]) -> Request<()> {
        req(Method::POST, pairs)
    }

    const HOST: (&str, &str) = ("host", "api.example.com");

    #[test]
    fn state_changing_routes_refuse_other_sites() {
        // If this broke, another site (or a sibling subdomain) could log our users out or make
        // an admin's browser revoke sessions.
        let trusted = vec!["https://app.example.com".to_owned()];
        let ok = |r: &Request<()>| allows(SiteRule::NotCrossOrigin, r, &trusted);
        assert!(ok(&post(&[HOST])), "an API client");
        assert!(ok(&post(&[HOST, ("sec-fetch-site", "same-origin")])));
        assert!(ok(&post(&[HOST, ("sec-fetch-site", "none")])));
        assert!(!ok(&post(&[HOST, ("sec-fetch-site", "cross-site")])));
        assert!(!ok(&post(&[HOST, ("sec-fetch-site", "same-site")])));
        assert!(!ok(&post(&[HOST, ("sec-fetch-site", "whatever")])));
        assert!(!ok(&post(&[
            HOST,
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "cross-site")
        ])));
    }

    #[test]
    fn state_changing_routes_refuse_a_foreign_origin() {
        // If this broke, a page on another origin (old browsers send Origin only) could log
        // our users out or make an admin's browser revoke sessions.
        let trusted = vec!["https://app.example.com".to_owned()];
        let ok = |r: &Request<()>| allows(SiteRule::NotCrossOrigin, r, &trusted);
        for own in [
            "https://api.example.com",
            "http://api.example.com",
            "HTTPS://API.example.com",
        ] {
            assert!(ok(&post(&[HOST, ("origin", own)])), "{own}");
        }
        for foreign in [
            "https://evil.example",
            "https://api.example.com.evil.example",
            "https://api.example.com:8443",
            "https://user@api.example.com",
            "ftp://api.example.com",
            "api.example.com",
            "null",
        ] {
            assert!(!ok(&post(&[HOST, ("origin", foreign)])), "{foreign}");
        }
        // Origin own but Sec-Fetch-Site says otherwise (or the reverse): refused.
        assert!(!ok(&post(&[
            HOST,
            ("origin", "https://api.example.com"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!ok(&post(&[
            HOST,
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "same-origin")
        ])));
        // A trusted origin passes, also as the same-site request a browser makes of it.
        assert!(ok(&post(&[
            HOST,
            ("origin", "https://app.example.com"),
            ("sec-fetch-site", "same-site")
        ])));
        // No Host to compare with, or two: an Origin cannot be the request's own.
        assert!(!ok(&post(&[("origin", "https://api.example.com")])));
        assert!(!ok(&post(&[
            HOST,
            HOST,
            ("origin", "https://api.example.com")
        ])));
        assert!(!ok(&post(&[
            HOST,
            ("origin", "https://api.example.com"),
            ("origin", "https://api.example.com")
        ])));
    }

    #[test]
    fn ports_and_the_http2_authority_decide_the_own_origin() {
        // If this broke, the app's own pages would be refused behind a TLS terminator or over
        // HTTP/2, or a page on another port of the host would pass.
        let ok = |origin: &'static str, host: &'static str| {
            allows(
                SiteRule::NotCrossOrigin,
                &post(&[("host", host), ("origin", origin)]),
                &[],
            )
        };
        assert!(ok("https://a.test", "a.test:443"));
        assert!(ok("http://a.test", "a.test:80"));
        assert!(ok("https://a.test:8443", "a.test:8443"));
        assert!(ok("http://[::1]:8080", "[::1]:8080"));
        assert!(!ok("https://a.test", "a.test:8443"));
        assert!(!ok("https://a.test:8443", "a.test"));
        let mut h2 = Request::builder()
            .method(Method::POST)
            .uri("https://a.test/logout")
            .body(())
            .unwrap();
        h2.headers_mut()
            .insert("origin", HeaderValue::from_static("https://a.test"));
        assert!(allows(SiteRule::NotCrossOrigin, &h2, &[]));
        h2.headers_mut()
            .insert("origin", HeaderValue::from_static("https://b.test"));
        assert!(!allows(SiteRule::NotCrossOrigin, &h2, &[]));
    }

    #[test]
    fn a_same_origin_rule_needs_a_positive_signal() {
        // If this broke, GET logout would work from <img src> on any page.
        let get = |pairs: &[(&'static str, &'static str)]| {
            allows(SiteRule::SameOrigin, &req(Method::GET, pairs), &[])
        };
        assert!(!get(&[HOST]));
        assert!(!get(&[HOST, ("sec-fetch-site", "cross-site")]));
        assert!(get(&[HOST, ("sec-fetch-site", "same-origin")]));
        assert!(get(&[HOST, ("sec-fetch-site", "none")]));
        assert!(get(&[HOST, ("origin", "https://api.example.com")]));
        assert!(!get(&[HOST, ("origin", "https://evil.example")]));
    }

    #[test]
    fn only_routes_with_a_side_effect_are_checked() {
        // If this broke, cross-site GETs of ordinary pages would be refused, or a logout,
        // admin route or hook left unchecked (webhooks, later, are `Any` on purpose).
        let post = Method::POST;
        assert_eq!(
            SiteRule::of(&Route::Logout { everywhere: false }, &post),
            SiteRule::NotCrossOrigin
        );
        assert_eq!(
            SiteRule::of(&Route::Logout { everywhere: true }, &Method::GET),
            SiteRule::SameOrigin
        );
        assert_eq!(
            SiteRule::of(&Route::Hook("member-test-1".into()), &Method::DELETE),
            SiteRule::NotCrossOrigin
        );
        assert_eq!(
            SiteRule::of(&Route::Hook("member-test-1".into()), &Method::GET),
            SiteRule::SameOrigin
        );
        for route in [Route::Public, Route::Optional, Route::Protected] {
            assert_eq!(SiteRule::of(&route, &post), SiteRule::Any);
        }
        assert!(allows(
            SiteRule::Any,
            &req(Method::POST, &[("sec-fetch-site", "cross-site")]),
            &[]
        ));
    }

    #[test]
    fn redirect_allowlist() {
        // If this broke, logout would be an open redirect.
        let allow = vec![
            "/".to_owned(),
            "https://app.example.com/signed-out".to_owned(),
        ];
        for ok in [
            "/",
            "/home",
            "https://app.example.com/signed-out",
            "https://app.example.com/signed-out/x?y=1",
        ] {
            assert!(is_allowed_redirect(ok, &allow), "{ok}");
        }
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "https://app.example.com/other",
            "https://app.example.com/signed-outx",
            "https://user@app.example.com/signed-out",
            "javascript:alert(1)",
            "http://app.example.com/signed-out",
            "",
            "/a\nb",
        ] {
            assert!(!is_allowed_redirect(bad, &allow), "{bad}");
        }
        assert!(!is_allowed_redirect(
            "/home",
            &["https://app.example.com/".to_owned()]
        ));
    }
}
