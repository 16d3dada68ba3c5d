//! Local session-JWT verification through the layer, against the emulator's keys.
//!
//! If these fail, forged JWTs are accepted, valid ones cost a Stytch round trip each, or a
//! Stytch key rotation locks users out.

use std::time::Duration;

use crate::support::{World, app, serve};
use base64::Engine as _;
use http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use stytch_emulator::{EmulatorEndpoint, Fault};
use tower_stytch::jwt::JwtConfig;

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn a_valid_jwt_is_accepted_without_calling_stytch() {
    // If this broke, every JWT request would cost a Stytch round trip.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    for _ in 0..3 {
        let res = s
            .get_as("/whoami", w.member.session_jwt.expose_secret())
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.text().await.unwrap(), w.member.member_id);
    }
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 0);
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Jwks), 1);
}

#[tokio::test]
async fn forged_jwts_are_refused_without_calling_stytch() {
    // If this broke, forged or alg-none tokens would be accepted or forwarded to Stytch.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    let real = w.member.session_jwt.expose_secret();
    let parts: Vec<&str> = real.split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap(),
    )
    .unwrap();
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": header["kid"]})),
        parts[1]
    );
    let none_sig = format!(
        "{}.{}.c2ln",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": header["kid"]})),
        parts[1]
    );
    claims["sub"] = w.admin.member_id.clone().into();
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    let hs = format!(
        "{}.{}.{}",
        b64(&serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]})),
        parts[1],
        parts[2]
    );
    for (name, jwt) in [
        ("none", none),
        ("none with sig", none_sig),
        ("tampered", tampered),
        ("hs256", hs),
    ] {
        let res = s.get_as("/whoami", &jwt).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 0);
}

#[tokio::test]
async fn a_too_old_jwt_goes_to_stytch_and_the_fresh_one_is_set_back() {
    // If this broke, JWTs past max_token_age would be trusted, or browsers never refreshed.
    let w = World::new().await;
    let layer = w
        .builder()
        .jwt(
            JwtConfig::builder()
                .max_token_age(Duration::from_secs(60))
                .build(),
        )
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    // A JWT minted two minutes ago: still within exp, but older than max_token_age.
    w.emulator.set_clock_offset(-120);
    let old = w.emulator.mint_jwt(&w.member.member_session_id).unwrap();
    w.emulator.set_clock_offset(0);
    let res = s
        .http
        .get(s.url("/whoami"))
        .header(
            "cookie",
            format!("stytch_session_jwt={}", old.expose_secret()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 1);
    let set = res.headers()["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("stytch_session_jwt="));
    assert!(!set.contains(old.expose_secret()));

    // An expired JWT of a live session also goes to Stytch.
    w.emulator.set_clock_offset(-600);
    let expired = w.emulator.mint_jwt(&w.member2.member_session_id).unwrap();
    w.emulator.set_clock_offset(0);
    let res = s.get_as("/whoami", expired.expose_secret()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 2);
}

#[tokio::test]
async fn key_rotation_keeps_old_jwts_valid_and_learns_the_new_key() {
    // If this broke, a Stytch key rotation would lock users out.
    let w = World::new().await;
    let cooldown = Duration::from_secs(2);
    let layer = w
        .builder()
        .jwt(JwtConfig::builder().unknown_kid_cooldown(cooldown).build())
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    let get = |jwt: String| {
        let s = &s;
        async move { s.get_as("/whoami", &jwt).await.status() }
    };
    assert_eq!(
        get(w.member.session_jwt.expose_secret().to_owned()).await,
        StatusCode::OK
    );
    w.emulator.rotate_key();
    // Right after a JWKS fetch (within the cooldown) a JWT with the new kid is left to Stytch.
    let fresh = w.emulator.create_session(&w.member2.member_id);
    assert_eq!(
        get(fresh.session_jwt.expose_secret().to_owned()).await,
        StatusCode::OK
    );
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 1);
    // After the cooldown the new key is fetched and verifies locally; the old key still does.
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    let newer = w.emulator.create_session(&w.member2.member_id);
    assert_eq!(
        get(newer.session_jwt.expose_secret().to_owned()).await,
        StatusCode::OK
    );
    assert_eq!(
        get(w.admin.session_jwt.expose_secret().to_owned()).await,
        StatusCode::OK
    );
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Jwks), 2);
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 1);
}

#[tokio::test]
async fn fresh_jwt_from_stytch_clock_ahead_is_accepted() {
    // If this broke, a host whose clock is a few seconds behind Stytch's would refuse every
    // brand-new JWT (Stytch sets nbf = iat = its own now) and negative-cache it for 60 s.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    w.emulator.set_clock_offset(20);
    let fresh = w.emulator.mint_jwt(&w.member.member_session_id).unwrap();
    let res = s.get_as("/whoami", fresh.expose_secret()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), w.member.member_id);
    // Within the clock skew the JWT verifies locally: Stytch is not asked.
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 0);
}

#[tokio::test]
async fn not_yet_valid_jwt_is_never_negative_cached() {
    // If this broke, a host whose clock is further behind Stytch's than the skew would refuse
    // new JWTs locally and remember the refusal: the member locked out for a minute (or for
    // as long as the clocks disagree) although Stytch accepts the session.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    w.emulator.set_clock_offset(120);
    let ahead = w.emulator.mint_jwt(&w.member.member_session_id).unwrap();
    // Not refused here: sent to Stytch, which is failing at first (503, fail closed)...
    w.emulator.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        2,
    );
    let res = s.get_as("/whoami", ahead.expose_secret()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // ...then answers: the session is live, and nothing remembered stands in the way.
    w.emulator.clear_faults();
    let res = s.get_as("/whoami", ahead.expose_secret()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), w.member.member_id);
    assert!(w.emulator.request_count(EmulatorEndpoint::Authenticate) >= 2);
}

#[tokio::test]
async fn jwks_outage_at_startup_falls_back_to_stytch_authenticate() {
    // If this broke, a process that could not load Stytch's JWKS (a blip at startup, a
    // JWKS-only fault) would answer every session JWT 503 for the whole fetch cooldown
    // (30 s) although Stytch's authenticate answers: measured before the fix in the fault
    // matrix as 25-30 s of 503s after the fault stopped.
    let w = World::new().await;
    let s = serve(w.builder().build().unwrap(), app()).await;
    w.emulator.inject_fault(
        EmulatorEndpoint::Jwks,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        1000,
    );
    let res = s
        .get_as("/whoami", w.member.session_jwt.expose_secret())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), w.member.member_id);
    assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 1);
    // A forged JWT is still refused by Stytch, not let in because the keys are missing.
    let forged = format!("{}x", w.member2.session_jwt.expose_secret());
    let res = s.get_as("/whoami", &forged).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// The RSA checks the JWT verifier ran since the last call (`valid`, `invalid`): the debugging
/// recorder's snapshot resets its counters.
fn rsa_verifications(snapshotter: &Snapshotter) -> (u64, u64) {
    let (mut valid, mut invalid) = (0, 0);
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() != tower_stytch::metrics::JWT_VERIFICATIONS {
            continue;
        }
        let DebugValue::Counter(n) = value else {
            continue;
        };
        match key
            .labels()
            .find(|l| l.key() == "result")
            .map(|l| l.value())
        {
            Some("valid") => valid += n,
            Some("invalid") => invalid += n,
            other => panic!("unexpected result label {other:?}"),
        }
    }
    (valid, invalid)
}

#[test]
fn a_repeated_jwt_runs_one_rsa_verification() {
    // If this broke, a JWT already verified would pay the RSA check again on every request:
    // the session cache keyed by something other than the JWT, JWT hits not served from it,
    // or concurrent first requests no longer coalesced into one verification.
    //
    // The recorder is thread-local (`with_local_recorder`), so the emulator, the server and the
    // requests all run on this thread's current-thread runtime (the layer verifies in the
    // request's own task).
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let w = World::new().await;
            let s = serve(w.builder().build().unwrap(), app()).await;
            let jwt = w.member.session_jwt.expose_secret();
            // 10 concurrent first requests, then 40 one after another.
            let first = futures_util::future::join_all((0..10).map(|_| s.get_as("/whoami", jwt)));
            for res in first.await {
                assert_eq!(res.status(), StatusCode::OK);
            }
            for _ in 0..40 {
                let res = s.get_as("/whoami", jwt).await;
                assert_eq!(res.status(), StatusCode::OK);
                assert_eq!(res.text().await.unwrap(), w.member.member_id);
            }
            assert_eq!(rsa_verifications(&snapshotter), (1, 0));
            // Another JWT is another verification, once.
            let other = w.member2.session_jwt.expose_secret();
            for _ in 0..5 {
                assert_eq!(s.whoami(other).await, StatusCode::OK);
            }
            assert_eq!(rsa_verifications(&snapshotter), (1, 0));
            // Neither went to Stytch: the counts are of local verifications.
            assert_eq!(w.emulator.request_count(EmulatorEndpoint::Authenticate), 0);
        });
    });
}
