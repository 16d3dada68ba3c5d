//! Control operations on webhooks: endpoints and secret, the delivery log, sending.

use serde_json::{Map, Value, json};

use super::{Out, api_error, optional_str, str_field, string_list};
use crate::shared::Shared;
use crate::webhooks::{WebhookEndpoint, WebhookMessage, WebhookSecret};
use crate::wire::{ApiError, one};

pub(super) fn webhook_config(shared: &Shared) -> Map<String, Value> {
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

pub(super) fn set_webhook_config(shared: &Shared, body: &Map<String, Value>) -> Out {
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

pub(super) fn webhook_deliveries(shared: &Shared) -> Map<String, Value> {
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

pub(super) fn send_webhook(shared: &Shared, body: &Map<String, Value>) -> Out {
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
