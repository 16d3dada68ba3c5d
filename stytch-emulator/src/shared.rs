//! [`Shared`]: the state the [`Emulator`](crate::Emulator) handle and the server tasks
//! share: the directory, keys, faults, gate, request log, clock and webhooks.
//!
//! Uses the data modules (state, keys, faults, gate, webhooks) and [`render`](crate::render)
//! for the JWT claims; never the handlers or the dispatcher.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::config::{EmulatorConfig, REQUEST_LOG_CAPACITY};
use crate::factors::{AuthenticationFactor, FactorKind, add_factor};
use crate::faults::{EmulatorEndpoint, Fault, Faults};
use crate::gate::Gate;
use crate::keys::KeyRing;
use crate::m2m::registry::{Grant, M2mRegistry};
use crate::render::{jwt_claims, without_reserved_claims};
use crate::state::{self, SessionView, State};
use crate::types::{EmulatorError, RecordedRequest, SessionInfo, SessionJwt, SessionToken};
use crate::webhooks::{Job, WebhookSecret, Webhooks};

/// The id prefix of a factor's method-specific id, as Stytch names them (`totp-test-…`).
fn factor_id_kind(kind: &FactorKind) -> &'static str {
    match kind {
        FactorKind::MagicLink | FactorKind::EmailOtp | FactorKind::Password => "email",
        FactorKind::SamlSso => "saml-registration",
        FactorKind::OidcSso => "oidc-registration",
        FactorKind::SmsOtp { .. } => "phone-number",
        FactorKind::Totp => "totp",
        FactorKind::RecoveryCode => "totp-recovery-code",
    }
}

/// State shared by the handle and the server tasks.
pub(crate) struct Shared {
    pub(crate) project_id: String,
    pub(crate) secret: String,
    /// `test` or `live`, used in ids.
    pub(crate) env: &'static str,
    state: Mutex<State>,
    pub(crate) keys: KeyRing,
    pub(crate) faults: Faults,
    pub(crate) gate: Gate,
    log: Mutex<VecDeque<RecordedRequest>>,
    clock_offset: AtomicI64,
    pub(crate) webhooks: Arc<Webhooks>,
    /// The M2M clients (a lock of their own: token requests do not wait for sessions).
    pub(crate) m2m: Mutex<M2mRegistry>,
    /// Lifetime of M2M access tokens, seconds.
    m2m_token_lifetime: AtomicI64,
}

impl std::fmt::Debug for Shared {
    /// Never the secret: only the project id and the environment.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("project_id", &self.project_id)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The shared state, and the queue of webhook deliveries for [`webhooks::run`].
    pub(crate) fn new(config: EmulatorConfig) -> (Self, tokio::sync::mpsc::UnboundedReceiver<Job>) {
        let env = if config.project_id.starts_with("project-live-") {
            "live"
        } else {
            "test"
        };
        let (webhooks, queue) = Webhooks::new(
            config
                .webhook_secret
                .unwrap_or_else(WebhookSecret::generate),
            config.webhook_endpoints,
            config.webhook_policy,
        );
        let shared = Self {
            project_id: config.project_id,
            secret: config.secret,
            env,
            state: Mutex::new(State {
                policy: config.rbac_policy,
                ..State::default()
            }),
            keys: KeyRing::new(env),
            faults: Faults::default(),
            gate: Gate::default(),
            log: Mutex::new(VecDeque::new()),
            clock_offset: AtomicI64::new(0),
            webhooks: Arc::new(webhooks),
            m2m: Mutex::new(M2mRegistry::default()),
            m2m_token_lifetime: AtomicI64::new(
                i64::try_from(config.m2m_token_lifetime.as_secs()).unwrap_or(i64::MAX),
            ),
        };
        (shared, queue)
    }

    /// Emulator time, unix seconds.
    pub(crate) fn now(&self) -> i64 {
        state::now_with_offset(self.clock_offset.load(Ordering::Relaxed))
    }

    pub(crate) fn new_id(&self, kind: &str) -> String {
        format!("{kind}-{}-{}", self.env, uuid::Uuid::new_v4())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `user:password` of a Basic `Authorization` value are the project's.
    pub(crate) fn basic_auth_ok(&self, header: &http::HeaderValue) -> bool {
        use base64::Engine as _;
        let Ok(value) = header.to_str() else {
            return false;
        };
        let Some((scheme, encoded)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = std::str::from_utf8(&decoded) else {
            return false;
        };
        decoded.split_once(':') == Some((self.project_id.as_str(), self.secret.as_str()))
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if log.len() >= REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.iter().cloned().collect()
    }

    pub(crate) fn clear_requests(&self) {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Queues a fault, or, for [`Fault::Refused`], closes the listener at once.
    pub(crate) fn inject_fault(&self, endpoint: EmulatorEndpoint, fault: Fault, times: usize) {
        match fault {
            Fault::Refused { duration } => self.gate.refuse(duration),
            fault => self.faults.inject(endpoint, fault, times),
        }
    }

    /// Drops queued faults and accepts connections again.
    pub(crate) fn clear_faults(&self) {
        self.faults.clear();
        self.gate.open();
    }

    pub(crate) fn set_clock_offset(&self, seconds: i64) {
        self.clock_offset.store(seconds, Ordering::Relaxed);
    }

    /// Creates a session with these factors (none: a magic link, now); `None` when the
    /// member is unknown.
    pub(crate) fn create_session(
        &self,
        member_id: &str,
        duration_secs: i64,
        custom_claims: Map<String, Value>,
        factors: Vec<AuthenticationFactor>,
    ) -> Option<SessionInfo> {
        let now = self.now();
        let id = self.new_id("session");
        let claims = without_reserved_claims(custom_claims);
        let factors = if factors.is_empty() {
            vec![AuthenticationFactor::magic_link()]
        } else {
            factors
        };
        let mut session_factors = Vec::with_capacity(factors.len());
        for factor in factors {
            let id = self.new_id(factor_id_kind(&factor.kind));
            add_factor(&mut session_factors, factor, id, now);
        }
        let view = self.lock().create_session(
            id,
            member_id,
            now,
            duration_secs,
            claims,
            session_factors,
        )?;
        let jwt = self.mint(&view, now);
        Some(SessionInfo {
            member_id: view.member.id.clone(),
            organization_id: view.organization.id.clone(),
            member_session_id: view.session.id.clone(),
            session_token: SessionToken(view.session.token.clone()),
            session_jwt: SessionJwt(jwt),
        })
    }

    /// Adds a factor to a live session, or refreshes the time of the one it has with that
    /// method (Stytch's MFA step), and returns the session as it is now.
    pub(crate) fn add_session_factor(
        &self,
        member_session_id: &str,
        factor: AuthenticationFactor,
    ) -> Result<SessionView, EmulatorError> {
        let now = self.now();
        let id = self.new_id(factor_id_kind(&factor.kind));
        let mut st = self.lock();
        if st.live_session(member_session_id, now).is_none() {
            return Err(EmulatorError::UnknownSession);
        }
        let session = st
            .sessions
            .get_mut(member_session_id)
            .ok_or(EmulatorError::UnknownSession)?;
        add_factor(&mut session.factors, factor, id, now);
        session.last_accessed_at = now;
        st.view(member_session_id)
            .ok_or(EmulatorError::UnknownSession)
    }

    pub(crate) fn mint_jwt(&self, member_session_id: &str) -> Option<String> {
        let now = self.now();
        let view = {
            let st = self.lock();
            st.live_session(member_session_id, now)?;
            st.view(member_session_id)?
        };
        Some(self.mint(&view, now))
    }

    pub(crate) fn is_session_live(&self, member_session_id: &str) -> bool {
        let now = self.now();
        self.lock().live_session(member_session_id, now).is_some()
    }

    /// Signs a fresh JWT for `view` with the current key (no lock held).
    pub(crate) fn mint(&self, view: &SessionView, now: i64) -> String {
        self.keys
            .current()
            .sign(&jwt_claims(&self.project_id, view, now))
    }

    /// The M2M clients.
    pub(crate) fn m2m(&self) -> MutexGuard<'_, M2mRegistry> {
        self.m2m
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lifetime of new M2M access tokens, seconds.
    pub(crate) fn m2m_token_lifetime(&self) -> i64 {
        self.m2m_token_lifetime.load(Ordering::Relaxed)
    }

    pub(crate) fn set_m2m_token_lifetime(&self, seconds: i64) {
        self.m2m_token_lifetime.store(seconds, Ordering::Relaxed);
    }

    /// Signs an M2M access token for `grant` with the current key: `sub` the client id,
    /// `scope` space-separated, `aud` `[project_id]`, `iss` `stytch.com/{project_id}`, `iat`
    /// = `nbf` = now, `exp` = now + the token lifetime, and the client's custom claims (the
    /// claims of node `lib/b2c/m2m.ts`'s documented example). Returns it and its lifetime.
    pub(crate) fn mint_m2m(&self, grant: &Grant) -> (String, i64) {
        let now = self.now();
        let lifetime = self.m2m_token_lifetime();
        let mut claims = grant.custom_claims.clone();
        claims.insert("sub".into(), grant.client_id.clone().into());
        claims.insert(
            "iss".into(),
            format!("stytch.com/{}", self.project_id).into(),
        );
        claims.insert(
            "aud".into(),
            Value::Array(vec![self.project_id.clone().into()]),
        );
        claims.insert("scope".into(), grant.scopes.join(" ").into());
        claims.insert("iat".into(), now.into());
        claims.insert("nbf".into(), now.into());
        claims.insert("exp".into(), now.saturating_add(lifetime).into());
        (self.keys.current().sign(&Value::Object(claims)), lifetime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EmulatorConfig;

    #[test]
    fn request_log_is_bounded_and_keeps_the_newest() {
        // If this failed, a long benchmark against the emulator would grow memory without bound.
        let (shared, _) = Shared::new(EmulatorConfig::new());
        for i in 0..REQUEST_LOG_CAPACITY + 5 {
            shared.record(RecordedRequest {
                method: http::Method::GET,
                path: format!("/{i}"),
                headers: http::HeaderMap::new(),
                body: Value::Null,
            });
        }
        let log = shared.requests();
        assert_eq!(log.len(), REQUEST_LOG_CAPACITY);
        assert_eq!(log[0].path, "/5");
    }

    #[test]
    fn basic_auth_needs_this_projects_id_and_secret() {
        // If this failed, the emulator would accept wrong secrets or refuse right ones.
        use base64::Engine as _;
        let (shared, _) = Shared::new(EmulatorConfig::new().project_id("p").secret("s"));
        let header = |raw: &str| {
            http::HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
            .unwrap()
        };
        assert!(shared.basic_auth_ok(&header("p:s")));
        assert!(!shared.basic_auth_ok(&header("p:x")));
        assert!(!shared.basic_auth_ok(&header("q:s")));
        assert!(!shared.basic_auth_ok(&http::HeaderValue::from_static("Bearer p:s")));
    }

    #[test]
    fn debug_output_never_shows_the_project_secret() {
        // If this broke, a panic or log line printing the shared state would leak the
        // project secret.
        let config = EmulatorConfig::new().secret("secret-test-never-shown");
        let (shared, _) = Shared::new(config);
        let shown = format!("{shared:?}");
        assert!(!shown.contains("never-shown"), "{shown}");
        assert!(shown.contains("project-test-"), "{shown}");
    }
}
