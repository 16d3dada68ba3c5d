//! [`JwtConfig`]: the settings of local JWT verification.

use std::time::Duration;

/// How far ahead of this host Stytch's clock may be for a fresh JWT to verify locally (the
/// default of [`JwtConfigBuilder::clock_skew`]).
///
/// Stytch mints JWTs with `nbf = iat =` its own now: on a host whose clock is a second
/// behind, a brand-new JWT would otherwise be "not yet valid".
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);

/// Settings of local JWT verification.
///
/// The defaults: `nbf` and `iat` may be up to [`CLOCK_SKEW`] (30 s) in this host's future,
/// `exp` has no leeway; JWTs older than five minutes go to Stytch (`max_token_age` 300 s,
/// like the Ruby SDK), the JWKS is refreshed every 10 minutes and on an unknown `kid` at most
/// once per 30 s (like `jose`, which the Node SDK uses), and it is fetched lazily on the
/// first verification.
///
/// Build one with [`JwtConfig::builder`] (or take [`JwtConfig::default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    clock_skew: Duration,
    max_token_age: Duration,
    jwks_refresh_interval: Duration,
    unknown_kid_cooldown: Duration,
    fetch_jwks_at_start: bool,
    extra_issuers: Vec<String>,
}

impl Default for JwtConfig {
    /// Clock skew [`CLOCK_SKEW`] (30 s) on `nbf` and `iat`, none on `exp`, max token age 300 s, JWKS refresh every 10 min, unknown-`kid` cooldown
    /// 30 s, JWKS fetched lazily, no extra issuer.
    fn default() -> Self {
        Self {
            clock_skew: CLOCK_SKEW,
            max_token_age: Duration::from_secs(300),
            jwks_refresh_interval: Duration::from_secs(600),
            unknown_kid_cooldown: Duration::from_secs(30),
            fetch_jwks_at_start: false,
            extra_issuers: Vec::new(),
        }
    }
}

impl JwtConfig {
    /// Starts from the defaults (see [`JwtConfig`]).
    pub fn builder() -> JwtConfigBuilder {
        JwtConfigBuilder {
            config: Self::default(),
        }
    }

    /// How far in this host's future `nbf` and `iat` may be.
    pub fn clock_skew(&self) -> Duration {
        self.clock_skew
    }

    /// The maximum token age.
    pub fn max_token_age(&self) -> Duration {
        self.max_token_age
    }

    /// The JWKS refresh interval.
    pub fn jwks_refresh_interval(&self) -> Duration {
        self.jwks_refresh_interval
    }

    /// The unknown-`kid` (and failed-fetch) cooldown.
    pub fn unknown_kid_cooldown(&self) -> Duration {
        self.unknown_kid_cooldown
    }

    /// Whether the JWKS is fetched at construction.
    pub fn fetch_jwks_at_start(&self) -> bool {
        self.fetch_jwks_at_start
    }

    /// The extra issuers.
    pub fn extra_issuers(&self) -> &[String] {
        &self.extra_issuers
    }
}

/// Builder of [`JwtConfig`]: setters named after the setting, then [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct JwtConfigBuilder {
    config: JwtConfig,
}

impl JwtConfigBuilder {
    /// How far in this host's future a JWT's `nbf` and `iat` may be and the JWT still verify
    /// locally (default [`CLOCK_SKEW`], 30 s): how far ahead of this host Stytch's clock may
    /// run. A JWT beyond it is not refused here but sent to Stytch's authenticate (and its
    /// refusal, if any, never negative-cached). `exp` has no leeway: a JWT past its `exp`
    /// goes to Stytch too. Sub-second parts count.
    ///
    /// A revoked session stays refused here this much longer, since a JWT minted just before
    /// the revocation by a clock this far ahead expires this much later.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.config.clock_skew = skew;
        self
    }

    /// A JWT whose `iat` is this long ago or longer is
    /// [`TooOld`](crate::jwt::JwtError::TooOld) and must be authenticated by Stytch (default
    /// 300 s, a JWT's whole life). Shorter values narrow the window in which a session revoked
    /// elsewhere still verifies locally; zero sends every JWT to Stytch.
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.config.max_token_age = age;
        self
    }

    /// The JWKS is refetched on the first use after it is this old (default 10 min). Keys
    /// that vanish from Stytch's set are still accepted for one more interval.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.config.jwks_refresh_interval = interval;
        self
    }

    /// Minimum time between two JWKS fetches not due to the refresh interval: a JWT with an
    /// unknown `kid`, or a retry after a failed fetch (default 30 s). Bounds what a stream of
    /// forged `kid`s can cost Stytch: one fetch per cooldown.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.config.unknown_kid_cooldown = cooldown;
        self
    }

    /// Fetch the JWKS in a background task as soon as [`JwtVerifier::new`] runs (default
    /// `false`: on the first verification). Needs a Tokio runtime at construction; without one
    /// the fetch stays lazy.
    ///
    /// [`JwtVerifier::new`]: crate::jwt::JwtVerifier::new
    pub fn fetch_jwks_at_start(mut self, fetch: bool) -> Self {
        self.config.fetch_jwks_at_start = fetch;
        self
    }

    /// Accepts one more `iss`, besides `stytch.com/{project_id}` and the custom base URL
    /// (see [`StytchConfig::jwt_issuers`](crate::StytchConfig::jwt_issuers)). Useful when the
    /// API is reached through one URL and Stytch's custom domain is another.
    pub fn extra_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.extra_issuers.push(issuer.into());
        self
    }

    /// The settings (every value is valid: nothing to check).
    pub fn build(self) -> JwtConfig {
        self.config
    }
}
