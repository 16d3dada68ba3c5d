//! [`Verdict`]: what Stytch's answer to a revoke means, as a pure function of that answer.
//! The pipeline and the outbox's retries both read it; neither looks at Stytch's errors
//! themselves.

use super::RevokeError;
use crate::client::RevokeResponse;
use crate::error::StytchError;

/// Stytch's answer to `POST /v1/b2b/sessions/revoke`, classified.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Stytch revoked it.
    Confirmed {
        /// Stytch's request id.
        request_id: String,
    },
    /// `404 session_not_found` about the target: it was already revoked (or expired).
    AlreadyRevoked,
    /// `404 session_not_found` while acting as a member other than the target: about the
    /// target (already revoked) or about the acting session itself (dead). Only asking Stytch
    /// about the acting session tells which.
    AmbiguousNotFound(StytchError),
    /// Stytch answered and refused for good: 403 (RBAC or tenancy), another 404 (no such
    /// member), any other 4xx. Retrying cannot change it.
    Refused(RevokeError),
    /// 429, 5xx, a timeout, a transport error or an unreadable answer: try again later.
    Unavailable(StytchError),
    /// Stytch refused our project credentials: retrying may work once they are fixed.
    Misconfigured(StytchError),
}

impl Verdict {
    /// Classifies Stytch's answer. `acting_other`: the call acted as a member whose session
    /// is not the target itself (then a `session_not_found` may be about either).
    pub(crate) fn of(answer: Result<RevokeResponse, StytchError>, acting_other: bool) -> Self {
        let err = match answer {
            Ok(response) => {
                return Self::Confirmed {
                    request_id: response.request_id,
                };
            }
            Err(err) => err,
        };
        if err.error_type() == Some("session_not_found")
            && err.status() == Some(http::StatusCode::NOT_FOUND)
        {
            // Never let a dead acting session pass as "already revoked": it would record a
            // revocation Stytch never made.
            return if acting_other {
                Self::AmbiguousNotFound(err)
            } else {
                Self::AlreadyRevoked
            };
        }
        if err.is_misconfigured() {
            Self::Misconfigured(err)
        } else if err.is_verdict_unknown() {
            // Stytch may have revoked it, but its answer is unreadable: keep it pending (a
            // retry answers 404, already revoked), never undo it here.
            Self::Unavailable(err)
        } else if err.is_forbidden() {
            Self::Refused(RevokeError::Forbidden(err))
        } else if err.status() == Some(http::StatusCode::NOT_FOUND) {
            Self::Refused(RevokeError::NotFound(err))
        } else {
            Self::Refused(RevokeError::Rejected(err))
        }
    }

    /// A stable name, for tests and logs.
    #[cfg(test)]
    fn name(&self) -> &'static str {
        match self {
            Self::Confirmed { .. } => "confirmed",
            Self::AlreadyRevoked => "already_revoked",
            Self::AmbiguousNotFound(_) => "ambiguous_not_found",
            Self::Refused(RevokeError::Forbidden(_)) => "refused_forbidden",
            Self::Refused(RevokeError::NotFound(_)) => "refused_not_found",
            Self::Refused(_) => "refused",
            Self::Unavailable(_) => "unavailable",
            Self::Misconfigured(_) => "misconfigured",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;

    use super::*;
    use crate::error::{ApiError, Endpoint};

    fn api(status: u16, error_type: &str) -> Result<RevokeResponse, StytchError> {
        let status = StatusCode::from_u16(status).unwrap();
        let body = format!(
            r#"{{"status_code":{},"error_type":"{error_type}"}}"#,
            status.as_u16()
        );
        Err(StytchError::Api {
            endpoint: Endpoint::Revoke,
            error: Box::new(ApiError::from_body(status, body.as_bytes(), None).unwrap()),
        })
    }

    fn ok() -> Result<RevokeResponse, StytchError> {
        Ok(
            serde_json::from_str(r#"{"request_id":"request-id-test-1","status_code":200}"#)
                .unwrap(),
        )
    }

    #[test]
    fn verdict_table() {
        // If this broke, a revocation could pass as done when Stytch refused it, a dead admin
        // session could pass as "already revoked", a refusal could be retried forever (or an
        // outage taken as a refusal and undone).
        let timeout = || {
            Err(StytchError::Timeout {
                endpoint: Endpoint::Revoke,
            })
        };
        let bare_502 = || {
            Err(StytchError::UnexpectedStatus {
                endpoint: Endpoint::Revoke,
                status: StatusCode::BAD_GATEWAY,
                retry_after: Some(Duration::from_secs(1)),
            })
        };
        let cases: Vec<(&str, Result<RevokeResponse, StytchError>, bool, &str)> = vec![
            ("200", ok(), true, "confirmed"),
            ("200 without acting", ok(), false, "confirmed"),
            (
                "404 session_not_found, project secret",
                api(404, "session_not_found"),
                false,
                "already_revoked",
            ),
            (
                "404 session_not_found, acting as another member",
                api(404, "session_not_found"),
                true,
                "ambiguous_not_found",
            ),
            (
                "404 member_not_found",
                api(404, "member_not_found"),
                true,
                "refused_not_found",
            ),
            (
                "403 rbac",
                api(403, "session_authorization_error"),
                true,
                "refused_forbidden",
            ),
            (
                "403 tenancy",
                api(403, "session_authorization_tenancy_error"),
                true,
                "refused_forbidden",
            ),
            (
                "401 our secret",
                api(401, "unauthorized_credentials"),
                false,
                "misconfigured",
            ),
            ("429", api(429, "too_many_requests"), true, "unavailable"),
            (
                "500",
                api(500, "internal_server_error"),
                true,
                "unavailable",
            ),
            ("503", api(503, "service_unavailable"), false, "unavailable"),
            ("502 without Stytch's JSON", bare_502(), true, "unavailable"),
            ("timeout", timeout(), true, "unavailable"),
            (
                "200 whose body is not JSON",
                Err(StytchError::Decode {
                    endpoint: Endpoint::Revoke,
                    source: crate::error::DecodeError::from_serde(
                        &serde_json::from_str::<RevokeResponse>("<html>").unwrap_err(),
                    ),
                }),
                true,
                "unavailable",
            ),
            (
                "400",
                api(400, "too_many_session_revoke_arguments"),
                false,
                "refused",
            ),
        ];
        for (name, answer, acting, want) in cases {
            assert_eq!(Verdict::of(answer, acting).name(), want, "{name}");
        }
    }

    #[test]
    fn a_confirmation_keeps_stytchs_request_id() {
        // If this broke, the admin route's 200 would lose the id to quote to Stytch support.
        match Verdict::of(ok(), true) {
            Verdict::Confirmed { request_id } => assert_eq!(request_id, "request-id-test-1"),
            other => panic!("{other:?}"),
        }
    }
}
