//! The proxy: identity and forwarding headers, hop-by-hop headers, streaming both ways,
//! HTTP/2 (h2c) to the upstream, and 502 / 504.

use super::*;

#[tokio::test]
async fn identity_headers_reach_the_upstream_and_spoofed_ones_do_not() {
    // If this broke, a client could impersonate any member (or admin) towards the upstream.
    bounded(async {
        let (_up, state, gw) = default_gateway().await;
        let spoof = [
            ("x-stytch-member-id", "member-evil"),
            ("X-Stytch-Roles", "stytch_admin"),
            ("x-stytch-organization-id", "organization-evil"),
            ("x-stytch-member-session-id", "member-session-evil"),
        ];
        let mut authed = spoof.to_vec();
        authed.push(("x-test-authenticated", "1"));
        assert_eq!(
            get(gw.addr, "/echo", &authed).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            get(gw.addr, "/public", &spoof).await.status(),
            StatusCode::OK
        );
        let seen = state.seen.lock().unwrap().clone();
        let (authed, anonymous) = (&seen[0], &seen[1]);
        assert_eq!(authed["x-stytch-member-id"], "member-test-1");
        assert_eq!(authed["x-stytch-organization-id"], "organization-test-1");
        assert_eq!(
            authed["x-stytch-member-session-id"],
            "member-session-test-1"
        );
        assert_eq!(authed["x-stytch-roles"], "stytch_member,editor");
        for name in [
            "x-stytch-member-id",
            "x-stytch-roles",
            "x-stytch-organization-id",
            "x-stytch-member-session-id",
        ] {
            assert_eq!(authed.get_all(name).iter().count(), 1, "{name}");
            assert!(
                !anonymous.contains_key(name),
                "{name} reached the upstream on a public route"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn h2c_speaks_http2_to_a_plain_http_upstream_and_http11_without_it() {
    // If this broke, --upstream-h2c would be ignored (or plain-http upstreams would get a
    // protocol they may not speak without it).
    bounded(async {
        let versions = Arc::new(Mutex::new(Vec::new()));
        let v = versions.clone();
        let up = spawn(tower::service_fn(move |req: Request<Incoming>| {
            v.lock().unwrap().push(req.version());
            async { Ok::<_, Infallible>(text_response(StatusCode::OK, "ok\n")) }
        }))
        .await;
        let upstream = format!("http://{}", up.addr);
        for h2c in [true, false] {
            let transport = Transport {
                h2c,
                ..Transport::default()
            };
            let proxy = Proxy::new(
                &upstream,
                Duration::from_secs(5),
                default_forwarding(),
                &transport,
            )
            .unwrap();
            let req = Request::get("http://gateway/x")
                .body(full_body(Bytes::new()))
                .unwrap();
            assert_eq!(proxy.forward(req).await.status(), StatusCode::OK);
        }
        assert_eq!(
            *versions.lock().unwrap(),
            [http::Version::HTTP_2, http::Version::HTTP_11]
        );
        let https_h2c = Transport {
            h2c: true,
            ..Transport::default()
        };
        let refused = Proxy::new(
            "https://127.0.0.1:1",
            Duration::from_secs(5),
            default_forwarding(),
            &https_h2c,
        );
        assert!(refused.is_err_and(|e| e.is_config()));
    })
    .await;
}

#[tokio::test]
async fn forwarded_headers_are_set_and_a_clients_are_replaced() {
    // If this broke, the upstream would log the gateway's address instead of the client's,
    // or believe the address and scheme any client claims.
    bounded(async {
        let (up, state, gw) = default_gateway().await;
        let r = get(
            gw.addr,
            "/echo",
            &[
                ("host", "app.example:8443"),
                ("x-forwarded-for", "10.1.1.1"),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let seen = state.seen.lock().unwrap()[0].clone();
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen["x-forwarded-proto"], "http");
        assert_eq!(seen["x-forwarded-host"], "app.example:8443");
        assert_eq!(seen["x-real-ip"], "127.0.0.1");
        assert_eq!(seen["host"], up.addr.to_string());
    })
    .await;
}

#[tokio::test]
async fn a_trusted_proxys_forwarded_headers_are_kept() {
    // If this broke, behind a TLS-terminating load balancer the upstream would see every
    // request as plain http from the balancer.
    bounded(async {
        let (up, state) = spawn_upstream().await;
        let forwarding = Forwarding {
            trusted_proxies: TrustedProxies::new(vec![parse_trusted_proxy("127.0.0.0/8").unwrap()]),
            ..default_forwarding()
        };
        let gw = spawn_gateway_with(
            &format!("http://{}", up.addr),
            Duration::from_secs(5),
            Arc::default(),
            forwarding,
        )
        .await;
        let r = get(
            gw.addr,
            "/echo",
            &[
                ("x-forwarded-for", "10.1.1.1"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let seen = state.seen.lock().unwrap()[0].clone();
        assert_eq!(seen["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
        assert_eq!(seen["x-forwarded-proto"], "https");
        assert_eq!(seen["x-forwarded-host"], "app.example");
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    // If this broke, connection-scoped headers (and Proxy-Authorization) would leak across hops.
    bounded(async {
        let (_up, state, gw) = default_gateway().await;
        let r = get(
            gw.addr,
            "/hop",
            &[
                ("connection", "x-drop-me"),
                ("x-drop-me", "1"),
                ("proxy-authorization", "Basic Zm9vOmJhcg=="),
                ("te", "trailers"),
                ("x-end-to-end", "1"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let seen = state.seen.lock().unwrap()[0].clone();
        for name in ["x-drop-me", "proxy-authorization", "te"] {
            assert!(!seen.contains_key(name), "{name} reached the upstream");
        }
        assert_eq!(seen["x-end-to-end"], "1");
        assert!(!r.headers().contains_key("x-secret-hop"));
        assert!(!r.headers().contains_key("keep-alive"));
        assert_eq!(r.headers()["x-kept"], "1");
    })
    .await;
}

#[tokio::test]
async fn response_bodies_stream_without_buffering() {
    // If this broke, the gateway would hold whole responses in memory (and stall SSE/downloads).
    bounded(async {
        let (_up, state, gw) = default_gateway().await;
        let req = Request::get(format!("http://{}/stream", gw.addr))
            .body(full_body(Bytes::new()))
            .unwrap();
        let response = client().request(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        // The upstream sends the rest only after we saw the first chunk.
        let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("first chunk did not arrive before the upstream finished: buffered")
            .unwrap()
            .unwrap();
        assert_eq!(first.data_ref().unwrap().as_ref(), b"first\n");
        state.release.notify_one();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest.len(), BIG);
    })
    .await;
}

#[tokio::test]
async fn request_bodies_stream_without_buffering() {
    // If this broke, uploads would be buffered whole in the gateway before reaching the upstream.
    bounded(async {
        let (_up, state, gw) = default_gateway().await;
        let (tx, body) = channel_body();
        let req = Request::post(format!("http://{}/upload", gw.addr))
            .body(body)
            .unwrap();
        let response = tokio::spawn(client().request(req));
        tx.send(Bytes::from(vec![b'a'; CHUNK])).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), state.first_chunk_seen.notified())
            .await
            .expect("the upstream did not see the first chunk while the upload was open");
        for _ in 1..BIG / CHUNK {
            tx.send(Bytes::from(vec![b'a'; CHUNK])).await.unwrap();
        }
        drop(tx);
        let response = response.await.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let count = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(count, BIG.to_string().as_bytes());
    })
    .await;
}

#[tokio::test]
async fn upstream_down_is_502() {
    // If this broke, clients would see a hung request or a 500 instead of a clear 502.
    bounded(async {
        let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let gw = spawn_gateway(
            &format!("http://{addr}"),
            Duration::from_secs(5),
            Arc::default(),
        )
        .await;
        let r = get(gw.addr, "/anything", &[]).await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(r.body().as_ref(), b"upstream unavailable\n");
    })
    .await;
}

#[tokio::test]
async fn slow_upstream_is_504_after_the_timeout() {
    // If this broke, a stuck upstream would hold client connections for as long as it likes.
    bounded(async {
        let (up, _state) = spawn_upstream().await;
        let gw = spawn_gateway(
            &format!("http://{}", up.addr),
            Duration::from_millis(300),
            Arc::default(),
        )
        .await;
        let started = Instant::now();
        let r = get(gw.addr, "/slow", &[]).await;
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(r.body().as_ref(), b"upstream timed out\n");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}
