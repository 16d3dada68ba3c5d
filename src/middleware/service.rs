//! [`StytchAuth`]: the service built by [`StytchAuthLayer`](super::StytchAuthLayer). Its
//! `call` does everything that needs no waiting: classify the route, refuse a cross-site
//! request to a route with a side effect, extract the credential, and pick what the
//! [`ResponseFuture`] runs.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower_service::Service;

use super::admission::{self, RuleCtx};
use super::body::ResponseBody;
use super::endpoints;
use super::future::{Ctx, ResponseFuture};
use super::origin::{self, SiteRule};
use super::rejection::{Rejection, RejectionKind};
use super::route_table::{Route, effective_method};
use super::shared::Shared;
use crate::authz::rules::Matched;
use crate::extract::{Found, extract};
use crate::metrics;
use crate::routing::path::is_ambiguous;
use crate::webhook::Receiver;

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
    // The webhook route reads its body (and only that route does).
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
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
        let shared = Arc::clone(&self.shared);
        // A Stytch webhook: gated by its signature alone (no credential, no cross-site check:
        // Stytch's servers send no browser headers).
        if let Some(receiver) = shared
            .webhook
            .as_ref()
            .filter(|r| r.path() == req.uri().path())
        {
            return webhook(Arc::clone(receiver), req, shared);
        }
        let Some(hook_method) = effective_method(req.method(), req.headers(), req.uri().query())
        else {
            tracing::info!(path = %req.uri().path(), "conflicting method overrides refused");
            let rejection = Rejection::new(RejectionKind::MalformedRequest);
            return ResponseFuture::rejected(shared.reject(rejection), shared);
        };
        let ambiguous = is_ambiguous(req.uri().path());
        let route =
            shared
                .routes
                .classify_with(req.method(), &hook_method, req.uri().path(), ambiguous);
        // Before any endpoint future exists or the app is called: a refused cross-site request
        // has no side effect by construction.
        if !origin::allows(
            SiteRule::of(&route, req.method()),
            &req,
            &shared.trusted_origins,
        ) {
            tracing::info!(path = %req.uri().path(), "cross-origin request to a route with a side effect refused");
            let rejection = Rejection::new(RejectionKind::CrossOrigin);
            metrics::auth_request(rejection.kind().as_str());
            return ResponseFuture::rejected(shared.reject(rejection), shared);
        }
        match route {
            Route::Public | Route::Optional | Route::Protected | Route::Hook(_) => {
                app_or_public(inner, req, shared, route, &hook_method, ambiguous)
            }
            Route::Logout { everywhere } => {
                let (headers, uri) = (req.headers().clone(), req.uri().clone());
                let fut = endpoints::logout(Arc::clone(&shared), headers, uri, everywhere);
                ResponseFuture::own(Box::pin(fut), shared)
            }
            Route::Admin(target) => {
                let fut = endpoints::admin(Arc::clone(&shared), req.headers().clone(), target);
                ResponseFuture::own(Box::pin(fut), shared)
            }
            Route::AdminClient(client_id) => {
                let headers = req.headers().clone();
                let fut = endpoints::admin_client(Arc::clone(&shared), headers, client_id);
                ResponseFuture::own(Box::pin(fut), shared)
            }
            Route::MethodNotAllowed(allow) => {
                let rejection = Rejection::new(RejectionKind::MethodNotAllowed).with_allow(allow);
                ResponseFuture::rejected(shared.reject(rejection), shared)
            }
            Route::Refused(kind) => {
                tracing::info!(path = %req.uri().path(), reason = kind.as_str(), "hooked route refused before the app");
                ResponseFuture::rejected(shared.reject(Rejection::new(kind)), shared)
            }
        }
    }
}

/// One of the app's routes (public, optional, protected, hooked): its authorization rule
/// first (a route with one needs a member or an admitted machine, whatever else covers it),
/// then what its kind asks.
fn app_or_public<S, ReqBody, ResBody>(
    inner: S,
    req: Request<ReqBody>,
    shared: Arc<Shared>,
    route: Route,
    method: &Method,
    ambiguous: bool,
) -> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let hook = match &route {
        Route::Hook(member_id) => Some(member_id.clone()),
        _ => None,
    };
    match ruled(&shared, method, &req, ambiguous) {
        Err(rejection) => ResponseFuture::rejected(shared.reject(rejection), shared),
        Ok(Some(rule)) => app_route(inner, req, shared, false, hook, Some(rule)),
        Ok(None) => match route {
            Route::Public => ResponseFuture::inner(inner, req, shared),
            Route::Optional => app_route(inner, req, shared, true, None, None),
            _ => app_route(inner, req, shared, false, hook, None),
        },
    }
}

/// The authorization rule covering `req` (matched on `method`, the one the app acts on), with
/// what deciding it needs from the request; a path some server could resolve to a ruled
/// route is refused.
fn ruled<B>(
    shared: &Shared,
    method: &Method,
    req: &Request<B>,
    ambiguous: bool,
) -> Result<Option<RuleCtx>, Rejection> {
    match shared.rules.find(method, req.uri().path(), ambiguous) {
        None => Ok(None),
        Some(Matched::Ambiguous) => {
            tracing::info!(path = %req.uri().path(), "path some server could resolve to a route with a rule refused");
            Err(Rejection::new(RejectionKind::MalformedRequest))
        }
        Some(Matched::Rule { rule, organization }) => {
            let step_up_page = rule
                .rule
                .step_up_page
                .as_deref()
                .filter(|_| is_browser_navigation(req))
                .map(|page| with_return_to(page, req.uri()));
            Ok(Some(RuleCtx {
                rule,
                organization,
                step_up_page,
            }))
        }
    }
}

/// A browser loading a page: `GET` or `HEAD` accepting HTML.
fn is_browser_navigation<B>(req: &Request<B>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && req.headers().get_all(http::header::ACCEPT).iter().any(|v| {
            v.as_bytes()
                .windows(9)
                .any(|w| w.eq_ignore_ascii_case(b"text/html"))
        })
}

/// `page?return_to=<the request's path and query>` (or `&return_to=` when `page` has a query).
fn with_return_to(page: &str, uri: &http::Uri) -> String {
    let here = uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let encoded: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    let separator = if page.contains('?') { '&' } else { '?' };
    format!("{page}{separator}return_to={encoded}")
}

/// Whether `req` asks to switch protocols: an HTTP/1.1 `Upgrade` (WebSocket), or an HTTP/2
/// extended `CONNECT` (RFC 8441 WebSocket).
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().contains_key(http::header::UPGRADE) || req.method() == http::Method::CONNECT
}

/// The webhook path: a delivery is `POST`; anything else is refused 405.
fn webhook<S, ReqBody, ResBody>(
    receiver: Arc<Receiver>,
    req: Request<ReqBody>,
    shared: Arc<Shared>,
) -> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
{
    if req.method() != http::Method::POST {
        let rejection = Rejection::new(RejectionKind::MethodNotAllowed).with_allow("POST");
        return ResponseFuture::rejected(shared.reject(rejection), shared);
    }
    let revoker = shared.engine.revoker.clone();
    let fut = async move { receiver.receive(&revoker, req).await };
    ResponseFuture::own(Box::pin(fut), shared)
}

/// A route of the app (hooked, optional or protected): extract the credential, then look it
/// up; without one, pass anonymously (optional) or refuse.
fn app_route<S, ReqBody, ResBody>(
    inner: S,
    req: Request<ReqBody>,
    shared: Arc<Shared>,
    optional: bool,
    mut hook: Option<String>,
    mut rule: Option<RuleCtx>,
) -> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    // A cache hit needs no check of the credential: the cache only holds credentials that were
    // checked (and verified) before, and its key is the SHA-256 of the exact bytes. So a bearer
    // credential is looked up as found, and only a miss checks it (the same `extract` as
    // always, hence the same refusals): on a hit, a 1 KB JWT skips two passes over its bytes.
    let mut key = None;
    if let Some(raw) = crate::extract::unchecked(req.headers(), &shared.sources) {
        let ctx = Ctx {
            optional,
            hook,
            rule,
            found: Found::unchecked(raw),
            set_cookie: None,
            caller: None,
            machine: false,
        };
        let hit_key = crate::credential::key_of(raw);
        if let Some(result) = admission::admit_now(
            &shared,
            &ctx.found,
            ctx.rule.as_ref(),
            hit_key,
            req.uri().path(),
        ) {
            return ResponseFuture::decided(inner, req, ctx, result, shared);
        }
        // A miss: checked below, its key kept (the SHA-256 of a JWT is a microsecond).
        key = Some(hit_key);
        (hook, rule) = (ctx.hook, ctx.rule);
    }
    let found = match extract(req.headers(), &shared.sources) {
        Ok(Some(found)) => found,
        Ok(None) | Err(_) if optional => return ResponseFuture::inner(inner, req, shared),
        Ok(None) => {
            let rejection = Rejection::new(RejectionKind::MissingCredential);
            metrics::auth_request(rejection.kind().as_str());
            return ResponseFuture::rejected(shared.reject(rejection), shared);
        }
        Err(err) => {
            let rejection = Rejection::from(err);
            let reason = rejection.kind().as_str();
            tracing::debug!(reason, "credential refused before asking stytch");
            metrics::auth_request(reason);
            return ResponseFuture::rejected(shared.reject(rejection), shared);
        }
    };
    if found.cookie_name(&shared.sources).is_some()
        && is_upgrade(&req)
        && !origin::allows(SiteRule::NotCrossOrigin, &req, &shared.trusted_origins)
    {
        // Cross-site WebSocket hijacking: a page on another site (or a sibling subdomain)
        // opening a socket that the browser authenticates with the member's cookie.
        tracing::info!(path = %req.uri().path(), "cross-origin upgrade with a session cookie refused");
        let rejection = Rejection::new(RejectionKind::CrossOrigin);
        metrics::auth_request(rejection.kind().as_str());
        return ResponseFuture::rejected(shared.reject(rejection), shared);
    }
    let ctx = Ctx {
        optional,
        hook,
        rule,
        found,
        set_cookie: None,
        caller: None,
        machine: false,
    };
    ResponseFuture::lookup(inner, req, ctx, key, shared)
}
