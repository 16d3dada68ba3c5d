//! What every handler answers with: Stytch's error JSON ([`ApiError`]), success bodies with
//! `request_id` and `status_code`, the response body type, and the JSON-object body parser.
//!
//! A leaf: it uses no other module of the crate, so that the dispatcher, the Stytch handlers
//! and the control handlers can all use it without a cycle.

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value, json};

/// Response body of the emulator.
pub(crate) type Body = BoxBody<Bytes, io::Error>;

/// A Stytch-style API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) error_type: &'static str,
    pub(crate) message: String,
    /// Rendered with OAuth 2.0's field names (`error`, `error_description`, `error_uri`), as
    /// Stytch's OAuth token endpoint answers (stytch-node issue #314, PR #315).
    pub(crate) oauth: bool,
}

impl ApiError {
    pub(crate) fn new(status: u16, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            oauth: false,
        }
    }

    /// An error of the OAuth token endpoint (`invalid_client`, `invalid_scope`, …).
    pub(crate) fn oauth(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            oauth: true,
            ..Self::new(status, error, description)
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    pub(crate) fn session_not_found() -> Self {
        Self::new(404, "session_not_found", "Session could not be found.")
    }

    /// Stytch's 401 for a wrong project id or secret.
    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "unauthorized_credentials", "Unauthorized credentials.")
    }

    /// Stytch's 404 for an unknown member.
    pub(crate) fn member_not_found() -> Self {
        Self::new(404, "member_not_found", "Member could not be found.")
    }

    /// Stytch's 404 for an unknown organization.
    pub(crate) fn organization_not_found() -> Self {
        Self::new(
            404,
            "organization_not_found",
            "Organization could not be found.",
        )
    }
}

/// A body of these bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A JSON response with `Content-Type: application/json`.
pub(crate) fn json_response(status: u16, value: &Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Stytch's error JSON (OAuth 2.0's field names for an OAuth error).
pub(crate) fn error_response(request_id: &str, error: &ApiError) -> Response<Body> {
    let url = format!("https://stytch.com/docs/api/errors/{}", error.status);
    if error.oauth {
        return json_response(
            error.status,
            &json!({
                "status_code": error.status,
                "request_id": request_id,
                "error": error.error_type,
                "error_description": error.message,
                "error_uri": url,
            }),
        );
    }
    json_response(
        error.status,
        &json!({
            "status_code": error.status,
            "request_id": request_id,
            "error_type": error.error_type,
            "error_message": error.message,
            "error_url": url,
        }),
    )
}

/// A success response: `request_id` and `status_code: 200` added to `body`.
pub(crate) fn ok_response(request_id: &str, mut body: Map<String, Value>) -> Response<Body> {
    body.insert("request_id".to_owned(), request_id.into());
    body.insert("status_code".to_owned(), 200.into());
    json_response(200, &Value::Object(body))
}

/// The body as a JSON object: empty is `{}`, anything else not an object is a 400.
pub(crate) fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(_) => Err(ApiError::bad_request("The request body is not valid JSON.")),
    }
}

/// A one-field JSON object.
pub(crate) fn one(key: &str, value: Value) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(key.to_owned(), value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_must_be_a_json_object() {
        // If this broke, junk bodies would be accepted or empty bodies refused.
        assert_eq!(json_object(b"").unwrap(), Map::new());
        assert_eq!(json_object(b"[1]").unwrap_err().error_type, "bad_request");
        assert_eq!(json_object(b"{").unwrap_err().error_type, "bad_request");
        assert_eq!(json_object(b"{\"a\":1}").unwrap().len(), 1);
    }
}
