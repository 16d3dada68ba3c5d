//! The binary as a process: configuration errors (exit 2, one line), readiness when Stytch
//! goes away, SIGTERM's drain, and the demo's self-test.

use std::time::{Duration, Instant};

use http::StatusCode;

use super::{Gateway, PROJECT_ID, Proc, SECRET, Stytch, bounded, http, upstream};

/// Long on purpose: a table of bad configurations, one entry each, then one loop.
#[test]
fn bad_configuration_exits_2_with_one_line() {
    // If this broke, operators would get a panic, a wall of text or a leaked secret instead of the cause.
    let cases: [(&[&str], &[(&str, &str)], &str); 7] = [
        (
            &[
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--webhook-path",
                "/stytch/webhooks",
            ],
            &[("STYTCH_PROJECT_ID", PROJECT_ID), ("STYTCH_SECRET", SECRET)],
            "STYTCH_WEBHOOK_SECRET",
        ),
        (
            &[
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--webhook-path",
                "/stytch/webhooks",
            ],
            &[
                ("STYTCH_PROJECT_ID", PROJECT_ID),
                ("STYTCH_SECRET", SECRET),
                ("STYTCH_WEBHOOK_SECRET", SECRET),
            ],
            "invalid webhook secret",
        ),
        (
            &["serve", "--upstream", "http://127.0.0.1:9"],
            &[
                ("STYTCH_PROJECT_ID", PROJECT_ID),
                ("STYTCH_SECRET", SECRET),
                ("STYTCH_BASE_URL", "http://stytch.example.com"),
            ],
            "plain http is accepted only for loopback hosts",
        ),
        (
            &["serve", "--upstream", "http://127.0.0.1:9"],
            &[("STYTCH_SECRET", SECRET)],
            "STYTCH_PROJECT_ID",
        ),
        (
            &["serve"],
            &[("STYTCH_PROJECT_ID", PROJECT_ID), ("STYTCH_SECRET", SECRET)],
            "upstream",
        ),
        (
            &[
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--listen",
                "nowhere",
            ],
            &[("STYTCH_PROJECT_ID", PROJECT_ID), ("STYTCH_SECRET", SECRET)],
            "--listen",
        ),
        (
            &["serve", "--upstream", "http://127.0.0.1:9"],
            &[
                ("STYTCH_PROJECT_ID", PROJECT_ID),
                ("STYTCH_SECRET", SECRET),
                ("GATEWAY_TRUSTED_PROXY", "10.0.0.0/8,not-a-network"),
            ],
            "not-a-network",
        ),
    ];
    for (args, env, needle) in cases {
        let mut p = Proc::spawn("badconfig", args, env);
        let status = p.wait(Duration::from_secs(10));
        let stderr = p.stderr();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("stytch-gateway: "), "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains(SECRET), "the secret was printed");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_turns_503_when_the_emulator_dies() {
    // If this broke, a load balancer would keep sending traffic to a gateway that cannot authenticate.
    bounded(async {
        let mut stytch = Stytch::start();
        let up = upstream().await;
        let gw = Gateway::start(&stytch, up.addr, &[]).await;
        stytch.proc.signal("-KILL");
        stytch.proc.wait(Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = http()
                .get(format!("{}/readyz", gw.base))
                .send()
                .await
                .unwrap()
                .status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            assert!(Instant::now() < deadline, "/readyz stayed {status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let live = http()
            .get(format!("{}/healthz", gw.base))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    // If this broke, deploys would cut requests off mid-flight or hang on shutdown.
    bounded(async {
        let stytch = Stytch::start();
        let up = upstream().await;
        let mut gw = Gateway::start(&stytch, up.addr, &["--shutdown-timeout", "8s"]).await;
        let org = stytch.organization("acme").await;
        let (_, token) = stytch.member(&org, "bob@acme.test", &[]).await;
        let url = format!("{}/slow", gw.base);
        let in_flight = tokio::spawn(async move {
            http()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status())
        });
        // Let the request reach the upstream, then ask the gateway to stop.
        let deadline = Instant::now() + Duration::from_secs(10);
        while up.seen.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the slow request never reached the upstream"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gw.proc.signal("-TERM");
        let status = in_flight.await.unwrap().expect("in-flight request failed");
        assert_eq!(status, StatusCode::OK);
        let exit = gw.proc.wait(Duration::from_secs(10));
        assert_eq!(exit.code(), Some(0), "stderr:\n{}", gw.proc.stderr());
    })
    .await;
}

#[test]
fn demo_self_test_passes() {
    // If this broke, the documented demo (and the CI smoke run) would not work on a fresh machine.
    let mut p = Proc::spawn("demo", &["demo", "--self-test"], &[]);
    let status = p.wait(Duration::from_secs(60));
    let stdout = p.stdout();
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        p.stderr()
    );
    assert!(stdout.contains("self-test passed"), "{stdout}");
}
