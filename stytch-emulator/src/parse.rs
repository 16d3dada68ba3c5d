//! Parsing of request bodies shared by the Stytch handlers and the control API: required and
//! optional fields, and RBAC roles, resources, scopes and authentication factors in Stytch's
//! own field names.
//!
//! Uses [`wire`](crate::wire) (errors), [`policy`](crate::policy) and
//! [`factors`](crate::factors).

use serde_json::{Map, Value};

use crate::factors::{AuthenticationFactor, FactorKind};
use crate::policy::{RbacPermission, RbacResource, RbacRole, RbacScope};
use crate::wire::ApiError;

pub(crate) fn str_field<'a>(
    body: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a str, ApiError> {
    body.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("{field} is required and must be a string.")))
}

pub(crate) fn string_list(value: Option<&Value>, what: &str) -> Result<Vec<String>, ApiError> {
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

pub(crate) fn optional_str(
    body: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be a string."))),
    }
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be objects.")))
}

fn permissions(value: Option<&Value>) -> Result<Vec<RbacPermission>, ApiError> {
    let Some(list) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| ApiError::bad_request("permissions must be an array."))?;
    list.iter()
        .map(|p| {
            let p = object(p, "permissions[]")?;
            let resource = str_field(p, "resource_id")?;
            let actions = string_list(p.get("actions"), "actions")?;
            let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
            Ok(RbacPermission::new(resource, &actions))
        })
        .collect()
}

/// A role object.
pub(crate) fn role(value: &Value) -> Result<RbacRole, ApiError> {
    let body = object(value, "roles[]")?;
    let role = RbacRole::new(
        str_field(body, "role_id")?,
        permissions(body.get("permissions"))?,
    );
    Ok(role.description(optional_str(body, "description")?.unwrap_or_default()))
}

pub(crate) fn resource(value: &Value) -> Result<RbacResource, ApiError> {
    let body = object(value, "resources[]")?;
    let actions = string_list(body.get("actions"), "actions")?;
    let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
    let resource = RbacResource::new(str_field(body, "resource_id")?, &actions);
    Ok(resource.description(optional_str(body, "description")?.unwrap_or_default()))
}

pub(crate) fn scope(value: &Value) -> Result<RbacScope, ApiError> {
    let body = object(value, "scopes[]")?;
    let mut scope = RbacScope::new(
        str_field(body, "scope")?,
        permissions(body.get("permissions"))?,
    );
    scope.description = optional_str(body, "description")?.unwrap_or_default();
    Ok(scope)
}

/// An optional list of `field`, each item parsed by `parse`.
pub(crate) fn list<T>(
    body: &Map<String, Value>,
    field: &str,
    parse: fn(&Value) -> Result<T, ApiError>,
) -> Result<Option<Vec<T>>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items.iter().map(parse).collect::<Result<_, _>>().map(Some),
        Some(_) => Err(ApiError::bad_request(format!("{field} must be an array."))),
    }
}

/// A factor object.
pub(crate) fn factor(value: &Value) -> Result<AuthenticationFactor, ApiError> {
    let body = object(value, "authentication_factors[]")?;
    let factor_type = str_field(body, "type")?;
    let delivery = str_field(body, "delivery_method")?;
    let phone = optional_str(body, "phone_number")?;
    let kind = FactorKind::from_names(factor_type, delivery, phone.as_deref()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unsupported factor {factor_type}/{delivery} (otp/sms needs phone_number); one of {:?}.",
            FactorKind::PAIRS
        ))
    })?;
    let factor = AuthenticationFactor::new(kind);
    Ok(match body.get("last_authenticated_at") {
        None | Some(Value::Null) => factor,
        Some(Value::Number(n)) => factor.at(n.as_i64().ok_or_else(|| {
            ApiError::bad_request("last_authenticated_at must be whole Unix seconds.")
        })?),
        Some(Value::String(at)) => {
            let at = humantime::parse_rfc3339_weak(at)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .ok_or_else(|| ApiError::bad_request("last_authenticated_at must be RFC 3339."))?;
            factor.at(at)
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "last_authenticated_at must be RFC 3339 or Unix seconds.",
            ));
        }
    })
}

/// The optional `authentication_factors` of a new session.
pub(crate) fn factors(body: &Map<String, Value>) -> Result<Vec<AuthenticationFactor>, ApiError> {
    Ok(list(body, "authentication_factors", factor)?.unwrap_or_default())
}
