//! [`StytchAuth`]: the service built by [`StytchAuthLayer`](crate::StytchAuthLayer).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::body::ResponseBody;
use crate::credential::Credential;
use crate::extract::{ExtractError, extract};
use crate::future::{Ctx, ResponseFuture};
use crate::handlers;
use crate::layer::Shared;
use crate::policy::Route;
use crate::rejection::{Rejection, RejectionKind};
use crate::revoke::Target;

/// The credential an authenticated request carried, in its extensions, for handlers that
/// revoke acting as the caller (see [`Revoker`](crate::Revoker)). `Debug` never shows it.
#[derive(Debug, Clone)]
pub struct SessionCredential(pub(crate) Credential);

impl SessionCredential {
    /// The credential.
    pub fn credential(&self) -> &Credential {
        &self.0
    }
}

/// Authenticates requests before they reach `S`. Built by
/// [`StytchAuthLayer`](crate::StytchAuthLayer); see the [crate docs](crate).
///
/// Every outcome is a response: rejections never become `S::Error`.
pub struct StytchAuth<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for StytchAuth<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for StytchAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StytchAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> StytchAuth<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StytchAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The ready service goes into the future; a fresh clone stays here. See
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = &self.shared;
        let route = shared.routes.classify(req.method(), req.uri().path());
        let (optional, hook) = match route {
            Route::Public => return ResponseFuture::inner(inner, req, Arc::clone(shared)),
            Route::Logout | Route::LogoutEverywhere => {
                let everywhere = route == Route::LogoutEverywhere;
                let fut = handlers::logout(
                    Arc::clone(shared),
                    req.headers().clone(),
                    req.uri().clone(),
                    everywhere,
                );
                return ResponseFuture::own(Box::pin(fut), Arc::clone(shared));
            }
            Route::AdminMember(id) => {
                let fut = handlers::admin(
                    Arc::clone(shared),
                    req.headers().clone(),
                    Target::Member(id),
                );
                return ResponseFuture::own(Box::pin(fut), Arc::clone(shared));
            }
            Route::AdminSession(id) => {
                let fut = handlers::admin(
                    Arc::clone(shared),
                    req.headers().clone(),
                    Target::Session(id),
                );
                return ResponseFuture::own(Box::pin(fut), Arc::clone(shared));
            }
            Route::MethodNotAllowed(allow) => {
                let rejection = Rejection::new(RejectionKind::MethodNotAllowed).with_allow(allow);
                return ResponseFuture::rejected(
                    handlers::reject(shared, rejection),
                    Arc::clone(shared),
                );
            }
            Route::Hook(member_id) => (false, Some(member_id)),
            Route::Optional => (true, None),
            Route::Protected => (false, None),
        };
        let found = match extract(req.headers(), &shared.sources) {
            Ok(Some(found)) => found,
            Ok(None) if optional => return ResponseFuture::inner(inner, req, Arc::clone(shared)),
            Err(_) if optional => return ResponseFuture::inner(inner, req, Arc::clone(shared)),
            Ok(None) => {
                let rejection = Rejection::new(RejectionKind::MissingCredential);
                record_outcome(rejection.kind().as_str());
                return ResponseFuture::rejected(
                    handlers::reject(shared, rejection),
                    Arc::clone(shared),
                );
            }
            Err(err) => {
                let kind = match err {
                    ExtractError::BadRequest => RejectionKind::MalformedRequest,
                    ExtractError::Invalid(_) => RejectionKind::InvalidCredential,
                };
                tracing::debug!(
                    reason = kind.as_str(),
                    "credential refused before asking stytch"
                );
                record_outcome(kind.as_str());
                return ResponseFuture::rejected(
                    handlers::reject(shared, Rejection::new(kind)),
                    Arc::clone(shared),
                );
            }
        };
        let ctx = Ctx {
            optional,
            hook,
            found,
            set_cookie: None,
        };
        ResponseFuture::lookup(inner, req, ctx, Arc::clone(shared))
    }
}

pub(crate) fn record_outcome(outcome: &'static str) {
    metrics::counter!("stytch_auth_requests_total", "outcome" => outcome).increment(1);
}
