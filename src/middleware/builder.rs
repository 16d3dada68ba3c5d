//! [`StytchAuthLayerBuilder`]: every setting of the layer, checked once in
//! [`build`](StytchAuthLayerBuilder::build), which builds the engine and the shared state.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::origin::is_allowed_redirect;
use super::rejection::{DefaultRejection, RejectionHandler, SharedRejectionHandler};
use super::route_table::RouteTable;
use super::shared::Shared;
use crate::authz::rules::{RouteRule, RouteRules};
use crate::authz::{Authorizer, PolicyConfig, Rule};
use crate::client::StytchClient;
use crate::cookies::CookieSettings;
use crate::engine::Engine;
use crate::error::ConfigError;
use crate::extract::CredentialSource;
use crate::request::LayerHandles;
use crate::revoke::RevokeConfig;
use crate::routing::pattern::RoutePattern;
use crate::store::cache::CacheConfig;
use crate::webhook::{Receiver, WebhookSecrets};

/// Builder of [`StytchAuthLayer`](crate::StytchAuthLayer). Setters are infallible; every setting is checked in
/// [`build`](Self::build), which reports the first bad one.
#[must_use]
pub struct StytchAuthLayerBuilder {
    client: StytchClient,
    error: Option<ConfigError>,
    sources: Vec<CredentialSource>,
    logout: Option<String>,
    logout_everywhere: Option<String>,
    logout_everywhere_set: bool,
    logout_allow_get: bool,
    admin_prefix: Option<String>,
    hooks: Vec<RoutePattern>,
    public: Vec<RoutePattern>,
    optional: Vec<RoutePattern>,
    cookies: CookieSettings,
    cache: CacheConfig,
    revoke: RevokeConfig,
    rejection: SharedRejectionHandler,
    redirect_allowlist: Vec<String>,
    trusted_origins: Vec<String>,
    webhook: Option<(String, WebhookSecrets)>,
    rules: Vec<RouteRule>,
    policy: PolicyConfig,
    m2m_revoke_permission: (String, String),
    #[cfg(feature = "jwt")]
    jwt: Option<crate::jwt::JwtConfig>,
    #[cfg(feature = "redis")]
    bus: Option<crate::bus::RedisBus>,
}

impl fmt::Debug for StytchAuthLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StytchAuthLayerBuilder")
            .field("sources", &self.sources)
            .field("logout", &self.logout)
            .field("admin_prefix", &self.admin_prefix)
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

impl StytchAuthLayerBuilder {
    pub(super) fn new(client: StytchClient) -> Self {
        Self {
            client,
            error: None,
            sources: CredentialSource::defaults(),
            logout: Some("/logout".to_owned()),
            logout_everywhere: Some("/logout/everywhere".to_owned()),
            logout_everywhere_set: false,
            logout_allow_get: false,
            admin_prefix: Some("/admin".to_owned()),
            hooks: Vec::new(),
            public: Vec::new(),
            optional: Vec::new(),
            cookies: CookieSettings::default(),
            cache: CacheConfig::default(),
            revoke: RevokeConfig::default(),
            rejection: Arc::new(DefaultRejection),
            redirect_allowlist: Vec::new(),
            trusted_origins: Vec::new(),
            webhook: None,
            rules: Vec::new(),
            policy: PolicyConfig::default(),
            m2m_revoke_permission: ("m2m_clients".to_owned(), "revoke".to_owned()),
            #[cfg(feature = "jwt")]
            jwt: Some(crate::jwt::JwtConfig::default()),
            #[cfg(feature = "redis")]
            bus: None,
        }
    }

    fn fail(mut self, err: ConfigError) -> Self {
        self.error.get_or_insert(err);
        self
    }

    fn pattern(
        self,
        pattern: Result<RoutePattern, ConfigError>,
        push: fn(&mut Self, RoutePattern),
    ) -> Self {
        match pattern {
            Ok(p) => {
                let mut this = self;
                push(&mut this, p);
                this
            }
            Err(e) => self.fail(e),
        }
    }

    /// Where credentials are looked for, in order (default: [`CredentialSource::defaults`]).
    pub fn credential_sources(mut self, sources: Vec<CredentialSource>) -> Self {
        if sources.is_empty() {
            return self.fail(ConfigError::InvalidSetting {
                name: "credential_sources",
                reason: "at least one source is needed",
            });
        }
        self.sources = sources;
        self
    }

    /// A route that needs no credential: `"[METHOD ]/path"` with `{name}` and `{*rest}`.
    pub fn public_route(self, pattern: &str) -> Self {
        self.pattern(RoutePattern::parse(pattern), |b, p| b.public.push(p))
    }

    /// Every path under `prefix` needs no credential.
    pub fn public_prefix(self, prefix: &str) -> Self {
        self.pattern(RoutePattern::prefix(prefix), |b, p| b.public.push(p))
    }

    /// A route where the member is attached when a valid credential is present, and the
    /// request passes anonymously otherwise.
    pub fn optional_route(self, pattern: &str) -> Self {
        self.pattern(RoutePattern::parse(pattern), |b, p| b.optional.push(p))
    }

    /// The logout path (default `/logout`; log-out-everywhere follows as `{path}/everywhere`
    /// unless set on its own).
    pub fn logout_path(mut self, path: &str) -> Self {
        if !path.starts_with('/') {
            return self.fail(ConfigError::InvalidRoute {
                pattern: path.to_owned(),
                reason: "the path must start with '/'",
            });
        }
        self.logout = Some(path.to_owned());
        if !self.logout_everywhere_set {
            self.logout_everywhere = Some(format!("{}/everywhere", path.trim_end_matches('/')));
        }
        self
    }

    /// The log-out-everywhere path (default `/logout/everywhere`).
    pub fn logout_everywhere_path(mut self, path: &str) -> Self {
        if !path.starts_with('/') {
            return self.fail(ConfigError::InvalidRoute {
                pattern: path.to_owned(),
                reason: "the path must start with '/'",
            });
        }
        self.logout_everywhere = Some(path.to_owned());
        self.logout_everywhere_set = true;
        self
    }

    /// Turns the logout routes off (the app handles logout, e.g. with the [`Revoker`](crate::Revoker)).
    pub fn without_logout(mut self) -> Self {
        self.logout = None;
        self.logout_everywhere = None;
        self.logout_everywhere_set = true;
        self
    }

    /// Also accept `GET` on the logout routes (off by default: a GET can be triggered by any
    /// page with an `<img>`). A GET logout needs a same-origin signal
    /// (`Sec-Fetch-Site: same-origin | none`, or the request's own `Origin`): a plain link on
    /// the app's own pages works in every current browser.
    pub fn allow_get_logout(mut self, allow: bool) -> Self {
        self.logout_allow_get = allow;
        self
    }

    /// Where logout may redirect with `?return_to=`: absolute URLs (`https://app.example.com/`
    /// allows that origin and every path under the given one) or local paths (`/` allows every
    /// local path). Anything else is refused with 400.
    pub fn logout_redirect_allowlist<I, T>(mut self, allowed: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.redirect_allowlist = allowed.into_iter().map(Into::into).collect();
        self
    }

    /// Origins (`https://app.example.com`) besides the request's own from which requests to
    /// the routes with a side effect (logout, admin revocation, forced sign-out hooks) are
    /// accepted, whatever `Sec-Fetch-Site` says (a sibling subdomain's requests are
    /// `same-site`). Compared with `Origin` exactly, ASCII case aside. Also needed when a
    /// proxy in front rewrites `Host`.
    pub fn trusted_origins<I, T>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.trusted_origins = origins
            .into_iter()
            .map(|o| o.into().trim_end_matches('/').to_owned())
            .collect();
        self
    }

    /// Prefix of the admin routes (default `/admin`):
    /// `POST {prefix}/members/{member_id}/revoke-sessions` and
    /// `POST {prefix}/sessions/{member_session_id}/revoke`.
    pub fn admin_prefix(mut self, prefix: &str) -> Self {
        if !prefix.starts_with('/') {
            return self.fail(ConfigError::InvalidRoute {
                pattern: prefix.to_owned(),
                reason: "the prefix must start with '/'",
            });
        }
        self.admin_prefix = Some(prefix.trim_end_matches('/').to_owned());
        self
    }

    /// The permission a member needs to cut an M2M client off through
    /// `POST {admin}/m2m-clients/{client_id}/revoke` (default `revoke` on `m2m_clients`: a
    /// resource of your project's RBAC policy; a project without it lets nobody in, failing
    /// closed).
    pub fn m2m_revoke_permission(mut self, resource: &str, action: &str) -> Self {
        self.m2m_revoke_permission = (resource.to_owned(), action.to_owned());
        self
    }

    /// Turns the admin routes off.
    pub fn without_admin_routes(mut self) -> Self {
        self.admin_prefix = None;
        self
    }

    /// A forced-sign-out hook on one of the app's own routes, e.g.
    /// `"DELETE /api/members/{member_id}"`: when the app acts on it (answers 2xx, or a
    /// redirect other than 304, as Rails, Turbo and Django do after an action), every session
    /// of that member is revoked, acting as the caller, and evicted here. The pattern needs a
    /// method and a `{member_id}` capture.
    ///
    /// Paths are matched the way the app's router reads them: segments percent-decoded once,
    /// empty segments and a trailing slash ignored, literal segments in any ASCII case. The
    /// method is the one the app acts on: a POST's `X-HTTP-Method-Override`, `X-HTTP-Method`,
    /// `X-Method-Override` or `?_method=` counts as that method (conflicting overrides are
    /// refused, 400). A `_method` field in a form body is not read by the layer: put a
    /// method-override middleware outside it. A decoded member id that is not a Stytch id, or
    /// a path with dot segments, `;` parameters or encoded separators that some server would
    /// resolve to the route, is refused (400) before the app runs.
    pub fn forced_signout(self, pattern: &str) -> Self {
        let parsed = RoutePattern::parse(pattern).and_then(|p| {
            if !p.capture_names().any(|n| n == "member_id") {
                return Err(ConfigError::InvalidRoute {
                    pattern: pattern.to_owned(),
                    reason: "a forced sign-out route needs a {member_id} capture",
                });
            }
            if !p.has_method() {
                return Err(ConfigError::InvalidRoute {
                    pattern: pattern.to_owned(),
                    reason: "a forced sign-out route needs a method",
                });
            }
            Ok(p)
        });
        self.pattern(parsed, |b, p| b.hooks.push(p))
    }

    /// Authorization on one of the app's routes: `pattern` is `"METHOD /path"` (or `"* /path"`
    /// for every method) with `{name}` captures and a trailing `{*rest}`, as the other route
    /// settings; `rule` what the member needs beyond authentication (see [`Rule`]). A route
    /// with a rule needs a credential even under a public prefix. Rules are tried in the order
    /// given; the first that matches applies. Paths are matched as the app's router may read
    /// them (see [`crate::authz`]); a path some server could resolve to a ruled route
    /// differently is refused (400).
    pub fn authorize(self, pattern: &str, rule: Rule) -> Self {
        let parsed = RoutePattern::parse(pattern).and_then(|p| {
            let captures: Vec<&str> = p.capture_names().collect();
            rule.check(pattern, &captures)?;
            Ok(RouteRule::new(p, rule))
        });
        match parsed {
            Ok(rule) => {
                let mut this = self;
                this.rules.push(rule);
                this
            }
            Err(e) => self.fail(e),
        }
    }

    /// How the RBAC policy is cached (see [`PolicyConfig`]).
    pub fn policy(mut self, config: PolicyConfig) -> Self {
        self.policy = config;
        self
    }

    /// Attributes of the session cookies (see [`CookieSettings`]).
    pub fn cookie_settings(mut self, settings: CookieSettings) -> Self {
        self.cookies = settings;
        self
    }

    /// Receives Stytch's webhooks at `POST {path}`, signed with one of `secrets` (the
    /// endpoint's signing secret from Stytch's dashboard; several during a rotation), and
    /// applies them here at once: a member deleted or no longer active is signed out, an
    /// organization deleted signs out its members, a member whose roles changed has their
    /// sessions re-validated at Stytch. The path is answered by the layer before
    /// authentication and without the cross-site check: its only gate is the Svix
    /// signature. Off unless set. See the crate's README, "Revocations made outside your
    /// app".
    pub fn webhook(mut self, path: &str, secrets: WebhookSecrets) -> Self {
        if !path.starts_with('/') {
            return self.fail(ConfigError::InvalidRoute {
                pattern: path.to_owned(),
                reason: "the webhook path must start with '/'",
            });
        }
        self.webhook = Some((path.to_owned(), secrets));
        self
    }

    /// Cache settings (see [`CacheConfig`]).
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// Revocation settings (see [`RevokeConfig`]).
    pub fn revoke_config(mut self, config: RevokeConfig) -> Self {
        self.revoke = config;
        self
    }

    /// A custom response for rejections (the [`Rejection`](crate::service::Rejection) is still inserted
    /// into the response's extensions).
    pub fn on_rejection(mut self, handler: impl RejectionHandler) -> Self {
        self.rejection = Arc::new(handler);
        self
    }

    /// Local JWT verification settings (default on, [`JwtConfig::default`](crate::jwt::JwtConfig)).
    #[cfg(feature = "jwt")]
    pub fn jwt(mut self, config: crate::jwt::JwtConfig) -> Self {
        self.jwt = Some(config);
        self
    }

    /// Sends JWTs to Stytch's authenticate endpoint instead of verifying them locally.
    #[cfg_attr(not(feature = "jwt"), allow(unused_mut))]
    pub fn without_jwt(mut self) -> Self {
        #[cfg(feature = "jwt")]
        {
            self.jwt = None;
        }
        self
    }

    /// Shares revocations with every instance using the same Redis and Stytch project (feature
    /// `redis`): each revocation made here is applied there too, and revocations made there
    /// are applied here, including those made before this instance started (within the
    /// denylist's window). The bus's tasks start with [`build`](Self::build), which then needs
    /// a Tokio runtime. See the README, "Running several instances".
    #[cfg(feature = "redis")]
    pub fn revocation_bus(mut self, bus: crate::bus::RedisBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Every setting checked, the engine built: the state the layer shares with its clones
    /// (see [`build`](Self::build)).
    pub(super) fn into_shared(self) -> Result<Shared, ConfigError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        check_cache(&self.cache)?;
        self.check_webhook_path()?;
        self.check_step_up_pages()?;
        let webhook = self.webhook.map(|(path, secrets)| {
            let project_id = self.client.config().project_id();
            Arc::new(Receiver::new(path, secrets, project_id))
        });
        let routes = RouteTable {
            logout: self.logout,
            logout_everywhere: self.logout_everywhere,
            logout_allow_get: self.logout_allow_get,
            admin_member: admin_route(self.admin_prefix.as_deref(), ADMIN_MEMBER)?,
            admin_session: admin_route(self.admin_prefix.as_deref(), ADMIN_SESSION)?,
            admin_client: admin_route(self.admin_prefix.as_deref(), ADMIN_CLIENT)?,
            hooks: self.hooks,
            public: self.public,
            optional: self.optional,
        };
        let authorizer = Authorizer::new(self.client.clone(), &self.policy);
        if !self.rules.is_empty() {
            // Loaded at start: a route with a rule never waits for the first fetch when Stytch
            // answers.
            authorizer.start();
        }
        let engine = Engine::new(
            self.client,
            &self.cache,
            self.revoke,
            #[cfg(feature = "jwt")]
            self.jwt,
        );
        #[cfg(feature = "redis")]
        let bus = attach_bus(self.bus, &engine)?;
        let handles = Arc::new(LayerHandles {
            revoker: engine.revoker.clone(),
            authorizer: authorizer.clone(),
        });
        Ok(Shared {
            engine,
            authorizer,
            handles,
            authenticated: crate::metrics::authenticated(),
            admitted_member: crate::metrics::admitted_member(),
            admitted_machine: crate::metrics::admitted_machine(),
            rules: RouteRules::new(self.rules),
            m2m_revoke_permission: self.m2m_revoke_permission,
            routes,
            sources: self.sources,
            cookies: self.cookies,
            rejection: self.rejection,
            redirect_allowlist: self.redirect_allowlist,
            trusted_origins: self.trusted_origins,
            webhook,
            #[cfg(feature = "redis")]
            bus,
        })
    }

    /// The webhook path is not a logout path.
    fn check_webhook_path(&self) -> Result<(), ConfigError> {
        match &self.webhook {
            Some((path, _))
                if [&self.logout, &self.logout_everywhere].contains(&&Some(path.clone())) =>
            {
                Err(ConfigError::InvalidRoute {
                    pattern: path.clone(),
                    reason: "the webhook path is also a logout path",
                })
            }
            _ => Ok(()),
        }
    }

    /// Every rule's step-up page is on the redirect allowlist.
    fn check_step_up_pages(&self) -> Result<(), ConfigError> {
        for rule in &self.rules {
            if let Some(page) = &rule.rule.step_up_page
                && !is_allowed_redirect(page, &self.redirect_allowlist)
            {
                return Err(ConfigError::InvalidRoute {
                    pattern: rule.label.to_string(),
                    reason: "the step-up page is not on the redirect allowlist",
                });
            }
        }
        Ok(())
    }
}

/// The admin routes under the admin prefix.
const ADMIN_MEMBER: &str = "members/{member_id}/revoke-sessions";
const ADMIN_SESSION: &str = "sessions/{member_session_id}/revoke";
const ADMIN_CLIENT: &str = "m2m-clients/{client_id}/revoke";

/// The revocation bus attached to the engine's revoker, when one was configured (which then
/// needs a Tokio runtime).
#[cfg(feature = "redis")]
fn attach_bus(
    bus: Option<crate::bus::RedisBus>,
    engine: &Engine,
) -> Result<Option<crate::bus::BusHandle>, ConfigError> {
    let Some(bus) = bus else { return Ok(None) };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ConfigError::InvalidSetting {
            name: "revocation_bus",
            reason: "the layer must be built inside a Tokio runtime",
        });
    }
    let project_id = engine.authenticator.client().config().project_id();
    Ok(Some(bus.attach(&engine.revoker, project_id)))
}

/// Refuses a cache that could hold nothing, or trust a session for more than a day.
fn check_cache(cache: &CacheConfig) -> Result<(), ConfigError> {
    if cache.max_ttl.is_zero() || cache.max_capacity == 0 {
        return Err(ConfigError::InvalidSetting {
            name: "cache",
            reason: "max_ttl and max_capacity must be greater than zero",
        });
    }
    if cache.max_ttl > Duration::from_secs(24 * 3600) {
        return Err(ConfigError::InvalidSetting {
            name: "cache.max_ttl",
            reason: "must be at most 24 hours",
        });
    }
    Ok(())
}

/// `POST {prefix}/{path}`, or nothing when the admin routes are off.
fn admin_route(prefix: Option<&str>, path: &str) -> Result<Option<RoutePattern>, ConfigError> {
    prefix
        .map(|prefix| RoutePattern::parse(&format!("POST {prefix}/{path}")))
        .transpose()
}
