//! The JWKS: fetched once, refetched for unknown kids within a cooldown, rotated, refreshed
//! outside requests; and what never verifies whatever the keys.

use super::*;

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
