//! Local session-JWT verification with the keys already loaded: one valid RS256 JWT (2048-bit
//! key, Stytch's representative B2B claims) per iteration.
//!
//! The JWKS is fetched once, before timing, from a stand-in for Stytch on loopback
//! (`support::StubStytch`); after that no verification touches the network.
//!
//! `jwt/raw_rsa2048_verify` is the floor: the same crypto library's bare RS256 signature
//! check of the same JWT (`jsonwebtoken::crypto::verify`, aws-lc-rs), no claims, no key
//! lookup; `jwt/verify_valid` / `jwt/raw_rsa2048_verify` is the verifier's overhead ratio.

mod support;

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{PROJECT, StubStytch};
use tower_stytch::StytchClient;
use tower_stytch::credential::SessionJwt;
use tower_stytch::jwt::{JwtConfig, JwtVerifier};

const KEY_PEM: &[u8] = include_bytes!("../src/jwt/testdata/key1.pem");
const KEY_PUB: &str = include_str!("../src/jwt/testdata/key1.pub.json");
const KID: &str = "jwk-test-bench";
const IAT: u64 = 1_700_000_000;

async fn setup() -> (StubStytch, JwtVerifier, SessionJwt) {
    let public: Value = serde_json::from_str(KEY_PUB).unwrap();
    let jwks = json!({"keys": [{"kty": "RSA", "kid": KID, "alg": "RS256", "use": "sig",
        "key_ops": ["verify"], "n": public["n"], "e": public["e"]}], "status_code": 200});
    let stytch = StubStytch::start(jwks).await;
    let client = StytchClient::new(stytch.config()).unwrap();
    let verifier = JwtVerifier::new(client, JwtConfig::default());
    verifier.refresh_jwks().await.unwrap();
    let claims = json!({
        "sub": "member-test-fde03dd1-fff7-4b3c-9b31-ead3fbc224de",
        "iss": format!("stytch.com/{PROJECT}"),
        "aud": [PROJECT],
        "iat": IAT, "nbf": IAT, "exp": IAT + 300,
        "https://stytch.com/session": {
            "id": "session-test-e26a0ccb-0dc0-4edb-a4bb-e70210f43555",
            "started_at": "2023-11-14T22:13:20Z",
            "last_accessed_at": "2023-11-14T22:13:20Z",
            "expires_at": "2023-11-15T22:13:20Z",
            "attributes": { "user_agent": "", "ip_address": "" },
            "authentication_factors": [{ "type": "magic_link", "delivery_method": "email",
                "last_authenticated_at": "2023-11-14T22:13:20Z",
                "email_factor": { "email_address": "sandbox@stytch.com",
                    "email_id": "email-test-cca9d7d0-11b6-4167-9385-d7e0c9a77418" } }],
            "roles": ["stytch_member"]
        },
        "https://stytch.com/organization": {
            "organization_id": "organization-test-bd49f916-180c-46fe-9535-d9acd5e30519",
            "slug": "acme"
        },
        "my_custom_claim": "value"
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    let raw = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(KEY_PEM).unwrap(),
    )
    .unwrap();
    (stytch, verifier, SessionJwt::new(raw))
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_stytch, verifier, jwt) = runtime.block_on(setup());
    let now = UNIX_EPOCH + Duration::from_secs(IAT + 10);
    let refused = SessionJwt::new(format!("{}x", jwt.expose_secret()));
    runtime.block_on(async {
        verifier.verify_at(&jwt, now).await.unwrap();
        assert!(verifier.verify_at(&refused, now).await.is_err());
    });
    c.bench_function("jwt/verify_valid", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(verifier.verify_at(black_box(&jwt), now).await.unwrap()) });
    });
    let public: Value = serde_json::from_str(KEY_PUB).unwrap();
    let raw_key = jsonwebtoken::DecodingKey::from_rsa_components(
        public["n"].as_str().unwrap(),
        public["e"].as_str().unwrap(),
    )
    .unwrap();
    let (message, signature) = jwt.expose_secret().rsplit_once('.').unwrap();
    assert!(
        jsonwebtoken::crypto::verify(signature, message.as_bytes(), &raw_key, Algorithm::RS256)
            .unwrap()
    );
    c.bench_function("jwt/raw_rsa2048_verify", |b| {
        b.iter(|| {
            jsonwebtoken::crypto::verify(
                black_box(signature),
                black_box(message.as_bytes()),
                &raw_key,
                Algorithm::RS256,
            )
            .unwrap()
        });
    });
    c.bench_function("jwt/reject_undecodable_signature", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                verifier
                    .verify_at(black_box(&refused), now)
                    .await
                    .unwrap_err(),
            )
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
