//! The crate's plain public types: secret strings (tokens and JWTs that never show in
//! `Debug`), a created session's credentials, a recorded request and the error type.
//!
//! A leaf: uses no other module of the crate.

use std::fmt;

use serde_json::Value;

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(pub(crate) String);

        impl $name {
            /// The raw value, to send as a credential. Never log it.
            pub fn expose_secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_string!(
    /// An opaque session token minted by the emulator. `Debug` prints `SessionToken(..)`.
    SessionToken
);
secret_string!(
    /// A session JWT minted by the emulator. `Debug` prints `SessionJwt(..)`.
    SessionJwt
);

/// Why an emulator operation was refused. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// No organization has this id.
    #[error("unknown organization")]
    UnknownOrganization,
    /// No member has this id.
    #[error("unknown member")]
    UnknownMember,
    /// No live session has this id.
    #[error("unknown session")]
    UnknownSession,
    /// No M2M client has this id.
    #[error("unknown M2M client")]
    UnknownM2mClient,
    /// An M2M client with this id exists already.
    #[error("an M2M client with this id exists")]
    DuplicateM2mClient,
    /// An M2M client's secret shorter than 8 characters, a scope empty or with whitespace,
    /// or a status other than `active` and `inactive`.
    #[error(
        "invalid M2M client: secret of 8 characters or more, scopes without whitespace, status active or inactive"
    )]
    InvalidM2mClient,
    /// A secret rotation started twice, or completed or cancelled when none runs.
    #[error("the M2M client is already rotating its secret, or is not rotating it")]
    M2mSecretRotation,
    /// A token request from an unknown, deleted or inactive client, or with a wrong secret.
    #[error("M2M token refused: unknown or inactive client, or wrong secret")]
    M2mClientRefused,
    /// A token request for a scope the client does not have.
    #[error("M2M token refused: a requested scope is not the client's")]
    M2mScopeNotAllowed,
    /// A member status other than those in [`MEMBER_STATUSES`](crate::MEMBER_STATUSES).
    #[error("invalid member status: one of active, invited, pending, deleted")]
    InvalidStatus,
    /// A webhook secret that is not `whsec_` followed by standard base64.
    #[error("invalid webhook secret: expected whsec_ followed by base64")]
    InvalidWebhookSecret,
    /// A webhook URL that is not an absolute `http` or `https` URL.
    #[error("invalid webhook URL: expected an absolute http or https URL")]
    InvalidWebhookUrl,
    /// No message with this id in the delivery log.
    #[error("unknown webhook message")]
    UnknownMessage,
}

/// A session created through the control API, with its credentials.
///
/// `Debug` does not show the token or JWT.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session's member.
    pub member_id: String,
    /// The member's organization.
    pub organization_id: String,
    /// The session id.
    pub member_session_id: String,
    /// The opaque session token.
    pub session_token: SessionToken,
    /// A session JWT, valid for 5 minutes.
    pub session_jwt: SessionJwt,
}

/// One request the emulated Stytch API received (control API calls are not recorded).
///
/// `Debug` shows method, path, header names and body field names only; credential headers
/// are marked sensitive.
#[derive(Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Path, without query.
    pub path: String,
    /// Headers as received.
    pub headers: http::HeaderMap,
    /// The body parsed as JSON; `Null` when empty or not JSON.
    pub body: Value,
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(http::HeaderName::as_str).collect();
        let fields: Vec<&str> = self
            .body
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &headers)
            .field("body_fields", &fields)
            .finish()
    }
}
