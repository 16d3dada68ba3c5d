//! [`Health`]: `GET /healthz` and `GET /readyz`, answered before authentication.
//!
//! `/healthz` is 200 while the process serves requests. `/readyz` is 200 only when the
//! readiness check passes (for the gateway: `StytchAuthLayer::ready`, i.e. Stytch reachable
//! and, with local JWT verification, its JWKS loaded) and the gateway is not draining.
//!
//! The check's result is reused for a maximum age (`--readiness-max-age`; a failure for at
//! most a second), so probes do not call Stytch each time: however many probes arrive within
//! that age, Stytch sees one call, and concurrent probes after it share the next one.
//! Draining is never cached.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;

use crate::body::{Body, BoxError, text_response};
use crate::service::ServiceFuture;

/// Path of the liveness probe.
pub(crate) const HEALTHZ: &str = "/healthz";
/// Path of the readiness probe.
pub(crate) const READYZ: &str = "/readyz";
/// How long a readiness check may take before it counts as failed.
pub(crate) const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A readiness check: `Ok(body)` when ready, `Err(reason)` otherwise (the reason is logged and
/// returned in the 503 body, the body in the 200's, so neither may hold a secret).
pub(crate) type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// How long a readiness result is reused by default (`--readiness-max-age`).
pub(crate) const DEFAULT_READINESS_MAX_AGE: Duration = Duration::from_secs(5);

/// How long a failed readiness result is reused at most, whatever `max_age` says: a gateway
/// that was not ready yet (Stytch or the revocation bus still coming up) turns ready within
/// a second, while an unreachable Stytch still sees at most one probe call a second.
const FAILURE_MAX_AGE: Duration = Duration::from_secs(1);

/// A [`ReadyCheck`] whose result is reused while younger than `max_age` (zero: never
/// reused; a failure at most [`FAILURE_MAX_AGE`]). The lock is held during a check, so
/// concurrent probes wait for one check and share it.
struct CachedCheck {
    check: ReadyCheck,
    max_age: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Result<String, String>)>>,
}

impl CachedCheck {
    /// The last result if young enough, else a fresh one (a timeout counts as a failure).
    async fn run(&self) -> Result<String, String> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = &*last {
            let max_age = match result {
                Ok(_) => self.max_age,
                Err(_) => self.max_age.min(FAILURE_MAX_AGE),
            };
            if at.elapsed() < max_age {
                return result.clone();
            }
        }
        let result = match tokio::time::timeout(READY_CHECK_TIMEOUT, (self.check)()).await {
            Ok(result) => result,
            Err(_) => Err("check timed out".to_owned()),
        };
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

/// Answers the health probes and passes every other request to `S`.
#[derive(Clone)]
pub(crate) struct Health<S> {
    inner: S,
    check: Arc<CachedCheck>,
    draining: Arc<AtomicBool>,
}

impl<S> std::fmt::Debug for Health<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("draining", &self.draining.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<S> Health<S> {
    /// Wraps `inner`; `/readyz` runs `check`, whose result is reused for `max_age`.
    pub(crate) fn new(inner: S, check: ReadyCheck, max_age: Duration) -> Self {
        Self {
            inner,
            check: Arc::new(CachedCheck {
                check,
                max_age,
                last: tokio::sync::Mutex::new(None),
            }),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that makes `/readyz` answer 503 (set when shutdown starts, so load
    /// balancers stop sending new requests).
    pub(crate) fn draining_flag(&self) -> Arc<AtomicBool> {
        self.draining.clone()
    }
}

impl<S, B, RB> tower_service::Service<Request<B>> for Health<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let probe = matches!(*req.method(), Method::GET | Method::HEAD);
        match req.uri().path() {
            HEALTHZ if probe => Box::pin(async { Ok(text_response(StatusCode::OK, "ok\n")) }),
            READYZ if probe => {
                let check = self.check.clone();
                let draining = self.draining.load(Ordering::Relaxed);
                Box::pin(async move { Ok(readiness(draining, check).await) })
            }
            _ => {
                // The inner service was driven to readiness by `poll_ready`; take it and leave
                // a fresh clone behind (tower's "cloning inner services" guidance).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let fut = inner.call(req);
                Box::pin(async move {
                    let response = fut.await?;
                    Ok(response.map(|b| b.map_err(Into::into).boxed_unsync()))
                })
            }
        }
    }
}

async fn readiness(draining: bool, check: Arc<CachedCheck>) -> Response<Body> {
    if draining {
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    match check.run().await {
        Ok(body) => text_response(StatusCode::OK, body),
        Err(reason) => {
            tracing::warn!(reason, "not ready");
            text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A check that fails while `ok` is false, counting its calls.
    fn counting(ok: Arc<AtomicBool>, calls: Arc<AtomicUsize>) -> ReadyCheck {
        Arc::new(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            let ok = ok.load(Ordering::SeqCst);
            Box::pin(async move {
                if ok {
                    Ok("ready\n".to_owned())
                } else {
                    Err("down".to_owned())
                }
            })
        })
    }

    #[tokio::test]
    async fn a_failure_is_checked_again_within_a_second_whatever_the_max_age() {
        // If this broke, a gateway probed once before Stytch (or its revocation bus) was up
        // would answer "not ready" for the whole max age after it came up.
        let ok = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let cached = CachedCheck {
            check: counting(ok.clone(), calls.clone()),
            max_age: Duration::from_secs(3600),
            last: tokio::sync::Mutex::new(None),
        };
        assert!(cached.run().await.is_err());
        assert!(cached.run().await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a fresh failure is reused");
        ok.store(true, Ordering::SeqCst);
        tokio::time::sleep(FAILURE_MAX_AGE + Duration::from_millis(100)).await;
        assert!(cached.run().await.is_ok());
        ok.store(false, Ordering::SeqCst);
        tokio::time::sleep(FAILURE_MAX_AGE + Duration::from_millis(100)).await;
        assert!(
            cached.run().await.is_ok(),
            "a success is reused for the max age"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
