//! Configuration of the Stytch API client: project credentials, base URL, timeouts, retries.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;

use super::retry::RetryPolicy;
use crate::error::ConfigError;

/// Stytch's API for test projects (every project id not starting with `project-live-`).
pub const TEST_BASE_URL: &str = "https://test.stytch.com/";
/// Stytch's API for live projects (`project-live-…`).
pub const LIVE_BASE_URL: &str = "https://api.stytch.com/";

/// Default connect timeout towards Stytch.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default timeout of one HTTP attempt towards Stytch.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The project secret. Never printed: its `Debug` is `Secret(..)` and it has no `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for building the `Authorization` header.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Validated configuration of a [`StytchClient`](crate::StytchClient).
///
/// Build it with [`StytchConfig::builder`] or [`StytchConfig::from_env`]. The base URL follows
/// Stytch's SDKs: `project-live-…` ids talk to `https://api.stytch.com/`, all others to
/// `https://test.stytch.com/`, unless a base URL is given (custom domain, emulator).
#[derive(Clone)]
pub struct StytchConfig {
    pub(crate) project_id: String,
    pub(crate) secret: Secret,
    pub(crate) base_url: Url,
    pub(crate) custom_base_url: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

impl fmt::Debug for StytchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StytchConfig")
            .field("project_id", &self.project_id)
            .field("base_url", &self.base_url.as_str())
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl StytchConfig {
    /// Starts a configuration for a project id and its secret.
    pub fn builder(
        project_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> StytchConfigBuilder {
        StytchConfigBuilder {
            project_id: project_id.into(),
            secret: Secret::new(secret),
            base_url: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }

    /// Reads `STYTCH_PROJECT_ID`, `STYTCH_SECRET` and the optional `STYTCH_BASE_URL`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingEnv`] when a required variable is unset or empty, and any error of
    /// [`StytchConfigBuilder::build`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), with the variables taken from `lookup`.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::MissingEnv { name })
        };
        let mut builder = Self::builder(get("STYTCH_PROJECT_ID")?, get("STYTCH_SECRET")?);
        if let Some(url) = lookup("STYTCH_BASE_URL").filter(|v| !v.trim().is_empty()) {
            builder = builder.base_url(url);
        }
        builder.build()
    }

    /// The Stytch project id.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The base URL every API path is joined to (always ends with `/`).
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Whether the base URL was set explicitly (custom domain, emulator) rather than derived
    /// from the project id. With a custom base URL Stytch also issues JWTs whose `iss` is that
    /// URL without its trailing slash.
    pub fn has_custom_base_url(&self) -> bool {
        self.custom_base_url
    }

    /// The retry policy of API calls.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The JWT issuers Stytch may use for this project: `stytch.com/{project_id}`, and with a
    /// custom base URL that URL without its trailing slash.
    pub fn jwt_issuers(&self) -> Vec<String> {
        let mut issuers = vec![format!("stytch.com/{}", self.project_id)];
        if self.custom_base_url {
            issuers.push(self.base_url.as_str().trim_end_matches('/').to_owned());
        }
        issuers
    }
}

/// Builder of [`StytchConfig`]; everything is checked in [`build`](Self::build).
#[derive(Debug)]
#[must_use]
pub struct StytchConfigBuilder {
    project_id: String,
    secret: Secret,
    base_url: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
}

impl StytchConfigBuilder {
    /// Overrides the base URL (custom domain or emulator). `https` is required; plain `http` is
    /// accepted only for loopback hosts.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Connect timeout (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Timeout of one HTTP attempt (default 2 s); an attempt never outlasts what is left of
    /// the call's [`RetryPolicy::deadline`] (default 3 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Retry policy of API calls (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Validates and builds the configuration.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the bad input (never the secret): empty project id or secret,
    /// unparsable or insecure base URL, zero timeouts.
    pub fn build(self) -> Result<StytchConfig, ConfigError> {
        let project_id = self.project_id.trim().to_owned();
        if project_id.is_empty() {
            return Err(ConfigError::EmptyProjectId);
        }
        if project_id
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(ConfigError::InvalidProjectId { project_id });
        }
        if self.secret.expose_secret().trim().is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        if self.secret.expose_secret().chars().any(|c| c.is_control()) {
            return Err(ConfigError::InvalidSecret);
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::InvalidTimeout { name });
            }
        }
        let (base_url, custom_base_url) = match self.base_url {
            Some(raw) => (parse_base_url(&raw)?, true),
            None => (default_base_url(&project_id), false),
        };
        Ok(StytchConfig {
            project_id,
            secret: self.secret,
            base_url,
            custom_base_url,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            retry: self.retry,
        })
    }
}

/// The base URL Stytch's SDKs pick for a project id.
pub fn default_base_url(project_id: &str) -> Url {
    let raw = if project_id.starts_with("project-live-") {
        LIVE_BASE_URL
    } else {
        TEST_BASE_URL
    };
    // Both constants are valid absolute URLs.
    Url::parse(raw).expect("constant base URL parses")
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: &'static str| ConfigError::InvalidBaseUrl {
        url: redact_userinfo(raw),
        reason,
    };
    let mut url = Url::parse(raw.trim()).map_err(|_| invalid("not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in the URL are not allowed"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment is not allowed"));
    }
    let host = url.host_str().ok_or_else(|| invalid("no host"))?.to_owned();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        "http" => return Err(invalid("plain http is accepted only for loopback hosts")),
        _ => return Err(invalid("scheme must be https")),
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn redact_userinfo(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        // Not a URL at all: keep it only if it cannot hide a credential.
        Err(_) if !raw.contains('@') => raw.to_owned(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(project: &str, url: Option<&str>) -> Result<StytchConfig, ConfigError> {
        let mut b = StytchConfig::builder(project, "secret-test-abc");
        if let Some(url) = url {
            b = b.base_url(url);
        }
        b.build()
    }

    #[test]
    fn base_url_follows_the_sdks_rule() {
        // If this broke, live projects would talk to the test API or the other way round.
        let live = build("project-live-1234", None).unwrap();
        assert_eq!(live.base_url().as_str(), LIVE_BASE_URL);
        let test = build("project-test-1234", None).unwrap();
        assert_eq!(test.base_url().as_str(), TEST_BASE_URL);
        let other = build("project-foo", None).unwrap();
        assert_eq!(other.base_url().as_str(), TEST_BASE_URL);
        assert!(!test.has_custom_base_url());
    }

    #[test]
    fn base_url_override_requires_https_except_loopback() {
        // If this broke, the secret could travel in clear text to a remote host.
        assert!(build("p", Some("https://auth.example.com")).is_ok());
        assert!(build("p", Some("http://127.0.0.1:4010")).is_ok());
        assert!(build("p", Some("http://localhost:4010/")).is_ok());
        assert!(build("p", Some("http://[::1]:4010/")).is_ok());
        for bad in [
            "http://auth.example.com",
            "ftp://127.0.0.1",
            "not a url",
            "https://u:p@example.com",
            "https://example.com/?x=1",
        ] {
            let err = build("p", Some(bad)).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidBaseUrl { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn base_url_gets_a_trailing_slash_and_issuers_follow() {
        // If this broke, joining API paths would drop the last path segment of a custom domain.
        let c = build("project-test-1", Some("https://login.example.com/stytch")).unwrap();
        assert_eq!(c.base_url().as_str(), "https://login.example.com/stytch/");
        assert_eq!(
            c.jwt_issuers(),
            vec![
                "stytch.com/project-test-1",
                "https://login.example.com/stytch"
            ]
        );
    }

    #[test]
    fn errors_name_the_input_but_never_the_secret() {
        // If this broke, a misconfiguration log line could leak the project secret.
        let err = StytchConfig::builder("project-test-1", "   ")
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::EmptySecret));
        let err = StytchConfig::builder("", "s").build().unwrap_err();
        assert!(matches!(err, ConfigError::EmptyProjectId));
        let err = build("p", Some("https://user:hunter2@example.com")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let cfg = build("project-test-1", None).unwrap();
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("secret-test-abc"), "{debug}");
        assert!(debug.contains("project-test-1"));
    }

    #[test]
    fn from_lookup_reads_the_three_variables() {
        // If this broke, `from_env()` would ignore STYTCH_BASE_URL or accept a missing secret.
        let env = |name: &str| match name {
            "STYTCH_PROJECT_ID" => Some("project-test-9".to_owned()),
            "STYTCH_SECRET" => Some("secret".to_owned()),
            "STYTCH_BASE_URL" => Some("http://127.0.0.1:9".to_owned()),
            _ => None,
        };
        let c = StytchConfig::from_lookup(env).unwrap();
        assert_eq!(c.base_url().as_str(), "http://127.0.0.1:9/");
        let missing = StytchConfig::from_lookup(|n| {
            (n == "STYTCH_PROJECT_ID").then(|| "project-test-9".to_owned())
        })
        .unwrap_err();
        assert!(matches!(
            missing,
            ConfigError::MissingEnv {
                name: "STYTCH_SECRET"
            }
        ));
    }
}
