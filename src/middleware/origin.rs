//! Where a state-changing request comes from, and where logout may send the browser next:
//! same-origin checks (`Sec-Fetch-Site`, `Origin`) and the `return_to` redirect allowlist.

use http::{HeaderMap, Uri, header};

/// Whether a cookie-authenticated request comes from this site: `Sec-Fetch-Site` says
/// `same-origin` or `none`, or else `Origin` is the request's own host or a trusted origin.
/// Requests with neither header (non-browser clients) pass.
pub(crate) fn is_same_origin(headers: &HeaderMap, trusted: &[String]) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if trusted.iter().any(|t| t.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin.split_once("://").is_some_and(|(scheme, authority)| {
        matches!(scheme, "http" | "https") && authority.eq_ignore_ascii_case(host)
    })
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

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn same_origin_check() {
        // If this broke, another site could log our users out with a cross-site form post.
        let trusted = vec!["https://app.example.com".to_owned()];
        assert!(is_same_origin(&h(&[]), &trusted));
        assert!(is_same_origin(
            &h(&[("sec-fetch-site", "same-origin")]),
            &trusted
        ));
        assert!(is_same_origin(&h(&[("sec-fetch-site", "none")]), &trusted));
        assert!(!is_same_origin(
            &h(&[("sec-fetch-site", "cross-site")]),
            &trusted
        ));
        assert!(!is_same_origin(
            &h(&[("sec-fetch-site", "same-site")]),
            &trusted
        ));
        assert!(is_same_origin(
            &h(&[
                ("origin", "https://api.example.com"),
                ("host", "api.example.com")
            ]),
            &trusted
        ));
        assert!(is_same_origin(
            &h(&[
                ("origin", "https://app.example.com"),
                ("host", "api.example.com")
            ]),
            &trusted
        ));
        assert!(!is_same_origin(
            &h(&[
                ("origin", "https://evil.example"),
                ("host", "api.example.com")
            ]),
            &trusted
        ));
        assert!(!is_same_origin(
            &h(&[("origin", "null"), ("host", "api.example.com")]),
            &trusted
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
