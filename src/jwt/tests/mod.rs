//! Tests of local JWT verification: static RSA test keys (`testdata/`), JWTs signed with
//! `jsonwebtoken::encode`, the JWKS served by a wiremock server.
//!
//! If these fail, a forged, expired, foreign or `alg: none` JWT can pass as a session, a
//! valid one is refused, or the JWKS is fetched too often (or never again) around a key
//! rotation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::client::StytchConfig;
use crate::client::{Jwk, Jwks, RetryPolicy, StytchClient};
use crate::credential::SessionJwt;
use crate::jwt::{CLOCK_SKEW, JwtConfig, JwtError, JwtVerifier};

const PROJECT: &str = "project-test-00000000-0000-0000-0000-000000000000";
const KEY1_PEM: &[u8] = include_bytes!("../testdata/key1.pem");
const KEY1_PUB_PEM: &[u8] = include_bytes!("../testdata/key1.pub.pem");
const KEY1_PUB: &str = include_str!("../testdata/key1.pub.json");
const KEY2_PEM: &[u8] = include_bytes!("../testdata/key2.pem");
const KEY2_PUB: &str = include_str!("../testdata/key2.pub.json");
const KID1: &str = "jwk-test-11111111";
const KID2: &str = "jwk-test-22222222";
const IAT: u64 = 1_700_000_000;

fn jwks_path() -> String {
    format!("/v1/b2b/sessions/jwks/{PROJECT}")
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn jwk(kid: &str, public: &str) -> Jwk {
    let v: Value = serde_json::from_str(public).unwrap();
    Jwk::rsa(kid, v["n"].as_str().unwrap(), v["e"].as_str().unwrap())
}

fn jwks_response(keys: Vec<Jwk>) -> ResponseTemplate {
    let mut jwks = Jwks::new(keys);
    jwks.request_id = "request-id-test-1".into();
    ResponseTemplate::new(200).set_body_json(jwks)
}

/// A server whose JWKS holds `keys`, expecting `expect` fetches (checked on drop).
async fn server_with(keys: Vec<Jwk>, expect: u64) -> MockServer {
    let server = MockServer::start().await;
    mount(&server, keys, expect).await;
    server
}

async fn mount(server: &MockServer, keys: Vec<Jwk>, expect: u64) {
    Mock::given(method("GET"))
        .and(path(jwks_path()))
        .respond_with(jwks_response(keys))
        .expect(expect)
        .mount(server)
        .await;
}

async fn fetches(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

fn client_for(server: &MockServer) -> StytchClient {
    let config = StytchConfig::builder(PROJECT, "secret-test-abc")
        .base_url(server.uri())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    StytchClient::new(config).unwrap()
}

fn verifier(server: &MockServer, config: JwtConfig) -> JwtVerifier {
    JwtVerifier::new(client_for(server), config)
}

/// The representative B2B payload of Stytch's SDK fixtures, issued at `IAT`.
fn claims() -> Value {
    json!({
        "sub": "member-test-fde03dd1-fff7-4b3c-9b31-ead3fbc224de",
        "iss": format!("stytch.com/{PROJECT}"),
        "aud": [PROJECT],
        "iat": IAT, "nbf": IAT, "exp": IAT + 300,
        "jti": "jti-1",
        "https://stytch.com/session": {
            "id": "session-test-e26a0ccb-0dc0-4edb-a4bb-e70210f43555",
            "started_at": "2023-11-14T22:13:20Z",
            "last_accessed_at": "2023-11-14T22:13:20Z",
            "expires_at": "2023-11-15T22:13:20Z",
            "attributes": { "user_agent": "", "ip_address": "" },
            "authentication_factors": [
                { "type": "magic_link", "delivery_method": "email",
                  "last_authenticated_at": "2023-11-14T22:13:20Z" }
            ],
            "roles": ["stytch_member", "editor"]
        },
        "https://stytch.com/organization": {
            "organization_id": "organization-test-bd49f916-180c-46fe-9535-d9acd5e30519",
            "slug": "acme"
        },
        "https://stytch.com/something_new": 1,
        "my_custom_claim": "value",
        "tier": { "plan": "gold" }
    })
}

fn sign_with(pem: &[u8], kid: &str, claims: &Value) -> SessionJwt {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(pem).unwrap();
    SessionJwt::new(jsonwebtoken::encode(&header, claims, &key).unwrap())
}

fn sign(claims: &Value) -> SessionJwt {
    sign_with(KEY1_PEM, KID1, claims)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with an arbitrary header and signature, built by hand.
fn hand_built(header: &Value, claims: &Value, signature: &[u8]) -> SessionJwt {
    SessionJwt::new(format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    ))
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

#[tokio::test]
async fn valid_jwt_verifies_with_one_jwks_fetch() {
    // If this broke, valid sessions would be refused or every request would fetch the JWKS.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(&server, JwtConfig::default());
    assert!(!v.jwks_loaded());
    let jwt = sign(&claims());
    let ok = v.verify_at(&jwt, at(IAT + 10)).await.unwrap();
    assert_eq!(ok.issued_at, at(IAT));
    assert_eq!(ok.expires_at, at(IAT + 300));
    assert!(v.jwks_loaded());
    v.verify_at(&jwt, at(IAT + 20)).await.unwrap();
    assert_eq!(fetches(&server).await, 1);
    server.verify().await;
}

#[tokio::test]
async fn claims_map_to_member_session() {
    // If this broke, handlers would see the wrong member, session, organization or claims.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(&server, JwtConfig::default());
    let s = v
        .verify_at(&sign(&claims()), at(IAT + 1))
        .await
        .unwrap()
        .session;
    assert_eq!(
        s.member_id,
        "member-test-fde03dd1-fff7-4b3c-9b31-ead3fbc224de"
    );
    assert_eq!(
        s.member_session_id,
        "session-test-e26a0ccb-0dc0-4edb-a4bb-e70210f43555"
    );
    assert_eq!(
        *s.organization_id(),
        "organization-test-bd49f916-180c-46fe-9535-d9acd5e30519"
    );
    assert_eq!(s.organization_slug(), "acme");
    assert_eq!(s.roles(), ["stytch_member", "editor"]);
    let rfc = |t| humantime::format_rfc3339_seconds(t).to_string();
    assert_eq!(rfc(s.expires_at()), "2023-11-15T22:13:20Z");
    assert_eq!(rfc(s.started_at().unwrap()), "2023-11-14T22:13:20Z");
    assert_eq!(rfc(s.last_accessed_at().unwrap()), "2023-11-14T22:13:20Z");
    assert_eq!(s.authentication_factors.values().len(), 1);
    assert_eq!(s.authentication_factors.values()[0]["type"], "magic_link");
    let mut custom: Vec<_> = s.custom_claims().keys().cloned().collect();
    custom.sort();
    assert_eq!(custom, ["my_custom_claim", "tier"]);
    assert_eq!(s.custom_claims()["tier"]["plan"], "gold");
}

#[tokio::test]
async fn missing_required_claims_are_refused() {
    // If this broke, a JWT without expiry, issue time or session id could pass as a session.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(&server, JwtConfig::default());
    for claim in [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "nbf",
        "https://stytch.com/session",
        "https://stytch.com/organization",
    ] {
        let err = v
            .verify_at(&sign(&without(claims(), claim)), at(IAT + 1))
            .await
            .unwrap_err();
        assert!(matches!(err, JwtError::MissingClaims), "{claim}: {err:?}");
    }
    let mut c = claims();
    c["https://stytch.com/session"]
        .as_object_mut()
        .unwrap()
        .remove("expires_at");
    let err = v.verify_at(&sign(&c), at(IAT + 1)).await.unwrap_err();
    assert!(matches!(err, JwtError::MissingClaims), "{err:?}");
    let mut c = claims();
    c["https://stytch.com/session"]["id"] = json!("");
    let err = v.verify_at(&sign(&c), at(IAT + 1)).await.unwrap_err();
    assert!(matches!(err, JwtError::MissingClaims), "{err:?}");
}

#[tokio::test]
async fn wrong_audience_is_refused_and_string_audience_accepted() {
    // If this broke, JWTs of another Stytch project would authenticate here.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(&server, JwtConfig::default());
    let other = with(claims(), "aud", json!(["project-test-other"]));
    let err = v.verify_at(&sign(&other), at(IAT + 1)).await.unwrap_err();
    assert!(matches!(err, JwtError::InvalidAudience), "{err:?}");
    let string_aud = with(claims(), "aud", json!(PROJECT));
    v.verify_at(&sign(&string_aud), at(IAT + 1)).await.unwrap();
    let both = with(claims(), "aud", json!(["project-test-other", PROJECT]));
    v.verify_at(&sign(&both), at(IAT + 1)).await.unwrap();
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    // If this broke, tokens minted by another issuer with a leaked key would be accepted.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(&server, JwtConfig::default());
    for iss in [
        "stytch.com/project-test-other",
        "https://evil.example.com",
        "",
    ] {
        let c = with(claims(), "iss", json!(iss));
        let err = v.verify_at(&sign(&c), at(IAT + 1)).await.unwrap_err();
        assert!(matches!(err, JwtError::InvalidIssuer), "{iss}: {err:?}");
    }
}

#[tokio::test]
async fn custom_domain_and_extra_issuers_are_accepted() {
    // If this broke, projects behind a CNAMEd custom domain could never verify locally.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(
        &server,
        JwtConfig::builder()
            .extra_issuer("https://login.example.com")
            .build(),
    );
    let custom = server.uri().trim_end_matches('/').to_owned();
    for iss in [custom.as_str(), "https://login.example.com"] {
        let c = with(claims(), "iss", json!(iss));
        v.verify_at(&sign(&c), at(IAT + 1))
            .await
            .unwrap_or_else(|e| panic!("{iss}: {e:?}"));
    }
}

#[tokio::test]
async fn expired_jwt_needs_remote() {
    // If this broke, expired JWTs would be accepted or refused without a remote retry.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(
        &server,
        JwtConfig::builder()
            .max_token_age(Duration::from_secs(3600))
            .build(),
    );
    let jwt = sign(&claims());
    v.verify_at(&jwt, at(IAT + 299)).await.unwrap();
    for now in [IAT + 300, IAT + 301, IAT + 100_000] {
        let err = v.verify_at(&jwt, at(now)).await.unwrap_err();
        assert!(matches!(err, JwtError::Expired), "{err:?}");
        assert!(err.needs_remote());
        assert!(!err.is_unavailable());
    }
}

#[tokio::test]
async fn expired_session_inside_a_live_jwt_is_expired() {
    // If this broke, a JWT outliving its session would keep an ended session alive.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(&server, JwtConfig::default());
    let mut c = claims();
    c["https://stytch.com/session"]["expires_at"] = json!("2023-11-14T22:13:25Z");
    // 2023-11-14T22:13:20Z is IAT.
    v.verify_at(&sign(&c), at(IAT + 4)).await.unwrap();
    let err = v.verify_at(&sign(&c), at(IAT + 5)).await.unwrap_err();
    assert!(matches!(err, JwtError::Expired), "{err:?}");
}

#[tokio::test]
async fn a_jwt_not_yet_valid_beyond_the_clock_skew_goes_to_stytch() {
    // If this broke, JWTs minted for later would be accepted early here, or a host whose clock
    // is behind Stytch's would refuse (instead of asking Stytch about) brand-new JWTs.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(&server, JwtConfig::default());
    let jwt = sign(&with(claims(), "nbf", json!(IAT + 100)));
    let skew = CLOCK_SKEW.as_secs();
    let err = v
        .verify_at(&jwt, at(IAT + 100 - skew - 1))
        .await
        .unwrap_err();
    assert!(matches!(err, JwtError::NotYetValid), "{err:?}");
    assert!(err.needs_remote());
    v.verify_at(&jwt, at(IAT + 100 - skew)).await.unwrap();
    // `iat` in the future counts as well (Stytch sets nbf = iat; a JWT may lack the match).
    let jwt = sign(&with(claims(), "iat", json!(IAT + 100)));
    let err = v
        .verify_at(&jwt, at(IAT + 100 - skew - 1))
        .await
        .unwrap_err();
    assert!(matches!(err, JwtError::NotYetValid), "{err:?}");
    v.verify_at(&jwt, at(IAT + 100 - skew)).await.unwrap();
}

#[tokio::test]
async fn clock_skew_applies_to_nbf_and_iat_never_to_exp() {
    // If this broke, the configured skew would be ignored, or it would let expired JWTs verify
    // locally (and a revoked session's JWT outlive the denylist).
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(
        &server,
        JwtConfig::builder()
            .clock_skew(Duration::from_secs(5))
            .max_token_age(Duration::from_secs(3600))
            .build(),
    );
    let jwt = sign(&with(claims(), "nbf", json!(IAT + 100)));
    v.verify_at(&jwt, at(IAT + 95)).await.unwrap();
    let err = v.verify_at(&jwt, at(IAT + 94)).await.unwrap_err();
    assert!(matches!(err, JwtError::NotYetValid), "{err:?}");
    v.verify_at(&jwt, at(IAT + 299)).await.unwrap();
    let err = v.verify_at(&jwt, at(IAT + 300)).await.unwrap_err();
    assert!(matches!(err, JwtError::Expired), "{err:?}");
    // Without skew the same instant before nbf fails.
    let strict = verifier(
        &server,
        JwtConfig::builder().clock_skew(Duration::ZERO).build(),
    );
    strict.install_jwks(&Jwks::new(vec![jwk(KID1, KEY1_PUB)]));
    let err = strict.verify_at(&jwt, at(IAT + 99)).await.unwrap_err();
    assert!(matches!(err, JwtError::NotYetValid), "{err:?}");
    strict.verify_at(&jwt, at(IAT + 100)).await.unwrap();
}

#[tokio::test]
async fn too_old_jwt_needs_remote() {
    // If this broke, max_token_age would not narrow the window of revoked-but-valid JWTs.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(
        &server,
        JwtConfig::builder()
            .max_token_age(Duration::from_secs(60))
            .build(),
    );
    let jwt = sign(&claims());
    v.verify_at(&jwt, at(IAT + 59)).await.unwrap();
    let err = v.verify_at(&jwt, at(IAT + 60)).await.unwrap_err();
    assert!(matches!(err, JwtError::TooOld), "{err:?}");
    assert!(err.needs_remote());
    // Zero sends every JWT to Stytch.
    let zero = verifier(
        &server,
        JwtConfig::builder().max_token_age(Duration::ZERO).build(),
    );
    zero.install_jwks(&Jwks::new(vec![jwk(KID1, KEY1_PUB)]));
    let err = zero.verify_at(&jwt, at(IAT)).await.unwrap_err();
    assert!(matches!(err, JwtError::TooOld), "{err:?}");
}

#[tokio::test]
async fn alg_none_is_refused_before_fetching_keys() {
    // If this broke, anyone could forge a session with an unsigned JWT.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 0).await;
    let v = verifier(&server, JwtConfig::default());
    for alg in ["none", "None", "NONE"] {
        let jwt = hand_built(
            &json!({"alg": alg, "typ": "JWT", "kid": KID1}),
            &claims(),
            b"",
        );
        let err = v.verify_at(&jwt, at(IAT + 1)).await.unwrap_err();
        assert!(
            matches!(err, JwtError::UnsupportedAlgorithm),
            "{alg}: {err:?}"
        );
    }
    let no_alg = hand_built(&json!({"typ": "JWT", "kid": KID1}), &claims(), b"sig");
    let err = v.verify_at(&no_alg, at(IAT + 1)).await.unwrap_err();
    assert!(matches!(err, JwtError::UnsupportedAlgorithm), "{err:?}");
    assert_eq!(fetches(&server).await, 0);
}

#[tokio::test]
async fn hmac_with_the_public_key_as_secret_is_refused() {
    // If this broke, the classic RS256→HS256 key-confusion forgery would authenticate.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 0).await;
    let v = verifier(&server, JwtConfig::default());
    let n = serde_json::from_str::<Value>(KEY1_PUB).unwrap()["n"]
        .as_str()
        .unwrap()
        .to_owned();
    for secret in [KEY1_PUB_PEM, n.as_bytes()] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(KID1.to_owned());
            let raw = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            let err = v
                .verify_at(&SessionJwt::new(raw), at(IAT + 1))
                .await
                .unwrap_err();
            assert!(
                matches!(err, JwtError::UnsupportedAlgorithm),
                "{alg:?}: {err:?}"
            );
        }
    }
    for alg in ["ES256", "PS256", "RS512", "EdDSA", "rs256"] {
        let jwt = hand_built(&json!({"alg": alg, "kid": KID1}), &claims(), b"sig");
        let err = v.verify_at(&jwt, at(IAT + 1)).await.unwrap_err();
        assert!(
            matches!(err, JwtError::UnsupportedAlgorithm),
            "{alg}: {err:?}"
        );
    }
    assert_eq!(fetches(&server).await, 0);
}

#[tokio::test]
async fn malformed_jwts_are_refused() {
    // If this broke, junk credentials could panic the verifier or trigger JWKS fetches.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 0).await;
    let v = verifier(&server, JwtConfig::default());
    let valid = sign(&claims());
    let parts: Vec<&str> = valid.expose_secret().split('.').collect();
    let long = "a".repeat(5000);
    let cases = [
        String::new(),
        "abc".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        format!("!!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{}.{}.{}.x", parts[0], parts[1], parts[2]),
        long,
    ];
    for raw in &cases {
        let err = v
            .verify_at(&SessionJwt::new(raw.clone()), at(IAT + 1))
            .await
            .unwrap_err();
        assert!(matches!(err, JwtError::Malformed), "{raw:.20}: {err:?}");
    }
    let no_kid = hand_built(&json!({"alg": "RS256", "typ": "JWT"}), &claims(), b"sig");
    let err = v.verify_at(&no_kid, at(IAT + 1)).await.unwrap_err();
    assert!(matches!(err, JwtError::UnknownKey), "{err:?}");
    assert_eq!(fetches(&server).await, 0);
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    // If this broke, anyone could edit a real JWT's claims (member, roles) and keep it valid.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(&server, JwtConfig::default());
    let valid = sign(&claims());
    let parts: Vec<&str> = valid.expose_secret().split('.').collect();
    let mut forged_claims = claims();
    forged_claims["https://stytch.com/session"]["roles"] = json!(["stytch_admin"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged_claims.to_string().as_bytes()),
        parts[2]
    );
    let err = v
        .verify_at(&SessionJwt::new(forged), at(IAT + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, JwtError::InvalidSignature), "{err:?}");
    // Signed by another key under our kid.
    let wrong_key = sign_with(KEY2_PEM, KID1, &claims());
    let err = v.verify_at(&wrong_key, at(IAT + 1)).await.unwrap_err();
    assert!(matches!(err, JwtError::InvalidSignature), "{err:?}");
}

mod keys;
