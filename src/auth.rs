//! Authenticating one credential: denylist, cache, local JWT verification, Stytch.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cache::CachedSession;
use crate::client::AuthenticateRequest;
use crate::credential::Credential;
use crate::error::StytchError;
use crate::layer::Shared;
use crate::rejection::{Rejection, RejectionKind};

/// Default `Retry-After` when Stytch is unavailable and said nothing.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a lookup failed; the error type shared by coalesced lookups.
#[derive(Debug)]
pub(crate) enum LookupError {
    /// The credential is dead or forged.
    Invalid {
        error_type: Option<String>,
        request_id: Option<String>,
    },
    /// Stytch could not answer.
    Unavailable {
        retry_after: Option<Duration>,
        error_type: Option<String>,
        request_id: Option<String>,
    },
    /// Stytch refused our project credentials, or answered what only a bug explains.
    Misconfigured {
        error_type: Option<String>,
        request_id: Option<String>,
    },
}

impl LookupError {
    fn from_stytch(err: &StytchError) -> Self {
        let error_type = err.error_type().map(str::to_owned);
        let request_id = err.request_id().map(str::to_owned);
        if err.is_session_invalid() {
            Self::Invalid {
                error_type,
                request_id,
            }
        } else if err.is_misconfigured() {
            tracing::error!(error = %err, "stytch refused our project credentials: check STYTCH_PROJECT_ID / STYTCH_SECRET");
            Self::Misconfigured {
                error_type,
                request_id,
            }
        } else if err.is_retryable() || matches!(err, StytchError::Decode { .. }) {
            tracing::warn!(error = %err, "stytch unavailable");
            Self::Unavailable {
                retry_after: err.retry_after(),
                error_type,
                request_id,
            }
        } else {
            tracing::error!(error = %err, "unexpected answer from stytch authenticate");
            Self::Misconfigured {
                error_type,
                request_id,
            }
        }
    }

    pub(crate) fn rejection(&self) -> Rejection {
        match self {
            Self::Invalid {
                error_type,
                request_id,
            } => Rejection::new(RejectionKind::SessionInvalid)
                .with_stytch(error_type.as_deref(), request_id.as_deref()),
            Self::Unavailable {
                retry_after,
                error_type,
                request_id,
            } => Rejection::new(RejectionKind::StytchUnavailable)
                .with_retry_after(
                    retry_after
                        .unwrap_or(DEFAULT_RETRY_AFTER)
                        .clamp(Duration::from_secs(1), Duration::from_secs(60)),
                )
                .with_stytch(error_type.as_deref(), request_id.as_deref()),
            Self::Misconfigured {
                error_type,
                request_id,
            } => Rejection::new(RejectionKind::Misconfigured)
                .with_stytch(error_type.as_deref(), request_id.as_deref()),
        }
    }
}

fn record_cache(result: &'static str) {
    metrics::counter!("stytch_auth_cache_total", "result" => result).increment(1);
}

/// Authenticates `credential`: refused if revoked here; served from the cache when possible;
/// otherwise verified (locally for a fresh JWT, by Stytch otherwise) once for all concurrent
/// requests carrying it.
pub(crate) async fn authenticate(
    shared: &Arc<Shared>,
    credential: &Credential,
) -> Result<Arc<CachedSession>, Rejection> {
    let key = credential.cache_key();
    let invalid = || Rejection::new(RejectionKind::SessionInvalid);
    if shared.denylist.is_key_denied(&key) {
        return Err(invalid());
    }
    let entry = match shared.cache.get(&key).await {
        Some(entry) => {
            record_cache("hit");
            entry
        }
        None if shared.cache.is_negative(&key).await => {
            record_cache("negative_hit");
            return Err(invalid());
        }
        None => {
            record_cache("miss");
            let verify = verify(Arc::clone(shared), credential.clone());
            match shared.cache.get_or_try_insert(key, verify).await {
                Ok(entry) => entry,
                Err(err) => {
                    if matches!(*err, LookupError::Invalid { .. }) {
                        shared.cache.insert_negative(key).await;
                    }
                    return Err(err.rejection());
                }
            }
        }
    };
    if entry.session.expires_at <= SystemTime::now() || shared.denylist.is_denied(&entry.session) {
        tracing::debug!("session revoked here or expired");
        return Err(invalid());
    }
    tracing::debug!(
        request_id = entry.request_id.as_deref().unwrap_or(""),
        member_id = %entry.session.member_id,
        "authenticated"
    );
    Ok(entry)
}

/// Verifies a credential that is not cached.
async fn verify(
    shared: Arc<Shared>,
    credential: Credential,
) -> Result<Arc<CachedSession>, LookupError> {
    #[cfg(feature = "jwt")]
    if let (Credential::Jwt(jwt), Some(verifier)) = (&credential, &shared.verifier) {
        match verifier.verify(jwt).await {
            Ok(verified) => {
                let now = SystemTime::now();
                let max_age_end = verified.issued_at + verifier.config().get_max_token_age();
                let until = verified
                    .expires_at
                    .min(max_age_end)
                    .min(verified.session.expires_at);
                let ttl = until.duration_since(now).unwrap_or_default();
                return Ok(Arc::new(CachedSession {
                    session: verified.session,
                    ttl,
                    refreshed_jwt: None,
                    request_id: None,
                }));
            }
            Err(err) if err.needs_remote() => {
                tracing::debug!(reason = %err, "session JWT needs Stytch: authenticating remotely");
            }
            Err(err) if err.is_unavailable() => {
                tracing::warn!(error = %err, "JWKS unavailable");
                return Err(LookupError::Unavailable {
                    retry_after: None,
                    error_type: None,
                    request_id: None,
                });
            }
            Err(err) => {
                tracing::debug!(reason = %err, "session JWT rejected locally");
                return Err(LookupError::Invalid {
                    error_type: None,
                    request_id: None,
                });
            }
        }
    }
    remote(&shared, credential).await
}

async fn remote(
    shared: &Shared,
    credential: Credential,
) -> Result<Arc<CachedSession>, LookupError> {
    let is_jwt = credential.is_jwt();
    let response = shared
        .client
        .authenticate(&AuthenticateRequest::new(credential))
        .await
        .map_err(|err| LookupError::from_stytch(&err))?;
    let now = SystemTime::now();
    let ttl = response
        .member_session
        .expires_at
        .duration_since(now)
        .unwrap_or_default()
        .min(shared.cache_config.max_ttl);
    tracing::debug!(request_id = %response.request_id, "session authenticated by stytch");
    Ok(Arc::new(CachedSession {
        session: response.member_session,
        ttl,
        refreshed_jwt: if is_jwt { response.session_jwt } else { None },
        request_id: Some(response.request_id),
    }))
}
