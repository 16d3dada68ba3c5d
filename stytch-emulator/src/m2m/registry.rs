//! The M2M clients of the project and the rules of Stytch's M2M API over them: create,
//! update, delete, search, secret rotation, and what a token request is granted.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::{M2mClient, M2mError, NewM2mClient};

/// Claims a client's custom claims may not set.
const RESERVED: [&str; 8] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope"];

/// One client as stored. `Debug` hides the secrets.
#[derive(Clone)]
pub(crate) struct ClientRecord {
    pub(crate) client_id: String,
    pub(crate) client_name: String,
    pub(crate) client_description: String,
    pub(crate) status: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) trusted_metadata: Map<String, Value>,
    pub(crate) custom_claims: Map<String, Value>,
    secret: String,
    next_secret: Option<String>,
}

impl fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("status", &self.status)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

fn last_four(secret: &str) -> String {
    let start = secret
        .char_indices()
        .rev()
        .nth(3)
        .map_or(0, |(index, _)| index);
    secret[start..].to_owned()
}

/// A fresh client secret: 36 random bytes, base64url (48 characters).
pub(crate) fn new_client_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 36];
    aws_lc_rs::rand::fill(&mut bytes).expect("system RNG failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn secrets_equal(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

impl ClientRecord {
    /// The client as Stytch shows it.
    pub(crate) fn public(&self) -> M2mClient {
        M2mClient {
            client_id: self.client_id.clone(),
            client_name: self.client_name.clone(),
            client_description: self.client_description.clone(),
            status: self.status.clone(),
            scopes: self.scopes.clone(),
            client_secret_last_four: last_four(&self.secret),
            next_client_secret_last_four: self.next_secret.as_deref().map(last_four),
        }
    }

    /// Whether `secret` is the client's secret, or its next one during a rotation.
    fn secret_matches(&self, secret: &str) -> bool {
        secrets_equal(&self.secret, secret)
            || self
                .next_secret
                .as_deref()
                .is_some_and(|next| secrets_equal(next, secret))
    }
}

/// Changes to a client (Stytch's Update M2M Client): each `Some` replaces the field.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientUpdate {
    pub(crate) client_name: Option<String>,
    pub(crate) client_description: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) trusted_metadata: Option<Map<String, Value>>,
}

/// What a token request is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) custom_claims: Map<String, Value>,
}

/// A search filter of Stytch's Search M2M Clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter {
    ClientId(Vec<String>),
    ClientName(Vec<String>),
    Scopes(Vec<String>),
}

impl Filter {
    fn matches(&self, client: &ClientRecord) -> bool {
        match self {
            Self::ClientId(ids) => ids.contains(&client.client_id),
            Self::ClientName(names) => names.contains(&client.client_name),
            Self::Scopes(scopes) => scopes.iter().any(|s| client.scopes.contains(s)),
        }
    }
}

fn valid_scopes(scopes: &[String]) -> Result<(), M2mError> {
    match scopes
        .iter()
        .find(|s| s.is_empty() || s.chars().any(char::is_whitespace))
    {
        Some(bad) => Err(M2mError::InvalidScope(bad.clone())),
        None => Ok(()),
    }
}

/// The project's M2M clients, in creation order.
#[derive(Debug, Default)]
pub(crate) struct M2mRegistry {
    clients: BTreeMap<u64, ClientRecord>,
    next: u64,
}

impl M2mRegistry {
    fn find(&self, client_id: &str) -> Option<(u64, &ClientRecord)> {
        self.clients
            .iter()
            .find(|(_, c)| c.client_id == client_id)
            .map(|(k, c)| (*k, c))
    }

    fn find_mut(&mut self, client_id: &str) -> Result<&mut ClientRecord, M2mError> {
        self.clients
            .values_mut()
            .find(|c| c.client_id == client_id)
            .ok_or(M2mError::NotFound)
    }

    /// The client with this id.
    pub(crate) fn get(&self, client_id: &str) -> Option<&ClientRecord> {
        self.find(client_id).map(|(_, c)| c)
    }

    /// Creates a client; `generated_id` and `generated_secret` are used unless `new` names
    /// its own. Returns it with its secret.
    pub(crate) fn create(
        &mut self,
        new: NewM2mClient,
        generated_id: String,
        generated_secret: String,
    ) -> Result<(ClientRecord, String), M2mError> {
        valid_scopes(&new.scopes)?;
        let client_id = new.client_id.unwrap_or(generated_id);
        if self.get(&client_id).is_some() {
            return Err(M2mError::DuplicateClientId);
        }
        let secret = new.client_secret.unwrap_or(generated_secret);
        if secret.chars().count() < 8 {
            return Err(M2mError::InsecureSecret);
        }
        let mut custom_claims = new.custom_claims;
        custom_claims.retain(|k, _| !RESERVED.contains(&k.as_str()));
        let record = ClientRecord {
            client_id,
            client_name: new.client_name,
            client_description: new.client_description,
            status: "active".to_owned(),
            scopes: new.scopes,
            trusted_metadata: new.trusted_metadata,
            custom_claims,
            secret: secret.clone(),
            next_secret: None,
        };
        self.clients.insert(self.next, record.clone());
        self.next += 1;
        Ok((record, secret))
    }

    /// Applies `update` and returns the client as it is now.
    pub(crate) fn update(
        &mut self,
        client_id: &str,
        update: ClientUpdate,
    ) -> Result<ClientRecord, M2mError> {
        if let Some(status) = &update.status
            && !matches!(status.as_str(), "active" | "inactive")
        {
            return Err(M2mError::InvalidStatus);
        }
        if let Some(scopes) = &update.scopes {
            valid_scopes(scopes)?;
        }
        let client = self.find_mut(client_id)?;
        if let Some(name) = update.client_name {
            client.client_name = name;
        }
        if let Some(description) = update.client_description {
            client.client_description = description;
        }
        if let Some(status) = update.status {
            client.status = status;
        }
        if let Some(scopes) = update.scopes {
            client.scopes = scopes;
        }
        if let Some(metadata) = update.trusted_metadata {
            client.trusted_metadata = metadata;
        }
        Ok(client.clone())
    }

    /// Deletes a client: it can mint no new token.
    pub(crate) fn delete(&mut self, client_id: &str) -> Result<(), M2mError> {
        let (key, _) = self.find(client_id).ok_or(M2mError::NotFound)?;
        self.clients.remove(&key);
        Ok(())
    }

    /// Clients matching every filter (`all`) or any (`!all`); no filter: every client.
    pub(crate) fn search(&self, filters: &[Filter], all: bool) -> Vec<ClientRecord> {
        self.clients
            .values()
            .filter(|c| {
                filters.is_empty()
                    || if all {
                        filters.iter().all(|f| f.matches(c))
                    } else {
                        filters.iter().any(|f| f.matches(c))
                    }
            })
            .cloned()
            .collect()
    }

    /// Starts a secret rotation: `next_secret` works alongside the current secret.
    pub(crate) fn rotate_start(
        &mut self,
        client_id: &str,
        next_secret: String,
    ) -> Result<ClientRecord, M2mError> {
        let client = self.find_mut(client_id)?;
        if client.next_secret.is_some() {
            return Err(M2mError::AlreadyRotating);
        }
        client.next_secret = Some(next_secret);
        Ok(client.clone())
    }

    /// Cancels a rotation: only the current secret works.
    pub(crate) fn rotate_cancel(&mut self, client_id: &str) -> Result<ClientRecord, M2mError> {
        let client = self.find_mut(client_id)?;
        client.next_secret.take().ok_or(M2mError::NotRotating)?;
        Ok(client.clone())
    }

    /// Completes a rotation: the next secret becomes the secret, the old one stops working.
    pub(crate) fn rotate(&mut self, client_id: &str) -> Result<ClientRecord, M2mError> {
        let client = self.find_mut(client_id)?;
        client.secret = client.next_secret.take().ok_or(M2mError::NotRotating)?;
        Ok(client.clone())
    }

    /// The next secret of a client rotating its secret.
    pub(crate) fn next_secret(&self, client_id: &str) -> Option<String> {
        self.get(client_id)?.next_secret.clone()
    }

    /// What a token request of `client_id` with `secret` for `requested` scopes (none: all
    /// the client's) is granted.
    pub(crate) fn grant(
        &self,
        client_id: &str,
        secret: &str,
        requested: Option<Vec<String>>,
    ) -> Result<Grant, M2mError> {
        let client = self
            .get(client_id)
            .filter(|c| c.status == "active" && c.secret_matches(secret))
            .ok_or(M2mError::InvalidClient)?;
        let scopes = match requested {
            None => client.scopes.clone(),
            Some(requested) => {
                if let Some(extra) = requested.iter().find(|s| !client.scopes.contains(s)) {
                    return Err(M2mError::ScopeNotAllowed(extra.clone()));
                }
                requested
            }
        };
        Ok(Grant {
            client_id: client.client_id.clone(),
            scopes,
            custom_claims: client.custom_claims.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_with(scopes: &[&str]) -> (M2mRegistry, String, String) {
        let mut r = M2mRegistry::default();
        let (client, secret) = r
            .create(
                NewM2mClient::new(scopes),
                "m2m-client-test-1".into(),
                "s3cret-0001".into(),
            )
            .unwrap();
        (r, client.client_id, secret)
    }

    #[test]
    fn tokens_get_the_requested_scopes_if_the_client_has_them() {
        // If this broke, a client could be granted scopes it was never given, or refused
        // its own.
        let (r, id, secret) = registry_with(&["read:documents", "write:documents"]);
        assert_eq!(
            r.grant(&id, &secret, None).unwrap().scopes,
            ["read:documents", "write:documents"]
        );
        assert_eq!(
            r.grant(&id, &secret, Some(vec!["read:documents".into()]))
                .unwrap()
                .scopes,
            ["read:documents"]
        );
        assert_eq!(
            r.grant(&id, &secret, Some(vec!["delete:documents".into()])),
            Err(M2mError::ScopeNotAllowed("delete:documents".into()))
        );
        assert_eq!(r.grant(&id, "wrong", None), Err(M2mError::InvalidClient));
        assert_eq!(r.grant("nope", &secret, None), Err(M2mError::InvalidClient));
    }

    #[test]
    fn rotation_keeps_both_secrets_until_it_completes() {
        // If this broke, a rotation would lock a client out early, or keep a rotated-out
        // secret working.
        let (mut r, id, old) = registry_with(&["read:documents"]);
        r.rotate_start(&id, "n3xt-secret".into()).unwrap();
        assert_eq!(
            r.rotate_start(&id, "x".into()).unwrap_err(),
            M2mError::AlreadyRotating
        );
        assert!(r.grant(&id, &old, None).is_ok() && r.grant(&id, "n3xt-secret", None).is_ok());
        assert_eq!(
            r.get(&id)
                .unwrap()
                .public()
                .next_client_secret_last_four
                .as_deref(),
            Some("cret")
        );
        r.rotate(&id).unwrap();
        assert_eq!(r.grant(&id, &old, None), Err(M2mError::InvalidClient));
        assert!(r.grant(&id, "n3xt-secret", None).is_ok());
        assert_eq!(r.rotate_cancel(&id).unwrap_err(), M2mError::NotRotating);
    }

    #[test]
    fn inactive_or_deleted_clients_get_no_token_and_ids_are_unique() {
        // If this broke, deactivating or deleting a client would not stop new tokens.
        let (mut r, id, secret) = registry_with(&["read:documents"]);
        let inactive = ClientUpdate {
            status: Some("inactive".into()),
            ..ClientUpdate::default()
        };
        r.update(&id, inactive).unwrap();
        assert_eq!(r.grant(&id, &secret, None), Err(M2mError::InvalidClient));
        r.delete(&id).unwrap();
        assert_eq!(r.delete(&id), Err(M2mError::NotFound));
        let dup = NewM2mClient::new(&[]).client_id("c");
        r.create(dup.clone(), "x".into(), "s3cret-0002".into())
            .unwrap();
        assert_eq!(
            r.create(dup, "y".into(), "s3cret-0003".into()).unwrap_err(),
            M2mError::DuplicateClientId
        );
        let short = NewM2mClient::new(&[]).client_secret("short");
        assert_eq!(
            r.create(short, "z".into(), "unused".into()).unwrap_err(),
            M2mError::InsecureSecret
        );
    }
}
