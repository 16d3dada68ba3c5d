//! The HTTP control API under `/emulator/v1/` (same Basic auth as the Stytch endpoints).
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | POST | `organizations` | `{organization_name, organization_slug}` → `{organization_id}` |
//! | POST | `roles` | `{organization_id, role_id, permissions: [{resource_id, actions}]}` → `{}` |
//! | POST | `members` | `{organization_id, email_address, roles?}` → `{member_id}` |
//! | POST | `sessions` | `{member_id, session_duration_minutes?, custom_claims?}` → `{member_id, organization_id, member_session_id, session_token, session_jwt}` |
//! | GET / DELETE | `requests` | → `{requests: [{method, path, headers, body}]}` / clears |
//! | POST / DELETE | `faults` | `{endpoint, fault: {type, …}, times?}` → `{}` / clears them all |
//! | POST | `keys/rotate` | → `{kid}` |
//! | POST | `clock` | `{offset_seconds}` → `{}` |
//! | GET | `counts` | → `{authenticate, revoke, jwks}` |
//!
//! Fault objects: `{"type": "latency", "millis": 200}`, `{"type": "status", "status": 429,
//! "retry_after": 3}`, `{"type": "close"}` (also `connection_reset`, its older name),
//! `{"type": "rst"}`, `{"type": "malformed_body"}`, `{"type": "truncated_body"}`,
//! `{"type": "trickle", "interval_millis": 50}`, `{"type": "hang"}` and
//! `{"type": "refused", "millis": 500}` (every endpoint at once; `endpoint` is still
//! required but ignored).

use std::time::Duration;

use http::{Method, Response};
use serde_json::{Map, Value, json};

use super::api::{member_not_found, organization_not_found};
use super::faults::{EmulatorEndpoint, Fault};
use super::server::{ApiError, Body, Route, error_response, json_object, ok_response};
use super::{DEFAULT_SESSION_DURATION, Shared};

/// A control operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    CreateOrganization,
    CreateRole,
    CreateMember,
    CreateSession,
    ListRequests,
    ClearRequests,
    InjectFault,
    ClearFaults,
    RotateKey,
    SetClock,
    Counts,
}

/// Routes `rest`, the path after `/emulator/v1/`.
pub(crate) fn route(method: &Method, rest: &str) -> Route {
    let (op, allow) = match (rest, method) {
        ("organizations", &Method::POST) => (Some(Op::CreateOrganization), ""),
        ("roles", &Method::POST) => (Some(Op::CreateRole), ""),
        ("members", &Method::POST) => (Some(Op::CreateMember), ""),
        ("sessions", &Method::POST) => (Some(Op::CreateSession), ""),
        ("requests", &Method::GET) => (Some(Op::ListRequests), ""),
        ("requests", &Method::DELETE) => (Some(Op::ClearRequests), ""),
        ("faults", &Method::POST) => (Some(Op::InjectFault), ""),
        ("faults", &Method::DELETE) => (Some(Op::ClearFaults), ""),
        ("keys/rotate", &Method::POST) => (Some(Op::RotateKey), ""),
        ("clock", &Method::POST) => (Some(Op::SetClock), ""),
        ("counts", &Method::GET) => (Some(Op::Counts), ""),
        ("organizations" | "roles" | "members" | "sessions" | "keys/rotate" | "clock", _) => {
            (None, "POST")
        }
        ("faults", _) => (None, "POST, DELETE"),
        ("requests", _) => (None, "GET, DELETE"),
        ("counts", _) => (None, "GET"),
        _ => return Route::NotFound,
    };
    match op {
        Some(op) => Route::Control(op),
        None => Route::MethodNotAllowed(allow),
    }
}

fn str_field<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    body.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("{field} is required and must be a string.")))
}

fn string_list(value: Option<&Value>, what: &str) -> Result<Vec<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request(format!("{what} must be strings.")))
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request(format!("{what} must be an array."))),
    }
}

/// Parses a fault object of the control API.
pub(crate) fn parse_fault(value: &Value) -> Result<Fault, ApiError> {
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("fault.type is required."))?;
    Ok(match kind {
        "latency" => Fault::Latency(Duration::from_millis(
            value.get("millis").and_then(Value::as_u64).unwrap_or(0),
        )),
        "status" => Fault::Status {
            status: value
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| ApiError::bad_request("fault.status must be an HTTP status."))?,
            retry_after: value.get("retry_after").and_then(Value::as_u64),
        },
        "close" | "connection_reset" => Fault::ConnectionReset,
        "rst" => Fault::Rst,
        "malformed_body" => Fault::MalformedBody,
        "truncated_body" => Fault::TruncatedBody,
        "hang" => Fault::Hang,
        "trickle" => Fault::Trickle {
            interval: Duration::from_millis(
                value
                    .get("interval_millis")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        ApiError::bad_request("fault.interval_millis is required for trickle.")
                    })?,
            ),
        },
        // Over HTTP a refusal needs an end: the control API shares the refused port.
        "refused" => Fault::Refused {
            duration: Some(Duration::from_millis(
                value.get("millis").and_then(Value::as_u64).ok_or_else(|| {
                    ApiError::bad_request("fault.millis is required for refused.")
                })?,
            )),
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown fault type {other}."
            )));
        }
    })
}

fn run(shared: &Shared, op: Op, body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    match op {
        Op::CreateOrganization => {
            let name = str_field(body, "organization_name")?;
            let slug = str_field(body, "organization_slug")?;
            out.insert(
                "organization_id".into(),
                shared.create_organization(name, slug).into(),
            );
        }
        Op::CreateRole => {
            let org = str_field(body, "organization_id")?;
            let role = str_field(body, "role_id")?;
            let mut permissions = Vec::new();
            if let Some(list) = body.get("permissions") {
                let list = list
                    .as_array()
                    .ok_or_else(|| ApiError::bad_request("permissions must be an array."))?;
                for p in list {
                    let resource =
                        p.get("resource_id")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                ApiError::bad_request("permissions[].resource_id is required.")
                            })?;
                    permissions.push((
                        resource.to_owned(),
                        string_list(p.get("actions"), "actions")?,
                    ));
                }
            }
            if !shared.create_role(org, role, permissions) {
                return Err(organization_not_found());
            }
        }
        Op::CreateMember => {
            let org = str_field(body, "organization_id")?;
            let email = str_field(body, "email_address")?;
            let roles = string_list(body.get("roles"), "roles")?;
            let id = shared
                .create_member(org, email, roles)
                .ok_or_else(organization_not_found)?;
            out.insert("member_id".into(), id.into());
        }
        Op::CreateSession => {
            let member = str_field(body, "member_id")?;
            let secs = match body.get("session_duration_minutes") {
                None | Some(Value::Null) => {
                    i64::try_from(DEFAULT_SESSION_DURATION.as_secs()).unwrap_or(3600)
                }
                Some(v) => v
                    .as_i64()
                    .filter(|m| *m > 0)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "session_duration_minutes must be a positive integer.",
                        )
                    })?
                    .saturating_mul(60),
            };
            let claims = match body.get("custom_claims") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(ApiError::bad_request("custom_claims must be an object.")),
            };
            let info = shared
                .create_session(member, secs, claims)
                .ok_or_else(member_not_found)?;
            out.insert("member_id".into(), info.member_id.into());
            out.insert("organization_id".into(), info.organization_id.into());
            out.insert("member_session_id".into(), info.member_session_id.into());
            out.insert(
                "session_token".into(),
                info.session_token.expose_secret().into(),
            );
            out.insert(
                "session_jwt".into(),
                info.session_jwt.expose_secret().into(),
            );
        }
        Op::ListRequests => {
            let requests: Vec<Value> = shared
                .requests()
                .into_iter()
                .map(|r| {
                    let headers: Map<String, Value> = r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into()))
                        .collect();
                    json!({"method": r.method.as_str(), "path": r.path, "headers": headers, "body": r.body})
                })
                .collect();
            out.insert("requests".into(), requests.into());
        }
        Op::ClearRequests => shared.clear_requests(),
        Op::InjectFault => {
            let endpoint = str_field(body, "endpoint")?;
            let endpoint = EmulatorEndpoint::from_name(endpoint).ok_or_else(|| {
                ApiError::bad_request(
                    "endpoint must be authenticate, revoke, jwks or get_sessions.",
                )
            })?;
            let fault = parse_fault(body.get("fault").unwrap_or(&Value::Null))?;
            let times = body.get("times").and_then(Value::as_u64).unwrap_or(1);
            shared.inject_fault(
                endpoint,
                fault,
                usize::try_from(times).unwrap_or(usize::MAX),
            );
        }
        Op::ClearFaults => shared.clear_faults(),
        Op::RotateKey => {
            out.insert("kid".into(), shared.keys.rotate().into());
        }
        Op::SetClock => {
            let offset = body
                .get("offset_seconds")
                .and_then(Value::as_i64)
                .ok_or_else(|| {
                    ApiError::bad_request("offset_seconds is required and must be an integer.")
                })?;
            shared.set_clock_offset(offset);
        }
        Op::Counts => {
            for (endpoint, count) in shared.faults.counts() {
                out.insert(endpoint.name().into(), count.into());
            }
        }
    }
    Ok(out)
}

/// Runs a control operation and answers with JSON.
pub(crate) fn handle(shared: &Shared, request_id: &str, op: Op, bytes: &[u8]) -> Response<Body> {
    match json_object(bytes).and_then(|body| run(shared, op, &body)) {
        Ok(out) => ok_response(request_id, out),
        Err(error) => error_response(request_id, &error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault_kind() {
        // If this broke, the HTTP control API could not inject faults.
        assert_eq!(
            parse_fault(&json!({"type": "status", "status": 429, "retry_after": 3})).unwrap(),
            Fault::Status {
                status: 429,
                retry_after: Some(3)
            }
        );
        assert_eq!(
            parse_fault(&json!({"type": "latency", "millis": 5})).unwrap(),
            Fault::Latency(Duration::from_millis(5))
        );
        assert_eq!(
            parse_fault(&json!({"type": "connection_reset"})).unwrap(),
            Fault::ConnectionReset
        );
        assert_eq!(
            parse_fault(&json!({"type": "close"})).unwrap(),
            Fault::ConnectionReset
        );
        assert_eq!(parse_fault(&json!({"type": "rst"})).unwrap(), Fault::Rst);
        assert_eq!(parse_fault(&json!({"type": "hang"})).unwrap(), Fault::Hang);
        assert_eq!(
            parse_fault(&json!({"type": "trickle", "interval_millis": 7})).unwrap(),
            Fault::Trickle {
                interval: Duration::from_millis(7)
            }
        );
        assert_eq!(
            parse_fault(&json!({"type": "refused", "millis": 300})).unwrap(),
            Fault::Refused {
                duration: Some(Duration::from_millis(300))
            }
        );
        assert!(
            parse_fault(&json!({"type": "refused"})).is_err(),
            "over HTTP a refusal must end by itself"
        );
        assert!(parse_fault(&json!({"type": "trickle"})).is_err());
        assert!(parse_fault(&json!({"type": "status", "status": 1000})).is_err());
        assert!(parse_fault(&json!({"type": "nope"})).is_err());
    }

    #[test]
    fn control_routes() {
        // If this broke, control calls would 404.
        assert_eq!(
            route(&Method::POST, "organizations"),
            Route::Control(Op::CreateOrganization)
        );
        assert_eq!(
            route(&Method::DELETE, "requests"),
            Route::Control(Op::ClearRequests)
        );
        assert_eq!(
            route(&Method::GET, "sessions"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(route(&Method::GET, "nope"), Route::NotFound);
    }
}
