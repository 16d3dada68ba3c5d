//! Revocation reaches live connections: a response body still streaming (server-sent
//! events, a long poll, any chunked body) ends with an error when its session is revoked, so
//! hyper closes the connection (HTTP/1.1) or resets the stream (HTTP/2). Upgraded
//! connections are stopped by [`Proxy`](crate::proxy::Proxy) the same way.
//!
//! The session's [`SessionLiveness`] is only made when the body first has to wait for the
//! upstream: a response the upstream sends at once never registers anything.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Extensions;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tower_stytch::{MemberSession, Revoker, SessionCredential, live::SessionLiveness};

use crate::body::{Body, BoxError};

/// What an authenticated request's liveness handle is made from, taken out of its
/// extensions (no clone) when it is sent upstream.
pub(crate) struct LiveSeed {
    revoker: Revoker,
    session: MemberSession,
    credential: SessionCredential,
}

impl LiveSeed {
    /// The seed of an authenticated request; `None` on public and anonymous routes, whose
    /// responses are left alone.
    pub(crate) fn take(extensions: &mut Extensions) -> Option<Self> {
        let (Some(_), Some(_), Some(_)) = (
            extensions.get::<Revoker>(),
            extensions.get::<MemberSession>(),
            extensions.get::<SessionCredential>(),
        ) else {
            return None;
        };
        Some(Self {
            revoker: extensions.remove()?,
            session: extensions.remove()?,
            credential: extensions.remove()?,
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
    /// Not waited yet: no handle.
    Idle(Box<LiveSeed>),
    /// The body waited once: resolves when the session is revoked.
    Watching(Revoked),
    /// Revoked (the error was sent), or nothing to watch.
    Off,
}

/// `body`, ended with [`SessionRevoked`] when the session of `seed` is revoked while it still
/// streams; `body` itself without a seed.
pub(crate) fn revocable(body: Body, seed: Option<LiveSeed>) -> Body {
    match seed {
        Some(seed) => http_body_util::BodyExt::boxed_unsync(Revocable {
            inner: body,
            watch: Watch::Idle(Box::new(seed)),
        }),
        None => body,
    }
}

struct Revocable {
    inner: Body,
    watch: Watch,
}

impl Revocable {
    /// Polls the revocation (making the handle first if needed): `true` when revoked.
    fn revoked(&mut self, cx: &mut Context<'_>) -> bool {
        if let Watch::Idle(seed) = &self.watch {
            let liveness = seed.liveness();
            self.watch = Watch::Watching(Box::pin(async move { liveness.revoked().await }));
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
