//! Revocation reaches live connections, and only those: a stream of a revoked session ends
//! with an error, so hyper closes the connection (HTTP/1.1) or resets the stream (HTTP/2);
//! an ordinary response, authorized before the revocation and already acted on by the
//! upstream, arrives whole.
//!
//! - server-sent events (`text/event-stream`): ended at the revocation;
//! - a body of unknown length (chunked): ended at the revocation once it has run for the
//!   grace period (`--stream-revocation-grace`, 10 s by default) since the request was sent
//!   upstream, or at the end of the grace period when revoked before;
//! - a body of known length (`Content-Length`): never ended, it is finite;
//! - a long poll (a `GET` or `HEAD` whose response headers are still awaited): answered 401
//!   at the revocation once past the grace period ([`revoked_past`], used by the proxy);
//! - upgraded connections: stopped by [`Proxy`](crate::proxy::Proxy) at the revocation.
//!
//! The session's [`SessionLiveness`] is only made when the body first has to wait for the
//! upstream (or a long poll has waited the grace period): a response the upstream sends at
//! once never registers anything.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::time::Duration;

use bytes::Bytes;
use http::{Extensions, HeaderMap, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tower_stytch::{MemberSession, Revoker, SessionCredential, live::SessionLiveness};

use crate::body::{Body, BoxError};

/// Default time a response of unknown length (or a long poll) of a revoked session may keep
/// running, from the moment its request was sent upstream.
pub(crate) const DEFAULT_REVOCATION_GRACE: Duration = Duration::from_secs(10);

/// What an authenticated request's liveness handle is made from, read from its extensions
/// (handles: reference counts, no copy) when it is sent upstream.
pub(crate) struct LiveSeed {
    revoker: Revoker,
    session: MemberSession,
    credential: SessionCredential,
}

impl LiveSeed {
    /// The seed of an authenticated request; `None` on public and anonymous routes, whose
    /// responses are left alone.
    pub(crate) fn take(extensions: &Extensions) -> Option<Self> {
        Some(Self {
            revoker: Revoker::from_extensions(extensions)?.clone(),
            session: MemberSession::from_extensions(extensions)?.clone(),
            credential: SessionCredential::from_extensions(extensions)?.clone(),
        })
    }

    fn liveness(&self) -> SessionLiveness {
        SessionLiveness::new(&self.revoker, &self.session, &self.credential)
    }
}

/// The error a revoked session's streaming body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the session was revoked")]
pub(crate) struct SessionRevoked;

type Revoked = Pin<Box<dyn Future<Output = ()> + Send>>;

enum Watch {
    /// Not waited yet: no handle. The body ends at the revocation, or at the instant if
    /// revoked before.
    Idle(Box<LiveSeed>, tokio::time::Instant),
    /// The body waited once: resolves when the session is revoked.
    Watching(Revoked),
    /// Revoked (the error was sent), or nothing to watch.
    Off,
}

/// How a response's body meets its session's revocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Streams {
    /// When the request was sent upstream.
    pub(crate) sent: tokio::time::Instant,
    /// How long a body of unknown length may run before a revocation ends it.
    pub(crate) grace: Duration,
}

/// `body` (of a response with `headers`), ended with [`SessionRevoked`] when the session of
/// `seed` is revoked while it still streams, as the [module docs](self) say: at once for
/// server-sent events, past the grace period for a body of unknown length, never for a body
/// of known length. `body` itself without a seed.
pub(crate) fn revocable(
    body: Body,
    headers: &HeaderMap,
    seed: Option<LiveSeed>,
    streams: Streams,
) -> Body {
    let Some(seed) = seed else {
        return body;
    };
    let event_stream = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("text/event-stream")
        });
    let end_from = if event_stream {
        streams.sent
    } else if body.size_hint().exact().is_some() {
        return body;
    } else {
        streams.sent + streams.grace
    };
    http_body_util::BodyExt::boxed_unsync(Revocable {
        inner: body,
        watch: Watch::Idle(Box::new(seed), end_from),
    })
}

/// Completes when the session of `seed` is revoked, but not before `grace` has passed (the
/// handle is made only then: a request answered within the grace period registers nothing).
pub(crate) async fn revoked_past(seed: &LiveSeed, grace: Duration) {
    tokio::time::sleep(grace).await;
    seed.liveness().revoked().await;
}

struct Revocable {
    inner: Body,
    watch: Watch,
}

impl Revocable {
    /// Polls the revocation (making the handle first if needed): `true` when revoked.
    fn revoked(&mut self, cx: &mut Context<'_>) -> bool {
        if let Watch::Idle(seed, end_from) = &self.watch {
            let (liveness, end_from) = (seed.liveness(), *end_from);
            self.watch = Watch::Watching(Box::pin(async move {
                liveness.revoked().await;
                tokio::time::sleep_until(end_from).await;
            }));
        }
        let Watch::Watching(revoked) = &mut self.watch else {
            return false;
        };
        if revoked.as_mut().poll(cx).is_ready() {
            self.watch = Watch::Off;
            return true;
        }
        false
    }
}

impl HttpBody for Revocable {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if matches!(this.watch, Watch::Watching(_)) && this.revoked(cx) {
            return Poll::Ready(Some(Err(SessionRevoked.into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {}
            Poll::Ready(None) => {
                this.watch = Watch::Off;
                return Poll::Ready(None);
            }
            ready => return ready,
        }
        // The upstream keeps the body open: from now on the session's revocation ends it.
        if this.revoked(cx) {
            return Poll::Ready(Some(Err(SessionRevoked.into())));
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
