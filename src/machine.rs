//! [`MachineClient`]: what the layer hands the app for a request authenticated with a Stytch
//! machine-to-machine (M2M) access token, on a route whose rule takes machines. Distinct from
//! [`MemberSession`](crate::MemberSession): a handler asking for one never gets the other.

use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};

/// The M2M client behind a request (a cheap handle, one `Arc`), in the request's extensions
/// (an axum extractor with feature `axum`).
#[derive(Clone, PartialEq)]
pub struct MachineClient(Arc<MachineClientData>);

/// The fields of a [`MachineClient`]: what its access token says.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MachineClientData {
    /// The client's id (the token's `sub`).
    pub client_id: String,
    /// The token's scopes (`action:resource`, e.g. `read:documents`).
    pub scopes: Vec<String>,
    /// The client's custom claims (every non-registered claim of the token but `scope`).
    pub custom_claims: Map<String, Value>,
    /// When the token was issued (`iat`).
    pub issued_at: SystemTime,
    /// When the token expires (`exp`).
    pub expires_at: SystemTime,
}

impl MachineClient {
    /// A handle on `data`.
    pub fn new(data: MachineClientData) -> Self {
        Self(Arc::new(data))
    }

    /// Whether the token's scopes grant `action` on `resource`, by the rule of Stytch's SDKs
    /// (see [`crate::authz`]).
    pub fn has_scope(&self, resource: &str, action: &str) -> bool {
        crate::authz::scopes_grant(&self.scopes, resource, action)
    }
}

impl Deref for MachineClient {
    type Target = MachineClientData;

    fn deref(&self) -> &MachineClientData {
        &self.0
    }
}

impl std::fmt::Debug for MachineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token itself is never here; ids and scopes are not secrets.
        f.debug_struct("MachineClient")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}
