//! Request headers whose names contain `_`: dropped before forwarding, as nginx does by
//! default (`underscores_in_headers off`), except the ones allowed by name
//! (`--allow-underscore-header`).
//!
//! CGI, WSGI, PHP, Rack and their kin turn a header into a variable by upper-casing its name
//! and mapping `-` to `_`: `X_Stytch_Member_Id` and `X-Stytch-Member-Id` both become
//! `HTTP_X_STYTCH_MEMBER_ID`, and which one wins is the server's choice. The gateway strips
//! and writes headers by their `-` names, so an `_` spelling would pass through its checks
//! and reach such an app as the identity or forwarding header the gateway vouches for. A name
//! that reads as one of those once `_` is read as `-` can never be allowed.

use http::header::{HeaderMap, HeaderName};

use crate::error::GatewayError;
use crate::forwarded::CLIENT_FORWARDING;
use crate::identity::IDENTITY_HEADERS;

/// Headers the gateway or the auth layer reads, strips or writes besides the identity and
/// forwarding headers: hop-by-hop ones, credentials, framing, method overrides, the browser
/// signals of the cross-site check.
const RESERVED: [&str; 20] = [
    "authorization",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "http2-settings",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "origin",
    "sec-fetch-site",
    "content-type",
];

/// The identity headers' namespace: reserved whole, for headers the gateway may add later.
const IDENTITY_PREFIX: &str = "x-stytch-";

/// The request headers with `_` in their names that reach the upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnderscoreHeaders(Vec<HeaderName>);

impl UnderscoreHeaders {
    /// Lets `names` through (any case); every other name with `_` is dropped.
    ///
    /// # Errors
    ///
    /// [`GatewayError::UnderscoreHeader`] for a name without `_`, not a header name, or one
    /// that reads as a header the gateway strips or writes once `_` is read as `-`.
    pub(crate) fn new(names: &[String]) -> Result<Self, GatewayError> {
        let mut allowed = Vec::new();
        for raw in names {
            let invalid = |reason: String| GatewayError::UnderscoreHeader {
                name: raw.clone(),
                reason,
            };
            let name = HeaderName::from_bytes(raw.trim().as_bytes())
                .map_err(|_| invalid("not a header name".to_owned()))?;
            if !name.as_str().contains('_') {
                return Err(invalid(
                    "it has no '_' (only names with '_' are dropped)".to_owned(),
                ));
            }
            let dashed = name.as_str().replace('_', "-");
            if let Some(reserved) = reserved(&dashed) {
                return Err(invalid(format!(
                    "it reads as {reserved} once '_' is read as '-' (as CGI, WSGI, PHP and Rack do), a header the gateway strips or writes"
                )));
            }
            allowed.push(name);
        }
        Ok(Self(allowed))
    }

    /// Removes every header of `headers` whose name has `_`, except the allowed ones.
    pub(crate) fn strip(&self, headers: &mut HeaderMap) {
        if !headers.keys().any(|name| name.as_str().contains('_')) {
            return;
        }
        let dropped: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().contains('_') && !self.0.contains(name))
            .cloned()
            .collect();
        for name in dropped {
            tracing::debug!(header = name.as_str(), "request header with '_' dropped");
            headers.remove(name);
        }
    }
}

/// The header `dashed` (lowercase, `-` for `_`) reads as, if the gateway strips or writes it.
fn reserved(dashed: &str) -> Option<String> {
    if dashed.starts_with(IDENTITY_PREFIX) {
        return Some(format!("an identity header ({IDENTITY_PREFIX}*)"));
    }
    IDENTITY_HEADERS
        .iter()
        .chain(CLIENT_FORWARDING.iter())
        .map(HeaderName::as_str)
        .chain(RESERVED)
        .find(|reserved| *reserved == dashed)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn underscore_spellings_of_the_gateways_headers_can_never_be_allowed() {
        // If this broke, `--allow-underscore-header X_Stytch_Roles` would let a client's
        // roles reach a WSGI or PHP app as the gateway's own X-Stytch-Roles.
        for reserved in [
            "X_Stytch_Member_Id",
            "x_stytch_roles",
            "X_Stytch_Anything",
            "X_Forwarded_For",
            "X_Real_IP",
            "X_Forwarded_Proto",
            "X_HTTP_Method_Override",
            "Transfer_Encoding",
            "Sec_Fetch_Site",
        ] {
            let err = UnderscoreHeaders::new(&[reserved.to_owned()]).unwrap_err();
            assert!(err.is_config());
            assert!(err.to_string().contains("once '_' is read as '-'"), "{err}");
        }
        for bad in ["X-App-Tenant", "bad name_", ""] {
            assert!(UnderscoreHeaders::new(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_with_underscores_are_dropped_unless_allowed() {
        // If this broke, `X_Stytch_Member_Id: member-evil` would reach an app that reads
        // headers through CGI-style variables as the member's identity.
        let allowed = UnderscoreHeaders::new(&["X_App_Tenant".to_owned()]).unwrap();
        let mut h = HeaderMap::new();
        for name in [
            "x_stytch_member_id",
            "x_forwarded_for",
            "x_app_tenant",
            "x-kept",
        ] {
            h.insert(HeaderName::from_static(name), HeaderValue::from_static("1"));
        }
        allowed.strip(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["x-kept", "x_app_tenant"]);
        UnderscoreHeaders::default().strip(&mut h);
        assert_eq!(h.len(), 1);
    }
}
