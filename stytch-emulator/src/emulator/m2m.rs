//! [`Emulator`] methods for M2M clients and tokens. Stytch's own M2M endpoints
//! (`/v1/m2m/clients…`, `/v1/public/{project_id}/oauth2/token`) do the same over HTTP; the
//! control API adds `POST /emulator/v1/m2m/clients` (with custom claims) and
//! `PUT /emulator/v1/m2m/token_lifetime`.

use std::time::Duration;

use super::Emulator;
use crate::m2m::registry::{ClientUpdate, new_client_secret};
use crate::m2m::{ClientSecret, M2mAccessToken, M2mClient, M2mCredentials, M2mError, NewM2mClient};
use crate::types::EmulatorError;

fn emulator_error(error: M2mError) -> EmulatorError {
    match error {
        M2mError::NotFound => EmulatorError::UnknownM2mClient,
        M2mError::DuplicateClientId => EmulatorError::DuplicateM2mClient,
        M2mError::InsecureSecret | M2mError::InvalidScope(_) | M2mError::InvalidStatus => {
            EmulatorError::InvalidM2mClient
        }
        M2mError::AlreadyRotating | M2mError::NotRotating => EmulatorError::M2mSecretRotation,
        M2mError::InvalidClient => EmulatorError::M2mClientRefused,
        M2mError::ScopeNotAllowed(_) => EmulatorError::M2mScopeNotAllowed,
    }
}

impl Emulator {
    /// Creates an M2M client and returns its id and secret.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::DuplicateM2mClient`], [`EmulatorError::InvalidM2mClient`].
    pub fn create_m2m_client(&self, client: NewM2mClient) -> Result<M2mCredentials, EmulatorError> {
        let id = self.shared.new_id("m2m-client");
        let (record, secret) = self
            .shared
            .m2m()
            .create(client, id, new_client_secret())
            .map_err(emulator_error)?;
        Ok(M2mCredentials {
            client_id: record.client_id,
            client_secret: ClientSecret(secret),
        })
    }

    /// The client with this id, as Stytch's Get M2M Client shows it.
    pub fn m2m_client(&self, client_id: &str) -> Option<M2mClient> {
        self.shared.m2m().get(client_id).map(|c| c.public())
    }

    /// Every M2M client, oldest first.
    pub fn m2m_clients(&self) -> Vec<M2mClient> {
        let registry = self.shared.m2m();
        registry
            .search(&[], true)
            .iter()
            .map(|c| c.public())
            .collect()
    }

    /// Activates or deactivates a client; an inactive client gets no new token (tokens it
    /// has stay valid until they expire).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownM2mClient`].
    pub fn set_m2m_client_active(
        &self,
        client_id: &str,
        active: bool,
    ) -> Result<(), EmulatorError> {
        let status = if active { "active" } else { "inactive" };
        let update = ClientUpdate {
            status: Some(status.to_owned()),
            ..ClientUpdate::default()
        };
        self.shared
            .m2m()
            .update(client_id, update)
            .map(drop)
            .map_err(emulator_error)
    }

    /// Replaces a client's scopes.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownM2mClient`], [`EmulatorError::InvalidM2mClient`].
    pub fn set_m2m_client_scopes(
        &self,
        client_id: &str,
        scopes: &[&str],
    ) -> Result<(), EmulatorError> {
        let update = ClientUpdate {
            scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
            ..ClientUpdate::default()
        };
        self.shared
            .m2m()
            .update(client_id, update)
            .map(drop)
            .map_err(emulator_error)
    }

    /// Deletes a client: it gets no new token; tokens issued before stay valid until their
    /// `exp`, as at Stytch (they are verified locally).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownM2mClient`].
    pub fn delete_m2m_client(&self, client_id: &str) -> Result<(), EmulatorError> {
        self.shared.m2m().delete(client_id).map_err(emulator_error)
    }

    /// Starts a secret rotation and returns the next secret; both secrets work until
    /// [`complete_m2m_secret_rotation`](Self::complete_m2m_secret_rotation) or
    /// [`cancel_m2m_secret_rotation`](Self::cancel_m2m_secret_rotation).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownM2mClient`], [`EmulatorError::M2mSecretRotation`].
    pub fn start_m2m_secret_rotation(
        &self,
        client_id: &str,
    ) -> Result<ClientSecret, EmulatorError> {
        let next = new_client_secret();
        self.shared
            .m2m()
            .rotate_start(client_id, next.clone())
            .map_err(emulator_error)?;
        Ok(ClientSecret(next))
    }

    /// Completes a rotation: the next secret becomes the secret; the old one gets no token.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownM2mClient`], [`EmulatorError::M2mSecretRotation`].
    pub fn complete_m2m_secret_rotation(&self, client_id: &str) -> Result<(), EmulatorError> {
        self.shared
            .m2m()
            .rotate(client_id)
            .map(drop)
            .map_err(emulator_error)
    }

    /// Cancels a rotation: the next secret stops working.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::UnknownM2mClient`], [`EmulatorError::M2mSecretRotation`].
    pub fn cancel_m2m_secret_rotation(&self, client_id: &str) -> Result<(), EmulatorError> {
        self.shared
            .m2m()
            .rotate_cancel(client_id)
            .map(drop)
            .map_err(emulator_error)
    }

    /// An access token for a client, as the token endpoint mints it: the requested scopes
    /// (`None`: all of the client's), signed with the current key, living
    /// [`set_m2m_token_lifetime`](Self::set_m2m_token_lifetime) (one hour by default).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::M2mClientRefused`], [`EmulatorError::M2mScopeNotAllowed`].
    pub fn m2m_token(
        &self,
        client_id: &str,
        client_secret: &ClientSecret,
        scopes: Option<&[&str]>,
    ) -> Result<M2mAccessToken, EmulatorError> {
        let scopes = scopes.map(|s| s.iter().map(|s| (*s).to_owned()).collect());
        let grant = self
            .shared
            .m2m()
            .grant(client_id, client_secret.expose_secret(), scopes)
            .map_err(emulator_error)?;
        Ok(M2mAccessToken(self.shared.mint_m2m(&grant).0))
    }

    /// The lifetime of M2M access tokens minted from now on.
    pub fn set_m2m_token_lifetime(&self, lifetime: Duration) {
        self.shared
            .set_m2m_token_lifetime(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    }
}
