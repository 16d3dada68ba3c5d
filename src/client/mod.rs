//! [`StytchClient`]: the calls this crate makes to Stytch's B2B sessions API.

mod config;
mod rbac;
mod retry;
mod types;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, Method, header};
use reqwest::Url;
use serde::de::DeserializeOwned;

pub use self::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, LIVE_BASE_URL, Secret, StytchConfig,
    StytchConfigBuilder, TEST_BASE_URL, default_base_url,
};
pub use self::rbac::{
    OrgPolicy, OrgPolicyResponse, RbacPermission, RbacPolicy, RbacPolicyResponse, RbacResource,
    RbacRole, RbacScope,
};
use self::retry::RetryBudget;
pub use self::retry::{RetryDecision, RetryPolicy};
pub use self::types::{
    AuthenticateRequest, AuthenticateResponse, AuthorizationCheck, Jwk, Jwks, RevokeResponse,
    RevokeSelector, SessionsResponse, Verdict,
};
use crate::credential::Credential;
use crate::error::{ApiError, ConfigError, DecodeError, Endpoint, StytchError};
use crate::metrics;

/// Header carrying the acting member's session token (Stytch enforces that member's RBAC).
pub const MEMBER_SESSION_HEADER: &str = "x-stytch-member-session";
/// Header carrying the acting member's session JWT (Stytch enforces that member's RBAC).
pub const MEMBER_SESSION_JWT_HEADER: &str = "x-stytch-member-sessionjwt";

/// The User-Agent of every call: `tower-stytch/<version>`.
pub const USER_AGENT: &str = concat!("tower-stytch/", env!("CARGO_PKG_VERSION"));

/// A client of Stytch's B2B sessions API.
///
/// Cheap to clone: clones share one connection pool. Authenticates with HTTP Basic
/// `project_id:secret`; sends absent fields as absent, never `null`; retries per its
/// [`RetryPolicy`].
#[derive(Clone)]
pub struct StytchClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: StytchConfig,
    budget: RetryBudget,
    authorization: HeaderValue,
    authenticate_url: Url,
    revoke_url: Url,
    jwks_url: Url,
    sessions_url: Url,
    rbac_policy_url: Url,
    rbac_organizations_url: Url,
    m2m_clients_url: Url,
}

impl std::fmt::Debug for StytchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StytchClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl StytchClient {
    /// Builds a client from a validated configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError::HttpClient`] when the TLS backend cannot be initialised.
    pub fn new(config: StytchConfig) -> Result<Self, ConfigError> {
        use base64::Engine as _;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(USER_AGENT)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(ConfigError::HttpClient)?;
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            config.project_id,
            config.secret.expose_secret()
        ));
        let mut authorization = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| ConfigError::InvalidSecret)?;
        authorization.set_sensitive(true);
        let join = |path: &str| {
            config
                .base_url
                .join(path)
                .map_err(|_| ConfigError::InvalidBaseUrl {
                    url: config.base_url.to_string(),
                    reason: "API paths cannot be joined to it",
                })
        };
        let authenticate_url = join("v1/b2b/sessions/authenticate")?;
        let revoke_url = join("v1/b2b/sessions/revoke")?;
        let jwks_url = join(&format!("v1/b2b/sessions/jwks/{}", config.project_id))?;
        let sessions_url = join("v1/b2b/sessions")?;
        let rbac_policy_url = join("v1/b2b/rbac/policy")?;
        let rbac_organizations_url = join("v1/b2b/rbac/organizations/")?;
        let m2m_clients_url = join("v1/m2m/clients/")?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                budget: RetryBudget::new(&config.retry, Instant::now()),
                config,
                authorization,
                authenticate_url,
                revoke_url,
                jwks_url,
                sessions_url,
                rbac_policy_url,
                rbac_organizations_url,
                m2m_clients_url,
            }),
        })
    }

    /// [`StytchConfig::from_env`] then [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// As those two.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(StytchConfig::from_env()?)
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &StytchConfig {
        &self.inner.config
    }

    /// `POST /v1/b2b/sessions/authenticate`.
    ///
    /// # Errors
    ///
    /// A [`StytchError`]; `404 session_not_found` ([`StytchError::is_session_invalid`]) means
    /// the session is unknown, revoked or expired.
    pub async fn authenticate(
        &self,
        request: &AuthenticateRequest,
    ) -> Result<AuthenticateResponse, StytchError> {
        let body = request.body();
        self.send(
            Endpoint::Authenticate,
            Method::POST,
            &self.inner.authenticate_url,
            Some(&body),
            HeaderMap::new(),
        )
        .await
    }

    /// `POST /v1/b2b/sessions/revoke`, optionally acting as a member: `acting` is sent as
    /// `X-Stytch-Member-Session` (token) or `X-Stytch-Member-SessionJWT` (JWT) and Stytch then
    /// checks that member's permissions (`revoke-sessions` on `stytch.member` or `stytch.self`).
    ///
    /// # Errors
    ///
    /// A [`StytchError`]. A 404 `session_not_found` means the session was already revoked;
    /// callers that only want it gone may treat it as success.
    pub async fn revoke(
        &self,
        selector: &RevokeSelector,
        acting: Option<&Credential>,
    ) -> Result<RevokeResponse, StytchError> {
        let mut headers = HeaderMap::new();
        if let Some(acting) = acting {
            let (name, value) = match acting {
                Credential::Token(t) => (MEMBER_SESSION_HEADER, t.expose_secret()),
                Credential::Jwt(j) => (MEMBER_SESSION_JWT_HEADER, j.expose_secret()),
            };
            // Credentials are checked to be base64url when parsed; one built by hand that is
            // not a valid header value cannot be sent as one.
            let mut value =
                HeaderValue::from_str(value).map_err(|_| StytchError::InvalidRequest {
                    endpoint: Endpoint::Revoke,
                    reason: "the acting member's credential is not a valid header value",
                })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let body = selector.body();
        self.send(
            Endpoint::Revoke,
            Method::POST,
            &self.inner.revoke_url,
            Some(&body),
            headers,
        )
        .await
    }

    /// `GET /v1/b2b/sessions/jwks/{project_id}`.
    ///
    /// # Errors
    ///
    /// A [`StytchError`].
    pub async fn jwks(&self) -> Result<Jwks, StytchError> {
        self.send(
            Endpoint::Jwks,
            Method::GET,
            &self.inner.jwks_url,
            None,
            HeaderMap::new(),
        )
        .await
    }

    /// Stytch's Get Sessions, `GET /v1/b2b/sessions?organization_id=…&member_id=…`: the
    /// member's active sessions. `organization_id` may also be the organization's slug.
    ///
    /// # Errors
    ///
    /// A [`StytchError`]: `404 member_not_found` / `organization_not_found` for an unknown
    /// member or organization, or a member of another organization.
    pub async fn sessions(
        &self,
        organization_id: &str,
        member_id: &str,
    ) -> Result<SessionsResponse, StytchError> {
        let mut url = self.inner.sessions_url.clone();
        url.query_pairs_mut()
            .append_pair("organization_id", organization_id)
            .append_pair("member_id", member_id);
        self.send(
            Endpoint::GetSessions,
            Method::GET,
            &url,
            None,
            HeaderMap::new(),
        )
        .await
    }

    /// Stytch's RBAC policy of the project, `GET /v1/b2b/rbac/policy`.
    ///
    /// # Errors
    ///
    /// A [`StytchError`].
    pub async fn rbac_policy(&self) -> Result<RbacPolicyResponse, StytchError> {
        let url = &self.inner.rbac_policy_url;
        let headers = HeaderMap::new();
        self.send(Endpoint::RbacPolicy, Method::GET, url, None, headers)
            .await
    }

    /// An organization's custom roles, `GET /v1/b2b/rbac/organizations/{organization_id}`.
    ///
    /// # Errors
    ///
    /// A [`StytchError`] (`404 organization_not_found` for an unknown organization).
    /// [`StytchError::InvalidRequest`] when `organization_id` is not a Stytch id (nothing is
    /// sent).
    pub async fn organization_policy(
        &self,
        organization_id: &str,
    ) -> Result<OrgPolicyResponse, StytchError> {
        if !crate::session::is_stytch_id(organization_id) {
            return Err(StytchError::InvalidRequest {
                endpoint: Endpoint::RbacOrganization,
                reason: "organization_id is not a Stytch id",
            });
        }
        let url = self
            .inner
            .rbac_organizations_url
            .join(organization_id)
            .map_err(|_| StytchError::InvalidRequest {
                endpoint: Endpoint::RbacOrganization,
                reason: "organization_id cannot be joined to the URL",
            })?;
        let headers = HeaderMap::new();
        self.send(Endpoint::RbacOrganization, Method::GET, &url, None, headers)
            .await
    }

    /// Sets an M2M client's status, `PUT /v1/m2m/clients/{client_id}` with `{"status":
    /// "inactive"}` (`active: false`) or `"active"`: an inactive client gets no new access
    /// token from Stytch (tokens already issued stay valid until they expire).
    ///
    /// # Errors
    ///
    /// A [`StytchError`] (`404` for an unknown client); [`StytchError::InvalidRequest`] when
    /// `client_id` is not a Stytch id (nothing is sent).
    pub async fn set_m2m_client_active(
        &self,
        client_id: &str,
        active: bool,
    ) -> Result<serde_json::Value, StytchError> {
        let endpoint = Endpoint::M2mClientUpdate;
        if !crate::session::is_stytch_id(client_id) {
            return Err(StytchError::InvalidRequest {
                endpoint,
                reason: "client_id is not a Stytch id",
            });
        }
        let url = self.inner.m2m_clients_url.join(client_id).map_err(|_| {
            StytchError::InvalidRequest {
                endpoint,
                reason: "client_id cannot be joined to the URL",
            }
        })?;
        let status = if active { "active" } else { "inactive" };
        let body = serde_json::json!({ "status": status });
        self.send(endpoint, Method::PUT, &url, Some(&body), HeaderMap::new())
            .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        headers: HeaderMap,
    ) -> Result<T, StytchError> {
        let policy = &self.inner.config.retry;
        let started = Instant::now();
        self.inner.budget.deposit(started);
        let mut attempt = 1;
        loop {
            let result = self
                .attempt(
                    endpoint,
                    method.clone(),
                    url,
                    body,
                    headers.clone(),
                    started,
                )
                .await;
            let err = match result {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            match policy.decide(&err, attempt, started.elapsed(), fastrand::f64()) {
                RetryDecision::RetryAfter(_) if !self.inner.budget.try_withdraw(Instant::now()) => {
                    crate::metrics::retry_budget_exhausted(endpoint.as_str());
                    tracing::debug!(
                        endpoint = endpoint.as_str(),
                        attempt,
                        error = %err,
                        "retry budget exhausted; not retrying stytch call"
                    );
                    return Err(err);
                }
                RetryDecision::RetryAfter(wait) => {
                    tracing::debug!(
                        endpoint = endpoint.as_str(),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %err,
                        "retrying stytch call"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                RetryDecision::GiveUp => return Err(err),
            }
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        headers: HeaderMap,
        started: Instant,
    ) -> Result<T, StytchError> {
        let config = &self.inner.config;
        let remaining = config.retry.deadline.saturating_sub(started.elapsed());
        let timeout = config.request_timeout.min(remaining);
        if timeout.is_zero() {
            return Err(StytchError::Timeout { endpoint });
        }
        let mut request = self
            .inner
            .http
            .request(method, url.clone())
            .header(header::AUTHORIZATION, self.inner.authorization.clone())
            .header(header::ACCEPT, "application/json")
            .headers(headers)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let (status, retry_after, bytes) = exchange(endpoint, request).await?;
        decode(endpoint, status, retry_after, &bytes)
    }
}

/// Sends one request and reads its whole answer: status, `Retry-After`, body. Counts it.
async fn exchange(
    endpoint: Endpoint,
    request: reqwest::RequestBuilder,
) -> Result<(http::StatusCode, Option<Duration>, bytes::Bytes), StytchError> {
    let started = Instant::now();
    let outcome = async {
        let response = request.send().await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, retry_after, bytes))
    }
    .await;
    let elapsed = started.elapsed();
    match outcome {
        Ok(parts) => {
            metrics::api_request(endpoint.as_str(), parts.0.as_str(), elapsed);
            Ok(parts)
        }
        Err(source) => {
            metrics::api_request(endpoint.as_str(), "error", elapsed);
            if source.is_timeout() {
                tracing::warn!(endpoint = endpoint.as_str(), "stytch call timed out");
                return Err(StytchError::Timeout { endpoint });
            }
            tracing::warn!(endpoint = endpoint.as_str(), error = %causes(&source), "stytch call failed");
            Err(StytchError::Transport { endpoint, source })
        }
    }
}

/// `err` and its causes, each once: reqwest's own message ("error sending request for url
/// (…)") says nothing of why; its sources do ("tcp connect error: Connection refused").
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        next = cause.source();
    }
    text
}

/// Stytch's answer: the documented response on 2xx, its error JSON (or the bare status)
/// otherwise. Never keeps the body.
fn decode<T: DeserializeOwned>(
    endpoint: Endpoint,
    status: http::StatusCode,
    retry_after: Option<Duration>,
    bytes: &[u8],
) -> Result<T, StytchError> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|err| {
            tracing::warn!(
                endpoint = endpoint.as_str(),
                status = status.as_u16(),
                "stytch response does not decode"
            );
            StytchError::Decode {
                endpoint,
                source: DecodeError::from_serde(&err),
            }
        });
    }
    let err = match ApiError::from_body(status, bytes, retry_after) {
        Some(error) => StytchError::Api {
            endpoint,
            error: Box::new(error),
        },
        None => StytchError::UnexpectedStatus {
            endpoint,
            status,
            retry_after,
        },
    };
    tracing::debug!(
        endpoint = endpoint.as_str(),
        status = status.as_u16(),
        error_type = err.error_type().unwrap_or(""),
        request_id = err.request_id().unwrap_or(""),
        "stytch answered an error"
    );
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::causes;

    #[tokio::test]
    async fn a_refused_connection_is_logged_with_its_cause() {
        // If this broke, an operator would read "error sending request for url (…)" with no
        // word of why (refused, unresolvable, TLS), as the issue that asked for this found.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let err = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let text = causes(&err);
        assert!(text.starts_with(&err.to_string()), "{text}");
        assert!(text.to_lowercase().contains("refused"), "{text}");
        // Each cause once.
        let parts: Vec<&str> = text.split(": ").collect();
        let mut unique = parts.clone();
        unique.dedup();
        assert_eq!(parts, unique, "{text}");
    }
}
