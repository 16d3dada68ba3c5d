//! Session cookies written by the layer: the refreshed JWT, and clearing on logout.

use std::time::{SystemTime, UNIX_EPOCH};

use cookie::{Cookie, SameSite};
use http::HeaderValue;

/// `SameSite` attribute of the cookies this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieSameSite {
    /// `SameSite=Lax` (Stytch's frontend SDK default).
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (requires `Secure`).
    None,
}

/// Attributes of the session cookies, which must match how they were set (by Stytch's
/// frontend SDK or by your backend) so that a refresh replaces and a logout clears them.
///
/// Default: `Path=/`, no `Domain`, `SameSite=Lax`, `Secure`, not `HttpOnly` (Stytch's frontend
/// SDK writes its cookies from JavaScript). Start from [`CookieSettings::default`] and set
/// fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CookieSettings {
    /// `Path` attribute.
    pub path: String,
    /// `Domain` attribute.
    pub domain: Option<String>,
    /// `SameSite` attribute.
    pub same_site: CookieSameSite,
    /// `Secure` attribute.
    pub secure: bool,
    /// `HttpOnly` attribute.
    pub http_only: bool,
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            path: "/".to_owned(),
            domain: None,
            same_site: CookieSameSite::Lax,
            secure: true,
            http_only: false,
        }
    }
}

impl CookieSettings {
    fn build<'c>(&self, name: &'c str, value: &'c str) -> Cookie<'c> {
        let mut c = Cookie::new(name, value);
        c.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            c.set_domain(domain.clone());
        }
        c.set_same_site(match self.same_site {
            CookieSameSite::Lax => SameSite::Lax,
            CookieSameSite::Strict => SameSite::Strict,
            CookieSameSite::None => SameSite::None,
        });
        c.set_secure(self.secure);
        c.set_http_only(self.http_only);
        c
    }

    /// `Set-Cookie` for a session cookie expiring with the session, with these attributes:
    /// what a backend that signs members in writes so that the layer's refresh replaces and
    /// its logout clears the cookie. `None` when `value` cannot be a cookie value.
    pub fn set_cookie(&self, name: &str, value: &str, expires: SystemTime) -> Option<HeaderValue> {
        let mut c = self.build(name, value);
        let secs = expires
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if let Ok(at) = cookie::time::OffsetDateTime::from_unix_timestamp(secs) {
            c.set_expires(at);
        }
        HeaderValue::from_str(&c.encoded().to_string()).ok()
    }

    /// `Set-Cookie` clearing a cookie: empty value, `Max-Age=0`, an expiry in the past, and the
    /// same `Path`/`Domain`/`SameSite`/`Secure`.
    pub fn clear_cookie(&self, name: &str) -> Option<HeaderValue> {
        let mut c = self.build(name, "");
        c.set_max_age(cookie::time::Duration::ZERO);
        c.set_expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
        HeaderValue::from_str(&c.encoded().to_string()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clearing_keeps_path_domain_and_flags() {
        // If this broke, a logout would leave the browser's cookie in place.
        let s = CookieSettings {
            path: "/app".into(),
            domain: Some("example.com".into()),
            same_site: CookieSameSite::Strict,
            secure: true,
            http_only: true,
        };
        let v = s.clear_cookie("stytch_session").unwrap();
        let v = v.to_str().unwrap();
        for part in [
            "stytch_session=",
            "Path=/app",
            "Domain=example.com",
            "SameSite=Strict",
            "Secure",
            "HttpOnly",
            "Max-Age=0",
            "Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ] {
            assert!(v.contains(part), "{part} missing in {v}");
        }
    }

    #[test]
    fn refreshed_cookie_expires_with_the_session() {
        // If this broke, the refreshed JWT cookie would vanish when the browser closes.
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let v = CookieSettings::default()
            .set_cookie("stytch_session_jwt", "a.b.c", at)
            .unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with("stytch_session_jwt=a.b.c"), "{v}");
        assert!(v.contains("Expires=Tue, 14 Nov 2023 22:13:20 GMT"), "{v}");
        assert!(v.contains("SameSite=Lax") && v.contains("Secure") && v.contains("Path=/"));
        assert!(!v.contains("HttpOnly"));
    }
}
