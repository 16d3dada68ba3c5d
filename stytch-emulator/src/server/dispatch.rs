//! One request, from routing to its handler's answer (see [`dispatch`]).

use std::io;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use super::{ConnectionAbort, faulty};
use crate::config::MAX_BODY_BYTES;
use crate::faults::Fault;
use crate::route::{Route, route};
use crate::shared::Shared;
use crate::types::RecordedRequest;
use crate::wire::{ApiError, Body, error_response, json_object, ok_response};
use crate::{api, control};

fn mark_sensitive(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if matches!(
            name.as_str(),
            "authorization" | "cookie" | "x-stytch-member-session" | "x-stytch-member-sessionjwt"
        ) {
            value.set_sensitive(true);
        }
    }
}

/// Handles one request. An `Err` makes hyper drop the connection (an injected close).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    abort: ConnectionAbort,
    request: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let request_id = format!("request-id-{}-{}", shared.env, uuid::Uuid::new_v4());
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let method = parts.method.clone();
    let route = route(&method, &path);
    if shared.gate.is_refusing() && !matches!(route, Route::Control(_)) {
        // The gate closes open connections gracefully, but a request may reach one before
        // its task has seen the gate change: a refusing server does not answer it. Reset.
        abort.reset();
        return std::future::pending().await;
    }
    let response = dispatch(&shared, &abort, &request_id, route, parts, body).await?;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "emulator");
    Ok(response)
}

/// Answers one routed request: reads the body (size limit) and records what the API (not the
/// control API) received, then plays a queued fault, then checks Basic auth and runs the
/// endpoint.
///
/// Long on purpose: the steps every request goes through, then one arm per route, read top
/// to bottom in the order they apply; split up, the order would be hidden.
async fn dispatch(
    shared: &Shared,
    abort: &ConnectionAbort,
    request_id: &str,
    route: Route,
    parts: http::request::Parts,
    body: Incoming,
) -> Result<Response<Body>, io::Error> {
    let is_control = matches!(route, Route::Control(_));
    let mut headers = parts.headers;
    mark_sensitive(&mut headers);
    let record = |body: Value, headers: HeaderMap| {
        if !is_control {
            shared.record(RecordedRequest {
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                headers,
                body,
            });
        }
    };

    let too_large = ApiError::new(
        413,
        "request_too_large",
        format!("The request body exceeds {MAX_BODY_BYTES} bytes."),
    );
    let declared_too_large = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > MAX_BODY_BYTES as u64);
    let bytes = if declared_too_large {
        None
    } else {
        match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => Some(collected.to_bytes()),
            Err(error) => {
                if error
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_none()
                {
                    // The client went away mid-body.
                    return Err(io::Error::other("emulator: request body read failed"));
                }
                None
            }
        }
    };
    let Some(bytes) = bytes else {
        record(Value::Null, headers);
        return Ok(error_response(request_id, &too_large));
    };
    record(
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers.clone(),
    );

    let request = Answerable {
        request_id,
        route,
        query: parts.uri.query(),
        headers: &headers,
        bytes: &bytes,
    };
    let fault = request
        .route
        .endpoint()
        .and_then(|e| shared.faults.on_call(e));
    match fault {
        // A refusal closes the listener when injected and is never queued.
        None | Some(Fault::Refused { .. }) => Ok(answer(shared, request)),
        Some(Fault::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            Ok(answer(shared, request))
        }
        Some(Fault::Trickle { interval }) => {
            Ok(faulty::trickle(answer(shared, request), interval).await)
        }
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::Rst) => {
            abort.reset();
            std::future::pending().await
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => Ok(faulty::status_fault(request_id, status, retry_after)),
        Some(Fault::ConnectionReset) => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "emulator: injected connection close",
        )),
        Some(Fault::MalformedBody) => Ok(faulty::malformed_body(request_id)),
        Some(Fault::TruncatedBody) => Ok(faulty::truncated_body(request_id)),
    }
}

/// A request whose body has been read: everything [`answer`] needs.
struct Answerable<'a> {
    request_id: &'a str,
    route: Route,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    bytes: &'a [u8],
}

/// The emulator's normal answer to a request.
fn answer(shared: &Shared, request: Answerable<'_>) -> Response<Body> {
    let Answerable {
        request_id,
        route,
        query,
        headers,
        bytes,
    } = request;
    let result = match route {
        Route::NotFound => Err(ApiError::new(
            404,
            "route_not_found",
            "The requested route was not found.",
        )),
        Route::MethodNotAllowed(allow) => {
            let mut response = error_response(
                request_id,
                &ApiError::new(
                    405,
                    "method_not_allowed",
                    "The method is not allowed on this route.",
                ),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return response;
        }
        Route::Jwks(project) => {
            if headers
                .get(header::AUTHORIZATION)
                .is_some_and(|v| !shared.basic_auth_ok(v))
            {
                Err(ApiError::unauthorized())
            } else {
                api::jwks(shared, &project)
            }
        }
        // Public, like Stytch's: clients authenticate with their own credentials.
        Route::M2mToken(project) => api::m2m::token(shared, &project, headers, bytes),
        _ if !headers
            .get(header::AUTHORIZATION)
            .is_some_and(|v| shared.basic_auth_ok(v)) =>
        {
            Err(ApiError::unauthorized())
        }
        Route::Authenticate => {
            json_object(bytes).and_then(|b| api::sessions::authenticate(shared, &b))
        }
        Route::Revoke => json_object(bytes).and_then(|b| api::revoke::revoke(shared, headers, &b)),
        Route::RbacPolicy => Ok(api::rbac::policy(shared)),
        Route::M2m(op) => json_object(bytes).and_then(|b| api::m2m::clients(shared, op, &b)),
        Route::RbacOrganization(id) => api::rbac::organization(shared, &id),
        Route::SetOrgPolicy(id) => {
            json_object(bytes).and_then(|b| api::rbac::set_organization(shared, &id, &b))
        }
        Route::GetSessions => api::sessions::get_sessions(shared, query.unwrap_or_default()),
        Route::Control(op) => return control::handle(shared, request_id, op, bytes),
    };
    match result {
        Ok(body) => ok_response(request_id, body),
        Err(error) => error_response(request_id, &error),
    }
}
