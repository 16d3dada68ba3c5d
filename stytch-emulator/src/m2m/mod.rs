//! M2M (machine-to-machine) clients and what they may be granted, as Stytch's M2M API and
//! token endpoint behave (read in the official SDKs: python `stytch/consumer/api/m2m.py`,
//! `m2m_clients.py`, `m2m_clients_secrets.py`; node `lib/b2c/m2m.ts`, `m2m_local.ts`):
//!
//! - a client has an id (`m2m-client-test-…`), a secret, a status (`active`/`inactive`),
//!   scopes, and while a secret rotation runs a second (`next`) secret; both secrets work
//!   until the rotation completes or is cancelled;
//! - a token request names scopes (space-separated in `scope`); all must be the client's own,
//!   none means all of them; an inactive or deleted client, or a wrong (e.g. rotated-out)
//!   secret, gets no token; tokens issued before stay valid until their `exp`, since they are
//!   verified locally.
//!
//! [`registry`] holds the clients; this module holds the public types. A leaf: uses no
//! other module of the crate.

pub(crate) mod registry;

use std::fmt;

use serde_json::{Map, Value};

/// A client secret (`Debug` prints `ClientSecret(..)`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(pub(crate) String);

impl ClientSecret {
    /// The raw value, to send as a credential. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// An M2M access token, a JWT (`Debug` prints `M2mAccessToken(..)`).
#[derive(Clone, PartialEq, Eq)]
pub struct M2mAccessToken(pub(crate) String);

impl M2mAccessToken {
    /// The raw JWT, to send as `Authorization: Bearer`. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for M2mAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("M2mAccessToken(..)")
    }
}

/// A client to create: its scopes, and optionally its id, secret, name and custom claims.
///
/// ```
/// # use stytch_emulator::NewM2mClient;
/// let reader = NewM2mClient::new(&["read:documents"]).name("nightly export");
/// # let _ = reader;
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NewM2mClient {
    pub(crate) scopes: Vec<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<String>,
    pub(crate) client_name: String,
    pub(crate) client_description: String,
    pub(crate) trusted_metadata: Map<String, Value>,
    pub(crate) custom_claims: Map<String, Value>,
}

impl fmt::Debug for NewM2mClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewM2mClient")
            .field("scopes", &self.scopes)
            .field("client_id", &self.client_id)
            .field("client_name", &self.client_name)
            .finish_non_exhaustive()
    }
}

impl NewM2mClient {
    /// A client with these scopes (`action:resource`, e.g. `read:documents`, or `*:documents`).
    pub fn new(scopes: &[&str]) -> Self {
        Self {
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Self::default()
        }
    }

    /// Uses this client id instead of a generated one (Stytch allows importing clients).
    #[must_use]
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Uses this secret (at least 8 characters) instead of a generated one.
    #[must_use]
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Sets the human-readable name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.client_description = description.into();
        self
    }

    /// Sets the client's `trusted_metadata`.
    #[must_use]
    pub fn trusted_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.trusted_metadata = metadata;
        self
    }

    /// Claims added to every access token of the client (Stytch's custom claim templates;
    /// reserved JWT claims and `scope` are dropped).
    #[must_use]
    pub fn custom_claims(mut self, claims: Map<String, Value>) -> Self {
        self.custom_claims = claims;
        self
    }
}

/// A client as Stytch shows it (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct M2mClient {
    /// The client id.
    pub client_id: String,
    /// The name.
    pub client_name: String,
    /// The description.
    pub client_description: String,
    /// `active` or `inactive`.
    pub status: String,
    /// The scopes it may be granted.
    pub scopes: Vec<String>,
    /// The last four characters of its secret.
    pub client_secret_last_four: String,
    /// The last four characters of the next secret, while a rotation runs.
    pub next_client_secret_last_four: Option<String>,
}

/// A created client's id and its secret (shown once, as at Stytch).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct M2mCredentials {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: ClientSecret,
}

/// Why an M2M operation or token request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum M2mError {
    NotFound,
    DuplicateClientId,
    InsecureSecret,
    InvalidScope(String),
    InvalidStatus,
    AlreadyRotating,
    NotRotating,
    /// Unknown or inactive client, or wrong secret (token endpoint).
    InvalidClient,
    /// A requested scope the client does not have (token endpoint).
    ScopeNotAllowed(String),
}
