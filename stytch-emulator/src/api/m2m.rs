//! Stytch's M2M API: clients (`/v1/m2m/clients…`) and the OAuth token endpoint
//! (`POST /v1/public/{project_id}/oauth2/token`).
//!
//! The token endpoint takes what each official SDK sends: node a form body
//! (`application/x-www-form-urlencoded`, `scope` space-separated, no Basic auth; node
//! `lib/b2c/m2m.ts`), python a JSON body with `scope` (and the project's Basic auth, which is
//! ignored here; python `stytch/consumer/api/m2m.py`), the official Rust SDK JSON with a
//! `scopes` array (`src/consumer/m2m.rs` `TokenRequest`). Client credentials may also come as
//! HTTP Basic `client_id:client_secret` (OAuth's `client_secret_basic`). Errors use OAuth's
//! field names (`error`, `error_description`), as Stytch's does (stytch-node issue #314:
//! a wrong `client_id` or `client_secret` is a 400). The answer is `{access_token,
//! token_type: "bearer", expires_in}` with `request_id` and `status_code` (python's
//! `GetTokenResponse` requires them).

use http::{HeaderMap, header};
use serde_json::{Map, Value, json};

use crate::m2m::M2mError;
use crate::m2m::registry::{ClientRecord, ClientUpdate, Filter, new_client_secret};
use crate::parse::{optional_str, string_list};
use crate::route::M2mOp;
use crate::shared::Shared;
use crate::wire::{ApiError, one};

/// A client as Stytch answers it.
pub(crate) fn client_json(client: &ClientRecord) -> Value {
    let public = client.public();
    json!({
        "client_id": public.client_id,
        "client_name": public.client_name,
        "client_description": public.client_description,
        "status": public.status,
        "scopes": public.scopes,
        "client_secret_last_four": public.client_secret_last_four,
        "next_client_secret_last_four": public.next_client_secret_last_four,
        "trusted_metadata": client.trusted_metadata,
    })
}

/// The Stytch error for an M2M client API error (error types of Stytch's error enum, e.g.
/// stytch-android `StytchAPIErrorType.kt`).
pub(crate) fn client_error(error: M2mError) -> ApiError {
    match error {
        M2mError::NotFound | M2mError::InvalidClient => ApiError::new(
            404,
            "m2m_client_not_found",
            "M2M client could not be found.",
        ),
        M2mError::DuplicateClientId => ApiError::new(
            400,
            "duplicate_m2m_client_id",
            "An M2M client with this client_id already exists.",
        ),
        M2mError::InsecureSecret => ApiError::new(
            400,
            "insecure_m2m_client_secret",
            "client_secret must be at least 8 characters long.",
        ),
        M2mError::InvalidScope(scope) | M2mError::ScopeNotAllowed(scope) => ApiError::new(
            400,
            "invalid_m2m_client_scope",
            format!("Invalid scope {scope:?}: scopes are non-empty and have no whitespace."),
        ),
        M2mError::InvalidStatus => ApiError::new(
            400,
            "m2m_client_invalid_status",
            "status must be active or inactive.",
        ),
        M2mError::AlreadyRotating => ApiError::new(
            400,
            "m2m_client_already_rotating_secret",
            "The M2M client is already rotating its secret.",
        ),
        M2mError::NotRotating => ApiError::new(
            400,
            "m2m_client_not_rotating_secret",
            "The M2M client is not rotating its secret.",
        ),
    }
}

fn client_out(key: &str, client: &ClientRecord) -> Map<String, Value> {
    one(key, client_json(client))
}

/// One call of the M2M client API.
pub(crate) fn clients(
    shared: &Shared,
    op: M2mOp,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let mut registry = shared.m2m();
    let client = match op {
        M2mOp::Create => return create(shared, &mut registry, body),
        M2mOp::Search => return search(&registry, body),
        M2mOp::Get(id) => registry.get(&id).cloned().ok_or(M2mError::NotFound),
        M2mOp::Update(id) => registry.update(&id, update(body)?),
        M2mOp::Delete(id) => {
            registry.delete(&id).map_err(client_error)?;
            return Ok(one("client_id", id.into()));
        }
        M2mOp::RotateStart(id) => {
            let client = registry
                .rotate_start(&id, new_client_secret())
                .map_err(client_error)?;
            let mut json = client_json(&client);
            json["next_client_secret"] = registry.next_secret(&id).unwrap_or_default().into();
            return Ok(one("m2m_client", json));
        }
        M2mOp::RotateCancel(id) => registry.rotate_cancel(&id),
        M2mOp::Rotate(id) => registry.rotate(&id),
    };
    client
        .map(|c| client_out("m2m_client", &c))
        .map_err(client_error)
}

fn metadata(body: &Map<String, Value>) -> Result<Option<Map<String, Value>>, ApiError> {
    match body.get("trusted_metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(ApiError::bad_request("trusted_metadata must be an object.")),
    }
}

/// The body of Create M2M Client (and the control API's, which adds `custom_claims`).
pub(crate) fn new_client(body: &Map<String, Value>) -> Result<crate::m2m::NewM2mClient, ApiError> {
    let scopes = match body.get("scopes") {
        Some(Value::Array(_)) => string_list(body.get("scopes"), "scopes")?,
        _ => {
            return Err(ApiError::bad_request(
                "scopes is required and must be an array.",
            ));
        }
    };
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let mut new = crate::m2m::NewM2mClient::new(&scopes)
        .name(optional_str(body, "client_name")?.unwrap_or_default())
        .description(optional_str(body, "client_description")?.unwrap_or_default())
        .trusted_metadata(metadata(body)?.unwrap_or_default());
    if let Some(id) = optional_str(body, "client_id")? {
        new = new.client_id(id);
    }
    if let Some(secret) = optional_str(body, "client_secret")? {
        new = new.client_secret(secret);
    }
    if let Some(Value::Object(claims)) = body.get("custom_claims") {
        new = new.custom_claims(claims.clone());
    }
    Ok(new)
}

/// Create M2M Client; the control API's `POST m2m/clients` uses it too (with
/// `custom_claims`).
pub(crate) fn create(
    shared: &Shared,
    registry: &mut crate::m2m::registry::M2mRegistry,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let (client, secret) = registry
        .create(
            new_client(body)?,
            shared.new_id("m2m-client"),
            new_client_secret(),
        )
        .map_err(client_error)?;
    let mut json = client_json(&client);
    json["client_secret"] = secret.into();
    Ok(one("m2m_client", json))
}

fn update(body: &Map<String, Value>) -> Result<ClientUpdate, ApiError> {
    Ok(ClientUpdate {
        client_name: optional_str(body, "client_name")?,
        client_description: optional_str(body, "client_description")?,
        status: optional_str(body, "status")?,
        scopes: match body.get("scopes") {
            None | Some(Value::Null) => None,
            scopes => Some(string_list(scopes, "scopes")?),
        },
        trusted_metadata: metadata(body)?,
    })
}

/// Search M2M Clients: `query: {operator: AND|OR, operands: [{filter_name, filter_value}]}`
/// with the filters `client_id`, `client_name`, `scopes`; `limit` (default 100) and
/// `cursor` (an offset here) page through the results.
fn search(
    registry: &crate::m2m::registry::M2mRegistry,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let query = body.get("query").and_then(Value::as_object);
    let all = query
        .and_then(|q| q.get("operator"))
        .and_then(Value::as_str)
        .is_none_or(|op| op.eq_ignore_ascii_case("AND"));
    let mut filters = Vec::new();
    for operand in query
        .and_then(|q| q.get("operands"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let values = string_list(operand.get("filter_value"), "filter_value")?;
        filters.push(match operand.get("filter_name").and_then(Value::as_str) {
            Some("client_id") => Filter::ClientId(values),
            Some("client_name") => Filter::ClientName(values),
            Some("scopes") => Filter::Scopes(values),
            _ => {
                return Err(ApiError::new(
                    400,
                    "m2m_search_filter_name_not_recognized",
                    "filter_name must be client_id, client_name or scopes.",
                ));
            }
        });
    }
    let found = registry.search(&filters, all);
    let limit = body
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .max(1);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let start = optional_str(body, "cursor")?
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let page: Vec<Value> = found
        .iter()
        .skip(start)
        .take(limit)
        .map(client_json)
        .collect();
    let next = (start.saturating_add(limit) < found.len()).then(|| (start + limit).to_string());
    let mut out = one("m2m_clients", page.into());
    out.insert(
        "results_metadata".into(),
        json!({"total": found.len(), "next_cursor": next}),
    );
    Ok(out)
}

/// The token request's fields: a form or a JSON object.
fn token_fields(headers: &HeaderMap, bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        return Ok(form_urlencoded::parse(bytes)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect());
    }
    crate::wire::json_object(bytes)
        .map_err(|_| ApiError::oauth(400, "invalid_request", "The body is not a JSON object."))
}

/// `client_secret_basic`: `client_id:client_secret` in HTTP Basic, unless it is the
/// project's own credentials (which python sends with every call).
fn basic_client(shared: &Shared, headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    (id != shared.project_id).then(|| (id.to_owned(), secret.to_owned()))
}

/// The requested scopes: `scope` (space-separated) or `scopes` (an array); none: `None`.
fn requested_scopes(fields: &Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    let invalid = || ApiError::oauth(400, "invalid_request", "scope must be a string.");
    let scopes = match (fields.get("scope"), fields.get("scopes")) {
        (Some(Value::String(s)), _) => s.split_whitespace().map(str::to_owned).collect(),
        (Some(Value::Null) | None, Some(Value::Array(items))) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect::<Result<Vec<_>, _>>()?,
        (Some(Value::Null) | None, Some(Value::Null) | None) => return Ok(None),
        _ => return Err(invalid()),
    };
    Ok((!scopes.is_empty()).then_some(scopes))
}

/// `POST /v1/public/{project_id}/oauth2/token` with `grant_type=client_credentials`.
pub(crate) fn token(
    shared: &Shared,
    project_id: &str,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    if project_id != shared.project_id {
        return Err(ApiError::oauth(
            400,
            "invalid_request",
            "The project_id in the path is not this project's.",
        ));
    }
    let fields = token_fields(headers, bytes)?;
    let text = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_owned);
    match text("grant_type").as_deref() {
        Some("client_credentials") => {}
        None => {
            return Err(ApiError::oauth(
                400,
                "invalid_request",
                "grant_type is required.",
            ));
        }
        Some(_) => {
            return Err(ApiError::oauth(
                400,
                "unsupported_grant_type",
                "Only the client_credentials grant is supported.",
            ));
        }
    }
    let (client_id, secret) = match (text("client_id"), text("client_secret")) {
        (Some(id), Some(secret)) => (id, secret),
        _ => basic_client(shared, headers).ok_or_else(|| {
            ApiError::oauth(
                400,
                "invalid_request",
                "client_id and client_secret are required.",
            )
        })?,
    };
    let scopes = requested_scopes(&fields)?;
    let grant = shared
        .m2m()
        .grant(&client_id, &secret, scopes)
        .map_err(|e| match e {
            M2mError::ScopeNotAllowed(scope) => ApiError::oauth(
                400,
                "invalid_scope",
                format!("The client is not allowed the scope {scope:?}."),
            ),
            _ => ApiError::oauth(
                400,
                "invalid_client",
                "Client authentication failed: unknown or inactive client, or wrong secret.",
            ),
        })?;
    let (access_token, expires_in) = shared.mint_m2m(&grant);
    let mut out = one("access_token", access_token.into());
    out.insert("token_type".into(), "bearer".into());
    out.insert("expires_in".into(), expires_in.into());
    Ok(out)
}
