//! [`DemoApp`]: the demo's upstream, a small web app a newcomer opens in a browser, served
//! through the gateway.
//!
//! Plain HTML, CSS and a little JavaScript, embedded with `include_str!` (no frontend
//! toolchain). Routes, as the gateway sees them:
//!
//! | route | gateway | what |
//! |---|---|---|
//! | `GET /` | optional | the page (its script asks `/api/me` whether you are signed in) |
//! | `GET /demo/app.js`, `/demo/style.css` | public | the page's assets |
//! | `GET /demo/members` | public | the demo members to sign in as |
//! | `POST /demo/sign-in` | public | mints a session for one of them through the emulator's control API and sets Stytch's cookies |
//! | `GET /api/me` | protected | who you are, from the identity headers |
//! | `GET /api/sessions` | protected | your active sessions (Stytch's Get Sessions, through [`StytchClient::sessions`]) |
//! | `GET /live` | protected | a WebSocket ([`live`]) that the gateway closes when the session is revoked |
//! | `GET /api/orgs/{organization_id}/documents` | rule: `documents:read`, own organization | the organization's documents ([`documents`]) |
//! | `DELETE /api/orgs/{organization_id}/documents/{document_id}` | rule: `documents:delete`, own organization | deletes one |
//! | `GET /demo/machine`, `POST /demo/machine/token` | public | the demo's M2M client, and a fresh access token for it from Stytch ([`machine`]) |
//! | `GET /api/reports` | rule: `reports:read`, machines only | the reports, for the M2M client the gateway vouched for |
//! | `GET /billing` | rule: `mfa = true`, `step_up = "/step-up"` | a page behind MFA ([`step_up`]) |
//! | `GET /step-up`, `POST /step-up` | protected | the step-up page, and its "verify" button adding a TOTP factor |
//! | anything else | protected | the [`EchoUpstream`] JSON page (the curl steps use `/whoami`) |
//!
//! The cookies are written with the gateway's own cookie settings (`SameSite=Lax`, `Path=/`,
//! no `Secure` on plain-http loopback), so the gateway's logout clears exactly them. They are
//! not `HttpOnly`: Stytch's frontend SDK writes and reads them from JavaScript, and the layer
//! clears them the same way; an app that sets them from its backend may prefer `HttpOnly`.

mod documents;
mod live;
mod machine;
mod step_up;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower_stytch::StytchClient;
use tower_stytch::config::CookieSettings;

use self::documents::Documents;
pub(crate) use self::machine::Machine;
use super::upstream::EchoUpstream;
use crate::body::{Body, BoxError, full_body, text_response};
use crate::error::chain;
use crate::identity::{MEMBER_ID, MEMBER_SESSION_ID, ORGANIZATION_ID, ROLES};
use crate::service::Handler;

/// How long a session minted by the sign-in route lasts.
const SESSION_MINUTES: u64 = 60;
/// The largest sign-in form read.
const FORM_LIMIT: usize = 1024;

/// One member the demo offers to sign in as.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DemoMember {
    /// First name.
    pub(crate) name: String,
    /// Email address.
    pub(crate) email: String,
    /// What the member may do, in words.
    pub(crate) role: String,
    /// Whether the member holds `stytch_admin`.
    pub(crate) admin: bool,
    /// Stytch member id.
    pub(crate) member_id: String,
    /// Stytch organization id.
    pub(crate) organization_id: String,
    /// The organization's name.
    pub(crate) organization_name: String,
}

/// The emulator's control API, for minting sessions.
#[derive(Debug, Clone)]
pub(crate) struct ControlApi {
    /// `…/emulator/v1/sessions`.
    sessions_url: Uri,
    /// HTTP Basic with the project id and secret (marked sensitive).
    authorization: HeaderValue,
}

impl ControlApi {
    /// The control API of the emulator at `base_url`, authenticated as the project.
    pub(crate) fn new(base_url: &str, project_id: &str, secret: &str) -> Option<Self> {
        use base64::Engine as _;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{project_id}:{secret}"));
        let mut authorization = HeaderValue::from_str(&format!("Basic {credentials}")).ok()?;
        authorization.set_sensitive(true);
        let sessions_url = format!("{base_url}emulator/v1/sessions").parse().ok()?;
        Some(Self {
            sessions_url,
            authorization,
        })
    }
}

/// The demo web app (cheap to clone; a [`Handler`]).
#[derive(Clone)]
pub(crate) struct DemoApp {
    inner: Arc<Inner>,
}

struct Inner {
    members: Vec<DemoMember>,
    stytch: StytchClient,
    control: ControlApi,
    http: Client<HttpConnector, Body>,
    cookies: CookieSettings,
    documents: Documents,
    machine: Machine,
}

impl std::fmt::Debug for DemoApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoApp")
            .field("members", &self.inner.members.len())
            .finish_non_exhaustive()
    }
}

impl DemoApp {
    /// The app for `members`, calling Stytch through `stytch` and minting sessions through
    /// `control`; cookies are written with `cookies` (the gateway's settings); `machine` is
    /// the M2M client of the machine card.
    pub(crate) fn new(
        members: Vec<DemoMember>,
        stytch: StytchClient,
        control: ControlApi,
        cookies: CookieSettings,
        machine: Machine,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                members,
                stytch,
                control,
                http: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
                cookies,
                documents: Documents::default(),
                machine,
            }),
        }
    }

    async fn route<B>(self, mut req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let path = req.uri().path().to_owned();
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/") => asset("text/html; charset=utf-8", INDEX_HTML),
            (Method::GET, "/demo/app.js") => asset("text/javascript; charset=utf-8", APP_JS),
            (Method::GET, "/demo/style.css") => asset("text/css; charset=utf-8", STYLE_CSS),
            (Method::GET, "/demo/members") => json(StatusCode::OK, &self.inner.members),
            (Method::POST, "/demo/sign-in") => self.sign_in(req).await,
            (Method::GET, "/demo/machine") => self.inner.machine.describe(),
            (Method::POST, "/demo/machine/token") if is_cross_site(req.headers()) => {
                text_response(StatusCode::FORBIDDEN, "cross-site token request refused\n")
            }
            (Method::POST, "/demo/machine/token") => {
                self.inner.machine.token(&self.inner.http).await
            }
            (Method::GET, machine::REPORTS) => machine::reports(req.headers()),
            (Method::GET, "/api/me") => self.me(req.headers()),
            (Method::GET, "/api/sessions") => self.sessions(req.headers()).await,
            (Method::GET, "/live") => match Identity::of(req.headers()) {
                Some(identity) => live::accept(&mut req, identity),
                None => unauthenticated(),
            },
            (Method::GET, "/billing") => step_up::billing(),
            (Method::GET, "/step-up") => step_up::page(req.uri()),
            (Method::POST, "/step-up") => self.step_up(req).await,
            (method, path) if path.starts_with(documents::PREFIX) => {
                self.inner.documents.route(&method, path, req.headers())
            }
            _ => json(StatusCode::OK, &EchoUpstream::page(&req)),
        }
    }

    /// `POST /demo/sign-in` (`member_id` form field): a new session for that demo member,
    /// its token and JWT in Stytch's cookies, then `303 /`.
    async fn sign_in<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if is_cross_site(req.headers()) {
            return text_response(StatusCode::FORBIDDEN, "cross-site sign-in refused\n");
        }
        let Ok(member_id) = form_field(req, "member_id").await else {
            return text_response(StatusCode::BAD_REQUEST, "bad form\n");
        };
        let Some(member) = member_id.and_then(|id| self.member(&id)) else {
            return text_response(StatusCode::BAD_REQUEST, "not a demo member\n");
        };
        let minted = match self.mint(&member.member_id).await {
            Ok(minted) => minted,
            Err(err) => {
                tracing::warn!(error = %chain(&*err), "demo sign-in: the emulator did not mint a session");
                return text_response(StatusCode::BAD_GATEWAY, "the emulator is unavailable\n");
            }
        };
        let expires = SystemTime::now() + Duration::from_secs(SESSION_MINUTES * 60);
        let mut response = text_response(StatusCode::SEE_OTHER, "signed in\n");
        let headers = response.headers_mut();
        headers.insert(header::LOCATION, HeaderValue::from_static("/"));
        for (name, value) in [
            ("stytch_session", &minted.session_token),
            ("stytch_session_jwt", &minted.session_jwt),
        ] {
            if let Some(cookie) = self.inner.cookies.set_cookie(name, value, expires) {
                headers.append(header::SET_COOKIE, cookie);
            }
        }
        tracing::info!(member = member.name, "demo sign-in");
        response
    }

    /// `GET /api/me`: the identity headers, with the demo member's name and email.
    fn me(&self, headers: &HeaderMap) -> Response<Body> {
        let Some(identity) = Identity::of(headers) else {
            return unauthenticated();
        };
        let member = self.member(&identity.member_id);
        let roles: Vec<&str> = identity
            .roles
            .split(',')
            .filter(|r| !r.is_empty())
            .collect();
        json(
            StatusCode::OK,
            &serde_json::json!({
                "member_id": identity.member_id,
                "organization_id": identity.organization_id,
                "member_session_id": identity.member_session_id,
                "roles": roles,
                "admin": roles.contains(&"stytch_admin"),
                "name": member.as_ref().map(|m| m.name.as_str()),
                "email": member.as_ref().map(|m| m.email.as_str()),
                "organization_name": member.as_ref().map(|m| m.organization_name.as_str()),
            }),
        )
    }

    /// `GET /api/sessions`: the member's active sessions, from Stytch's Get Sessions.
    async fn sessions(&self, headers: &HeaderMap) -> Response<Body> {
        let Some(identity) = Identity::of(headers) else {
            return unauthenticated();
        };
        let answer = self
            .inner
            .stytch
            .sessions(&identity.organization_id, &identity.member_id)
            .await;
        let sessions = match answer {
            Ok(answer) => answer.member_sessions,
            Err(err) => {
                tracing::warn!(error = %chain(&err), "demo: Get Sessions failed");
                return text_response(StatusCode::BAD_GATEWAY, "Get Sessions failed\n");
            }
        };
        let rfc3339 =
            |t: Option<SystemTime>| t.map(|t| humantime::format_rfc3339_seconds(t).to_string());
        let listed: Vec<serde_json::Value> = sessions
            .iter()
            .map(|s| {
                serde_json::json!({
                    "member_session_id": s.member_session_id,
                    "started_at": rfc3339(s.started_at()),
                    "last_accessed_at": rfc3339(s.last_accessed_at()),
                    "expires_at": rfc3339(Some(s.expires_at())),
                    "current": s.member_session_id == identity.member_session_id,
                })
            })
            .collect();
        json(StatusCode::OK, &listed)
    }

    fn member(&self, member_id: &str) -> Option<DemoMember> {
        self.inner
            .members
            .iter()
            .find(|m| m.member_id == member_id)
            .cloned()
    }

    /// Mints a session for `member_id` through the emulator's control API.
    async fn mint(&self, member_id: &str) -> Result<Minted, BoxError> {
        let body = serde_json::json!({
            "member_id": member_id,
            "session_duration_minutes": SESSION_MINUTES,
        });
        let url = self.inner.control.sessions_url.clone();
        Ok(serde_json::from_slice(
            &self.control_post(url, &body).await?,
        )?)
    }

    /// Posts `body` to the control API's `url`; its answer's body when it succeeded.
    async fn control_post(&self, url: Uri, body: &serde_json::Value) -> Result<Bytes, BoxError> {
        let control = &self.inner.control;
        let request = Request::post(url)
            .header(header::AUTHORIZATION, control.authorization.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(full_body(serde_json::to_vec(body)?))?;
        let exchange = async {
            let response = self.inner.http.request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(Duration::from_secs(5), exchange).await??;
        if !status.is_success() {
            return Err(format!("control API answered {status}").into());
        }
        Ok(bytes)
    }
}

/// The form field `name` of a small `application/x-www-form-urlencoded` body (`Err` when the
/// body cannot be read or is too large).
async fn form_field<B>(req: Request<B>, name: &str) -> Result<Option<String>, ()>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let body = http_body_util::Limited::new(req.into_body(), FORM_LIMIT)
        .collect()
        .await
        .map_err(|_| ())?
        .to_bytes();
    Ok(form_urlencoded::parse(&body)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned()))
}

/// What the control API answers for a new session (the ids are not needed here).
#[derive(serde::Deserialize)]
struct Minted {
    session_token: String,
    session_jwt: String,
}

/// The identity the gateway handed the app (its headers; client copies were stripped).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) member_id: String,
    pub(crate) organization_id: String,
    pub(crate) member_session_id: String,
    pub(crate) roles: String,
}

impl Identity {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let get = |name: &http::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Some(Self {
            member_id: get(&MEMBER_ID)?,
            organization_id: get(&ORGANIZATION_ID)?,
            member_session_id: get(&MEMBER_SESSION_ID)?,
            roles: get(&ROLES).unwrap_or_default(),
        })
    }
}

/// Whether a browser says the request comes from another site (`Sec-Fetch-Site`), or its
/// `Origin` is not the host the gateway was asked for (`X-Forwarded-Host`): a sign-in form
/// posted from elsewhere would sign the visitor in as someone else.
fn is_cross_site(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    match (value("origin"), value("x-forwarded-host")) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

const INDEX_HTML: &str = include_str!("app/index.html");
const APP_JS: &str = include_str!("app/app.js");
const STYLE_CSS: &str = include_str!("app/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full_body(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Reachable only when the app is called without the gateway in front.
fn unauthenticated() -> Response<Body> {
    text_response(StatusCode::UNAUTHORIZED, "no identity headers\n")
}

impl<B> Handler<B> for DemoApp
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn handle(&self, req: Request<B>) -> impl Future<Output = Response<Body>> + Send + 'static {
        self.clone().route(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_sign_in_form_posted_from_another_site_is_refused() {
        // If this broke, another site could sign a visitor of the demo in as a member of
        // its choosing (login CSRF).
        let host = ("x-forwarded-host", "127.0.0.1:8080");
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(is_cross_site(&headers(&[
            ("origin", "http://127.0.0.2:8080"),
            host
        ])));
        assert!(is_cross_site(&headers(&[(
            "origin",
            "http://127.0.0.1:8080"
        )])));
        assert!(!is_cross_site(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://127.0.0.1:8080"),
            host
        ])));
        assert!(!is_cross_site(&headers(&[])), "curl sends neither header");
    }
}
