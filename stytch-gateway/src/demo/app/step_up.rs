//! The demo's page behind MFA and its step-up, behind the gateway's rule `GET /billing`
//! (`mfa = true`, `step_up = "/step-up"`):
//!
//! - `GET /billing`: reached only with a second factor;
//! - `GET /step-up?return_to=…`: where the gateway sends a browser without one (303), with a
//!   "verify with your authenticator (demo)" button;
//! - `POST /step-up` (`return_to` form field): adds a TOTP factor to the member's session
//!   through the emulator's control API (server side: the project secret never reaches the
//!   browser), sets the fresh session JWT cookie, and sends the browser back to `return_to`,
//!   a local path only (anything else goes to `/`).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};

use super::{DemoApp, Identity, SESSION_MINUTES, form_field, is_cross_site, unauthenticated};
use crate::body::{Body, BoxError, full_body, text_response};

const STEP_UP_HTML: &str = include_str!("step-up.html");
const BILLING_HTML: &str = include_str!("billing.html");
/// Where `{{RETURN_TO}}` goes in the step-up page.
const RETURN_TO_SLOT: &str = "{{RETURN_TO}}";

/// `GET /billing`.
pub(super) fn billing() -> Response<Body> {
    html(BILLING_HTML.to_owned())
}

/// `GET /step-up?return_to=…`: the page, its form carrying `return_to` (a local path).
pub(super) fn page(uri: &Uri) -> Response<Body> {
    html(page_html(uri))
}

fn page_html(uri: &Uri) -> String {
    let asked = uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "return_to")
            .map(|(_, value)| value.into_owned())
    });
    let target = local_path(asked.as_deref());
    STEP_UP_HTML.replace(RETURN_TO_SLOT, &escape_html(target))
}

/// `return_to` when it is a path on this site, else `/`: never `//host`, `/\host`, a URL or
/// a control character, which a browser could follow to another site.
fn local_path(return_to: Option<&str>) -> &str {
    match return_to {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.chars().any(|c| c.is_control() || c == '\\')
                && HeaderValue::from_str(path).is_ok() =>
        {
            path
        }
        _ => "/",
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn html(page: String) -> Response<Body> {
    let mut response = Response::new(full_body(page));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What the control API answers for a factor added (the session itself is not needed).
#[derive(serde::Deserialize)]
struct SteppedUp {
    session_jwt: String,
}

impl DemoApp {
    /// `POST /step-up`: a TOTP factor on the member's session, the fresh JWT in Stytch's
    /// cookie, then `303 return_to`.
    pub(super) async fn step_up<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if is_cross_site(req.headers()) {
            return text_response(StatusCode::FORBIDDEN, "cross-site step-up refused\n");
        }
        let Some(identity) = Identity::of(req.headers()) else {
            return unauthenticated();
        };
        let Ok(return_to) = form_field(req, "return_to").await else {
            return text_response(StatusCode::BAD_REQUEST, "bad form\n");
        };
        let jwt = match self.add_totp(&identity.member_session_id).await {
            Ok(jwt) => jwt,
            Err(err) => {
                tracing::warn!(error = %crate::error::chain(&*err), "demo step-up: the emulator did not add the factor");
                return text_response(StatusCode::BAD_GATEWAY, "the emulator is unavailable\n");
            }
        };
        let target = local_path(return_to.as_deref());
        let mut response = text_response(StatusCode::SEE_OTHER, "verified\n");
        let headers = response.headers_mut();
        if let Ok(location) = HeaderValue::from_str(target) {
            headers.insert(header::LOCATION, location);
        }
        let expires = SystemTime::now() + Duration::from_secs(SESSION_MINUTES * 60);
        if let Some(cookie) = self
            .inner
            .cookies
            .set_cookie("stytch_session_jwt", &jwt, expires)
        {
            headers.append(header::SET_COOKIE, cookie);
        }
        tracing::info!(
            member_id = identity.member_id,
            "demo step-up: TOTP factor added"
        );
        response
    }

    /// Adds a TOTP factor to the session through the emulator's control API (Stytch's MFA
    /// step); returns the fresh session JWT, which carries it.
    async fn add_totp(&self, member_session_id: &str) -> Result<String, BoxError> {
        let id: String = form_urlencoded::byte_serialize(member_session_id.as_bytes()).collect();
        let url: Uri = format!("{}/{id}/factors", self.inner.control.sessions_url).parse()?;
        let body = serde_json::json!({ "type": "totp", "delivery_method": "authenticator_app" });
        let bytes = self.control_post(url, &body).await?;
        let answer: SteppedUp = serde_json::from_slice(&bytes)?;
        Ok(answer.session_jwt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_up_page_sends_the_browser_back_only_to_a_local_path() {
        // If this broke, a link to the step-up page with `return_to=//evil.test` (or a URL)
        // would send a member who just verified to another site (an open redirect), or a
        // crafted `return_to` would inject markup into the page.
        assert_eq!(local_path(Some("/billing?tab=1")), "/billing?tab=1");
        for bad in [
            "//evil.test/",
            "https://evil.test/",
            "/\\evil.test",
            "billing",
            "/a\r\nLocation: //x",
            "",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
        let uri: Uri = "/step-up?return_to=%2Fbilling%22%3E%3Cscript%3E"
            .parse()
            .unwrap();
        let page = page_html(&uri);
        assert!(
            page.contains("value=\"/billing&quot;&gt;&lt;script&gt;\""),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains(RETURN_TO_SLOT));
    }
}
