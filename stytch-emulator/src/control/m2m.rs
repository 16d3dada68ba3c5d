//! Control operations on M2M: a client with custom claims (Stytch's Create M2M Client body
//! plus `custom_claims`, which Stytch sets through JWT templates), and the token lifetime.

use serde_json::{Map, Value};

use super::Out;
use crate::api;
use crate::shared::Shared;
use crate::wire::ApiError;

/// `POST m2m/clients`: as `POST /v1/m2m/clients`, with `custom_claims`.
pub(super) fn create_client(shared: &Shared, body: &Map<String, Value>) -> Out {
    api::m2m::create(shared, &mut shared.m2m(), body)
}

/// `PUT m2m/token_lifetime`: `{seconds}` for tokens minted from now on.
pub(super) fn set_token_lifetime(shared: &Shared, body: &Map<String, Value>) -> Out {
    let seconds = body
        .get("seconds")
        .and_then(Value::as_i64)
        .filter(|s| *s > 0)
        .ok_or_else(|| ApiError::bad_request("seconds is required and must be positive."))?;
    shared.set_m2m_token_lifetime(seconds);
    Ok(Map::new())
}
