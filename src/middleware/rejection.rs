//! [`Rejection`]: why the layer answered a request itself, the default response for it, and
//! the one place where every error of the request path becomes a rejection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::authenticator::AuthError;
use crate::error::StytchError;
use crate::extract::ExtractError;
use crate::revoke::RevokeError;

/// `Retry-After` of a 503 when Stytch is unavailable and said nothing.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Shortest `Retry-After` the layer sends.
pub(crate) const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest `Retry-After` the layer sends, whatever Stytch asked for.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The `Retry-After` to send for what Stytch asked (`None`: it did not say).
pub(crate) fn retry_after(asked: Option<Duration>) -> Duration {
    asked
        .unwrap_or(DEFAULT_RETRY_AFTER)
        .clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER)
}

/// Why a request was refused, or answered by the layer instead of the inner service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No credential on a protected route (401).
    MissingCredential,
    /// The request is malformed: several `Authorization` headers, a non-ASCII header (400).
    MalformedRequest,
    /// A credential was present but is not a well-formed Stytch credential (401).
    InvalidCredential,
    /// Several different values of one credential cookie (400): which one is the member's
    /// cannot be told, as a sibling domain can plant one. Logging out clears them.
    AmbiguousCredential,
    /// The session is unknown, expired or revoked, or the JWT does not verify (401).
    SessionInvalid,
    /// Stytch forbade the action (RBAC or tenancy, 403).
    Forbidden,
    /// A route's [`Rule`](crate::authz::Rule) asks for a permission the member's roles do
    /// not grant (403; `error_type` `session_authorization_error`, as Stytch's).
    InsufficientPermission,
    /// A route's rule asks for the organization in the path, and it is not the member's
    /// (403; `error_type` `session_authorization_tenancy_error`, as Stytch's).
    WrongOrganization,
    /// A route's rule asks for a second factor, or a recent authentication, the session
    /// lacks (401 with `WWW-Authenticate: Bearer error="insufficient_user_authentication"`,
    /// RFC 9470; or 303 to the rule's step-up page for a browser).
    StepUpRequired,
    /// A request to a route with a side effect (logout, admin revocation, forced sign-out
    /// hook) came from another site or origin, or a GET logout without a same-origin signal
    /// (403). Nothing was done.
    CrossOrigin,
    /// The route exists with another method (405).
    MethodNotAllowed,
    /// A path parameter is not a Stytch id (400).
    InvalidParameter,
    /// A `return_to` is not on the allowlist (400).
    RedirectNotAllowed,
    /// Stytch says the member or session does not exist (404).
    NotFound,
    /// Stytch is unreachable, rate limited or failing (503, fail closed).
    StytchUnavailable,
    /// Stytch refused our project credentials, or answered in a way only a bug explains (500).
    Misconfigured,
}

impl RejectionKind {
    /// The status of the default response.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingCredential
            | Self::InvalidCredential
            | Self::SessionInvalid
            | Self::StepUpRequired => StatusCode::UNAUTHORIZED,
            Self::MalformedRequest
            | Self::AmbiguousCredential
            | Self::InvalidParameter
            | Self::RedirectNotAllowed => StatusCode::BAD_REQUEST,
            Self::Forbidden
            | Self::CrossOrigin
            | Self::InsufficientPermission
            | Self::WrongOrganization => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::StytchUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable snake_case code, used in the default JSON body and in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingCredential => "missing_credential",
            Self::MalformedRequest => "malformed_request",
            Self::InvalidCredential => "invalid_credential",
            Self::AmbiguousCredential => "ambiguous_credential",
            Self::SessionInvalid => "session_invalid",
            Self::Forbidden => "forbidden",
            Self::InsufficientPermission => "insufficient_permission",
            Self::WrongOrganization => "wrong_organization",
            Self::StepUpRequired => "insufficient_user_authentication",
            Self::CrossOrigin => "cross_origin",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidParameter => "invalid_parameter",
            Self::RedirectNotAllowed => "redirect_not_allowed",
            Self::NotFound => "not_found",
            Self::StytchUnavailable => "stytch_unavailable",
            Self::Misconfigured => "misconfigured",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::MissingCredential => "authentication required",
            Self::MalformedRequest => "malformed request",
            Self::InvalidCredential => "the session credential is malformed",
            Self::AmbiguousCredential => "several different session cookies: sign in again",
            Self::SessionInvalid => "the session is invalid, expired or revoked",
            Self::Forbidden => "not allowed",
            Self::InsufficientPermission => "the member's roles do not grant this action",
            Self::WrongOrganization => "the organization in the request is not the member's",
            Self::StepUpRequired => "a second factor or a more recent authentication is required",
            Self::CrossOrigin => "cross-origin request refused",
            Self::MethodNotAllowed => "method not allowed",
            Self::InvalidParameter => "invalid path parameter",
            Self::RedirectNotAllowed => "return_to is not allowed",
            Self::NotFound => "not found",
            Self::StytchUnavailable => "authentication is temporarily unavailable",
            Self::Misconfigured => "authentication is misconfigured",
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal by the layer. Inserted into the extensions of every response the layer writes,
/// so outer layers can see why; handed to a custom rejection handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    retry_after: Option<Duration>,
    error_type: Option<String>,
    request_id: Option<String>,
    allow: Option<&'static str>,
    /// For [`RejectionKind::StepUpRequired`] (boxed: rare, and the rejection stays small).
    step_up: Option<Box<StepUp>>,
}

/// What a step-up refusal asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StepUp {
    max_age: Option<Duration>,
    page: Option<String>,
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind) -> Self {
        Self {
            kind,
            retry_after: None,
            error_type: None,
            request_id: None,
            allow: None,
            step_up: None,
        }
    }

    /// A step-up refusal: `max_age` when the rule's age limit was exceeded; `page`: where a
    /// browser is sent instead (the step-up page, its `return_to` included).
    pub(crate) fn step_up(max_age: Option<Duration>, page: Option<String>) -> Self {
        let mut rejection = Self::new(RejectionKind::StepUpRequired);
        rejection.step_up = Some(Box::new(StepUp { max_age, page }));
        rejection
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    pub(crate) fn with_stytch(
        mut self,
        error_type: Option<&str>,
        request_id: Option<&str>,
    ) -> Self {
        self.error_type = error_type.map(str::to_owned);
        self.request_id = request_id.map(str::to_owned);
        self
    }

    pub(crate) fn with_allow(mut self, allow: &'static str) -> Self {
        self.allow = Some(allow);
        self
    }

    /// Why the request was refused.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The status of the default response (303 for a step-up sent to its page).
    pub fn status(&self) -> StatusCode {
        if self.step_up_page().is_some() {
            return StatusCode::SEE_OTHER;
        }
        self.kind.status()
    }

    /// For [`RejectionKind::StepUpRequired`]: the most recent the member's newest
    /// authentication must be, when that was the reason.
    pub fn step_up_max_age(&self) -> Option<Duration> {
        self.step_up.as_ref()?.max_age
    }

    /// For [`RejectionKind::StepUpRequired`] on a browser route: where the browser is sent
    /// (the rule's step-up page, with `?return_to=`).
    pub fn step_up_page(&self) -> Option<&str> {
        self.step_up.as_ref()?.page.as_deref()
    }

    /// For [`RejectionKind::StytchUnavailable`]: when to try again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Stytch's `error_type`, when Stytch's answer caused the refusal.
    pub fn stytch_error_type(&self) -> Option<&str> {
        self.error_type.as_deref()
    }

    /// Stytch's `request_id`, when Stytch's answer caused the refusal.
    pub fn stytch_request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The default response: the status, `WWW-Authenticate` on 401 (RFC 6750), `Retry-After`
    /// on 503, `Allow` on 405, `Cache-Control: no-store`, and a small JSON body
    /// `{"error": kind, "message": …, "error_type"?: Stytch's, "request_id"?: Stytch's}`.
    pub fn default_response(&self) -> Response<Bytes> {
        let mut body = serde_json::json!({
            "error": self.kind.as_str(),
            "message": self.kind.message(),
        });
        // Refusals made here by a route's rule carry Stytch's own `error_type` for them.
        let local = match self.kind {
            RejectionKind::InsufficientPermission => Some("session_authorization_error"),
            RejectionKind::WrongOrganization => Some("session_authorization_tenancy_error"),
            _ => None,
        };
        if let Some(t) = self.error_type.as_deref().or(local) {
            body["error_type"] = t.into();
        }
        if let Some(id) = &self.request_id {
            body["request_id"] = id.as_str().into();
        }
        let mut res = json_response(self.status(), &body);
        let headers = res.headers_mut();
        match self.kind {
            RejectionKind::MissingCredential => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"stytch\""),
                );
            }
            RejectionKind::InvalidCredential | RejectionKind::SessionInvalid => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"stytch\", error=\"invalid_token\""),
                );
            }
            RejectionKind::StepUpRequired => {
                headers.insert(header::WWW_AUTHENTICATE, self.step_up_challenge());
                if let Some(page) = self
                    .step_up_page()
                    .and_then(|p| HeaderValue::from_str(p).ok())
                {
                    headers.insert(header::LOCATION, page);
                }
            }
            _ => {}
        }
        if let Some(after) = self.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        res
    }
}

impl Rejection {
    /// RFC 9470's challenge: `Bearer error="insufficient_user_authentication"`, with
    /// `max_age` (in seconds) when a recent authentication is what is missing.
    fn step_up_challenge(&self) -> HeaderValue {
        let mut challenge = String::from(
            "Bearer realm=\"stytch\", error=\"insufficient_user_authentication\", error_description=\"",
        );
        match self.step_up_max_age() {
            Some(max_age) => {
                challenge.push_str("A more recent authentication is required\", max_age=\"");
                challenge.push_str(&max_age.as_secs().to_string());
                challenge.push('"');
            }
            None => challenge.push_str("A second factor is required\""),
        }
        HeaderValue::from_str(&challenge).unwrap_or_else(|_| {
            HeaderValue::from_static("Bearer error=\"insufficient_user_authentication\"")
        })
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request rejected: {}", self.kind)
    }
}

impl std::error::Error for Rejection {}

impl From<ExtractError> for Rejection {
    /// A credential that could not be taken from the request.
    fn from(err: ExtractError) -> Self {
        match err {
            ExtractError::BadRequest => Self::new(RejectionKind::MalformedRequest),
            ExtractError::Invalid(_) => Self::new(RejectionKind::InvalidCredential),
            ExtractError::Ambiguous => Self::new(RejectionKind::AmbiguousCredential),
        }
    }
}

impl From<&AuthError> for Rejection {
    /// A credential the lookup refused, or could not check.
    fn from(err: &AuthError) -> Self {
        match err {
            AuthError::Invalid {
                error_type,
                request_id,
                ..
            } => Self::new(RejectionKind::SessionInvalid)
                .with_stytch(error_type.as_deref(), request_id.as_deref()),
            AuthError::Unavailable {
                retry_after: asked,
                error_type,
                request_id,
            } => Self::new(RejectionKind::StytchUnavailable)
                .with_retry_after(retry_after(*asked))
                .with_stytch(error_type.as_deref(), request_id.as_deref()),
            AuthError::Misconfigured {
                error_type,
                request_id,
            } => Self::new(RejectionKind::Misconfigured)
                .with_stytch(error_type.as_deref(), request_id.as_deref()),
        }
    }
}

impl From<&RevokeError> for Rejection {
    /// A revocation (admin route) that did not take effect.
    fn from(err: &RevokeError) -> Self {
        let stytch = |kind: RejectionKind, err: &StytchError| {
            Self::new(kind).with_stytch(err.error_type(), err.request_id())
        };
        match err {
            RevokeError::InvalidId { .. } => Self::new(RejectionKind::InvalidParameter),
            RevokeError::Forbidden(err) => stytch(RejectionKind::Forbidden, err),
            RevokeError::NotFound(err) => stytch(RejectionKind::NotFound, err),
            RevokeError::ActingSessionInvalid(err) => stytch(RejectionKind::SessionInvalid, err),
            RevokeError::Unavailable(err) => stytch(RejectionKind::StytchUnavailable, err)
                .with_retry_after(retry_after(err.retry_after())),
            RevokeError::Misconfigured(err) | RevokeError::Rejected(err) => {
                stytch(RejectionKind::Misconfigured, err)
            }
            RevokeError::Interrupted => {
                Self::new(RejectionKind::StytchUnavailable).with_retry_after(retry_after(None))
            }
        }
    }
}

/// A JSON response with `Cache-Control: no-store`.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    let mut res = Response::new(Bytes::from(body.to_string()));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Builds the response for a rejection. Implemented for closures
/// `Fn(&Rejection) -> http::Response<Bytes>`; the default is [`Rejection::default_response`].
pub trait RejectionHandler: Send + Sync + 'static {
    /// The response for `rejection`.
    fn response(&self, rejection: &Rejection) -> Response<Bytes>;
}

impl<F> RejectionHandler for F
where
    F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
{
    fn response(&self, rejection: &Rejection) -> Response<Bytes> {
        self(rejection)
    }
}

/// The default handler: [`Rejection::default_response`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl RejectionHandler for DefaultRejection {
    fn response(&self, rejection: &Rejection) -> Response<Bytes> {
        rejection.default_response()
    }
}

pub(crate) type SharedRejectionHandler = Arc<dyn RejectionHandler>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_responses_follow_rfc_6750_and_fail_closed() {
        // If this broke, clients could not tell "log in again" from "try later".
        let r = Rejection::new(RejectionKind::MissingCredential).default_response();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"stytch\""
        );
        let r = Rejection::new(RejectionKind::SessionInvalid).default_response();
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        let r = Rejection::new(RejectionKind::StytchUnavailable)
            .with_retry_after(Duration::from_secs(3))
            .default_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        let r = Rejection::new(RejectionKind::Forbidden)
            .with_stytch(Some("session_authorization_error"), Some("request-id-1"))
            .default_response();
        assert_eq!(r.status(), 403);
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error_type"], "session_authorization_error");
        assert_eq!(body["request_id"], "request-id-1");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let r = Rejection::new(RejectionKind::Misconfigured).default_response();
        assert_eq!(r.status(), 500);
    }

    #[test]
    fn retry_after_has_one_default_and_one_clamp() {
        // If this broke, a 503 could tell clients to retry at once, or in an hour.
        assert_eq!(retry_after(None), Duration::from_secs(5));
        assert_eq!(retry_after(Some(Duration::ZERO)), Duration::from_secs(1));
        assert_eq!(
            retry_after(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_after(Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }
}
