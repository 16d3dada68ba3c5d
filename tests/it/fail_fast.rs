//! A Stytch outage costs a request at most the configured deadline, and retries never
//! multiply it: the retry budget keeps them to a fraction of first attempts.

use std::time::{Duration, Instant};

use http::StatusCode;
use stytch_emulator::{EmulatorEndpoint, Fault};
use tower_stytch::StytchAuthLayer;
use tower_stytch::client::RetryPolicy;

use crate::support::{World, app, serve};

#[tokio::test]
async fn hanging_stytch_answers_503_within_the_deadline_not_after_every_attempt_timed_out() {
    // If this broke, a Stytch that accepts connections and never answers would hold every
    // request for attempts × attempt timeout (10 s before this fix) instead of the 3 s
    // deadline, piling up connections in front of the app.
    let w = World::new().await;
    let layer = StytchAuthLayer::builder(w.client_with_defaults())
        .without_jwt()
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    w.emulator
        .inject_fault(EmulatorEndpoint::Authenticate, Fault::Hang, 10);
    let started = Instant::now();
    let res = s
        .get_as("/whoami", w.member.session_token.expose_secret())
        .await;
    let took = started.elapsed();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    // The default deadline is 3 s; a generous margin for a loaded machine, far below the
    // 10 s of the old behaviour.
    assert!(took < Duration::from_secs(6), "answered after {took:?}");
    assert!(w.emulator.request_count(EmulatorEndpoint::Authenticate) <= 2);
}

#[tokio::test]
async fn stytch_outage_is_not_amplified_by_retries() {
    // If this broke, every request during a Stytch 503 (or a 429 without Retry-After) would
    // cost Stytch three calls, and every instance would triple the load on a struggling
    // Stytch: the budget allows 20 % of first attempts plus 10 per second (banked 100).
    let w = World::new().await;
    let retry = {
        let mut r = RetryPolicy::default();
        r.base_delay = Duration::from_millis(2);
        r.max_delay = Duration::from_millis(5);
        r
    };
    let layer = StytchAuthLayer::builder(w.client_with_retry(retry))
        .without_jwt()
        .build()
        .unwrap();
    let s = serve(layer, app()).await;
    let requests = 600;
    let tokens: Vec<String> = (0..requests)
        .map(|_| {
            w.emulator
                .create_session(&w.member.member_id)
                .session_token
                .expose_secret()
                .to_owned()
        })
        .collect();
    w.emulator.inject_fault(
        EmulatorEndpoint::Authenticate,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        usize::MAX / 2,
    );
    let started = Instant::now();
    let mut statuses = Vec::new();
    for chunk in tokens.chunks(50) {
        let mut set = tokio::task::JoinSet::new();
        for token in chunk {
            let (http, url, token) = (s.http.clone(), s.url("/whoami"), token.clone());
            set.spawn(async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
        }
        statuses.extend(set.join_all().await);
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE)
    );
    let calls = w.emulator.request_count(EmulatorEndpoint::Authenticate);
    let retries = calls - requests;
    // Banked 100 + 20 % of 600 + 10 per second elapsed; without a budget it would be 1200.
    let allowed = 100.0 + 0.2 * requests as f64 + 10.0 * elapsed.ceil() + 1.0;
    assert!(
        (retries as f64) <= allowed,
        "{retries} retries for {requests} requests in {elapsed:.1} s (allowed {allowed})"
    );
    w.emulator.clear_faults();
    assert_eq!(s.whoami(&tokens[0]).await, StatusCode::OK);
}
