//! The client's request body, read under a timeout: nginx's `client_body_timeout`, the
//! longest wait for the next piece of the body (not for the whole of it). A client that
//! stops sending gets 408 and its connection closed instead of holding the request, the
//! connection and the upstream's connection open until the upstream timeout.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt as _;
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};

/// Default longest wait for the next piece of a request body (nginx's default).
pub(crate) const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The error a request body ends with when the client stops sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client did not send the request body in time")]
pub(crate) struct BodyTimedOut;

/// `body`, ending with [`BodyTimedOut`] when no piece of it arrives for `timeout`; `body`
/// itself when it is already complete (no body: nothing to wait for).
pub(crate) fn timed(body: Body, timeout: Duration) -> Body {
    if body.is_end_stream() {
        return body;
    }
    TimedBody {
        inner: body,
        timeout,
        sleep: Box::pin(tokio::time::sleep(timeout)),
        armed: false,
    }
    .boxed_unsync()
}

/// Whether `err`, or one of its causes, is a [`BodyTimedOut`].
pub(crate) fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.is::<BodyTimedOut>() {
            return true;
        }
        cause = err.source();
    }
    false
}

struct TimedBody {
    inner: Body,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Whether `sleep` counts down the current wait.
    armed: bool,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame);
        }
        if !this.armed {
            this.sleep.as_mut().reset(Instant::now() + this.timeout);
            this.armed = true;
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_coming_ends_with_a_timeout_and_a_steady_one_does_not() {
        // If this broke, a client sending one byte and then nothing would hold its request
        // (and the upstream's connection) open until the upstream timeout, or a slow but
        // steady upload would be cut.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, BoxError>(Frame::data(b)), rx))
        });
        let body = http_body_util::StreamBody::new(stream).boxed_unsync();
        let mut body = timed(body, Duration::from_secs(10));
        let sender = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(9)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        for _ in 0..3 {
            assert!(body.frame().await.unwrap().is_ok());
        }
        let waited = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(is_body_timeout(&*err));
        assert_eq!(waited.elapsed(), Duration::from_secs(10));
        sender.abort();
        let empty = timed(crate::body::full_body(Bytes::new()), Duration::from_secs(1));
        assert!(empty.is_end_stream());
    }
}
