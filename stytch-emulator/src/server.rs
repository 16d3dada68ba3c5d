//! The hyper server: accept loop, routing, body limits, request log, faults and responses.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;

use super::faults::{EmulatorEndpoint, Fault, status_error};
use super::gate::GateState;
use super::{MAX_BODY_BYTES, RecordedRequest, Shared, api, control};

/// Response body of the emulator.
pub(crate) type Body = BoxBody<Bytes, io::Error>;

/// A Stytch-style API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) error_type: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    pub(crate) fn session_not_found() -> Self {
        Self::new(404, "session_not_found", "Session could not be found.")
    }
}

/// Which handler a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Authenticate,
    GetSessions,
    Revoke,
    Jwks(String),
    Control(control::Op),
    MethodNotAllowed(&'static str),
    NotFound,
}

impl Route {
    fn endpoint(&self) -> Option<EmulatorEndpoint> {
        match self {
            Self::Authenticate => Some(EmulatorEndpoint::Authenticate),
            Self::GetSessions => Some(EmulatorEndpoint::GetSessions),
            Self::Revoke => Some(EmulatorEndpoint::Revoke),
            Self::Jwks(_) => Some(EmulatorEndpoint::Jwks),
            _ => None,
        }
    }
}

/// Routes a method and path.
pub(crate) fn route(method: &Method, path: &str) -> Route {
    let expect = |m: Method, allow: &'static str, r: Route| {
        if *method == m {
            r
        } else {
            Route::MethodNotAllowed(allow)
        }
    };
    match path {
        "/v1/b2b/sessions/authenticate" => expect(Method::POST, "POST", Route::Authenticate),
        "/v1/b2b/sessions/revoke" => expect(Method::POST, "POST", Route::Revoke),
        "/v1/b2b/sessions" => expect(Method::GET, "GET", Route::GetSessions),
        _ => {
            if let Some(project) = path.strip_prefix("/v1/b2b/sessions/jwks/")
                && !project.is_empty()
                && !project.contains('/')
            {
                // Clients may percent-encode the id (Stytch's official SDKs encode every
                // non-alphanumeric character).
                let project = percent_encoding::percent_decode_str(project)
                    .decode_utf8_lossy()
                    .into_owned();
                return expect(Method::GET, "GET", Route::Jwks(project));
            }
            if let Some(rest) = path.strip_prefix("/emulator/v1/") {
                return control::route(method, rest);
            }
            Route::NotFound
        }
    }
}

/// Serves connections until `stop` fires (or its sender is dropped), closing and reopening
/// the listening socket as the [`Gate`](crate::gate::Gate) says.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let addr = listener.local_addr().ok();
    let mut listener = Some(listener);
    let mut gate = shared.gate.subscribe();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let state = *gate.borrow_and_update();
        match (state, listener.as_ref()) {
            (GateState::Open, Some(open)) => {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = gate.changed() => {}
                    accepted = open.accept() => match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(serve_connection(stream, shared.clone()));
                        }
                        Err(error) => {
                            tracing::warn!(%error, "emulator: accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                }
            }
            (GateState::Open, None) => {
                // Listen again on the same port; it may take a moment to be free.
                let Some(addr) = addr else { break };
                tokio::select! {
                    _ = &mut stop => break,
                    bound = TcpListener::bind(addr) => match bound {
                        Ok(reopened) => listener = Some(reopened),
                        Err(error) => {
                            tracing::warn!(%error, %addr, "emulator: cannot listen again yet");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                }
            }
            (GateState::Refusing { until }, _) => {
                // Dropping the listener makes connects fail with ECONNREFUSED.
                listener = None;
                let wake = async {
                    match until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = &mut stop => break,
                    _ = gate.changed() => {}
                    () = wake => {
                        if let Some(at) = until {
                            shared.gate.open_if_still(at);
                        }
                    }
                }
            }
        }
    }
    connections.shutdown().await;
}

/// A handler's way to abort its own connection with a TCP RST.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionAbort(Arc<Notify>);

impl ConnectionAbort {
    /// Asks the connection task to reset the connection (it drops the request too).
    fn reset(&self) {
        self.0.notify_one();
    }
}

/// Serves one connection: HTTP/1 or HTTP/2, shut down gracefully when the gate starts
/// refusing, or aborted with a RST when a handler asks for it.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // A second descriptor of the same socket, kept aside to set SO_LINGER 0 on an injected
    // RST: hyper owns the stream, and the reset goes out when both descriptors are closed.
    let (stream, twin) = match stream.into_std() {
        Ok(std) => {
            let twin = std.try_clone().ok();
            match TcpStream::from_std(std) {
                Ok(stream) => (stream, twin),
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    let abort = ConnectionAbort::default();
    let mut gate = shared.gate.subscribe();
    let handler_abort = abort.clone();
    let service = service_fn(move |req| handle(shared.clone(), handler_abort.clone(), req));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut watching_gate = true;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = abort.0.notified() => {
                if let Some(twin) = &twin {
                    let _ = socket2::SockRef::from(twin).set_linger(Some(Duration::ZERO));
                }
                // Returning drops the connection and the twin: the kernel sends a RST.
                return;
            }
            changed = gate.changed(), if watching_gate => {
                if changed.is_err() {
                    watching_gate = false;
                } else if *gate.borrow_and_update() != GateState::Open {
                    watching_gate = false;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
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

/// Stytch's error JSON.
pub(crate) fn error_response(request_id: &str, error: &ApiError) -> Response<Body> {
    json_response(
        error.status,
        &json!({
            "status_code": error.status,
            "request_id": request_id,
            "error_type": error.error_type,
            "error_message": error.message,
            "error_url": format!("https://stytch.com/docs/api/errors/{}", error.status),
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

/// The answer of an injected [`Fault::Status`].
fn status_fault(request_id: &str, status: u16, retry_after: Option<u64>) -> Response<Body> {
    let (error_type, message) = status_error(status);
    let mut response = error_response(request_id, &ApiError::new(status, error_type, message));
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The answer of an injected [`Fault::MalformedBody`]: a 200 cut in the middle of a key.
fn malformed_body(request_id: &str) -> Response<Body> {
    let mut response = Response::new(full(format!(
        "{{\"request_id\":\"{request_id}\",\"status_code\":200,\"member_sess"
    )));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The answer of an injected [`Fault::TruncatedBody`].
fn truncated_body(request_id: &str) -> Response<Body> {
    let whole = format!(
        "{{\"request_id\":\"{request_id}\",\"status_code\":200,\"padding\":\"{}\"}}",
        "x".repeat(256)
    );
    let half = Bytes::from(whole.as_bytes()[..whole.len() / 2].to_vec());
    // The first half goes out with the headers; the error comes a moment later so that the
    // client sees a 200 whose body stops short.
    let first = futures_util::stream::iter([Ok::<_, io::Error>(Frame::data(half))]);
    let cut = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "emulator: injected truncated body",
        ))
    });
    let body = StreamBody::new(futures_util::StreamExt::chain(first, cut)).boxed();
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(whole.len()));
    response
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
        Some(Fault::Trickle { interval }) => Ok(trickle(answer(shared, request), interval).await),
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::Rst) => {
            abort.reset();
            std::future::pending().await
        }
        Some(Fault::Status {
            status,
            retry_after,
        }) => Ok(status_fault(request_id, status, retry_after)),
        Some(Fault::ConnectionReset) => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "emulator: injected connection close",
        )),
        Some(Fault::MalformedBody) => Ok(malformed_body(request_id)),
        Some(Fault::TruncatedBody) => Ok(truncated_body(request_id)),
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
                Err(unauthorized())
            } else {
                api::jwks(shared, &project)
            }
        }
        _ if !headers
            .get(header::AUTHORIZATION)
            .is_some_and(|v| shared.basic_auth_ok(v)) =>
        {
            Err(unauthorized())
        }
        Route::Authenticate => json_object(bytes).and_then(|b| api::authenticate(shared, &b)),
        Route::Revoke => json_object(bytes).and_then(|b| api::revoke(shared, headers, &b)),
        Route::GetSessions => api::get_sessions(shared, query.unwrap_or_default()),
        Route::Control(op) => return control::handle(shared, request_id, op, bytes),
    };
    match result {
        Ok(body) => ok_response(request_id, body),
        Err(error) => error_response(request_id, &error),
    }
}

/// `response` with its body sent one byte at a time, `interval` before each byte.
async fn trickle(response: Response<Body>, interval: Duration) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    // Emulator bodies are in memory: collecting cannot fail.
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let frames = futures_util::stream::unfold(0, move |at| {
        let bytes = bytes.clone();
        async move {
            if at >= bytes.len() {
                return None;
            }
            tokio::time::sleep(interval).await;
            Some((Ok(Frame::data(bytes.slice(at..=at))), at + 1))
        }
    });
    Response::from_parts(parts, StreamBody::new(frames).boxed())
}

fn unauthorized() -> ApiError {
    ApiError::new(401, "unauthorized_credentials", "Unauthorized credentials.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_stytch_paths_and_methods() {
        // If this broke, clients would hit 404/405 on valid Stytch paths.
        assert_eq!(
            route(&Method::POST, "/v1/b2b/sessions/authenticate"),
            Route::Authenticate
        );
        assert_eq!(
            route(&Method::POST, "/v1/b2b/sessions/revoke"),
            Route::Revoke
        );
        assert_eq!(
            route(&Method::GET, "/v1/b2b/sessions/jwks/project-test-1"),
            Route::Jwks("project-test-1".into())
        );
        assert_eq!(route(&Method::GET, "/v1/b2b/sessions"), Route::GetSessions);
        assert_eq!(
            route(&Method::POST, "/v1/b2b/sessions"),
            Route::MethodNotAllowed("GET")
        );
        assert_eq!(
            route(&Method::GET, "/v1/b2b/sessions/revoke"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(
            route(&Method::GET, "/v1/b2b/sessions/jwks/"),
            Route::NotFound
        );
        assert_eq!(route(&Method::GET, "/nope"), Route::NotFound);
    }

    #[test]
    fn body_must_be_a_json_object() {
        // If this broke, junk bodies would be accepted or empty bodies refused.
        assert_eq!(json_object(b"").unwrap(), Map::new());
        assert_eq!(json_object(b"[1]").unwrap_err().error_type, "bad_request");
        assert_eq!(json_object(b"{").unwrap_err().error_type, "bad_request");
        assert_eq!(json_object(b"{\"a\":1}").unwrap().len(), 1);
    }
}
