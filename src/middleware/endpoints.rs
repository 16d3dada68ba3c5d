//! What the layer answers itself: logout and log-out-everywhere, admin revocation, and the
//! forced sign-out that follows the app's own admin actions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header};

use super::origin::{is_allowed_redirect, return_to};
use super::rejection::{Rejection, RejectionKind, json_response};
use super::shared::Shared;
use crate::authz::Denied;
use crate::extract::{Found, extract};
use crate::metrics;
use crate::revoke::{AtStytch, LogoutResult, RevokeError, RevokeOutcome, Target};
use crate::session::{MemberSession, is_stytch_id};
use crate::store::cache::CachedSession;

/// Reports what a logout did: `revoked` (Stytch confirmed), `already_revoked` (Stytch said
/// the session does not exist), `pending` (revoked here, Stytch told as soon as it answers),
/// `failed` (nothing revoked: Stytch refused, or could not be reached and it could not be
/// kept), `none` (no credential, or one refused here without asking Stytch: forged, expired
/// or revoked here before). The cookies are cleared in every case.
pub const LOGOUT_HEADER: &str = "x-stytch-logout";

/// Reports what a forced sign-out hook did: `revoked`, `already_revoked`, `pending` (the
/// caller is an outage admin of the member's organization, as known here: revoked here,
/// Stytch told as soon as it answers), `forbidden` (Stytch refused), `failed` (nothing
/// revoked: Stytch could not be reached and nothing here could verify the caller's right).
/// A hooked route whose member id is not a Stytch id is refused (400) before the app runs.
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
        Some(found) => shared.engine.logout(&found.credential, everywhere).await,
        None => LogoutResult::Nothing,
    }
    .as_str();
    metrics::logout(result, everywhere);
    tracing::info!(result, everywhere, "logout");
    logout_response(&shared, redirect, result)
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
        Target::Member(id) => ("member_id", id.clone()),
        Target::Session(id) => ("member_session_id", id.clone()),
        Target::Credential(_) => {
            return shared.reject(Rejection::new(RejectionKind::InvalidParameter));
        }
    };
    if !is_stytch_id(&id) {
        tracing::info!(field, "admin route: invalid path parameter");
        return shared.reject(Rejection::new(RejectionKind::InvalidParameter));
    }
    let (found, entry) = match authenticated_caller(&shared, &headers).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    // Stytch enforces its RBAC on the revocation; refused here first, without a call, when
    // the policy loaded here already says no (nothing loaded: Stytch decides).
    shared.authorizer.start();
    let session = &entry.session;
    let own = match &target {
        Target::Member(id) => *id == session.member_id,
        Target::Session(id) => *id == session.member_session_id,
        Target::Credential(_) => false,
    };
    let resource = if own { "stytch.self" } else { "stytch.member" };
    if shared
        .authorizer
        .allows_now(session, resource, "revoke-sessions")
        == Some(false)
    {
        tracing::info!(
            resource,
            "admin route refused by the RBAC policy, without asking stytch"
        );
        return shared.reject(Rejection::new(RejectionKind::InsufficientPermission));
    }
    let result = shared
        .engine
        .revoker
        .revoke_as_admin(target, found.credential, session)
        .await;
    let body = |status: &str| serde_json::json!({ "status": status, field: &id });
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

/// The caller of an admin route: its credential and its session, authenticated (from the
/// cache or by Stytch); otherwise the response of the rejection.
async fn authenticated_caller(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<(Found, Arc<CachedSession>), Response<Bytes>> {
    let found = match extract(headers, &shared.sources) {
        Ok(Some(found)) => found,
        Ok(None) => return Err(shared.reject(Rejection::new(RejectionKind::MissingCredential))),
        Err(err) => return Err(shared.reject(Rejection::from(err))),
    };
    match shared
        .engine
        .authenticator
        .authenticate(&found.credential)
        .await
    {
        Ok(entry) => Ok((found, entry)),
        Err(err) => Err(shared.reject(Rejection::from(&*err))),
    }
}

/// `POST {admin}/m2m-clients/{client_id}/revoke`: a member whose roles grant the configured
/// permission (default `revoke` on `m2m_clients`; the policy must be loaded: 503 otherwise)
/// cuts an M2M client off here and on every instance, and suspends it at Stytch.
pub(crate) async fn admin_client(
    shared: Arc<Shared>,
    headers: HeaderMap,
    client_id: String,
) -> Response<Bytes> {
    if !is_stytch_id(&client_id) {
        return shared.reject(Rejection::new(RejectionKind::InvalidParameter));
    }
    let entry = match authenticated_caller(&shared, &headers).await {
        Ok((_, entry)) => entry,
        Err(response) => return response,
    };
    let (resource, action) = &shared.m2m_revoke_permission;
    match shared
        .authorizer
        .check(&entry.session, resource, action)
        .await
    {
        Ok(()) => {}
        Err(Denied::Unavailable) => {
            let rejection = Rejection::new(RejectionKind::StytchUnavailable)
                .with_retry_after(super::rejection::retry_after(None));
            return shared.reject(rejection);
        }
        Err(_) => return shared.reject(Rejection::new(RejectionKind::InsufficientPermission)),
    }
    let revoker = &shared.engine.revoker;
    match revoker.revoke_client(&client_id, AtStytch::Suspend).await {
        Ok(cut) => {
            let until = httpdate::fmt_http_date(cut.until);
            let body = serde_json::json!({
                "status": "cut_off",
                "client_id": client_id,
                "until": until,
                "suspended_at_stytch": cut.suspended_at_stytch,
            });
            json_response(StatusCode::OK, &body)
        }
        Err(err) => shared.reject(Rejection::from(&err)),
    }
}

/// After the app acted on a forced sign-out route (2xx or a redirect): revokes every session of
/// `member_id`, acting as `caller`, and returns the future of what happened (for
/// [`FORCED_SIGNOUT_HEADER`]). The revocation is decided and started before this returns:
/// dropping the future does not cancel it.
pub(crate) fn forced_signout(
    shared: &Shared,
    member_id: String,
    found: Option<Found>,
    caller: Option<&MemberSession>,
) -> Pin<Box<dyn Future<Output = &'static str> + Send + 'static>> {
    // `member_id` is a Stytch id: the route table refused the request before the app ran
    // otherwise. No credential: an M2M client the route's rule admitted, acting with the
    // app's trust (the project secret).
    let acting = found.map(|found| found.credential);
    let done = shared
        .engine
        .revoker
        .force_signout(member_id, acting, caller);
    Box::pin(async move {
        signed_out(match done.await {
            Ok(outcome) => outcome.as_str(),
            Err(RevokeError::Forbidden(_)) => "forbidden",
            Err(_) => "failed",
        })
    })
}

/// Counts and logs a forced sign-out's result.
fn signed_out(result: &'static str) -> &'static str {
    metrics::forced_signout(result);
    tracing::info!(result, "forced sign-out after the app's admin action");
    result
}
