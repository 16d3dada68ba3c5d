//! [`Verdict`]: what Stytch's answer to a revoke means, as a pure function of that answer.
//! [`Revoker::revoke`](super::Revoker) applies it; the outbox's retries read it too.

use crate::client::RevokeResponse;
use crate::error::StytchError;

/// Stytch's answer to `POST /v1/b2b/sessions/revoke`, classified. The variants that refuse
/// keep Stytch's error, for the [`RevokeError`](super::RevokeError) they become.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Stytch revoked it.
    Confirmed {
        /// Stytch's request id.
        request_id: String,
    },
    /// `404 session_not_found` with no acting member: the target was already revoked.
    AlreadyRevoked,
    /// `404 session_not_found` while acting as a member: about the target (already revoked)
    /// or about the acting session itself (dead). Only asking Stytch about the acting session
    /// tells which.
    ActingSessionMaybeDead(StytchError),
    /// 429, 5xx, a timeout or a transport error: try again later.
    Unavailable(StytchError),
    /// Stytch refused our project credentials: retrying may work once they are fixed.
    Misconfigured(StytchError),
    /// 403: the acting member lacks the permission, or is in another organization.
    Forbidden(StytchError),
    /// Any other 404: Stytch does not know the member or session.
    NotFound(StytchError),
    /// Any other refusal.
    Rejected(StytchError),
}

impl Verdict {
    /// Classifies Stytch's answer; `acting` says whether the call acted as a member.
    pub(crate) fn of(answer: Result<RevokeResponse, StytchError>, acting: bool) -> Self {
        let err = match answer {
            Ok(response) => {
                return Self::Confirmed {
                    request_id: response.request_id,
                };
            }
            Err(err) => err,
        };
        if err.error_type() == Some("session_not_found") {
            // With an acting member, `session_not_found` may be about the acting session
            // rather than the target: never let a dead acting session pass as "already
            // revoked" (it would force the target out here on a dead admin's word).
            return if acting {
                Self::ActingSessionMaybeDead(err)
            } else {
                Self::AlreadyRevoked
            };
        }
        if err.is_misconfigured() {
            Self::Misconfigured(err)
        } else if err.is_retryable() {
            Self::Unavailable(err)
        } else if err.is_forbidden() {
            Self::Forbidden(err)
        } else if err.status() == Some(http::StatusCode::NOT_FOUND) {
            Self::NotFound(err)
        } else {
            Self::Rejected(err)
        }
    }

    /// A stable name, for tests and logs.
    #[cfg(test)]
    fn name(&self) -> &'static str {
        match self {
            Self::Confirmed { .. } => "confirmed",
            Self::AlreadyRevoked => "already_revoked",
            Self::ActingSessionMaybeDead(_) => "acting_session_maybe_dead",
            Self::Unavailable(_) => "unavailable",
            Self::Misconfigured(_) => "misconfigured",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Rejected(_) => "rejected",
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
        // session could pass as "already revoked", or an outage could drop a revocation.
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
                "404 session_not_found, acting",
                api(404, "session_not_found"),
                true,
                "acting_session_maybe_dead",
            ),
            (
                "404 member_not_found",
                api(404, "member_not_found"),
                true,
                "not_found",
            ),
            (
                "403 rbac",
                api(403, "session_authorization_error"),
                true,
                "forbidden",
            ),
            (
                "403 tenancy",
                api(403, "session_authorization_tenancy_error"),
                true,
                "forbidden",
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
                "400",
                api(400, "too_many_session_revoke_arguments"),
                false,
                "rejected",
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
