//! Errors: configuration errors at build time, and errors of calls to Stytch.
//!
//! No error here ever holds a project secret, a session token, a session JWT or a response
//! body (Stytch's bodies carry tokens).

use std::fmt;
use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

/// An invalid configuration, reported when the client or the layer is built.
///
/// Each variant names the offending input; none carries the project secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required environment variable is unset or empty.
    #[error("environment variable {name} is not set")]
    MissingEnv {
        /// The variable's name.
        name: &'static str,
    },
    /// The project id is empty.
    #[error("the Stytch project id is empty")]
    EmptyProjectId,
    /// The project id has characters Stytch ids never have.
    #[error("the Stytch project id {project_id:?} has invalid characters")]
    InvalidProjectId {
        /// The project id as given.
        project_id: String,
    },
    /// The project secret is empty.
    #[error("the Stytch project secret is empty")]
    EmptySecret,
    /// The project secret holds control characters (it could not be sent in a header).
    #[error("the Stytch project secret has control characters")]
    InvalidSecret,
    /// The base URL cannot be used.
    #[error("invalid Stytch base URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as given, without any userinfo.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A timeout is zero.
    #[error("{name} must be greater than zero")]
    InvalidTimeout {
        /// The setting's name.
        name: &'static str,
    },
    /// A cookie name is not a valid cookie name.
    #[error("invalid cookie name {name:?}")]
    InvalidCookieName {
        /// The name as given.
        name: String,
    },
    /// A header name is not a valid HTTP header name.
    #[error("invalid header name {name:?}")]
    InvalidHeaderName {
        /// The name as given.
        name: String,
    },
    /// A route pattern cannot be parsed.
    #[error("invalid route pattern {pattern:?}: {reason}")]
    InvalidRoute {
        /// The pattern as given.
        pattern: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A webhook signing secret is not `whsec_` followed by base64 (the value is never
    /// repeated: it is a secret).
    #[error("invalid webhook secret: expected whsec_ followed by base64, comma-separated")]
    InvalidWebhookSecret,
    /// Some other setting is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The setting's name.
        name: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("the HTTP client could not be built")]
    HttpClient(#[source] reqwest::Error),
}

/// Which Stytch endpoint a call went to (for errors, logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/b2b/sessions/authenticate`
    Authenticate,
    /// `POST /v1/b2b/sessions/revoke`
    Revoke,
    /// `GET /v1/b2b/sessions/jwks/{project_id}`
    Jwks,
    /// `GET /v1/b2b/sessions?organization_id=…&member_id=…` (Get Sessions)
    GetSessions,
    /// `GET /v1/b2b/rbac/policy`
    RbacPolicy,
    /// `GET /v1/b2b/rbac/organizations/{organization_id}`
    RbacOrganization,
    /// `PUT /v1/m2m/clients/{client_id}`
    M2mClientUpdate,
}

impl Endpoint {
    /// A short stable name: `authenticate`, `revoke`, `jwks`, `get_sessions`,
    /// `rbac_policy`, `rbac_organization`, `m2m_client_update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticate => "authenticate",
            Self::Revoke => "revoke",
            Self::Jwks => "jwks",
            Self::GetSessions => "get_sessions",
            Self::RbacPolicy => "rbac_policy",
            Self::RbacOrganization => "rbac_organization",
            Self::M2mClientUpdate => "m2m_client_update",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer from Stytch, in Stytch's documented error JSON shape.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// Stytch's `error_type`, e.g. `session_not_found`.
    pub error_type: String,
    /// Stytch's `error_message`.
    pub error_message: String,
    /// Stytch's `request_id`, to quote to Stytch support.
    pub request_id: Option<String>,
    /// Stytch's `error_url`.
    pub error_url: Option<String>,
    /// Stytch's `error_details`, when present (may be nested).
    pub error_details: Option<serde_json::Value>,
    /// The `Retry-After` header, when present.
    pub retry_after: Option<Duration>,
}

/// The error JSON as Stytch sends it; also accepts the OAuth2-style field names some
/// Stytch endpoints use.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiErrorBody {
    #[serde(default)]
    pub(crate) request_id: Option<String>,
    #[serde(alias = "error")]
    pub(crate) error_type: String,
    #[serde(default, alias = "error_description")]
    pub(crate) error_message: Option<String>,
    #[serde(default, alias = "error_uri")]
    pub(crate) error_url: Option<String>,
    #[serde(default)]
    pub(crate) error_details: Option<serde_json::Value>,
}

impl ApiError {
    /// Parses Stytch's error JSON. `None` when the body is not that JSON (a proxy's HTML page).
    pub(crate) fn from_body(
        status: StatusCode,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Option<Self> {
        let parsed: ApiErrorBody = serde_json::from_slice(body).ok()?;
        Some(Self {
            status,
            error_type: parsed.error_type,
            error_message: parsed.error_message.unwrap_or_default(),
            request_id: parsed.request_id,
            error_url: parsed.error_url,
            error_details: parsed.error_details,
            retry_after,
        })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.error_type)?;
        if let Some(id) = &self.request_id {
            write!(f, " (request_id {id})")?;
        }
        Ok(())
    }
}

/// Where a response body failed to decode. Holds no part of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    category: &'static str,
    line: usize,
    column: usize,
}

impl DecodeError {
    pub(crate) fn from_serde(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let category = match err.classify() {
            Category::Io => "io",
            Category::Syntax => "syntax",
            Category::Data => "data",
            Category::Eof => "eof",
        };
        Self {
            category,
            line: err.line(),
            column: err.column(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} error at line {} column {}",
            self.category, self.line, self.column
        )
    }
}

impl std::error::Error for DecodeError {}

/// An error of a call to Stytch.
///
/// Transport, timeout and decode errors keep their cause but never a response body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StytchError {
    /// Stytch answered with its error JSON.
    #[error("stytch {endpoint} failed: {error}")]
    Api {
        /// The endpoint called.
        endpoint: Endpoint,
        /// Stytch's error.
        error: Box<ApiError>,
    },
    /// Stytch (or something in front of it) answered an error status without Stytch's JSON.
    #[error("stytch {endpoint} answered {status} without an error body")]
    UnexpectedStatus {
        /// The endpoint called.
        endpoint: Endpoint,
        /// The HTTP status.
        status: StatusCode,
        /// The `Retry-After` header, when present.
        retry_after: Option<Duration>,
    },
    /// A success answer that does not decode as the documented response.
    #[error("stytch {endpoint} sent a response that does not decode")]
    Decode {
        /// The endpoint called.
        endpoint: Endpoint,
        /// Where decoding failed (no part of the body).
        #[source]
        source: DecodeError,
    },
    /// Connecting to Stytch or reading its answer failed.
    #[error("could not reach stytch {endpoint}")]
    Transport {
        /// The endpoint called.
        endpoint: Endpoint,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The request could not be built from what was given; nothing was sent.
    #[error("stytch {endpoint} request not sent: {reason}")]
    InvalidRequest {
        /// The endpoint that would have been called.
        endpoint: Endpoint,
        /// What is wrong (never the offending value).
        reason: &'static str,
    },
    /// The call did not finish within its timeout or deadline.
    #[error("stytch {endpoint} timed out")]
    Timeout {
        /// The endpoint called.
        endpoint: Endpoint,
    },
}

/// Error types that mean the presented session credential itself is dead or malformed.
const SESSION_INVALID_TYPES: &[&str] = &[
    "session_not_found",
    "invalid_session_token",
    "invalid_session_jwt",
    "invalid_session_id",
    "unable_to_parse_session_jwt",
    "jwt_invalid_audience",
    "jwt_invalid_issuer",
    "jwt_invalid_claims",
    "member_session_member_id_mismatch",
];

/// Error types that mean our own project credentials are wrong.
const MISCONFIGURED_TYPES: &[&str] = &[
    "unauthorized_credentials",
    "invalid_secret_authentication",
    "invalid_project_id_authentication",
    "unauthorized_project_id_live",
    "unauthorized_project_id_test",
];

impl StytchError {
    /// The endpoint this error came from.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Self::Api { endpoint, .. }
            | Self::UnexpectedStatus { endpoint, .. }
            | Self::Decode { endpoint, .. }
            | Self::Transport { endpoint, .. }
            | Self::InvalidRequest { endpoint, .. }
            | Self::Timeout { endpoint } => *endpoint,
        }
    }

    /// Stytch's error, when it answered with its error JSON.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status Stytch answered, when it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { error, .. } => Some(error.status),
            Self::UnexpectedStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Stytch's `request_id`, when known.
    pub fn request_id(&self) -> Option<&str> {
        self.api_error().and_then(|e| e.request_id.as_deref())
    }

    /// Stytch's `error_type`, when it answered with its error JSON.
    pub fn error_type(&self) -> Option<&str> {
        self.api_error().map(|e| e.error_type.as_str())
    }

    /// The presented session is unknown, revoked, expired or malformed (e.g. `404
    /// session_not_found`): the user is not authenticated, and asking again will not help.
    pub fn is_session_invalid(&self) -> bool {
        match self.api_error() {
            Some(e) => {
                SESSION_INVALID_TYPES.contains(&e.error_type.as_str())
                    && !(e.status.is_server_error() || e.status == StatusCode::TOO_MANY_REQUESTS)
            }
            None => false,
        }
    }

    /// Stytch refused *our* project credentials (`401 unauthorized_credentials` and kin): a
    /// misconfiguration of this service, never a reason to log the user out.
    pub fn is_misconfigured(&self) -> bool {
        match self.api_error() {
            Some(e) => {
                e.status == StatusCode::UNAUTHORIZED
                    || MISCONFIGURED_TYPES.contains(&e.error_type.as_str())
            }
            None => self.status() == Some(StatusCode::UNAUTHORIZED),
        }
    }

    /// Stytch forbade the action (RBAC or tenancy, `403`).
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(StatusCode::FORBIDDEN)
    }

    /// Asking again later may succeed: 429, 5xx, connect errors and timeouts.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { source, .. } => {
                // A request that could not be built or whose body we could not encode will
                // fail the same way again; anything on the wire may not.
                !source.is_builder() && !source.is_body()
            }
            Self::Timeout { .. } => true,
            Self::Api { .. } | Self::UnexpectedStatus { .. } => self
                .status()
                .is_some_and(|s| s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()),
            Self::Decode { .. } | Self::InvalidRequest { .. } => false,
        }
    }

    /// Whether Stytch's verdict is unknown (every [`is_retryable`](Self::is_retryable) error
    /// included): it may have acted, but its answer could not be read (a body that is not the expected JSON, a connection lost mid-answer), or it was
    /// not reached at all. Such an answer is an outage, never a refusal: a revocation stays
    /// pending rather than being undone, a request gets 503 rather than 401.
    pub fn is_verdict_unknown(&self) -> bool {
        match self {
            Self::Transport { source, .. } => !source.is_builder(),
            Self::Decode { .. } | Self::Timeout { .. } => true,
            Self::Api { .. } | Self::UnexpectedStatus { .. } => self.is_retryable(),
            Self::InvalidRequest { .. } => false,
        }
    }

    /// The `Retry-After` Stytch asked for, when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { error, .. } => error.retry_after,
            Self::UnexpectedStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: &str) -> StytchError {
        let status = StatusCode::from_u16(status).unwrap();
        StytchError::Api {
            endpoint: Endpoint::Authenticate,
            error: Box::new(ApiError::from_body(status, body.as_bytes(), None).unwrap()),
        }
    }

    #[test]
    fn parses_the_documented_error_json() {
        // If this broke, every Stytch error would surface as an opaque decode failure.
        let body = r#"{ "status_code": 404, "request_id": "request-id-test-b05c992f-ebdc-489d-a754-c7e70ba13141",
            "error_type": "session_not_found", "error_message": "Session could not be found.",
            "error_url": "https://stytch.com/docs/api/errors/404" }"#;
        let err = api(404, body);
        let e = err.api_error().unwrap();
        assert_eq!(e.error_type, "session_not_found");
        assert_eq!(e.error_message, "Session could not be found.");
        assert_eq!(
            e.request_id.as_deref(),
            Some("request-id-test-b05c992f-ebdc-489d-a754-c7e70ba13141")
        );
        assert_eq!(
            e.error_url.as_deref(),
            Some("https://stytch.com/docs/api/errors/404")
        );
        assert!(err.is_session_invalid());
        assert!(!err.is_retryable());
        assert!(!err.is_misconfigured());
        assert_eq!(
            err.to_string(),
            "stytch authenticate failed: 404 session_not_found (request_id request-id-test-b05c992f-ebdc-489d-a754-c7e70ba13141)"
        );
    }

    #[test]
    fn parses_error_details_and_oauth_style_errors() {
        // If this broke, nested error_details or OAuth2-shaped errors would be lost.
        let err = api(
            400,
            r#"{"status_code":400,"request_id":"r","error_type":"invalid_x","error_message":"m",
               "error_url":"u","error_details":{"a":{"b":[1,2]}}}"#,
        );
        assert_eq!(
            err.api_error().unwrap().error_details,
            Some(serde_json::json!({"a":{"b":[1,2]}}))
        );
        let oauth = api(
            401,
            r#"{"status_code":401,"request_id":"r","error":"invalid_client","error_description":"d"}"#,
        );
        assert_eq!(oauth.error_type(), Some("invalid_client"));
        assert_eq!(oauth.api_error().unwrap().error_message, "d");
    }

    #[test]
    fn classifies_errors() {
        // If this broke, a wrong secret could log users out, or a 429 could be treated as final.
        let cases = [
            (401, "unauthorized_credentials", false, true, false),
            (401, "invalid_secret_authentication", false, true, false),
            (429, "too_many_requests", true, false, false),
            (500, "internal_server_error", true, false, false),
            (503, "service_unavailable", true, false, false),
            (404, "session_not_found", false, false, true),
            (400, "invalid_session_token", false, false, true),
            (403, "session_authorization_error", false, false, false),
            (
                400,
                "too_many_session_revoke_arguments",
                false,
                false,
                false,
            ),
        ];
        for (status, ty, retryable, misconfigured, invalid) in cases {
            let body =
                format!(r#"{{"status_code":{status},"error_type":"{ty}","error_message":"x"}}"#);
            let err = api(status, &body);
            assert_eq!(err.is_retryable(), retryable, "{ty} retryable");
            assert_eq!(err.is_misconfigured(), misconfigured, "{ty} misconfigured");
            assert_eq!(err.is_session_invalid(), invalid, "{ty} invalid");
        }
    }

    #[test]
    fn a_non_json_body_is_not_an_api_error() {
        // If this broke, a proxy's HTML 502 page could be misread (or panic the parser).
        assert!(
            ApiError::from_body(StatusCode::BAD_GATEWAY, b"<html>Bad gateway</html>", None)
                .is_none()
        );
        let err = StytchError::UnexpectedStatus {
            endpoint: Endpoint::Revoke,
            status: StatusCode::BAD_GATEWAY,
            retry_after: None,
        };
        assert!(err.is_retryable());
        assert!(!err.is_session_invalid());
    }

    #[test]
    fn decode_errors_hold_no_body() {
        // If this broke, a token in a malformed response could end up in an error message.
        let err = serde_json::from_str::<u32>(r#""secret-token-value""#).unwrap_err();
        let decode = DecodeError::from_serde(&err);
        let shown = format!("{decode} {decode:?}");
        assert!(!shown.contains("secret-token-value"), "{shown}");
    }
}
