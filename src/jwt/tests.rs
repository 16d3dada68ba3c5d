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
const KEY1_PEM: &[u8] = include_bytes!("testdata/key1.pem");
const KEY1_PUB_PEM: &[u8] = include_bytes!("testdata/key1.pub.pem");
const KEY1_PUB: &str = include_str!("testdata/key1.pub.json");
const KEY2_PEM: &[u8] = include_bytes!("testdata/key2.pem");
const KEY2_PUB: &str = include_str!("testdata/key2.pub.json");
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
        s.organization_id,
        "organization-test-bd49f916-180c-46fe-9535-d9acd5e30519"
    );
    assert_eq!(s.organization_slug, "acme");
    assert_eq!(s.roles, ["stytch_member", "editor"]);
    let rfc = |t| humantime::format_rfc3339_seconds(t).to_string();
    assert_eq!(rfc(s.expires_at), "2023-11-15T22:13:20Z");
    assert_eq!(rfc(s.started_at.unwrap()), "2023-11-14T22:13:20Z");
    assert_eq!(rfc(s.last_accessed_at.unwrap()), "2023-11-14T22:13:20Z");
    assert_eq!(s.authentication_factors.values().len(), 1);
    assert_eq!(s.authentication_factors.values()[0]["type"], "magic_link");
    let mut custom: Vec<_> = s.custom_claims.keys().cloned().collect();
    custom.sort();
    assert_eq!(custom, ["my_custom_claim", "tier"]);
    assert_eq!(s.custom_claims["tier"]["plan"], "gold");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_kid_refetches_once_per_cooldown() {
    // If this broke, forged kids could hammer Stytch's JWKS endpoint (or rotation would fail).
    // One scenario on one verifier, each step depending on the fetches before it: hence its
    // length. The cooldown runs on the key store's own clock, moved forward by the test: a slow,
    // loaded machine cannot make the burst outlast a cooldown that never elapses by itself.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 3).await;
    let cooldown = Duration::from_secs(60);
    let v = verifier(
        &server,
        JwtConfig::builder().unknown_kid_cooldown(cooldown).build(),
    );
    v.verify_at(&sign(&claims()), at(IAT + 1)).await.unwrap();
    assert_eq!(fetches(&server).await, 1);
    // Within the cooldown of the first fetch: no refetch; Stytch decides.
    let err = v
        .verify_at(&sign_with(KEY1_PEM, "forged-0", &claims()), at(IAT + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, JwtError::KeyNotLoaded), "{err:?}");
    assert!(err.needs_remote());
    assert_eq!(fetches(&server).await, 1);
    // Half-way through the cooldown: still no refetch.
    v.advance_clock(cooldown / 2);
    let err = v
        .verify_at(&sign_with(KEY1_PEM, "forged-0", &claims()), at(IAT + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, JwtError::KeyNotLoaded), "{err:?}");
    assert_eq!(fetches(&server).await, 1);
    v.advance_clock(cooldown / 2);
    // After it: one refetch, then UnknownKey.
    let err = v
        .verify_at(&sign_with(KEY1_PEM, "forged-1", &claims()), at(IAT + 1))
        .await
        .unwrap_err();
    assert!(matches!(err, JwtError::UnknownKey), "{err:?}");
    assert_eq!(fetches(&server).await, 2);
    // A burst of 50 forged kids within that cooldown: no fetch at all.
    let burst = |prefix: &'static str| {
        let v = v.clone();
        let jwts: Vec<_> = (0..50)
            .map(|i| sign_with(KEY1_PEM, &format!("{prefix}-{i}"), &claims()))
            .collect();
        async move {
            let tasks: Vec<_> = jwts
                .into_iter()
                .map(|jwt| {
                    let v = v.clone();
                    tokio::spawn(async move { v.verify_at(&jwt, at(IAT + 1)).await })
                })
                .collect();
            for task in tasks {
                let err = task.await.unwrap().unwrap_err();
                assert!(
                    matches!(err, JwtError::UnknownKey | JwtError::KeyNotLoaded),
                    "{err:?}"
                );
            }
        }
    };
    burst("burst-a").await;
    assert_eq!(fetches(&server).await, 2);
    // A burst of 50 after the cooldown: exactly one fetch (single flight).
    v.advance_clock(cooldown);
    burst("burst-b").await;
    assert_eq!(fetches(&server).await, 3);
    server.verify().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_verifications_share_one_fetch() {
    // If this broke, a cold start under load would send one JWKS request per request.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(&server, JwtConfig::default());
    let jwt = sign(&claims());
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (v, jwt) = (v.clone(), jwt.clone());
            tokio::spawn(async move { v.verify_at(&jwt, at(IAT + 1)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    server.verify().await;
}

#[tokio::test]
async fn key_rotation_keeps_old_keys_for_one_interval() {
    // If this broke, JWTs minted just before or after a Stytch key rotation would be refused.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let interval = Duration::from_millis(400);
    let v = verifier(
        &server,
        JwtConfig::builder()
            .unknown_kid_cooldown(Duration::ZERO)
            .jwks_refresh_interval(interval)
            .build(),
    );
    let old = sign(&claims());
    let new = sign_with(KEY2_PEM, KID2, &claims());
    v.verify_at(&old, at(IAT + 1)).await.unwrap();
    // Stytch rotates: its set now holds only the new key.
    server.reset().await;
    mount(&server, vec![jwk(KID2, KEY2_PUB)], 3).await;
    v.verify_at(&new, at(IAT + 1)).await.unwrap();
    assert_eq!(fetches(&server).await, 1);
    // The old key vanished from Stytch's set but stays usable for one interval.
    v.verify_at(&old, at(IAT + 1)).await.unwrap();
    assert_eq!(fetches(&server).await, 1);
    // One interval later: the periodic refresh (in the background) drops it.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    v.verify_at(&new, at(IAT + 1)).await.unwrap();
    // (the store counts the first load and the refetch for KID2 too)
    wait_for_fetches(&v, 3).await;
    assert_eq!(fetches(&server).await, 2);
    // Refetched on the unknown kid (cooldown zero), still unknown.
    let err = v.verify_at(&old, at(IAT + 1)).await.unwrap_err();
    assert!(matches!(err, JwtError::UnknownKey), "{err:?}");
    assert_eq!(fetches(&server).await, 3);
}

#[tokio::test]
async fn failed_periodic_refresh_keeps_the_keys() {
    // If this broke, a Stytch outage would make every locally verifiable session fail.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let interval = Duration::from_millis(100);
    let v = verifier(
        &server,
        JwtConfig::builder().jwks_refresh_interval(interval).build(),
    );
    let jwt = sign(&claims());
    v.verify_at(&jwt, at(IAT + 1)).await.unwrap();
    server.reset().await;
    Mock::given(method("GET"))
        .and(path(jwks_path()))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    v.verify_at(&jwt, at(IAT + 1)).await.unwrap();
    wait_for_fetches(&v, 2).await;
    // The failed refresh is not retried within the cooldown.
    v.verify_at(&jwt, at(IAT + 2)).await.unwrap();
    server.verify().await;
}

/// Waits (bounded: 5 s) until `v` has completed `n` JWKS fetches.
async fn wait_for_fetches(v: &JwtVerifier, n: u64) {
    for _ in 0..500 {
        if v.jwks_fetches_completed() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} JWKS fetches not completed within 5 s");
}

#[tokio::test]
async fn periodic_jwks_refresh_never_runs_inside_a_request() {
    // If this broke, the request that finds the JWKS due for its periodic refresh would wait
    // for Stytch's JWKS endpoint (seconds when Stytch is slow) instead of using the keys it has.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let interval = Duration::from_millis(100);
    let v = verifier(
        &server,
        JwtConfig::builder().jwks_refresh_interval(interval).build(),
    );
    let jwt = sign(&claims());
    v.verify_at(&jwt, at(IAT + 1)).await.unwrap();
    assert_eq!(v.jwks_fetches_completed(), 1);
    server.reset().await;
    Mock::given(method("GET"))
        .and(path(jwks_path()))
        .respond_with(jwks_response(vec![jwk(KID1, KEY1_PUB)]).set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&server)
        .await;
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    // The refresh is due: this request is served from the current keys while the (slow)
    // refresh is still under way, so it returns before that fetch completed.
    v.verify_at(&jwt, at(IAT + 1)).await.unwrap();
    assert_eq!(v.jwks_fetches_completed(), 1);
    // The refresh does happen, once, in the background.
    wait_for_fetches(&v, 2).await;
    v.verify_at(&jwt, at(IAT + 2)).await.unwrap();
    server.verify().await;
}

#[tokio::test]
async fn jwks_endpoint_down_is_unavailable_and_left_to_stytch() {
    // If this broke, a JWKS outage would read as "invalid session" (401), or the lookup would
    // not know to ask Stytch's authenticate instead.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(jwks_path()))
        .respond_with(ResponseTemplate::new(500))
        .expect(2)
        .mount(&server)
        .await;
    let v = verifier(&server, JwtConfig::default());
    let jwt = sign(&claims());
    let err = v.verify_at(&jwt, at(IAT + 1)).await.unwrap_err();
    let JwtError::Jwks(cause) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(cause.status().map(|s| s.as_u16()), Some(500));
    assert!(err.is_unavailable());
    assert!(err.needs_remote());
    assert!(!v.jwks_loaded());
    // Within the cooldown the failure is replayed, not refetched.
    let err = v.verify_at(&jwt, at(IAT + 1)).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(v.refresh_jwks().await.is_err());
    assert_eq!(fetches(&server).await, 2);
}

#[tokio::test]
async fn only_rs256_signing_keys_are_used() {
    // If this broke, an encryption key or a key for another algorithm could verify sessions.
    let mut enc = jwk(KID1, KEY1_PUB);
    enc.use_ = Some("enc".into());
    let mut rs512 = jwk(KID2, KEY2_PUB);
    rs512.alg = Some("RS512".into());
    let mut bare = jwk("bare", KEY1_PUB);
    bare.alg = None;
    bare.use_ = None;
    let server = server_with(vec![enc, rs512, bare], 1).await;
    let v = verifier(&server, JwtConfig::default());
    for jwt in [sign(&claims()), sign_with(KEY2_PEM, KID2, &claims())] {
        let err = v.verify_at(&jwt, at(IAT + 1)).await.unwrap_err();
        // Never accepted locally (the second one, within the cooldown, is left to Stytch).
        assert!(
            matches!(err, JwtError::UnknownKey | JwtError::KeyNotLoaded),
            "{err:?}"
        );
    }
    v.verify_at(&sign_with(KEY1_PEM, "bare", &claims()), at(IAT + 1))
        .await
        .unwrap();
}

#[tokio::test]
async fn fetch_at_start_loads_keys_in_the_background() {
    // If this broke, `fetch_jwks_at_start` would be ignored and the first request would pay.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(
        &server,
        JwtConfig::builder().fetch_jwks_at_start(true).build(),
    );
    for _ in 0..200 {
        if v.jwks_loaded() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(v.jwks_loaded());
    v.verify_at(&sign(&claims()), at(IAT + 1)).await.unwrap();
    server.verify().await;
}

#[tokio::test]
async fn nothing_prints_the_jwt() {
    // If this broke, session JWTs could leak into logs through errors or Debug output.
    let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
    let v = verifier(
        &server,
        JwtConfig::builder()
            .max_token_age(Duration::from_secs(60))
            .build(),
    );
    let valid = sign(&claims());
    let parts: Vec<&str> = valid.expose_secret().split('.').collect();
    let tampered = SessionJwt::new(format!("{}.{}.{}", parts[0], parts[1], b64(b"x")));
    let none = hand_built(&json!({"alg": "none", "kid": KID1}), &claims(), b"");
    let cases = [
        (valid.clone(), at(IAT + 1000)),
        (valid.clone(), at(IAT + 61)),
        (tampered, at(IAT + 1)),
        (none, at(IAT + 1)),
        (SessionJwt::new("junk.junk.junk"), at(IAT + 1)),
    ];
    let ok = v.verify_at(&valid, at(IAT + 1)).await.unwrap();
    let mut printed = vec![format!("{v:?}"), format!("{ok:?}"), format!("{valid:?}")];
    for (jwt, now) in cases {
        let err = v.verify_at(&jwt, now).await.unwrap_err();
        printed.push(format!("{err}"));
        printed.push(format!("{err:?}"));
        printed.push(format!("{:?}", std::error::Error::source(&err)));
    }
    let down = JwtError::Jwks(crate::error::StytchError::Timeout {
        endpoint: crate::error::Endpoint::Jwks,
    });
    printed.push(format!("{down} {down:?}"));
    for text in printed {
        for part in &parts {
            assert!(!text.contains(part), "{text}");
        }
    }
}

#[test]
fn mangled_and_arbitrary_jwts_never_verify_and_never_panic() {
    // If this broke, some edit of a genuine JWT (its header's `alg` or `kid`, its payload's
    // claims, its segments) would verify without Stytch's signature over exactly those bytes,
    // or a hostile string would panic the verifier. The cargo-fuzz target `jwt` explores the
    // same property for longer.
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_server, v) = rt.block_on(async {
        let server = server_with(vec![jwk(KID1, KEY1_PUB)], 1).await;
        let v = verifier(&server, JwtConfig::default());
        v.refresh_jwks().await.unwrap();
        (server, v)
    });
    let genuine = sign(&claims()).expose_secret().to_owned();
    let signed_part = |s: &str| s.rsplit_once('.').map(|(head, _)| head.to_owned());
    let edits = prop::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..6);
    let strategy = (prop::option::of(".{0,300}"), edits);
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        ..Config::default()
    });
    runner
        .run(&strategy, |(raw, edits)| {
            let mut bytes = raw.unwrap_or_else(|| genuine.clone()).into_bytes();
            for (at, byte, op) in edits {
                let at = usize::from(at) % (bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            let Ok(text) = String::from_utf8(bytes) else {
                return Ok(());
            };
            let result = rt.block_on(v.verify_at(&SessionJwt::new(text.clone()), at(IAT + 1)));
            if result.is_ok() {
                prop_assert_eq!(signed_part(&text), signed_part(&genuine));
            }
            Ok(())
        })
        .unwrap();
}
