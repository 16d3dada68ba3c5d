//! The answers of injected faults that change the response: an error status, a malformed,
//! truncated or trickling body.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::faults::status_error;
use crate::wire::{ApiError, Body, error_response, full};

/// The answer of an injected [`Fault::Status`].
pub(super) fn status_fault(
    request_id: &str,
    status: u16,
    retry_after: Option<u64>,
) -> Response<Body> {
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
pub(super) fn malformed_body(request_id: &str) -> Response<Body> {
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
pub(super) fn truncated_body(request_id: &str) -> Response<Body> {
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

/// `response` with its body sent one byte at a time, `interval` before each byte.
pub(super) async fn trickle(response: Response<Body>, interval: Duration) -> Response<Body> {
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
