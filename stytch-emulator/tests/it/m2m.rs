//! M2M clients and tokens as Stytch serves them: the client API, the OAuth token endpoint in
//! each SDK's request format, the tokens' claims and keys, and what deleting a client or
//! rotating its secret does.
//!
//! If these fail, the library's M2M authentication proven against the emulator could accept
//! or refuse other tokens than Stytch's.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use stytch_emulator::{
    Emulator, EmulatorConfig, EmulatorEndpoint, EmulatorError, Fault, NewM2mClient,
};

const CLIENTS: &str = "v1/m2m/clients";

struct M2m {
    emu: Emulator,
    http: reqwest::Client,
}

async fn start(config: EmulatorConfig) -> M2m {
    M2m {
        emu: Emulator::start(config).await.unwrap(),
        http: reqwest::Client::new(),
    }
}

impl M2m {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    fn token_url(&self) -> String {
        self.url(&format!("v1/public/{}/oauth2/token", self.emu.project_id()))
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.basic_auth(self.emu.project_id(), Some(self.emu.secret()))
    }

    /// A client created through Stytch's Create M2M Client: (id, secret).
    async fn client(&self, scopes: &[&str]) -> (String, String) {
        let (status, body) = self
            .call(
                self.authed(self.http.post(self.url(CLIENTS)))
                    .json(&json!({"scopes": scopes})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let c = &body["m2m_client"];
        (
            c["client_id"].as_str().unwrap().to_owned(),
            c["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// A token request as node sends it: a form, no Basic auth.
    async fn form_token(&self, id: &str, secret: &str, scope: Option<&str>) -> (StatusCode, Value) {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.call(
            self.http
                .post(self.token_url())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// Verifies an M2M token as the SDKs do: RS256 against the project's JWKS, audience
    /// the project id, issuer `stytch.com/{project_id}`.
    async fn verify(
        &self,
        token: &str,
        jwks_path: &str,
    ) -> Result<Value, jsonwebtoken::errors::Error> {
        let (_, jwks) = self.call(self.http.get(self.url(jwks_path))).await;
        let kid = jsonwebtoken::decode_header(token)?.kid.unwrap();
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .expect("the token's key is listed");
        let key = DecodingKey::from_rsa_components(
            key["n"].as_str().unwrap(),
            key["e"].as_str().unwrap(),
        )?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[self.emu.project_id()]);
        validation.set_issuer(&[format!("stytch.com/{}", self.emu.project_id())]);
        validation.leeway = 0;
        Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
    }

    fn b2b_jwks(&self) -> String {
        format!("v1/b2b/sessions/jwks/{}", self.emu.project_id())
    }
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_client_api_creates_reads_updates_searches_and_deletes() {
    // If this failed, code managing M2M clients through Stytch's API (or its SDKs) could not
    // be tested against the emulator.
    let m = start(EmulatorConfig::new()).await;
    let (status, body) = m
        .call(m.authed(m.http.post(m.url(CLIENTS))).json(&json!({
            "scopes": ["read:documents"], "client_name": "export", "trusted_metadata": {"team": "data"}
        })))
        .await;
    assert_eq!(status, 200, "{body}");
    let created = &body["m2m_client"];
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap();
    assert!(id.starts_with("m2m-client-test-"), "{id}");
    assert!(secret.len() >= 32);
    assert_eq!(
        created["client_secret_last_four"],
        secret[secret.len() - 4..]
    );
    assert_eq!(created["status"], "active");

    let (_, got) = m
        .call(m.authed(m.http.get(m.url(&format!("{CLIENTS}/{id}")))))
        .await;
    let got = &got["m2m_client"];
    assert!(
        got.get("client_secret").is_none(),
        "the secret is shown once"
    );
    assert_eq!(got["client_name"], "export");
    assert_eq!(got["trusted_metadata"], json!({"team": "data"}));
    assert_eq!(got["next_client_secret_last_four"], Value::Null);

    let (status, updated) = m
        .call(
            m.authed(m.http.put(m.url(&format!("{CLIENTS}/{id}"))))
                .json(&json!({
                    "scopes": ["read:documents", "write:documents"], "status": "inactive"
                })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["m2m_client"]["status"], "inactive");
    m.client(&["other:thing"]).await;
    let (_, found) = m
        .call(m.authed(m.http.post(m.url(&format!("{CLIENTS}/search")))).json(&json!({
            "query": {"operator": "AND", "operands": [{"filter_name": "scopes", "filter_value": ["write:documents"]}]}
        })))
        .await;
    assert_eq!(found["results_metadata"]["total"], 1);
    assert_eq!(found["m2m_clients"][0]["client_id"], id.as_str());

    let (status, deleted) = m
        .call(m.authed(m.http.delete(m.url(&format!("{CLIENTS}/{id}")))))
        .await;
    assert_eq!(
        (status.as_u16(), deleted["client_id"].as_str()),
        (200, Some(id.as_str()))
    );
    let (status, missing) = m
        .call(m.authed(m.http.get(m.url(&format!("{CLIENTS}/{id}")))))
        .await;
    assert_eq!(
        (status.as_u16(), missing["error_type"].as_str()),
        (404, Some("m2m_client_not_found"))
    );
    let (status, _) = m.call(m.http.get(m.url(&format!("{CLIENTS}/{id}")))).await;
    assert_eq!(
        status, 401,
        "the client API needs the project's credentials"
    );
}

#[tokio::test]
async fn tokens_come_in_every_sdks_request_format_with_stytchs_claims() {
    // If this failed, one of the official SDKs could not get a token from the emulator, or
    // its tokens would carry other claims than Stytch's.
    let m = start(EmulatorConfig::new()).await;
    let (id, secret) = m.client(&["read:documents", "write:documents"]).await;

    let (status, body) = m.form_token(&id, &secret, Some("read:documents")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["request_id"].is_string() && body["status_code"] == 200);
    let claims = m
        .verify(body["access_token"].as_str().unwrap(), &m.b2b_jwks())
        .await
        .unwrap();
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["scope"], "read:documents");
    assert_eq!(claims["aud"], json!([m.emu.project_id()]));
    assert_eq!(claims["iat"], claims["nbf"]);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    // python: JSON, `scope`, and the project's Basic auth alongside.
    let (status, body) = m
        .call(m.authed(m.http.post(m.token_url())).json(&json!({
            "grant_type": "client_credentials", "client_id": id, "client_secret": secret,
        })))
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let claims = m
        .verify(token, &format!("v1/sessions/jwks/{}", m.emu.project_id()))
        .await
        .unwrap();
    assert_eq!(
        claims["scope"], "read:documents write:documents",
        "all by default"
    );

    // the official Rust SDK: JSON with a `scopes` array; and client_secret_basic.
    let (status, body) = m
        .call(
            m.http
                .post(m.token_url())
                .basic_auth(&id, Some(&secret))
                .json(&json!({
                    "grant_type": "client_credentials", "scopes": ["write:documents"],
                })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = m
        .verify(body["access_token"].as_str().unwrap(), &m.b2b_jwks())
        .await
        .unwrap();
    assert_eq!(claims["scope"], "write:documents");
}

#[tokio::test]
async fn token_errors_use_oauths_field_names() {
    // If this failed, SDKs (which map OAuth's `error`/`error_description` to their errors)
    // would see another error than Stytch's.
    let m = start(EmulatorConfig::new()).await;
    let (id, secret) = m.client(&["read:documents"]).await;
    let (status, body) = m
        .form_token(&id, &secret, Some("read:documents delete:documents"))
        .await;
    assert_eq!(status, 400);
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "error",
            "error_description",
            "error_uri",
            "request_id",
            "status_code"
        ]
    );
    assert_eq!(body["error"], "invalid_scope");
    let (_, body) = m.form_token(&id, "wrong-secret", None).await;
    assert_eq!(body["error"], "invalid_client");
    let (_, body) = m.form_token("m2m-client-test-nope", &secret, None).await;
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = m
        .call(m.http.post(m.token_url()).json(&json!({
            "grant_type": "password", "client_id": id, "client_secret": secret,
        })))
        .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn deleting_or_rotating_stops_new_tokens_but_issued_ones_live_until_exp() {
    // If this failed, the emulator would revoke M2M tokens that Stytch cannot revoke, or
    // keep minting for a deleted client or a rotated-out secret.
    let m = start(EmulatorConfig::new()).await;
    let (id, secret) = m.client(&["read:documents"]).await;
    let (_, body) = m.form_token(&id, &secret, None).await;
    let before = body["access_token"].as_str().unwrap().to_owned();

    let rotate = |path: &str| m.url(&format!("{CLIENTS}/{id}/secrets/{path}"));
    let (status, body) = m.call(m.authed(m.http.post(rotate("rotate/start")))).await;
    assert_eq!(status, 200, "{body}");
    let next = body["m2m_client"]["next_client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        m.form_token(&id, &secret, None).await.0,
        200,
        "both work meanwhile"
    );
    assert_eq!(m.form_token(&id, &next, None).await.0, 200);
    let (status, body) = m.call(m.authed(m.http.post(rotate("rotate/start")))).await;
    assert_eq!(
        (status.as_u16(), body["error_type"].as_str()),
        (400, Some("m2m_client_already_rotating_secret"))
    );
    let (status, _) = m.call(m.authed(m.http.post(rotate("rotate")))).await;
    assert_eq!(status, 200);
    assert_eq!(
        m.form_token(&id, &secret, None).await.1["error"],
        "invalid_client"
    );
    assert_eq!(m.form_token(&id, &next, None).await.0, 200);
    let (status, body) = m.call(m.authed(m.http.post(rotate("rotate/cancel")))).await;
    assert_eq!(
        (status.as_u16(), body["error_type"].as_str()),
        (400, Some("m2m_client_not_rotating_secret"))
    );

    m.emu.delete_m2m_client(&id).unwrap();
    assert_eq!(
        m.form_token(&id, &next, None).await.1["error"],
        "invalid_client"
    );
    let claims = m
        .verify(&before, &m.b2b_jwks())
        .await
        .expect("still valid until exp");
    assert_eq!(claims["sub"], id.as_str());
    // Key rotation keeps the old key listed: the token still verifies.
    m.emu.rotate_key();
    assert!(m.verify(&before, &m.b2b_jwks()).await.is_ok());
}

#[tokio::test]
async fn the_rust_api_mints_tokens_with_custom_claims_and_a_configured_lifetime() {
    // If this failed, tests needing short-lived M2M tokens or custom claims could not make
    // them.
    let m = start(EmulatorConfig::new().m2m_token_lifetime(Duration::from_secs(60))).await;
    let mut claims = Map::new();
    claims.insert("tenant".into(), json!("acme"));
    claims.insert("sub".into(), json!("evil"));
    let creds = m
        .emu
        .create_m2m_client(NewM2mClient::new(&["*:documents"]).custom_claims(claims))
        .unwrap();
    let token = m
        .emu
        .m2m_token(&creds.client_id, &creds.client_secret, None)
        .unwrap();
    let c = m
        .verify(token.expose_secret(), &m.b2b_jwks())
        .await
        .unwrap();
    assert_eq!(
        (c["tenant"].as_str(), c["sub"].as_str()),
        (Some("acme"), Some(creds.client_id.as_str()))
    );
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 60);
    assert_eq!(
        m.emu.m2m_token(
            &creds.client_id,
            &creds.client_secret,
            Some(&["read:documents"][..])
        ),
        Err(EmulatorError::M2mScopeNotAllowed),
        "`*:documents` is one scope, not a pattern: the client may only be granted it"
    );
    m.emu
        .set_m2m_client_active(&creds.client_id, false)
        .unwrap();
    assert_eq!(
        m.emu
            .m2m_token(&creds.client_id, &creds.client_secret, None),
        Err(EmulatorError::M2mClientRefused)
    );
    assert!(!format!("{creds:?}").contains(creds.client_secret.expose_secret()));

    let (status, _) = m
        .call(
            m.authed(m.http.put(m.url("emulator/v1/m2m/token_lifetime")))
                .json(&json!({"seconds": 120})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = m
        .call(m.authed(m.http.post(m.url("emulator/v1/m2m/clients"))).json(&json!({
            "scopes": ["read:documents"], "client_id": "importer", "client_secret": "a-long-secret",
            "custom_claims": {"team": "data"}
        })))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = m.form_token("importer", "a-long-secret", None).await;
    assert_eq!(body["expires_in"], 120);
    let c = m
        .verify(body["access_token"].as_str().unwrap(), &m.b2b_jwks())
        .await
        .unwrap();
    assert_eq!(c["team"], "data");
}

#[tokio::test]
async fn faults_apply_to_the_m2m_endpoints() {
    // If this failed, a client's handling of a Stytch outage while getting a token could not
    // be tested.
    let m = start(EmulatorConfig::new()).await;
    let (id, secret) = m.client(&["read:documents"]).await;
    m.emu.inject_fault(
        EmulatorEndpoint::M2mToken,
        Fault::Status {
            status: 503,
            retry_after: Some(1),
        },
        1,
    );
    let (status, body) = m.form_token(&id, &secret, None).await;
    assert_eq!(
        (status.as_u16(), body["error_type"].as_str()),
        (503, Some("service_unavailable"))
    );
    assert_eq!(m.form_token(&id, &secret, None).await.0, 200);
    m.emu
        .inject_fault(EmulatorEndpoint::M2mClients, Fault::MalformedBody, 1);
    let resp = m
        .authed(m.http.get(m.url(&format!("{CLIENTS}/{id}"))))
        .send()
        .await
        .unwrap();
    assert!(resp.json::<Value>().await.is_err(), "a malformed body");
    assert_eq!(m.emu.request_count(EmulatorEndpoint::M2mToken), 2);
    assert_eq!(m.emu.request_count(EmulatorEndpoint::M2mClients), 2);
}
