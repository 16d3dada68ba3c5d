//! Every injectable fault as a real HTTP client (reqwest) sees it over loopback: the error
//! kind it reports (refused, reset, closed, timeout, cut body, decode) and that the fault ends.
//!
//! If these fail, the fault matrix of `tower-stytch` and the gateway (issue 15) measures
//! something other than what its rows are named after: a "reset" that is really a clean close,
//! a "refused" that a pooled connection hides, a "trickle" that arrives at once.

use std::error::Error as _;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stytch_emulator::{Emulator, EmulatorConfig, EmulatorEndpoint, Fault};

/// An emulator with one member and one live session, and URLs for each endpoint.
struct Setup {
    emu: Emulator,
    http: reqwest::Client,
    org: String,
    member: String,
    token: String,
}

async fn setup() -> Setup {
    let emu = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emu.create_organization("Acme", "acme");
    let member = emu.create_member(&org, "ada@acme.test", &[]);
    let token = emu
        .create_session(&member)
        .session_token
        .expose_secret()
        .to_owned();
    Setup {
        emu,
        http: reqwest::Client::new(),
        org,
        member,
        token,
    }
}

impl Setup {
    /// A well-formed call of `endpoint` with Basic auth.
    fn call(&self, endpoint: EmulatorEndpoint) -> reqwest::RequestBuilder {
        let base = self.emu.base_url();
        let req = match endpoint {
            EmulatorEndpoint::Authenticate => self
                .http
                .post(format!("{base}v1/b2b/sessions/authenticate"))
                .json(&json!({"session_token": self.token})),
            EmulatorEndpoint::Revoke => self
                .http
                .post(format!("{base}v1/b2b/sessions/revoke"))
                .json(&json!({"member_id": "member-test-unknown"})),
            EmulatorEndpoint::Jwks => self.http.get(format!(
                "{base}v1/b2b/sessions/jwks/{}",
                self.emu.project_id()
            )),
            _ => self.http.get(format!(
                "{base}v1/b2b/sessions?organization_id={}&member_id={}",
                self.org, self.member
            )),
        };
        req.basic_auth(self.emu.project_id(), Some(self.emu.secret()))
    }
}

const ENDPOINTS: [EmulatorEndpoint; 4] = [
    EmulatorEndpoint::Authenticate,
    EmulatorEndpoint::Revoke,
    EmulatorEndpoint::Jwks,
    EmulatorEndpoint::GetSessions,
];

/// The `io::ErrorKind` somewhere in the error's source chain.
fn io_kind(error: &reqwest::Error) -> Option<ErrorKind> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// Whether hyper reported "connection closed before message completed" (a clean close).
fn closed_before_answer(error: &reqwest::Error) -> bool {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        source = e.source();
    }
    false
}

#[tokio::test]
async fn rst_is_a_connection_reset_on_every_endpoint() {
    // If this failed, the "TCP RST" row of the fault matrix would test a clean close instead.
    let s = setup().await;
    for endpoint in ENDPOINTS {
        s.emu.inject_fault(endpoint, Fault::Rst, 1);
        let error = s.call(endpoint).send().await.unwrap_err();
        assert_eq!(
            io_kind(&error),
            Some(ErrorKind::ConnectionReset),
            "{endpoint:?}: {error:?}"
        );
        let after = s.call(endpoint).send().await.unwrap();
        assert!(after.status().as_u16() < 500, "{endpoint:?} recovers");
    }
    assert_eq!(s.emu.request_count(EmulatorEndpoint::GetSessions), 2);
}

#[tokio::test]
async fn close_is_a_clean_close_not_a_reset() {
    // If this failed, the historical `ConnectionReset` fault would have changed meaning under
    // the tests that use it, or would be indistinguishable from `Rst`.
    let s = setup().await;
    s.emu
        .inject_fault(EmulatorEndpoint::Authenticate, Fault::ConnectionReset, 1);
    let error = s
        .call(EmulatorEndpoint::Authenticate)
        .send()
        .await
        .unwrap_err();
    assert!(closed_before_answer(&error), "{error:?}");
    assert_ne!(io_kind(&error), Some(ErrorKind::ConnectionReset));
}

#[tokio::test]
async fn hang_and_latency_are_client_timeouts() {
    // If this failed, the "Stytch hangs" rows would not exercise the client's deadline.
    let s = setup().await;
    s.emu.inject_fault(EmulatorEndpoint::Revoke, Fault::Hang, 1);
    s.emu.inject_fault(
        EmulatorEndpoint::Jwks,
        Fault::Latency(Duration::from_secs(30)),
        1,
    );
    for endpoint in [EmulatorEndpoint::Revoke, EmulatorEndpoint::Jwks] {
        let error = s
            .call(endpoint)
            .timeout(Duration::from_millis(300))
            .send()
            .await
            .unwrap_err();
        assert!(error.is_timeout(), "{endpoint:?}: {error:?}");
    }
    let answer = s.call(EmulatorEndpoint::Revoke).send().await.unwrap();
    assert_eq!(answer.status(), 404, "the next call is answered");
}

#[tokio::test]
async fn trickle_sends_a_valid_answer_one_byte_at_a_time() {
    // If this failed, a slow-body fault would arrive at once (or broken), and a client's
    // whole-response deadline would never be tested against a body that never seems to end.
    let s = setup().await;
    let whole = s
        .call(EmulatorEndpoint::Revoke)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    s.emu.inject_fault(
        EmulatorEndpoint::Revoke,
        Fault::Trickle {
            interval: Duration::from_millis(5),
        },
        1,
    );
    let response = s.call(EmulatorEndpoint::Revoke).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let declared = response.content_length().unwrap();
    let mut response = response;
    let (mut received, mut chunks) = (Vec::new(), 0);
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert_eq!(received.len() as u64, declared);
    assert!(
        chunks > received.len() / 2,
        "{chunks} chunks for {} bytes: not trickled",
        received.len()
    );
    let body: Value = serde_json::from_slice(&received).unwrap();
    assert_eq!(body["error_type"], "member_not_found");
    assert_eq!(received.len(), whole.len());

    // With a deadline shorter than the body takes, the status arrives but the body times out.
    s.emu.inject_fault(
        EmulatorEndpoint::Revoke,
        Fault::Trickle {
            interval: Duration::from_millis(50),
        },
        1,
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let slow = client
        .post(format!("{}v1/b2b/sessions/revoke", s.emu.base_url()))
        .basic_auth(s.emu.project_id(), Some(s.emu.secret()))
        .json(&json!({"member_id": "member-test-unknown"}))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 404);
    let error = slow.bytes().await.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn malformed_and_truncated_bodies_are_decode_and_body_errors() {
    // If this failed, the "non-JSON body" and "truncated body" rows would test other errors.
    let s = setup().await;
    s.emu
        .inject_fault(EmulatorEndpoint::GetSessions, Fault::MalformedBody, 1);
    s.emu
        .inject_fault(EmulatorEndpoint::GetSessions, Fault::TruncatedBody, 1);
    let response = s.call(EmulatorEndpoint::GetSessions).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let error = response.json::<Value>().await.unwrap_err();
    assert!(error.is_decode() && io_kind(&error).is_none(), "{error:?}");
    let response = s.call(EmulatorEndpoint::GetSessions).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // reqwest files a body cut short under "decode" too; the cause tells them apart.
    let error = response.bytes().await.unwrap_err();
    assert_eq!(io_kind(&error), Some(ErrorKind::UnexpectedEof), "{error:?}");
}

/// Sends a call until `pred` holds for its outcome, for at most 2 seconds.
async fn within_2s(
    s: &Setup,
    pred: impl Fn(&Result<reqwest::Response, reqwest::Error>) -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if pred(&s.call(EmulatorEndpoint::Jwks).send().await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn refused(outcome: &Result<reqwest::Response, reqwest::Error>) -> bool {
    outcome
        .as_ref()
        .is_err_and(|e| e.is_connect() && io_kind(e) == Some(ErrorKind::ConnectionRefused))
}

#[tokio::test]
async fn refused_closes_the_port_even_to_pooled_connections_and_reopens_it() {
    // If this failed, "Stytch refuses connections" could not be shown: a client's pooled
    // keep-alive connection would keep working, or the port would never come back.
    let s = setup().await;
    // A pooled connection exists before the refusal.
    assert_eq!(
        s.call(EmulatorEndpoint::Jwks)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.emu.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Refused { duration: None },
        1,
    );
    assert!(s.emu.is_refusing_connections());
    assert!(within_2s(&s, refused).await, "connects are refused");
    let error = s
        .call(EmulatorEndpoint::Authenticate)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        io_kind(&error),
        Some(ErrorKind::ConnectionRefused),
        "{error:?}"
    );
    let counted = s.emu.request_count(EmulatorEndpoint::Authenticate);
    assert_eq!(counted, 0, "refused calls never arrive");

    s.emu.clear_faults();
    assert!(
        within_2s(&s, |o| o.as_ref().is_ok_and(|r| r.status() == 200)).await,
        "listening again on the same port"
    );
}

#[tokio::test]
async fn a_timed_refusal_through_the_control_api_ends_by_itself() {
    // If this failed, non-Rust drivers (the soak script) could not inject a refusal, or it
    // would never end (the control API is on the refused port).
    let s = setup().await;
    let answer = s
        .http
        .post(format!("{}emulator/v1/faults", s.emu.base_url()))
        .basic_auth(s.emu.project_id(), Some(s.emu.secret()))
        .json(&json!({"endpoint": "jwks", "fault": {"type": "refused", "millis": 400}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "the control call itself is answered");
    assert!(within_2s(&s, refused).await, "connects are refused");
    assert!(
        within_2s(&s, |o| o.as_ref().is_ok_and(|r| r.status() == 200)).await,
        "the refusal ends after its duration"
    );
    assert!(!s.emu.is_refusing_connections());
}

#[tokio::test]
async fn clear_faults_drops_queued_faults() {
    // If this failed, a test could not stop a fault it queued for many calls.
    let s = setup().await;
    s.emu.inject_fault(
        EmulatorEndpoint::Jwks,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        100,
    );
    assert_eq!(
        s.call(EmulatorEndpoint::Jwks)
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let cleared = s
        .http
        .delete(format!("{}emulator/v1/faults", s.emu.base_url()))
        .basic_auth(s.emu.project_id(), Some(s.emu.secret()))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(
        s.call(EmulatorEndpoint::Jwks)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
