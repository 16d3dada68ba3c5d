//! What the layer answers itself: logout and log-out-everywhere, admin revocation, and the
//! forced sign-out that follows the app's own admin actions.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header};

use super::lookup::LookupError;
use super::origin::{is_allowed_redirect, return_to};
use super::rejection::{Rejection, RejectionKind, json_response};
use super::shared::Shared;
use crate::extract::{Found, extract};
use crate::metrics;
use crate::revoke::{RevokeError, RevokeOutcome, Target};
use crate::session::is_stytch_id;

/// Reports what a logout did (`revoked`, `already_revoked`, `pending`, `local`, `none`).
pub const LOGOUT_HEADER: &str = "x-stytch-logout";

/// Reports what a forced sign-out hook did (`revoked`, `already_revoked`, `pending`,
/// `forbidden`, `failed`). A hooked route whose member id is not a Stytch id is refused (400)
/// before the app runs.
pub const FORCED_SIGNOUT_HEADER: &str = "x-stytch-forced-signout";

/// `POST /logout` and `POST /logout/everywhere`: revoke the caller's own session (or every
/// session of the caller), evict it here, and clear the cookies.
pub(crate) async fn logout(
    shared: Arc<Shared>,
    headers: HeaderMap,
    uri: Uri,
    everywhere: bool,
) -> Response<Bytes> {
    let redirect = match return_to(&uri) {
        Some(target) if is_allowed_redirect(&target, &shared.redirect_allowlist) => Some(target),
        Some(_) => return shared.reject(Rejection::new(RejectionKind::RedirectNotAllowed)),
        None => None,
    };
    // A malformed credential is treated as none: the cookies are cleared all the same. (A
    // cross-site request never gets here: `StytchAuth::call` refuses it.)
    let found = extract(&headers, &shared.sources).ok().flatten();
    let result = match found {
        Some(found) => revoke_own(&shared, &found, everywhere).await,
        None => "none",
    };
    metrics::logout(result, everywhere);
    tracing::info!(result, everywhere, "logout");
    logout_response(&shared, redirect, result)
}

/// Revokes the session behind the caller's credential (or every session of its member) and
/// says how it went. Never fails: whatever Stytch says, the session is dead here.
async fn revoke_own(shared: &Arc<Shared>, found: &Found, everywhere: bool) -> &'static str {
    let credential = &found.credential;
    let revoker = &shared.revoker;
    let entry = match shared.lookup.authenticate(credential).await {
        Ok(entry) => entry,
        Err(err) => match *err {
            LookupError::Unavailable { .. } | LookupError::Misconfigured { .. } => {
                // The session behind the credential is unknown: revoke by the credential.
                let target = Target::Credential(credential.clone());
                return revoker
                    .revoke(target, Some(credential), true, None)
                    .await
                    .map_or("local", |o| o.as_str());
            }
            LookupError::Invalid { .. } => return "already_revoked",
        },
    };
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
            // The member's roles do not grant revoke-sessions on stytch.self: their own
            // logout is still legitimate, authorized by the project secret.
            revoker.revoke(target.clone(), None, true, expires).await
        }
        other => other,
    };
    match outcome {
        Ok(outcome) => outcome.as_str(),
        Err(err) => {
            tracing::warn!(error = %err, "logout: stytch refused the revocation; revoked locally only");
            revoker.apply_local(&target, None).await;
            "local"
        }
    }
}

/// 204 (or 303 to the allowed `return_to`), every session cookie cleared, the outcome in
/// [`LOGOUT_HEADER`].
fn logout_response(
    shared: &Shared,
    redirect: Option<String>,
    result: &'static str,
) -> Response<Bytes> {
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
        if let Some(clear) = shared.cookies.clear_cookie(name) {
            headers.append(header::SET_COOKIE, clear);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(LOGOUT_HEADER, HeaderValue::from_static(result));
    res
}

/// `POST {admin}/members/{member_id}/revoke-sessions` and
/// `POST {admin}/sessions/{member_session_id}/revoke`: revoke acting as the caller, so that
/// Stytch enforces the caller's RBAC.
pub(crate) async fn admin(
    shared: Arc<Shared>,
    headers: HeaderMap,
    target: Target,
) -> Response<Bytes> {
    let (field, id) = match &target {
        Target::Member(id) => ("member_id", id.as_str()),
        Target::Session(id) => ("member_session_id", id.as_str()),
        Target::Credential(_) => {
            return shared.reject(Rejection::new(RejectionKind::InvalidParameter));
        }
    };
    if !is_stytch_id(id) {
        tracing::info!(field, "admin route: invalid path parameter");
        return shared.reject(Rejection::new(RejectionKind::InvalidParameter));
    }
    let found = match extract(&headers, &shared.sources) {
        Ok(Some(found)) => found,
        Ok(None) => return shared.reject(Rejection::new(RejectionKind::MissingCredential)),
        Err(err) => return shared.reject(Rejection::from(err)),
    };
    let entry = match shared.lookup.authenticate(&found.credential).await {
        Ok(entry) => entry,
        Err(err) => return shared.reject(Rejection::from(&*err)),
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
        Err(err) => shared.reject(Rejection::from(&err)),
    }
}

/// After the app answered a forced sign-out route with 2xx: revokes every session of
/// `member_id`, acting as the caller, and says how it went (for [`FORCED_SIGNOUT_HEADER`]).
pub(crate) async fn forced_signout(
    shared: Arc<Shared>,
    member_id: String,
    found: Found,
) -> &'static str {
    // `member_id` is a Stytch id: the route table refused the request before the app ran
    // otherwise.
    let result = match shared
        .revoker
        .revoke(
            Target::Member(member_id),
            Some(&found.credential),
            true,
            None,
        )
        .await
    {
        Ok(outcome) => outcome.as_str(),
        Err(RevokeError::Forbidden(_)) => "forbidden",
        Err(_) => "failed",
    };
    metrics::forced_signout(result);
    tracing::info!(result, "forced sign-out after the app's admin action");
    result
}
