//! TLS towards the upstream: the rustls client configuration of an `https://` upstream.
//!
//! The upstream's certificate is verified against the operating system's trust store
//! ([`rustls_platform_verifier`], the verifier reqwest uses too), or, with
//! `--upstream-ca FILE`, against the PEM certificates of that file only. The crypto provider
//! is aws-lc-rs, named explicitly, so a second provider compiled in elsewhere can never make
//! rustls guess at run time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::error::GatewayError;

/// Which certificates an `https://` upstream's certificate must chain to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum UpstreamRoots {
    /// The operating system's trust store.
    #[default]
    System,
    /// Only the CA certificates in this PEM file.
    CaFile(PathBuf),
}

/// The rustls client configuration for the upstream (ALPN is set by the connector).
///
/// # Errors
///
/// [`GatewayError::UpstreamCa`] when the CA file cannot be read or holds no usable
/// certificate; [`GatewayError::Tls`] when the system verifier cannot be set up.
pub(crate) fn client_config(roots: &UpstreamRoots) -> Result<ClientConfig, GatewayError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(GatewayError::Tls)?;
    let config = match roots {
        UpstreamRoots::System => {
            let verifier =
                rustls_platform_verifier::Verifier::new(provider).map_err(GatewayError::Tls)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
        UpstreamRoots::CaFile(path) => builder
            .with_root_certificates(load_roots(path)?)
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Reads the CA certificates of a PEM file into a root store.
fn load_roots(path: &Path) -> Result<RootCertStore, GatewayError> {
    let invalid = |reason: String| GatewayError::UpstreamCa {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|err| invalid(err.to_string()))?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|err| invalid(format!("not PEM: {err}")))?;
        store
            .add(cert)
            .map_err(|err| invalid(format!("not a usable CA certificate: {err}")))?;
    }
    if store.is_empty() {
        return Err(invalid("no CERTIFICATE block".to_owned()));
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_file() {
        // If this broke, a wrong --upstream-ca would start a gateway that trusts nothing (every
        // request a 502) instead of exiting with the reason.
        let dir = std::env::temp_dir();
        let path = dir.join(format!("gateway-ca-test-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = client_config(&UpstreamRoots::CaFile(path.clone())).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(err.is_config());
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let missing = dir.join("gateway-ca-test-missing.pem");
        let err = client_config(&UpstreamRoots::CaFile(missing)).unwrap_err();
        assert!(err.is_config());
    }

    #[test]
    fn the_system_roots_load() {
        // If this broke, every `https://` upstream without --upstream-ca would fail at start.
        client_config(&UpstreamRoots::System).unwrap();
    }
}
