//! The HTTP control API under `/emulator/v1/` (same Basic auth as the Stytch endpoints).
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | POST | `organizations` | `{organization_name, organization_slug, source?}` → `{organization_id}` |
//! | DELETE | `organizations/{organization_id}` | `{source?}` → `{}` (its members and their sessions go too) |
//! | POST | `roles` | `{organization_id, role_id, permissions: [{resource_id, actions}]}` → `{}` |
//! | POST | `members` | `{organization_id, email_address, roles?, name?, source?}` → `{member_id}` |
//! | PUT | `members/{member_id}` | `{roles?, status?, name?, source?}` → `{member}` |
//! | DELETE | `members/{member_id}` | `{source?}` → `{}` (its sessions end) |
//! | POST | `sessions` | `{member_id, session_duration_minutes?, custom_claims?}` → `{member_id, organization_id, member_session_id, session_token, session_jwt}` |
//! | GET / DELETE | `requests` | → `{requests: [{method, path, headers, body}]}` / clears |
//! | POST / DELETE | `faults` | `{endpoint, fault: {type, …}, times?}` or `{endpoint, fault, percent}` → `{}` / clears them all |
//! | POST | `keys/rotate` | → `{kid}` |
//! | POST | `clock` | `{offset_seconds}` → `{}` |
//! | GET | `counts` | → `{authenticate, revoke, jwks, get_sessions, injected: {…}}` (calls, and faults shown) |
//! | GET | `webhooks` | → `{secret, endpoints: [{url, event_types}]}` |
//! | POST | `webhooks` | `{secret?, endpoints?: [url or {url, event_types?}]}` → as GET |
//! | GET | `webhooks/deliveries` | → `{deliveries: [{msg_id, event_id, event_type, endpoint, attempts, last_status, last_error, state}]}` |
//! | POST | `webhooks/redeliver` | `{msg_id}` → `{}` (404 `message_not_found`) |
//! | POST | `webhooks/send` | `{event_type, payload, secret?, timestamp?, endpoints?}` → `{msg_id}` |
//!
//! `source` is the webhook event's source: `DIRECT` (default), `DASHBOARD` or `SCIM`. Unknown
//! ids answer Stytch's `404 member_not_found` / `organization_not_found`.
//!
//! Fault objects: `{"type": "latency", "millis": 200}`, `{"type": "status", "status": 429,
//! "retry_after": 3}`, `{"type": "close"}` (also `connection_reset`, its older name),
//! `{"type": "rst"}`, `{"type": "malformed_body"}`, `{"type": "truncated_body"}`,
//! `{"type": "trickle", "interval_millis": 50}`, `{"type": "hang"}` and
//! `{"type": "refused", "millis": 500}` (every endpoint at once; `endpoint` is still
//! required but ignored). With `percent` instead of `times`, the fault is shown on that share
//! of the endpoint's calls from then on, spread evenly (at 1: the 100th, 200th, … call),
//! until `DELETE faults` or a `percent` of 0 (not for `refused`).

use std::time::Duration;

use http::{Method, Response};
use serde_json::{Map, Value, json};

use super::api::{member_json, member_not_found, organization_not_found};
use super::faults::{EmulatorEndpoint, Fault};
use super::server::{ApiError, Body, Route, error_response, json_object, ok_response};
use super::{
    DEFAULT_SESSION_DURATION, EmulatorError, EventSource, MemberUpdate, Shared, WebhookEndpoint,
    WebhookMessage, WebhookSecret,
};

/// A control operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    CreateOrganization,
    DeleteOrganization(String),
    CreateRole,
    CreateMember,
    UpdateMember(String),
    DeleteMember(String),
    CreateSession,
    ListRequests,
    ClearRequests,
    InjectFault,
    ClearFaults,
    RotateKey,
    SetClock,
    Counts,
    WebhookConfig,
    SetWebhookConfig,
    WebhookDeliveries,
    RedeliverWebhook,
    SendWebhook,
}

/// Routes `members/{id}` and `organizations/{id}`.
fn route_item(method: &Method, collection: &str, id: &str) -> Option<Route> {
    if id.is_empty() || id.contains('/') {
        return None;
    }
    let id = id.to_owned();
    Some(match (collection, method) {
        ("members", &Method::PUT) => Route::Control(Op::UpdateMember(id)),
        ("members", &Method::DELETE) => Route::Control(Op::DeleteMember(id)),
        ("members", _) => Route::MethodNotAllowed("PUT, DELETE"),
        ("organizations", &Method::DELETE) => Route::Control(Op::DeleteOrganization(id)),
        ("organizations", _) => Route::MethodNotAllowed("DELETE"),
        _ => return None,
    })
}

/// Routes `rest`, the path after `/emulator/v1/`.
pub(crate) fn route(method: &Method, rest: &str) -> Route {
    if let Some((collection, id)) = rest.split_once('/')
        && let Some(route) = route_item(method, collection, id)
    {
        return route;
    }
    let op = match (rest, method) {
        ("organizations", &Method::POST) => Op::CreateOrganization,
        ("roles", &Method::POST) => Op::CreateRole,
        ("members", &Method::POST) => Op::CreateMember,
        ("sessions", &Method::POST) => Op::CreateSession,
        ("requests", &Method::GET) => Op::ListRequests,
        ("requests", &Method::DELETE) => Op::ClearRequests,
        ("faults", &Method::POST) => Op::InjectFault,
        ("faults", &Method::DELETE) => Op::ClearFaults,
        ("keys/rotate", &Method::POST) => Op::RotateKey,
        ("clock", &Method::POST) => Op::SetClock,
        ("counts", &Method::GET) => Op::Counts,
        ("webhooks", &Method::GET) => Op::WebhookConfig,
        ("webhooks", &Method::POST) => Op::SetWebhookConfig,
        ("webhooks/deliveries", &Method::GET) => Op::WebhookDeliveries,
        ("webhooks/redeliver", &Method::POST) => Op::RedeliverWebhook,
        ("webhooks/send", &Method::POST) => Op::SendWebhook,
        (
            "organizations" | "roles" | "members" | "sessions" | "keys/rotate" | "clock"
            | "webhooks/redeliver" | "webhooks/send",
            _,
        ) => return Route::MethodNotAllowed("POST"),
        ("faults", _) => return Route::MethodNotAllowed("POST, DELETE"),
        ("requests", _) => return Route::MethodNotAllowed("GET, DELETE"),
        ("webhooks", _) => return Route::MethodNotAllowed("GET, POST"),
        ("counts" | "webhooks/deliveries", _) => return Route::MethodNotAllowed("GET"),
        _ => return Route::NotFound,
    };
    Route::Control(op)
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

/// The answer's fields.
type Out = Result<Map<String, Value>, ApiError>;

fn run(shared: &Shared, op: Op, body: &Map<String, Value>) -> Out {
    match op {
        Op::CreateOrganization => create_organization(shared, body),
        Op::DeleteOrganization(id) => {
            let source = source(body)?;
            let deleted = shared.delete_organization(&id, source);
            deleted.map_err(api_error).map(|()| Map::new())
        }
        Op::CreateRole => create_role(shared, body),
        Op::CreateMember => create_member(shared, body),
        Op::UpdateMember(id) => update_member(shared, &id, body),
        Op::DeleteMember(id) => {
            let deleted = shared.delete_member(&id, source(body)?);
            deleted.map_err(api_error).map(|()| Map::new())
        }
        Op::CreateSession => create_session(shared, body),
        Op::ListRequests => Ok(list_requests(shared)),
        Op::ClearRequests => {
            shared.clear_requests();
            Ok(Map::new())
        }
        Op::InjectFault => inject_fault(shared, body),
        Op::ClearFaults => {
            shared.clear_faults();
            Ok(Map::new())
        }
        Op::RotateKey => Ok(one("kid", shared.keys.rotate().into())),
        Op::SetClock => {
            let offset = body
                .get("offset_seconds")
                .and_then(Value::as_i64)
                .ok_or_else(|| {
                    ApiError::bad_request("offset_seconds is required and must be an integer.")
                })?;
            shared.set_clock_offset(offset);
            Ok(Map::new())
        }
        Op::Counts => Ok(counts(shared)),
        Op::WebhookConfig => Ok(webhook_config(shared)),
        Op::SetWebhookConfig => set_webhook_config(shared, body),
        Op::WebhookDeliveries => Ok(webhook_deliveries(shared)),
        Op::RedeliverWebhook => {
            let msg_id = str_field(body, "msg_id")?;
            if shared.webhooks.redeliver(msg_id) {
                Ok(Map::new())
            } else {
                Err(api_error(EmulatorError::UnknownMessage))
            }
        }
        Op::SendWebhook => send_webhook(shared, body),
    }
}

fn one(key: &str, value: Value) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(key.to_owned(), value);
    out
}

/// The Stytch-style error for an emulator error.
fn api_error(error: EmulatorError) -> ApiError {
    match error {
        EmulatorError::UnknownOrganization => organization_not_found(),
        EmulatorError::UnknownMember => member_not_found(),
        EmulatorError::UnknownMessage => ApiError::new(
            404,
            "message_not_found",
            "Webhook message could not be found.",
        ),
        other => ApiError::bad_request(format!("{other}.")),
    }
}

/// The optional `source` field: `DIRECT` (default), `DASHBOARD` or `SCIM`.
fn source(body: &Map<String, Value>) -> Result<EventSource, ApiError> {
    match body.get("source") {
        None | Some(Value::Null) => Ok(EventSource::Direct),
        Some(Value::String(name)) => EventSource::from_name(name)
            .ok_or_else(|| ApiError::bad_request("source must be DIRECT, DASHBOARD or SCIM.")),
        Some(_) => Err(ApiError::bad_request("source must be a string.")),
    }
}

fn optional_str(body: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be a string."))),
    }
}

fn create_organization(shared: &Shared, body: &Map<String, Value>) -> Out {
    let name = str_field(body, "organization_name")?;
    let slug = str_field(body, "organization_slug")?;
    let id = shared.create_organization(name, slug, source(body)?);
    Ok(one("organization_id", id.into()))
}

fn create_role(shared: &Shared, body: &Map<String, Value>) -> Out {
    let org = str_field(body, "organization_id")?;
    let role = str_field(body, "role_id")?;
    let mut permissions = Vec::new();
    if let Some(list) = body.get("permissions") {
        let list = list
            .as_array()
            .ok_or_else(|| ApiError::bad_request("permissions must be an array."))?;
        for p in list {
            let resource = p
                .get("resource_id")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("permissions[].resource_id is required."))?;
            permissions.push((
                resource.to_owned(),
                string_list(p.get("actions"), "actions")?,
            ));
        }
    }
    if !shared.create_role(org, role, permissions) {
        return Err(organization_not_found());
    }
    Ok(Map::new())
}

fn create_member(shared: &Shared, body: &Map<String, Value>) -> Out {
    let org = str_field(body, "organization_id")?;
    let email = str_field(body, "email_address")?;
    let roles = string_list(body.get("roles"), "roles")?;
    let name = optional_str(body, "name")?;
    let id = shared
        .create_member(org, email, roles, name, source(body)?)
        .map_err(api_error)?;
    Ok(one("member_id", id.into()))
}

fn update_member(shared: &Shared, id: &str, body: &Map<String, Value>) -> Out {
    let mut update = MemberUpdate::new();
    if body.get("roles").is_some_and(|r| !r.is_null()) {
        update.roles = Some(string_list(body.get("roles"), "roles")?);
    }
    update.status = optional_str(body, "status")?;
    update.name = optional_str(body, "name")?;
    let member = shared
        .update_member(id, update, source(body)?)
        .map_err(api_error)?;
    Ok(one("member", member_json(&member)))
}

fn create_session(shared: &Shared, body: &Map<String, Value>) -> Out {
    let member = str_field(body, "member_id")?;
    let secs = match body.get("session_duration_minutes") {
        None | Some(Value::Null) => {
            i64::try_from(DEFAULT_SESSION_DURATION.as_secs()).unwrap_or(3600)
        }
        Some(v) => v
            .as_i64()
            .filter(|m| *m > 0)
            .ok_or_else(|| {
                ApiError::bad_request("session_duration_minutes must be a positive integer.")
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
    let mut out = Map::new();
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
    Ok(out)
}

fn list_requests(shared: &Shared) -> Map<String, Value> {
    let requests: Vec<Value> = shared
        .requests()
        .into_iter()
        .map(|r| {
            let headers: Map<String, Value> = r
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into(),
                    )
                })
                .collect();
            json!({"method": r.method.as_str(), "path": r.path, "headers": headers, "body": r.body})
        })
        .collect();
    one("requests", requests.into())
}

fn inject_fault(shared: &Shared, body: &Map<String, Value>) -> Out {
    let endpoint = str_field(body, "endpoint")?;
    let endpoint = EmulatorEndpoint::from_name(endpoint).ok_or_else(|| {
        ApiError::bad_request("endpoint must be authenticate, revoke, jwks or get_sessions.")
    })?;
    let fault = parse_fault(body.get("fault").unwrap_or(&Value::Null))?;
    if let Some(percent) = body.get("percent") {
        let percent = percent
            .as_f64()
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| ApiError::bad_request("percent must be a number from 0 to 100."))?;
        if matches!(fault, Fault::Refused { .. }) {
            return Err(ApiError::bad_request("refused cannot be given a percent."));
        }
        shared.faults.set_rate(endpoint, fault, percent);
        return Ok(Map::new());
    }
    let times = body.get("times").and_then(Value::as_u64).unwrap_or(1);
    shared.inject_fault(
        endpoint,
        fault,
        usize::try_from(times).unwrap_or(usize::MAX),
    );
    Ok(Map::new())
}

/// Calls per endpoint, and under `injected` the faults each showed.
fn counts(shared: &Shared) -> Map<String, Value> {
    let mut out: Map<String, Value> = shared
        .faults
        .counts()
        .into_iter()
        .map(|(endpoint, count)| (endpoint.name().to_owned(), count.into()))
        .collect();
    let injected: Map<String, Value> = shared
        .faults
        .counts()
        .into_iter()
        .map(|(endpoint, _)| {
            let n = shared.faults.injected(endpoint);
            (endpoint.name().to_owned(), n.into())
        })
        .collect();
    out.insert("injected".into(), injected.into());
    out
}

fn webhook_config(shared: &Shared) -> Map<String, Value> {
    let endpoints: Vec<Value> = shared
        .webhooks
        .endpoints()
        .iter()
        .map(|e| json!({"url": e.url(), "event_types": e.subscribed_types()}))
        .collect();
    let mut out = one("secret", shared.webhooks.secret().expose_secret().into());
    out.insert("endpoints".into(), endpoints.into());
    out
}

/// One endpoint: a URL, or `{url, event_types?}`.
fn parse_endpoint(value: &Value) -> Result<WebhookEndpoint, ApiError> {
    let (url, types) = match value {
        Value::String(url) => (url.as_str(), None),
        Value::Object(o) => (
            str_field(o, "url")?,
            match o.get("event_types") {
                None | Some(Value::Null) => None,
                types => Some(string_list(types, "event_types")?),
            },
        ),
        _ => {
            return Err(ApiError::bad_request(
                "endpoints[] must be URLs or objects.",
            ));
        }
    };
    let endpoint = WebhookEndpoint::new(url).map_err(api_error)?;
    Ok(match types {
        Some(types) => endpoint.event_types(types),
        None => endpoint,
    })
}

fn set_webhook_config(shared: &Shared, body: &Map<String, Value>) -> Out {
    let secret = optional_str(body, "secret")?
        .map(|s| WebhookSecret::parse(&s).map_err(api_error))
        .transpose()?;
    let endpoints = match body.get("endpoints") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(parse_endpoint)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(ApiError::bad_request("endpoints must be an array.")),
    };
    if let Some(secret) = secret {
        shared.webhooks.set_secret(secret);
    }
    if let Some(endpoints) = endpoints {
        shared.webhooks.set_endpoints(endpoints);
    }
    Ok(webhook_config(shared))
}

fn webhook_deliveries(shared: &Shared) -> Map<String, Value> {
    let deliveries: Vec<Value> = shared
        .webhooks
        .deliveries()
        .into_iter()
        .map(|d| {
            json!({
                "msg_id": d.msg_id,
                "event_id": d.event_id,
                "event_type": d.event_type,
                "endpoint": d.endpoint,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "state": d.state.as_str(),
            })
        })
        .collect();
    one("deliveries", deliveries.into())
}

fn send_webhook(shared: &Shared, body: &Map<String, Value>) -> Out {
    let event_type = str_field(body, "event_type")?;
    let payload = match body.get("payload") {
        Some(payload @ Value::Object(_)) => payload.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "payload is required and must be an object.",
            ));
        }
    };
    let mut message = WebhookMessage::new(event_type, payload);
    if let Some(secret) = optional_str(body, "secret")? {
        message = message.signed_with(WebhookSecret::parse(&secret).map_err(api_error)?);
    }
    match body.get("timestamp") {
        None | Some(Value::Null) => {}
        Some(t) => {
            let t = t
                .as_i64()
                .ok_or_else(|| ApiError::bad_request("timestamp must be an integer."))?;
            message = message.timestamp(t);
        }
    }
    if body.get("endpoints").is_some_and(|e| !e.is_null()) {
        for url in string_list(body.get("endpoints"), "endpoints")? {
            message = message.to(WebhookEndpoint::new(url).map_err(api_error)?.url());
        }
    }
    Ok(one("msg_id", shared.webhooks.send(message).into()))
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
