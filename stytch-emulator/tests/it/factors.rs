//! Authentication factors: what a session lists (authenticate, Get Sessions, the JWT claim)
//! and the MFA step that adds a second factor.
//!
//! If these fail, a step-up check (a route needing a recent TOTP or SMS OTP) proven against
//! the emulator would read factors in another shape or at another time than Stytch sends.

use std::time::Duration;

use serde_json::{Map, Value, json};
use stytch_emulator::{AuthenticationFactor, EmulatorError};

use crate::rbac::start;

const AUTHENTICATE: &str = "v1/b2b/sessions/authenticate";

fn factors_of_jwt(jwt: &str) -> Value {
    crate::decode_claims(jwt)["https://stytch.com/session"]["authentication_factors"].clone()
}

fn methods(factors: &Value) -> Vec<(String, String)> {
    factors
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_owned(),
                f["delivery_method"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(t: &str, d: &str) -> (String, String) {
    (t.to_owned(), d.to_owned())
}

#[tokio::test]
async fn a_new_session_has_a_magic_link_factor_everywhere() {
    // If this failed, the default factor (the emulator's primary login) would differ between
    // authenticate, Get Sessions and the JWT, and readers of one would disagree with another.
    let r = start().await;
    let member = r.emu.create_member(&r.org, "ada@acme.test", &[]);
    let s = r.emu.create_session(&member);
    let from_jwt = factors_of_jwt(s.session_jwt.expose_secret());
    assert_eq!(methods(&from_jwt), [pair("magic_link", "email")]);
    let f = &from_jwt[0];
    assert_eq!(f["email_factor"]["email_address"], "ada@acme.test");
    assert!(
        f["email_factor"]["email_id"]
            .as_str()
            .unwrap()
            .starts_with("email-test-")
    );
    let at = f["last_authenticated_at"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(at).is_ok(), "{at}");

    let (_, body) = r
        .post(
            AUTHENTICATE,
            json!({"session_token": s.session_token.expose_secret()}),
        )
        .await;
    assert_eq!(body["member_session"]["authentication_factors"], from_jwt);
    let (_, body) = r
        .get(&format!(
            "v1/b2b/sessions?organization_id={}&member_id={member}",
            r.org
        ))
        .await;
    assert_eq!(
        body["member_sessions"][0]["authentication_factors"],
        from_jwt
    );
}

#[tokio::test]
async fn the_mfa_step_adds_a_second_factor_to_later_jwts_only() {
    // If this failed, a step-up flow could not be emulated: the JWT after the MFA step must
    // carry the TOTP factor with its time, and the JWT from before must not.
    let r = start().await;
    let member = r.emu.create_member(&r.org, "ada@acme.test", &[]);
    let s = r.emu.create_session(&member);
    let before = s.session_jwt.expose_secret().to_owned();
    let at = 1_900_000_000;
    let jwt = r
        .emu
        .add_session_factor(&s.member_session_id, AuthenticationFactor::totp().at(at))
        .unwrap();
    let factors = factors_of_jwt(jwt.expose_secret());
    assert_eq!(
        methods(&factors),
        [
            pair("magic_link", "email"),
            pair("totp", "authenticator_app")
        ]
    );
    assert_eq!(factors[1]["last_authenticated_at"], "2030-03-17T17:46:40Z");
    assert!(
        factors[1]["authenticator_app_factor"]["totp_id"]
            .as_str()
            .unwrap()
            .starts_with("totp-test-")
    );
    assert_eq!(methods(&factors_of_jwt(&before)).len(), 1);

    let (_, body) = r.post(AUTHENTICATE, json!({"session_jwt": before})).await;
    assert_eq!(body["member_session"]["authentication_factors"], factors);
    assert_eq!(
        factors_of_jwt(body["session_jwt"].as_str().unwrap()),
        factors,
        "authenticate mints a JWT carrying the factor"
    );

    // TOTP again: the same factor, a later time.
    let jwt = r
        .emu
        .add_session_factor(
            &s.member_session_id,
            AuthenticationFactor::totp().at(at + 60),
        )
        .unwrap();
    let again = factors_of_jwt(jwt.expose_secret());
    assert_eq!(again.as_array().unwrap().len(), 2);
    assert_eq!(again[1]["last_authenticated_at"], "2030-03-17T17:47:40Z");
    assert_eq!(
        again[1]["authenticator_app_factor"],
        factors[1]["authenticator_app_factor"]
    );
    assert_eq!(
        r.emu
            .add_session_factor("session-test-nope", AuthenticationFactor::totp()),
        Err(EmulatorError::UnknownSession)
    );
}

#[tokio::test]
async fn sessions_can_start_with_given_factors() {
    // If this failed, tests of a route needing SSO or SMS could not create such a session.
    let r = start().await;
    let member = r.emu.create_member(&r.org, "ada@acme.test", &[]);
    let s = r
        .emu
        .create_session_with_factors(
            &member,
            Duration::from_secs(600),
            Map::new(),
            vec![
                AuthenticationFactor::password(),
                AuthenticationFactor::sms_otp("+15555550123"),
            ],
        )
        .unwrap();
    let factors = factors_of_jwt(s.session_jwt.expose_secret());
    assert_eq!(
        methods(&factors),
        [pair("password", "knowledge"), pair("otp", "sms")]
    );
    assert_eq!(
        factors[1]["phone_number_factor"]["phone_number"],
        "+15555550123"
    );
    assert!(
        r.emu
            .create_session_with_factors(
                "member-test-nope",
                Duration::from_secs(60),
                Map::new(),
                Vec::new()
            )
            .is_err()
    );
}

#[tokio::test]
async fn the_control_api_starts_sessions_with_factors_and_adds_factors() {
    // If this failed, non-Rust tests could not emulate an MFA step.
    let r = start().await;
    let member = r.emu.create_member(&r.org, "ada@acme.test", &[]);
    let (status, body) = r
        .post(
            "emulator/v1/sessions",
            json!({"member_id": member, "authentication_factors": [
                {"type": "email_otp", "delivery_method": "email"}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["member_session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        methods(&factors_of_jwt(body["session_jwt"].as_str().unwrap())),
        [pair("email_otp", "email")]
    );

    let (status, body) = r
        .post(
            &format!("emulator/v1/sessions/{id}/factors"),
            json!({"type": "otp", "delivery_method": "sms", "phone_number": "+15555550123",
                   "last_authenticated_at": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let factors = &body["member_session"]["authentication_factors"];
    assert_eq!(factors[1]["last_authenticated_at"], "2030-01-01T00:00:00Z");
    assert_eq!(
        factors_of_jwt(body["session_jwt"].as_str().unwrap()),
        *factors
    );

    let (status, body) = r
        .post(
            &format!("emulator/v1/sessions/{id}/factors"),
            json!({"type": "otp", "delivery_method": "sms"}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error_type"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, body) = r
        .post(
            "emulator/v1/sessions/session-test-nope/factors",
            json!({"type": "totp", "delivery_method": "authenticator_app"}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error_type"].as_str()),
        (404, Some("session_not_found"))
    );
}
