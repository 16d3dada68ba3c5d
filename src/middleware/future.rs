//! [`ResponseFuture`] of [`StytchAuth`](crate::StytchAuth): await the lookup, call the inner
//! service with the member in the request's extensions, then run a forced sign-out hook.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::admission::{self, Admitted, RuleCtx};
use super::body::ResponseBody;
use super::endpoints::{FORCED_SIGNOUT_HEADER, forced_signout};
use super::rejection::Rejection;
use super::shared::Shared;
use crate::credential::CacheKey;
use crate::extract::Found;
use crate::metrics;
use crate::request::RequestAuth;
use crate::store::cache::CachedSession;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the future needs to finish a request after the lookup.
pub(crate) struct Ctx {
    pub(crate) optional: bool,
    pub(crate) hook: Option<String>,
    pub(crate) rule: Option<RuleCtx>,
    pub(crate) found: Found,
    pub(crate) set_cookie: Option<HeaderValue>,
    /// The authenticated caller, kept for a forced sign-out hook.
    pub(crate) caller: Option<Arc<CachedSession>>,
    /// The request was admitted as an M2M client.
    pub(crate) machine: bool,
}

/// A lookup that awaits (a miss, a policy to fetch), with the request it admits.
struct Pending<ReqBody> {
    lookup: BoxFuture<Result<Admitted, Rejection>>,
    req: Option<Request<ReqBody>>,
    ctx: Option<Ctx>,
}

/// A forced sign-out running after the app answered, with the app's answer.
struct Hooked<ResBody> {
    hook: BoxFuture<&'static str>,
    res: Option<Response<ResponseBody<ResBody>>>,
}

pin_project! {
    /// Every variant but `Inner` is boxed: the future stays the size of the inner service's
    /// future plus a few words, since whoever awaits it moves it (a cache hit ends in `Inner`
    /// without allocating for it).
    #[project = StateProj]
    enum State<F, ReqBody, ResBody> {
        Lookup {
            pending: Box<Pending<ReqBody>>,
        },
        Inner {
            #[pin]
            fut: F,
            ctx: Option<Box<Ctx>>,
        },
        Hook {
            hooked: Box<Hooked<ResBody>>,
        },
        Own {
            own: BoxFuture<Response<Bytes>>,
        },
        Done {
            res: Option<Box<Response<Bytes>>>,
        },
    }
}

pin_project! {
    /// Response future of [`StytchAuth`](crate::StytchAuth). Only the cache lookup (and the
    /// layer's own routes) are boxed; the inner service's future is polled in place.
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        #[pin]
        state: State<S::Future, ReqBody, ResBody>,
        service: Option<S>,
        shared: Arc<Shared>,
    }
}

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    pub(crate) fn inner(mut service: S, req: Request<ReqBody>, shared: Arc<Shared>) -> Self {
        let fut = service.call(req);
        Self {
            state: State::Inner { fut, ctx: None },
            service: None,
            shared,
        }
    }

    pub(crate) fn own(own: BoxFuture<Response<Bytes>>, shared: Arc<Shared>) -> Self {
        Self {
            state: State::Own { own },
            service: None,
            shared,
        }
    }

    pub(crate) fn rejected(res: Response<Bytes>, shared: Arc<Shared>) -> Self {
        Self {
            state: State::Done {
                res: Some(Box::new(res)),
            },
            service: None,
            shared,
        }
    }

    /// A request decided without waiting ([`admission::admit_now`]): admitted and the inner
    /// service called, or rejected. Nothing awaited, nothing boxed, no span (the hit is logged
    /// in one event carrying the span's fields).
    pub(crate) fn decided(
        service: S,
        req: Request<ReqBody>,
        ctx: Ctx,
        result: Result<Admitted, Rejection>,
        shared: Arc<Shared>,
    ) -> Self {
        match call_inner(&shared, service, req, ctx, result) {
            Ok((fut, ctx)) => Self {
                state: State::Inner { fut, ctx },
                service: None,
                shared,
            },
            Err(rejection) => {
                let res = shared.reject(rejection);
                Self::rejected(res, shared)
            }
        }
    }

    /// The request's credential looked up; `key` is its [`cache_key`](crate::credential::Credential::cache_key)
    /// when the caller computed it already.
    pub(crate) fn lookup(
        service: S,
        req: Request<ReqBody>,
        ctx: Ctx,
        key: Option<CacheKey>,
        shared: Arc<Shared>,
    ) -> Self {
        let key = key.unwrap_or_else(|| ctx.found.credential.cache_key());
        if let Some(result) = admission::admit_now(
            &shared,
            &ctx.found,
            ctx.rule.as_ref(),
            key,
            req.uri().path(),
        ) {
            return Self::decided(service, req, ctx, result, shared);
        }
        let lookup = admission::admit_later(
            Arc::clone(&shared),
            &ctx.found,
            ctx.rule.as_ref(),
            key,
            req.uri().path(),
        );
        Self {
            state: State::Lookup {
                pending: Box::new(Pending {
                    lookup,
                    req: Some(req),
                    ctx: Some(ctx),
                }),
            },
            service: Some(service),
            shared,
        }
    }
}

fn own_body<B>(res: Response<Bytes>) -> Response<ResponseBody<B>> {
    res.map(ResponseBody::full)
}

/// The refreshed JWT cookie, when Stytch minted a new JWT for a JWT that came from a cookie.
fn refreshed_cookie(shared: &Shared, ctx: &Ctx, entry: &CachedSession) -> Option<HeaderValue> {
    let cookie = ctx.found.cookie_name(&shared.sources)?;
    let fresh = entry.refreshed_jwt.as_ref()?;
    if !ctx.found.credential.is_jwt()
        || fresh.expose_secret() == ctx.found.credential.expose_secret()
    {
        return None;
    }
    shared
        .cookies
        .set_cookie(cookie, fresh.expose_secret(), entry.session.expires_at())
}

/// After the lookup: on success the member goes into the request's extensions, and the
/// layer's handles with the credential into one more ([`RequestAuth`]); a refreshed JWT
/// cookie goes into `ctx`. An optional route passes anonymously; otherwise `Err` with the
/// rejection. `Ok(Some(ctx))` when something is left to do after the inner service answered
/// (a cookie to set, a hook to run), else `Ok(None)`.
fn admit<B>(
    shared: &Shared,
    mut ctx: Ctx,
    req: &mut Request<B>,
    result: Result<Admitted, Rejection>,
) -> Result<Option<Box<Ctx>>, Rejection> {
    match result {
        Ok(Admitted::Member(entry)) => {
            shared.authenticated.increment();
            shared.admitted_member.increment();
            ctx.set_cookie = refreshed_cookie(shared, &ctx, &entry);
            let ext = req.extensions_mut();
            ext.insert(entry.session.clone());
            if ctx.hook.is_none() && ctx.set_cookie.is_none() {
                // Nothing left to do after the app: the credential moves, nothing is copied.
                ext.insert(RequestAuth::new(&shared.handles, ctx.found.credential));
                return Ok(None);
            }
            ext.insert(RequestAuth::new(
                &shared.handles,
                ctx.found.credential.clone(),
            ));
            if ctx.hook.is_some() {
                ctx.caller = Some(entry);
            }
            Ok(Some(Box::new(ctx)))
        }
        Ok(Admitted::Machine(machine)) => {
            shared.authenticated.increment();
            shared.admitted_machine.increment();
            // A machine acts with the app's trust (its rule admitted it): a hook it triggers
            // revokes with the project secret, not acting as the machine.
            ctx.machine = true;
            req.extensions_mut().insert(machine);
            Ok(after_app(ctx))
        }
        Err(_) if ctx.optional => {
            metrics::auth_request("anonymous");
            Ok(after_app(ctx))
        }
        Err(rejection) => {
            metrics::auth_request(rejection.kind().as_str());
            Err(rejection)
        }
    }
}

/// `ctx`, when something is left to do after the app answered.
fn after_app(ctx: Ctx) -> Option<Box<Ctx>> {
    (ctx.hook.is_some() || ctx.set_cookie.is_some()).then(|| Box::new(ctx))
}

/// After the lookup: the request admitted ([`admit`]) and the inner service called, or the
/// rejection.
fn call_inner<S, B>(
    shared: &Shared,
    mut service: S,
    mut req: Request<B>,
    ctx: Ctx,
    result: Result<Admitted, Rejection>,
) -> Result<(S::Future, Option<Box<Ctx>>), Rejection>
where
    S: Service<Request<B>>,
{
    let ctx = admit(shared, ctx, &mut req, result)?;
    Ok((service.call(req), ctx))
}

/// After the inner service answered: sets the refreshed JWT cookie (and makes the response
/// uncacheable: a shared cache must never hand one member's session to another, whatever the
/// app said), and returns the forced sign-out to run when the route is hooked and the app
/// [acted](fires_hook).
fn after_inner<B>(
    shared: &Arc<Shared>,
    mut ctx: Box<Ctx>,
    res: &mut Response<ResponseBody<B>>,
) -> Option<BoxFuture<&'static str>> {
    if let Some(cookie) = ctx.set_cookie.take() {
        let headers = res.headers_mut();
        headers.append(header::SET_COOKIE, cookie);
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        headers.remove(header::EXPIRES);
    }
    match ctx.hook {
        Some(member_id) if fires_hook(res.status()) => Some(forced_signout(
            shared,
            member_id,
            (!ctx.machine).then_some(ctx.found),
            ctx.caller.as_ref().map(|c| &c.session),
        )),
        _ => None,
    }
}

/// Whether the app's answer to a hooked route means it acted: a success (2xx), or a
/// redirect (Rails and Turbo answer a completed action 303, Django 302; a 301, 307 or 308
/// sends the action elsewhere, where the hook matches again). A redirect that means "not
/// allowed" also fires: the revocation still acts as the caller, so Stytch refuses it for a
/// caller without the permission, and one who has it signs the member out a request early,
/// never the reverse. 304 is a cache answer to a read, never an action.
fn fires_hook(status: http::StatusCode) -> bool {
    status.is_success() || (status.is_redirection() && status != http::StatusCode::NOT_MODIFIED)
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Lookup { pending } => {
                    let result = ready!(pending.lookup.as_mut().poll(cx));
                    let req = (pending.req.take()).expect("ResponseFuture polled after completion");
                    let ctx = (pending.ctx.take()).expect("ResponseFuture polled after completion");
                    let service = this
                        .service
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match call_inner(this.shared, service, req, ctx, result) {
                        Ok((fut, ctx)) => this.state.set(State::Inner { fut, ctx }),
                        Err(rejection) => {
                            return Poll::Ready(Ok(own_body(this.shared.reject(rejection))));
                        }
                    }
                }
                StateProj::Inner { fut, ctx } => {
                    let res = ready!(fut.poll(cx))?;
                    let mut res = res.map(ResponseBody::inner);
                    let Some(ctx) = ctx.take() else {
                        return Poll::Ready(Ok(res));
                    };
                    match after_inner(this.shared, ctx, &mut res) {
                        Some(hook) => this.state.set(State::Hook {
                            hooked: Box::new(Hooked {
                                hook,
                                res: Some(res),
                            }),
                        }),
                        None => return Poll::Ready(Ok(res)),
                    }
                }
                StateProj::Hook { hooked } => {
                    let result = ready!(hooked.hook.as_mut().poll(cx));
                    let mut res =
                        (hooked.res.take()).expect("ResponseFuture polled after completion");
                    res.headers_mut()
                        .insert(FORCED_SIGNOUT_HEADER, HeaderValue::from_static(result));
                    return Poll::Ready(Ok(res));
                }
                StateProj::Own { own } => {
                    let res = ready!(own.as_mut().poll(cx));
                    return Poll::Ready(Ok(own_body(res)));
                }
                StateProj::Done { res } => {
                    let res = res.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(own_body(*res)));
                }
            }
        }
    }
}
