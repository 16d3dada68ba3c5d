//! The "call the API as a machine" card: an M2M client the demo seeds (a nightly reports job
//! with the scope `read:reports`), a route that gets it a fresh access token the way its
//! backend would (Stytch's token endpoint, `client_credentials`), and `GET /api/reports`,
//! which the demo's routes file opens to machines whose scopes grant `reports:read` and to
//! nobody else (a member's session is refused there).
//!
//! | route | gateway | what |
//! |---|---|---|
//! | `GET /demo/machine` | public | the client's id, name and scopes (never its secret) |
//! | `POST /demo/machine/token` | public | a fresh access token for it, from Stytch's token endpoint; Stytch's refusal as is once the client is suspended |
//! | `GET /api/reports` | rule: `reports:read`, machines only | the reports, for the client the gateway vouched for (`X-Stytch-Client-Id`, `X-Stytch-Scopes`) |
//!
//! Cutting the client off is the gateway's own admin route,
//! `POST /admin/m2m-clients/{client_id}/revoke`, for a member holding `m2m_clients:revoke`
//! (Alice, through the demo's `machine_admin` role): its tokens are refused at once and
//! Stytch mints it no new one.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use super::json;
use crate::body::{Body, BoxError, full_body};
use crate::identity::{CLIENT_ID, SCOPES};

/// The route of the reports.
pub(crate) const REPORTS: &str = "/api/reports";

/// The reports every caller gets.
const REPORTS_LIST: [(&str, &str); 3] = [
    ("weekly-signups", "Weekly sign-ups"),
    ("churn", "Churn by plan"),
    ("usage", "API usage by organization"),
];

/// The demo's M2M client and where Stytch mints its tokens.
pub(crate) struct Machine {
    client_id: String,
    client_secret: String,
    name: String,
    scopes: Vec<String>,
    /// `…/v1/public/{project_id}/oauth2/token`.
    token_url: Uri,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// The client `client_id` (`name`, with `scopes`), minting its tokens at the Stytch of
    /// `base_url` for `project_id`. `None` when that makes no valid URL.
    pub(crate) fn new(
        base_url: &str,
        project_id: &str,
        client_id: String,
        client_secret: String,
        name: &str,
        scopes: Vec<String>,
    ) -> Option<Self> {
        let token_url = format!("{base_url}v1/public/{project_id}/oauth2/token")
            .parse()
            .ok()?;
        Some(Self {
            client_id,
            client_secret,
            name: name.to_owned(),
            scopes,
            token_url,
        })
    }

    /// `GET /demo/machine`: the client, without its secret.
    pub(crate) fn describe(&self) -> Response<Body> {
        json(
            StatusCode::OK,
            &serde_json::json!({
                "client_id": self.client_id,
                "name": self.name,
                "scopes": self.scopes,
            }),
        )
    }

    /// `POST /demo/machine/token`: what Stytch's token endpoint answered (its status and
    /// JSON), as the job's backend would get it.
    pub(crate) async fn token(&self, http: &Client<HttpConnector, Body>) -> Response<Body> {
        match self.request_token(http).await {
            Ok((status, body)) => {
                let value: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                json(status, &value)
            }
            Err(err) => {
                tracing::warn!(error = %crate::error::chain(&*err), "demo: Stytch's token endpoint did not answer");
                json(
                    StatusCode::BAD_GATEWAY,
                    &serde_json::json!({ "error": "the token endpoint did not answer" }),
                )
            }
        }
    }

    async fn request_token(
        &self,
        http: &Client<HttpConnector, Body>,
    ) -> Result<(StatusCode, Bytes), BoxError> {
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            form_encode(&self.client_id),
            form_encode(&self.client_secret),
        );
        let request = Request::post(self.token_url.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(full_body(form))?;
        let exchange = async {
            let response = http.request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, bytes))
        };
        tokio::time::timeout(Duration::from_secs(5), exchange).await?
    }
}

/// `GET /api/reports`: the reports, for the client the gateway vouched for. Without its
/// headers (the app called without the gateway), 401.
pub(crate) fn reports(headers: &HeaderMap) -> Response<Body> {
    let get = |name: http::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(client_id) = get(CLIENT_ID) else {
        return json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({ "error": "no machine identity headers" }),
        );
    };
    let scopes: Vec<&str> = get(SCOPES).unwrap_or_default().split(' ').collect();
    let reports: Vec<serde_json::Value> = REPORTS_LIST
        .iter()
        .map(|(id, title)| serde_json::json!({ "id": id, "title": title }))
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({ "client_id": client_id, "scopes": scopes, "reports": reports }),
    )
}

/// `value` for a form body: every byte but the unreserved ones percent-encoded.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reports_name_the_client_the_gateway_vouched_for_and_refuse_without_it() {
        // If this broke, the card would show another client than the one the token is of, or
        // the app would answer a request that did not come through the gateway.
        let mut headers = HeaderMap::new();
        assert_eq!(reports(&headers).status(), StatusCode::UNAUTHORIZED);
        headers.insert(CLIENT_ID, HeaderValue::from_static("m2m-client-test-1"));
        headers.insert(SCOPES, HeaderValue::from_static("read:reports read:*"));
        assert_eq!(reports(&headers).status(), StatusCode::OK);
    }

    #[test]
    fn the_debug_output_never_shows_the_client_secret() {
        // If this broke, a log line with the demo's state would print the client's secret.
        let machine = Machine::new(
            "http://127.0.0.1:1/",
            "project-test-1",
            "m2m-client-test-1".into(),
            "very-secret-value".into(),
            "job",
            vec!["read:reports".into()],
        )
        .unwrap();
        let shown = format!("{machine:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert_eq!(form_encode("a b+c/="), "a%20b%2Bc%2F%3D");
    }
}
