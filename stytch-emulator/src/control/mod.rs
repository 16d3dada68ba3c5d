//! The HTTP control API under `/emulator/v1/` (same Basic auth as the Stytch endpoints): here
//! the dispatch of an [`Op`] and the body helpers; [`directory`] (organizations, roles,
//! members, sessions), [`ops`] (faults, request log, counts) and [`webhooks`] hold the
//! operations. Uses [`route`](crate::route) for [`Op`], [`wire`](crate::wire), [`render`](crate::render)
//! and [`shared`](crate::shared); never the dispatcher or the Stytch handlers.
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | POST | `organizations` | `{organization_name, organization_slug, source?}` → `{organization_id}` |
//! | DELETE | `organizations/{organization_id}` | `{source?}` → `{}` (its members and their sessions go too) |
//! | POST | `roles` | `{organization_id, role_id, permissions: [{resource_id, actions}]}` → `{}` |
//! | POST | `members` | `{organization_id, email_address, roles?, name?, source?}` → `{member_id}` |
//! | PUT | `members/{member_id}` | `{roles?, status?, name?, source?}` → `{member}` |
//! | DELETE | `members/{member_id}` | `{source?}` → `{}` (its sessions end) |
//! | POST | `sessions` | `{member_id, session_duration_minutes?, custom_claims?, authentication_factors?}` → `{member_id, organization_id, member_session_id, session_token, session_jwt}` |
//! | POST | `sessions/{member_session_id}/factors` | `{type, delivery_method, phone_number?, last_authenticated_at?}` → `{member_session, session_jwt}` (the MFA step) |
//! | PUT | `rbac/policy` | `{roles?, resources?, scopes?}` (each given list replaces the project's) → `{policy}` |
//! | POST | `rbac/roles`, `rbac/resources`, `rbac/scopes` | one role, resource or scope (added or replaced by id) → `{policy}` |
//! | PUT | `rbac/organizations/{organization_id}` | `{roles}` → `{org_policy}` (the organization's custom roles) |
//! | POST | `m2m/clients` | Stytch's Create M2M Client body plus `custom_claims` → `{m2m_client}` with `client_secret` |
//! | PUT | `m2m/token_lifetime` | `{seconds}` → `{}`: lifetime of M2M tokens minted from now on |
//! | GET / DELETE | `requests` | → `{requests: [{method, path, headers, body}]}` / clears |
//! | POST / DELETE | `faults` | `{endpoint, fault: {type, …}, times?}` or `{endpoint, fault, percent}` → `{}` / clears them all |
//! | POST | `keys/rotate` | → `{kid}` |
//! | POST | `clock` | `{offset_seconds}` → `{}` |
//! | GET | `counts` | → `{authenticate, revoke, jwks, get_sessions, rbac_policy, rbac_organization, injected: {…}}` (calls, and faults shown) |
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

mod directory;
mod m2m;
mod ops;
mod rbac;
mod webhooks;

use http::Response;
use serde_json::{Map, Value};

pub(crate) use crate::parse::{optional_str, str_field, string_list};
use crate::route::Op;
use crate::shared::Shared;
use crate::types::EmulatorError;
use crate::webhooks::EventSource;
use crate::wire::{ApiError, Body, error_response, json_object, ok_response, one};

/// The answer's fields.
pub(crate) type Out = Result<Map<String, Value>, ApiError>;

fn run(shared: &Shared, op: Op, body: &Map<String, Value>) -> Out {
    match op {
        Op::CreateOrganization => directory::create_organization(shared, body),
        Op::DeleteOrganization(id) => {
            let source = source(body)?;
            let deleted = shared.delete_organization(&id, source);
            deleted.map_err(api_error).map(|()| Map::new())
        }
        Op::CreateRole => directory::create_role(shared, body),
        Op::CreateMember => directory::create_member(shared, body),
        Op::UpdateMember(id) => directory::update_member(shared, &id, body),
        Op::DeleteMember(id) => {
            let deleted = shared.delete_member(&id, source(body)?);
            deleted.map_err(api_error).map(|()| Map::new())
        }
        Op::CreateSession => directory::create_session(shared, body),
        Op::ListRequests => Ok(ops::list_requests(shared)),
        Op::ClearRequests => {
            shared.clear_requests();
            Ok(Map::new())
        }
        Op::InjectFault => ops::inject_fault(shared, body),
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
        Op::Counts => Ok(ops::counts(shared)),
        Op::WebhookConfig => Ok(webhooks::webhook_config(shared)),
        Op::SetWebhookConfig => webhooks::set_webhook_config(shared, body),
        Op::WebhookDeliveries => Ok(webhooks::webhook_deliveries(shared)),
        Op::RedeliverWebhook => {
            let msg_id = str_field(body, "msg_id")?;
            if shared.webhooks.redeliver(msg_id) {
                Ok(Map::new())
            } else {
                Err(api_error(EmulatorError::UnknownMessage))
            }
        }
        Op::SendWebhook => webhooks::send_webhook(shared, body),
        Op::SetPolicy => rbac::set_policy(shared, body),
        Op::SetPolicyItem(kind) => rbac::set_policy_item(shared, kind, body),
        Op::SetOrganizationRoles(id) => rbac::set_organization_roles(shared, &id, body),
        Op::AddSessionFactor(id) => rbac::add_session_factor(shared, &id, body),
        Op::CreateM2mClient => m2m::create_client(shared, body),
        Op::SetM2mTokenLifetime => m2m::set_token_lifetime(shared, body),
    }
}

/// The Stytch-style error for an emulator error.
pub(crate) fn api_error(error: EmulatorError) -> ApiError {
    match error {
        EmulatorError::UnknownOrganization => ApiError::organization_not_found(),
        EmulatorError::UnknownMember => ApiError::member_not_found(),
        EmulatorError::UnknownSession => ApiError::session_not_found(),
        EmulatorError::UnknownM2mClient => ApiError::new(
            404,
            "m2m_client_not_found",
            "M2M client could not be found.",
        ),
        EmulatorError::UnknownMessage => ApiError::new(
            404,
            "message_not_found",
            "Webhook message could not be found.",
        ),
        other => ApiError::bad_request(format!("{other}.")),
    }
}

/// The optional `source` field: `DIRECT` (default), `DASHBOARD` or `SCIM`.
pub(crate) fn source(body: &Map<String, Value>) -> Result<EventSource, ApiError> {
    match body.get("source") {
        None | Some(Value::Null) => Ok(EventSource::Direct),
        Some(Value::String(name)) => EventSource::from_name(name)
            .ok_or_else(|| ApiError::bad_request("source must be DIRECT, DASHBOARD or SCIM.")),
        Some(_) => Err(ApiError::bad_request("source must be a string.")),
    }
}

/// Runs a control operation and answers with JSON.
pub(crate) fn handle(shared: &Shared, request_id: &str, op: Op, bytes: &[u8]) -> Response<Body> {
    match json_object(bytes).and_then(|body| run(shared, op, &body)) {
        Ok(out) => ok_response(request_id, out),
        Err(error) => error_response(request_id, &error),
    }
}
