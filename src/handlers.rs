//! Routes the layer answers itself: logout, log-out-everywhere, admin revocation.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header};

use crate::auth::authenticate;
use crate::extract::extract;
use crate::layer::Shared;
use crate::rejection::{Rejection, RejectionKind, json_response};
use crate::revoke::{RevokeError, RevokeOutcome, Target};
use crate::routes::is_stytch_id;

/// Reports what a logout did (`revoked`, `already_revoked`, `pending`, `none`).
pub const LOGOUT_HEADER: &str = "x-stytch-logout";

/// The response for a rejection, through the configured handler, with the rejection in its
/// extensions.
pub(crate) fn reject(shared: &Shared, rejection: Rejection) -> Response<Bytes> {
    let mut res = shared.rejection.response(&rejection);
    res.extensions_mut().insert(rejection);
    res
}

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
fn return_to(uri: &Uri) -> Option<String> {
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

/// `POST /logout` and `POST /logout/everywhere`.
pub(crate) async fn logout(
    shared: Arc<Shared>,
    headers: HeaderMap,
    uri: Uri,
    everywhere: bool,
) -> Response<Bytes> {
    let redirect = match return_to(&uri) {
        Some(target) if is_allowed_redirect(&target, &shared.redirect_allowlist) => Some(target),
        Some(_) => return reject(&shared, Rejection::new(RejectionKind::RedirectNotAllowed)),
        None => None,
    };
    // A malformed credential is treated as none: the cookies are cleared all the same.
    let found = extract(&headers, &shared.sources).ok().flatten();
    if found.as_ref().is_some_and(|f| f.cookie.is_some())
        && !is_same_origin(&headers, &shared.trusted_origins)
    {
        tracing::warn!("cross-origin logout refused");
        return reject(&shared, Rejection::new(RejectionKind::CrossOrigin));
    }
    let mut result = "none";
    if let Some(found) = found {
        let credential = &found.credential;
        let revoker = &shared.revoker;
        match authenticate(&shared, credential).await {
            Ok(entry) => {
                let session = &entry.session;
                let target = if everywhere {
                    Target::Member(session.member_id.clone())
                } else {
                    Target::Session(session.member_session_id.clone())
                };
                let expires = Some(session.expires_at);
                let outcome = match revoker
                    .revoke(target.clone(), Some(credential), true, expires)
                    .await
                {
                    Err(RevokeError::Forbidden(_)) => {
                        // The member's roles do not grant revoke-sessions on stytch.self: their
                        // own logout is still legitimate, authorized by the project secret.
                        revoker.revoke(target.clone(), None, true, expires).await
                    }
                    other => other,
                };
                result = match outcome {
                    Ok(outcome) => outcome.as_str(),
                    Err(err) => {
                        tracing::warn!(error = %err, "logout: stytch refused the revocation; revoked locally only");
                        revoker.apply_local(&target, None).await;
                        "local"
                    }
                };
            }
            Err(rejection) => match rejection.kind() {
                RejectionKind::StytchUnavailable | RejectionKind::Misconfigured => {
                    // The session behind the credential is unknown: revoke by the credential.
                    let target = Target::Credential(credential.clone());
                    result = revoker
                        .revoke(target, Some(credential), true, None)
                        .await
                        .map_or("local", |o| o.as_str());
                }
                _ => result = "already_revoked",
            },
        }
    }
    metrics::counter!("stytch_logouts_total", "result" => result, "everywhere" => if everywhere { "true" } else { "false" }).increment(1);
    tracing::info!(result, everywhere, "logout");
    let mut res = Response::new(Bytes::new());
    match redirect {
        Some(target) => {
            *res.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(location) = HeaderValue::from_str(&target) {
                res.headers_mut().insert(header::LOCATION, location);
            }
        }
        None => *res.status_mut() = StatusCode::NO_CONTENT,
    }
    let headers = res.headers_mut();
    for name in shared.cookie_names() {
        if let Some(clear) = shared.cookies.clear(name) {
            headers.append(header::SET_COOKIE, clear);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(LOGOUT_HEADER, HeaderValue::from_static(result));
    res
}

/// `POST {admin}/members/{member_id}/revoke-sessions` and
/// `POST {admin}/sessions/{member_session_id}/revoke`.
pub(crate) async fn admin(
    shared: Arc<Shared>,
    headers: HeaderMap,
    target: Target,
) -> Response<Bytes> {
    let (field, id) = match &target {
        Target::Member(id) => ("member_id", id.as_str()),
        Target::Session(id) => ("member_session_id", id.as_str()),
        Target::Credential(_) => {
            return reject(&shared, Rejection::new(RejectionKind::InvalidParameter));
        }
    };
    if !is_stytch_id(id) {
        tracing::info!(field, "admin route: invalid path parameter");
        return reject(&shared, Rejection::new(RejectionKind::InvalidParameter));
    }
    let found = match extract(&headers, &shared.sources) {
        Ok(Some(found)) => found,
        Ok(None) => return reject(&shared, Rejection::new(RejectionKind::MissingCredential)),
        Err(crate::extract::ExtractError::BadRequest) => {
            return reject(&shared, Rejection::new(RejectionKind::MalformedRequest));
        }
        Err(crate::extract::ExtractError::Invalid(_)) => {
            return reject(&shared, Rejection::new(RejectionKind::InvalidCredential));
        }
    };
    let entry = match authenticate(&shared, &found.credential).await {
        Ok(entry) => entry,
        Err(rejection) => return reject(&shared, rejection),
    };
    let local_on_outage = shared.revoker.is_outage_admin(&entry.session);
    let result = shared
        .revoker
        .revoke(
            target.clone(),
            Some(&found.credential),
            local_on_outage,
            None,
        )
        .await;
    let body = |status: &str| serde_json::json!({ "status": status, field: id });
    match result {
        Ok(RevokeOutcome::Revoked { request_id }) => {
            let mut b = body("revoked");
            b["request_id"] = request_id.into();
            json_response(StatusCode::OK, &b)
        }
        Ok(RevokeOutcome::AlreadyRevoked) => {
            json_response(StatusCode::OK, &body("already_revoked"))
        }
        Ok(RevokeOutcome::Pending) => json_response(StatusCode::ACCEPTED, &body("pending")),
        Err(RevokeError::Forbidden(err)) => reject(
            &shared,
            Rejection::new(RejectionKind::Forbidden)
                .with_stytch(err.error_type(), err.request_id()),
        ),
        Err(RevokeError::NotFound(err)) => reject(
            &shared,
            Rejection::new(RejectionKind::NotFound).with_stytch(err.error_type(), err.request_id()),
        ),
        Err(RevokeError::ActingSessionInvalid(err)) => reject(
            &shared,
            Rejection::new(RejectionKind::SessionInvalid)
                .with_stytch(err.error_type(), err.request_id()),
        ),
        Err(RevokeError::InvalidId { .. }) => {
            reject(&shared, Rejection::new(RejectionKind::InvalidParameter))
        }
        Err(RevokeError::Unavailable(err)) => reject(
            &shared,
            Rejection::new(RejectionKind::StytchUnavailable)
                .with_retry_after(
                    err.retry_after()
                        .unwrap_or(std::time::Duration::from_secs(5)),
                )
                .with_stytch(err.error_type(), err.request_id()),
        ),
        Err(RevokeError::Misconfigured(err) | RevokeError::Rejected(err)) => reject(
            &shared,
            Rejection::new(RejectionKind::Misconfigured)
                .with_stytch(err.error_type(), err.request_id()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
