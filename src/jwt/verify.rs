//! [`JwtVerifier`]: local verification of Stytch session JWTs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::client::StytchClient;
use crate::credential::{MAX_CREDENTIAL_LEN, SessionJwt};
use crate::error::StytchError;
use crate::jwt::claims::{Payload, TimeClaims};
use crate::jwt::jwks::KeyStore;
use crate::jwt::{JwtConfig, JwtError};
use crate::session::MemberSession;

/// A session JWT that verified locally.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedJwt {
    /// The session the JWT carries.
    pub session: MemberSession,
    /// The JWT's `iat`.
    pub issued_at: SystemTime,
    /// The JWT's `exp` (not the session's expiry, which is `session.expires_at()`).
    pub expires_at: SystemTime,
}

/// A machine-to-machine access token that verified locally (its scopes not yet checked).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedAccessToken {
    /// The M2M client (`sub`).
    pub client_id: String,
    /// Its scopes (`scope`, split on spaces).
    pub scopes: Vec<String>,
    /// Every other non-registered claim.
    pub custom_claims: serde_json::Map<String, serde_json::Value>,
    /// The token's `iat`.
    pub issued_at: SystemTime,
    /// The token's `exp`.
    pub expires_at: SystemTime,
}

/// Verifies session JWTs locally against Stytch's JWKS. Cheap to clone (an `Arc` inside).
///
/// Only `RS256` is accepted; the header's `alg` is checked before any key is looked at. The
/// JWKS (`GET /v1/b2b/sessions/jwks/{project_id}`) is fetched on the first verification (or in
/// a background task spawned by [`new`](Self::new) with
/// [`JwtConfigBuilder::fetch_jwks_at_start`](crate::jwt::JwtConfigBuilder::fetch_jwks_at_start)), refreshed in a background task started by
/// the first use after [`JwtConfig::jwks_refresh_interval`] (requests go on with the current
/// keys meanwhile), and refetched when a JWT names an unknown `kid`, at
/// most once per [`JwtConfig::unknown_kid_cooldown`] however many requests miss at once. Keys
/// are parsed once per fetch.
///
/// The audience is the project id; the issuers are
/// [`StytchConfig::jwt_issuers`](crate::StytchConfig::jwt_issuers) plus
/// [`JwtConfigBuilder::extra_issuer`](crate::jwt::JwtConfigBuilder::extra_issuer)s. `sub`, `iss`, `aud`, `exp`, `iat` and `nbf` are required.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: JwtConfig,
    audience: String,
    issuers: Vec<String>,
    keys: Arc<KeyStore>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("audience", &self.inner.audience)
            .field("issuers", &self.inner.issuers)
            .field("config", &self.inner.config)
            .field("jwks_loaded", &self.jwks_loaded())
            .field("keys", &self.inner.keys.snapshot().len())
            .finish()
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
}

/// A JWT split into its segments, with its header decoded.
struct Parts<'a> {
    header: RawHeader,
    /// `header.payload`: what the signature covers.
    signed: &'a str,
    payload: &'a str,
    signature: &'a str,
}

/// Splits the JWT and decodes its header ourselves, so that `alg`s jsonwebtoken does not
/// know (`none`) are told apart from malformed tokens.
fn split(jwt: &str) -> Result<Parts<'_>, JwtError> {
    if jwt.len() > MAX_CREDENTIAL_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtError::Malformed)?;
    let header = serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)?;
    Ok(Parts {
        header,
        signed: &jwt[..jwt.len() - signature.len() - 1],
        payload,
        signature,
    })
}

impl JwtVerifier {
    /// A verifier for `client`'s project.
    ///
    /// With [`JwtConfigBuilder::fetch_jwks_at_start`](crate::jwt::JwtConfigBuilder::fetch_jwks_at_start), spawns a Tokio task that fetches the JWKS at
    /// once (a failure is logged and the next verification tries again); without a Tokio
    /// runtime the fetch stays lazy. Call [`refresh_jwks`](Self::refresh_jwks) instead to
    /// fetch eagerly and see the error.
    pub fn new(client: StytchClient, config: JwtConfig) -> Self {
        let audience = client.config().project_id().to_owned();
        let mut issuers = client.config().jwt_issuers();
        for extra in config.extra_issuers() {
            if !issuers.contains(extra) {
                issuers.push(extra.clone());
            }
        }
        let keys = Arc::new(KeyStore::new(
            client,
            config.jwks_refresh_interval(),
            config.unknown_kid_cooldown(),
        ));
        let verifier = Self {
            inner: Arc::new(Inner {
                config,
                audience,
                issuers,
                keys,
            }),
        };
        if verifier.inner.config.fetch_jwks_at_start() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let this = verifier.clone();
                    handle.spawn(async move {
                        if let Err(err) = this.refresh_jwks().await {
                            tracing::warn!(error = %err, "initial JWKS fetch failed");
                        }
                    });
                }
                Err(_) => {
                    tracing::debug!("no Tokio runtime: the JWKS will be fetched on first use");
                }
            }
        }
        verifier
    }

    /// Installs `jwks` as if Stytch had returned it, without fetching (tests); the usual
    /// refresh rules still apply afterwards.
    #[cfg(test)]
    pub(crate) fn install_jwks(&self, jwks: &crate::client::Jwks) {
        self.inner.keys.install(jwks);
    }

    /// JWKS fetches completed so far (tests).
    #[cfg(test)]
    pub(crate) fn jwks_fetches_completed(&self) -> u64 {
        self.inner.keys.completed_fetches()
    }

    /// Moves the JWKS cache's clock (cooldown, refresh interval) forward by `by` (tests).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, by: Duration) {
        self.inner.keys.advance_clock(by);
    }

    /// Verifies `jwt` now.
    ///
    /// # Errors
    ///
    /// A [`JwtError`]; see [`JwtError::needs_remote`] and [`JwtError::is_unavailable`].
    pub async fn verify(&self, jwt: &SessionJwt) -> Result<VerifiedJwt, JwtError> {
        self.verify_at(jwt, SystemTime::now()).await
    }

    /// Verifies `jwt` as of `now`: `exp` and the session's expiry strictly, `nbf` and `iat`
    /// with the configured [clock skew](JwtConfig::clock_skew).
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify).
    pub async fn verify_at(
        &self,
        jwt: &SessionJwt,
        now: SystemTime,
    ) -> Result<VerifiedJwt, JwtError> {
        let parts = match split(jwt.expose_secret()) {
            Ok(parts) => parts,
            Err(err) => {
                tracing::debug!(reason = err.kind(), "session JWT rejected");
                return Err(err);
            }
        };
        let result = self.check(&parts, now).await;
        if let Err(err) = &result {
            tracing::debug!(
                reason = err.kind(),
                kid = parts.header.kid.as_deref().unwrap_or(""),
                "session JWT rejected"
            );
        }
        result
    }

    /// Verifies an M2M access token (client credentials) as of `now`, as Stytch's SDKs do
    /// locally (python `m2m.authenticate_token`, node `lib/b2c/m2m.ts`): the same keys (the
    /// project's JWKS), algorithm, issuer and audience as a session JWT; `exp` strictly, `nbf`
    /// and `iat` with the clock skew; no maximum age (a token lives until its `exp`, an hour
    /// by default); no session claim, a client id in `sub`, a `scope` string.
    ///
    /// # Errors
    ///
    /// A [`JwtError`] ([`JwtError::MissingClaims`] for a session JWT).
    pub async fn verify_access_token(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<VerifiedAccessToken, JwtError> {
        let parts = split(token)?;
        let payload_json = self.verified_payload(&parts).await?;
        let payload = Payload::parse(&payload_json)?;
        payload.check_registered(&self.inner.issuers, &self.inner.audience)?;
        let times = payload.times()?;
        if now >= times.expires_at {
            return Err(JwtError::Expired);
        }
        let skewed = add(now, self.inner.config.clock_skew());
        if skewed < times.not_before || skewed < times.issued_at {
            return Err(JwtError::NotYetValid);
        }
        let claims = payload.into_access_token()?;
        Ok(VerifiedAccessToken {
            client_id: claims.client_id,
            scopes: claims.scopes,
            custom_claims: claims.custom_claims,
            issued_at: times.issued_at,
            expires_at: times.expires_at,
        })
    }

    /// Whether the payload of an unverified JWT carries Stytch's session claim (a member's
    /// session JWT) rather than being an access token: only to pick which verification to
    /// run; nothing is trusted from it.
    pub(crate) fn looks_like_session(token: &str) -> bool {
        let Some(payload) = token.split('.').nth(1) else {
            return true;
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| Payload::parse(&json).ok().map(|p| p.is_session()))
            .unwrap_or(true)
    }

    /// `alg` before any key is looked at, then the signature: the decoded payload of a JWT
    /// whose signature verified.
    async fn verified_payload(&self, parts: &Parts<'_>) -> Result<Vec<u8>, JwtError> {
        if parts.header.alg.as_deref() != Some("RS256") {
            return Err(JwtError::UnsupportedAlgorithm);
        }
        let kid = parts
            .header
            .kid
            .as_deref()
            .filter(|kid| !kid.is_empty())
            .ok_or(JwtError::UnknownKey)?;
        let key = self.inner.keys.key(kid).await?;
        let valid = jsonwebtoken::crypto::verify(
            parts.signature,
            parts.signed.as_bytes(),
            &key,
            Algorithm::RS256,
        )
        .map_err(|_| JwtError::Malformed)?;
        crate::metrics::jwt_verification(valid);
        if !valid {
            return Err(JwtError::InvalidSignature);
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts.payload)
            .map_err(|_| JwtError::Malformed)
    }

    /// The checks in order: `alg` before any key is looked at, the signature before any claim
    /// is read, then the claims (see [`Payload`]) and the times against `now`.
    async fn check(&self, parts: &Parts<'_>, now: SystemTime) -> Result<VerifiedJwt, JwtError> {
        let json = self.verified_payload(parts).await?;
        let payload = Payload::parse(&json)?;
        payload.check_registered(&self.inner.issuers, &self.inner.audience)?;
        let times = payload.times()?;
        self.check_times(&times, now)?;
        let session = payload.into_session()?;
        if now >= session.expires_at() {
            return Err(JwtError::Expired);
        }
        Ok(VerifiedJwt {
            session,
            issued_at: times.issued_at,
            expires_at: times.expires_at,
        })
    }

    /// `exp` without leeway; `nbf` and `iat` at most the clock skew in the future (Stytch's
    /// clock may run ahead of ours); `iat` less than `max_token_age` ago.
    fn check_times(&self, times: &TimeClaims, now: SystemTime) -> Result<(), JwtError> {
        let config = &self.inner.config;
        if now >= times.expires_at {
            return Err(JwtError::Expired);
        }
        let skewed = add(now, config.clock_skew());
        if skewed < times.not_before || skewed < times.issued_at {
            return Err(JwtError::NotYetValid);
        }
        let age = now.duration_since(times.issued_at).unwrap_or_default();
        if age >= config.max_token_age() {
            return Err(JwtError::TooOld);
        }
        Ok(())
    }

    /// Fetches the JWKS now, whatever the refresh interval and cooldown.
    ///
    /// # Errors
    ///
    /// The [`StytchError`] of the fetch; the current keys are kept.
    pub async fn refresh_jwks(&self) -> Result<(), StytchError> {
        self.inner.keys.refresh().await
    }

    /// Whether a JWKS fetch has succeeded (or one was installed).
    pub fn jwks_loaded(&self) -> bool {
        self.inner.keys.loaded()
    }

    /// The settings.
    pub fn config(&self) -> &JwtConfig {
        &self.inner.config
    }
}

/// `t + d`; `t` itself if that overflows (`t` is then already beyond any real time).
fn add(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or(t)
}
