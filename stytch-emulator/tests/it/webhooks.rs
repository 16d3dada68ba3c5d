//! The emulator's webhooks as a receiver sees them: a tiny hyper server on loopback records
//! each request and checks its Svix signature with its own HMAC (aws-lc-rs, not the
//! emulator's hmac/sha2 code). Also the member lifecycle behind the events.
//!
//! If these fail, the webhook receiver of `tower-stytch` and the gateway (issue 13) is tested
//! against messages Stytch would not send: wrong signatures, payloads or event sources, no
//! retries, or a deleted member whose sessions still work.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use stytch_emulator::{
    DeliveryState, Emulator, EmulatorConfig, EmulatorError, EventSource, MemberUpdate,
    WebhookEndpoint, WebhookMessage, WebhookSecret,
};

/// How the receiver answers a request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on loopback: answers with the scripted replies, then 204.
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn receiver(script: &[Reply]) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
    let (log, replies) = (received.clone(), script.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (log, replies) = (log.clone(), replies.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (log, replies) = (log.clone(), replies.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        log.lock().unwrap().push(Received {
                            path: parts.uri.path().to_owned(),
                            headers: parts.headers,
                            body,
                        });
                        let reply = replies.lock().unwrap().pop_front();
                        let status = match reply {
                            Some(Reply::Status(s)) => s,
                            Some(Reply::Hang) => std::future::pending().await,
                            None => 204,
                        };
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::from_u16(status).unwrap();
                        if status == 302 {
                            response
                                .headers_mut()
                                .insert("location", "/elsewhere".parse().unwrap());
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Receiver { addr, received }
}

impl Receiver {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn endpoint(&self, path: &str) -> WebhookEndpoint {
        WebhookEndpoint::new(self.url(path)).unwrap()
    }

    /// The first `n` requests, waiting for them for at most 2 seconds.
    async fn first(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} webhooks within 2 s",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// All requests after a quiet moment (to show that no more arrive).
    async fn settled(&self) -> Vec<Received> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.received.lock().unwrap().clone()
    }
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Svix's check, computed independently: HMAC-SHA256 with aws-lc-rs, keyed with the base64
/// part of `whsec_…`, over `id.timestamp.body`; any of the `v1,` signatures may match.
fn signature_ok(secret: &str, r: &Received) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key_bytes = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key_bytes);
    let mut signed =
        format!("{}.{}.", r.header("svix-id"), r.header("svix-timestamp")).into_bytes();
    signed.extend_from_slice(&r.body);
    r.header("svix-signature").split(' ').any(|sig| {
        sig.strip_prefix("v1,")
            .and_then(|s| b64.decode(s).ok())
            .is_some_and(|tag| aws_lc_rs::hmac::verify(&key, &signed, &tag).is_ok())
    })
}

fn fast_retries(receiver: &Receiver) -> EmulatorConfig {
    EmulatorConfig::new()
        .webhook_endpoint(receiver.endpoint("/hooks"))
        .webhook_retry_delays([Duration::from_millis(10), Duration::from_millis(20)])
        .webhook_timeout(Duration::from_millis(300))
}

/// The received event whose `(action, object_type)` matches.
fn event<'a>(all: &'a [Received], action: &str, object_type: &str) -> &'a Received {
    all.iter()
        .find(|r| {
            let b = r.json();
            b["action"] == action && b["object_type"] == object_type
        })
        .unwrap_or_else(|| panic!("no {object_type} {action} event"))
}

#[tokio::test]
async fn lifecycle_events_are_svix_signed_with_stytchs_payload() {
    // If this failed, a receiver verifying Svix signatures and reading Stytch's payload (the
    // library's webhook endpoint) could not be tested against the emulator.
    let rx = receiver(&[]).await;
    let emu = Emulator::start(fast_retries(&rx)).await.unwrap();
    let secret = emu.webhook_secret();
    let org = emu.create_organization("Acme", "acme");
    let member = emu.create_member(&org, "ada@acme.test", &["stytch_admin"]);
    emu.via(EventSource::Dashboard)
        .update_member(
            &member,
            MemberUpdate::new().roles(&["editor"]).name("Ada L."),
        )
        .unwrap();
    emu.via(EventSource::Scim).delete_member(&member).unwrap();

    let all = rx.first(4).await;
    let now = unix_now();
    for r in &all {
        assert_eq!(r.path, "/hooks");
        assert!(signature_ok(secret.expose_secret(), r), "{r:?}");
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.header("svix-id").starts_with("msg_"));
        let ts: i64 = r.header("svix-timestamp").parse().unwrap();
        assert!((ts - now).abs() < 300, "timestamp within Svix's tolerance");
        let b = r.json();
        assert_eq!(b["project_id"], emu.project_id());
        assert_eq!(b["vertical"], "B2B");
        assert!(
            b["event_id"]
                .as_str()
                .unwrap()
                .starts_with("webhook-event-test-")
        );
        assert!(humantime::parse_rfc3339(b["timestamp"].as_str().unwrap()).is_ok());
        assert!(
            b.get("type").is_none(),
            "Stytch's payload has no type field"
        );
    }

    let created = event(&all, "CREATE", "organization").json();
    assert_eq!(
        (created["id"].as_str(), created["source"].as_str()),
        (Some(org.as_str()), Some("DIRECT"))
    );
    assert_eq!(created["organization"]["organization_slug"], "acme");

    let created = event(&all, "CREATE", "member").json();
    let m = &created["member"];
    assert_eq!(created["id"], member.as_str());
    assert_eq!(m["member_id"], member.as_str());
    assert_eq!(m["organization_id"], org.as_str());
    assert_eq!(m["status"], "active");
    assert_eq!(m["email_address"], "ada@acme.test");
    assert_eq!(m["name"], "ada");
    assert_eq!(m["roles"][1]["role_id"], "stytch_admin");
    assert_eq!(m["roles"][1]["sources"][0]["type"], "direct_assignment");

    let updated = event(&all, "UPDATE", "member").json();
    assert_eq!(updated["source"], "DASHBOARD");
    assert_eq!(updated["member"]["name"], "Ada L.");
    let roles: Vec<&str> = updated["member"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role_id"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["stytch_member", "editor"]);

    let deleted = event(&all, "DELETE", "member").json();
    assert_eq!(deleted["source"], "SCIM");
    assert_eq!(deleted["id"], member.as_str());
    let mut keys: Vec<&str> = deleted
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "event_id",
            "id",
            "object_type",
            "project_id",
            "source",
            "timestamp",
            "vertical"
        ],
        "DELETE carries only the envelope"
    );

    let mut types: Vec<String> = emu
        .webhook_deliveries()
        .into_iter()
        .map(|d| {
            assert_eq!(
                (d.state, d.attempts, d.last_status),
                (DeliveryState::Delivered, 1, Some(204))
            );
            d.event_type
        })
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "dashboard.member.update",
            "direct.member.create",
            "direct.organization.create",
            "scim.member.delete"
        ]
    );
    assert_eq!(rx.settled().await.len(), 4, "one message per event");
}

const AUTHENTICATE: &str = "v1/b2b/sessions/authenticate";
const REVOKE: &str = "v1/b2b/sessions/revoke";

async fn post(emu: &Emulator, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", emu.base_url()))
        .basic_auth(emu.project_id(), Some(emu.secret()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn error_of(emu: &Emulator, path: &str, body: Value) -> (u16, String) {
    let (status, body) = post(emu, path, body).await;
    (
        status,
        body["error_type"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn deleting_a_member_ends_its_sessions_as_stytch_does() {
    // If this failed, the end-to-end tests "delete a member, the gateway signs them out"
    // would pass even if the gateway ignored the webhook (Stytch would still accept the
    // session), or fail for the emulator's fault.
    let emu = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emu.create_organization("Acme", "acme");
    let gone = emu.create_member(&org, "gone@acme.test", &[]);
    let stays = emu.create_member(&org, "stays@acme.test", &[]);
    let s = emu.create_session(&gone);
    let other = emu.create_session(&stays);

    emu.delete_member(&gone).unwrap();
    for body in [
        json!({"session_token": s.session_token.expose_secret()}),
        json!({"session_jwt": s.session_jwt.expose_secret()}),
    ] {
        assert_eq!(
            error_of(&emu, AUTHENTICATE, body).await,
            (404, "session_not_found".into())
        );
    }
    assert_eq!(
        error_of(
            &emu,
            REVOKE,
            json!({"member_session_id": s.member_session_id})
        )
        .await,
        (404, "session_not_found".into())
    );
    assert_eq!(
        error_of(&emu, REVOKE, json!({"member_id": gone})).await,
        (404, "member_not_found".into())
    );
    assert!(
        emu.is_session_live(&other.member_session_id),
        "bystander untouched"
    );
    assert_eq!(emu.delete_member(&gone), Err(EmulatorError::UnknownMember));
    assert_eq!(
        emu.update_member(&gone, MemberUpdate::new().name("x")),
        Err(EmulatorError::UnknownMember)
    );
}

#[tokio::test]
async fn updates_change_roles_at_once_and_a_non_active_status_ends_sessions() {
    // If this failed, a demoted admin would keep admin roles at Stytch (the gateway's
    // re-validation would fetch stale roles), or a deactivated member could keep working.
    let emu = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let org = emu.create_organization("Acme", "acme");
    let admin = emu.create_member(&org, "admin@acme.test", &["stytch_admin"]);
    let s = emu.create_session(&admin);
    emu.update_member(&admin, MemberUpdate::new().roles(&[]))
        .unwrap();
    let (status, body) = post(
        &emu,
        AUTHENTICATE,
        json!({"session_token": s.session_token.expose_secret()}),
    )
    .await;
    assert_eq!(status, 200, "a role change keeps the session");
    assert_eq!(body["member_session"]["roles"], json!(["stytch_member"]));
    assert_eq!(body["member"]["is_admin"], false);

    assert_eq!(
        emu.update_member(&admin, MemberUpdate::new().status("suspended")),
        Err(EmulatorError::InvalidStatus)
    );
    assert!(emu.is_session_live(&s.member_session_id));
    emu.via(EventSource::Scim)
        .update_member(&admin, MemberUpdate::new().status("deleted"))
        .unwrap();
    assert!(!emu.is_session_live(&s.member_session_id));
}

#[tokio::test]
async fn deleting_an_organization_deletes_its_members_with_one_event() {
    // If this failed, the library's organization index (sign out every member of a deleted
    // organization) could pass on member events Stytch does not send, or members of a
    // deleted organization could still authenticate.
    let rx = receiver(&[]).await;
    let emu = Emulator::start(fast_retries(&rx)).await.unwrap();
    let org = emu.create_organization("Acme", "acme");
    let other_org = emu.create_organization("Globex", "globex");
    let a = emu.create_session(&emu.create_member(&org, "a@acme.test", &[]));
    let b = emu.create_session(&emu.create_member(&other_org, "b@globex.test", &[]));
    rx.first(4).await;
    emu.via(EventSource::Dashboard)
        .delete_organization(&org)
        .unwrap();
    let all = rx.first(5).await;
    let deleted = all[4].json();
    assert_eq!(
        (
            deleted["action"].as_str(),
            deleted["object_type"].as_str(),
            deleted["id"].as_str()
        ),
        (Some("DELETE"), Some("organization"), Some(org.as_str()))
    );
    assert_eq!(deleted["source"], "DASHBOARD");
    assert_eq!(rx.settled().await.len(), 5, "no member events");
    assert_eq!(
        error_of(
            &emu,
            AUTHENTICATE,
            json!({"session_token": a.session_token.expose_secret()})
        )
        .await,
        (404, "session_not_found".into())
    );
    assert!(emu.is_session_live(&b.member_session_id));
    assert_eq!(
        emu.delete_organization(&org),
        Err(EmulatorError::UnknownOrganization)
    );
}

#[tokio::test]
async fn failed_attempts_are_retried_with_the_same_id_and_fresh_signatures() {
    // If this failed, a receiver's answer would not matter (no retry on 5xx, redirects
    // followed, timeouts ignored), or a retry would look like a new message.
    let rx = receiver(&[Reply::Status(500), Reply::Status(302), Reply::Hang]).await;
    let three_retries = fast_retries(&rx).webhook_retry_delays([Duration::from_millis(10); 3]);
    let emu = Emulator::start(three_retries).await.unwrap();
    emu.create_organization("Acme", "acme");
    let delivered = rx.first(4).await;
    let secret = emu.webhook_secret();
    let id = delivered[0].header("svix-id");
    for r in &delivered {
        assert_eq!(r.header("svix-id"), id, "same message id on every attempt");
        assert_eq!(r.body, delivered[0].body);
        assert!(signature_ok(secret.expose_secret(), r));
    }
    assert_eq!(rx.settled().await.len(), 4, "nothing after the 2xx");
    let d = &emu.webhook_deliveries()[0];
    assert_eq!(
        (d.attempts, d.last_status, d.state),
        (4, Some(204), DeliveryState::Delivered)
    );
    assert!(d.msg_id == id && d.event_type == "direct.organization.create");

    // An endpoint that never answers 2xx: 1 attempt + 3 retries, then failed.
    let dead = receiver(&[Reply::Status(503); 10]).await;
    emu.set_webhook_endpoints(vec![dead.endpoint("/")]);
    emu.create_organization("Globex", "globex");
    assert_eq!(dead.first(4).await.len(), 4);
    assert_eq!(dead.settled().await.len(), 4, "bounded attempts");
    let d = emu.webhook_deliveries().pop().unwrap();
    assert_eq!(
        (d.attempts, d.last_status, d.state),
        (4, Some(503), DeliveryState::Failed)
    );

    // Nobody listening: the error kind, never the URL.
    drop(dead);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    emu.set_webhook_endpoints(vec![WebhookEndpoint::new(&closed_url).unwrap()]);
    emu.create_organization("Initech", "initech");
    let deadline = Instant::now() + Duration::from_secs(2);
    let d = loop {
        let d = emu.webhook_deliveries().pop().unwrap();
        if d.state == DeliveryState::Failed || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        (d.state, d.last_error.as_deref()),
        (DeliveryState::Failed, Some("connect"))
    );
}

#[tokio::test]
async fn redelivery_resends_the_same_message_with_a_valid_signature() {
    // If this failed, duplicate-delivery tests of receivers (applied once) could not be run.
    let rx = receiver(&[]).await;
    let emu = Emulator::start(fast_retries(&rx)).await.unwrap();
    let org = emu.create_organization("Acme", "acme");
    emu.delete_organization(&org).unwrap();
    let first = rx.first(2).await;
    let msg_id = first[1].header("svix-id").to_owned();
    emu.redeliver_webhook(&msg_id).unwrap();
    let again = rx.first(3).await;
    assert_eq!(again[2].header("svix-id"), msg_id);
    assert_eq!(again[2].body, first[1].body);
    assert!(signature_ok(
        emu.webhook_secret().expose_secret(),
        &again[2]
    ));
    let d = emu
        .webhook_deliveries()
        .into_iter()
        .find(|d| d.msg_id == msg_id)
        .unwrap();
    assert_eq!((d.attempts, d.state), (2, DeliveryState::Delivered));
    assert_eq!(
        emu.redeliver_webhook("msg_unknown"),
        Err(EmulatorError::UnknownMessage)
    );
}

#[tokio::test]
async fn arbitrary_messages_with_wrong_secrets_and_stale_timestamps() {
    // If this failed, receivers could not be shown to refuse a wrong signature or a replayed
    // (stale) message, or to ignore other projects' and unknown events.
    let rx = receiver(&[]).await;
    let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let emu = Emulator::start(fast_retries(&rx).webhook_secret(secret.clone()))
        .await
        .unwrap();
    assert_eq!(emu.webhook_secret(), secret);
    let other_project = json!({"project_id": "project-test-other", "action": "DELETE",
        "object_type": "member", "source": "DIRECT", "id": "member-test-1",
        "event_id": "webhook-event-test-1", "timestamp": "2024-01-02T03:04:05.678901Z",
        "vertical": "B2B"});
    emu.send_webhook(WebhookMessage::new(
        "direct.member.delete",
        other_project.clone(),
    ));
    let wrong = WebhookSecret::generate();
    emu.send_webhook(
        WebhookMessage::new("direct.member.delete", other_project.clone())
            .signed_with(wrong.clone()),
    );
    let stale = unix_now() - 600;
    let only_here = receiver(&[]).await;
    let id = emu.send_webhook(
        WebhookMessage::new("direct.sso_connection.update", json!({"x": 1}))
            .timestamp(stale)
            .to(only_here.url("/elsewhere")),
    );

    let got = rx.first(2).await;
    assert_eq!(got[0].json(), other_project, "the payload as given");
    assert!(signature_ok(secret.expose_secret(), &got[0]));
    assert!(
        !signature_ok(secret.expose_secret(), &got[1]),
        "wrong secret"
    );
    assert!(signature_ok(wrong.expose_secret(), &got[1]));
    let here = only_here.first(1).await;
    assert_eq!(here[0].header("svix-id"), id);
    assert_eq!(here[0].header("svix-timestamp"), stale.to_string());
    assert!(
        signature_ok(secret.expose_secret(), &here[0]),
        "validly signed, but stale"
    );
    assert_eq!(rx.settled().await.len(), 2, "to() sends only there");
}

#[tokio::test]
async fn endpoints_receive_only_the_event_types_they_subscribe_to() {
    // If this failed, the emulator could not model an endpoint enrolled in Stytch's dashboard
    // for some event types only.
    let all = receiver(&[]).await;
    let deletes = receiver(&[]).await;
    let emu = Emulator::start(
        EmulatorConfig::new()
            .webhook_endpoint(all.endpoint("/"))
            .webhook_endpoint(deletes.endpoint("/").event_types(["scim.member.delete"])),
    )
    .await
    .unwrap();
    let org = emu.create_organization("Acme", "acme");
    let m = emu.create_member(&org, "a@acme.test", &[]);
    emu.via(EventSource::Scim).delete_member(&m).unwrap();
    assert_eq!(all.first(3).await.len(), 3);
    let got = deletes.settled().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["source"], "SCIM");
}

#[tokio::test]
async fn control_api_drives_the_lifecycle_and_the_webhooks() {
    // If this failed, the demo and non-Rust tests could not delete members, configure
    // webhooks or redeliver messages.
    let rx = receiver(&[]).await;
    let emu = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{}emulator/v1/{path}", emu.base_url()))
            .basic_auth(emu.project_id(), Some(emu.secret()))
            .json(&body)
            .send()
    };
    let secret = WebhookSecret::generate();
    let resp = call(
        reqwest::Method::POST,
        "webhooks",
        json!({"secret": secret.expose_secret(), "endpoints": [rx.url("/a"), {"url": rx.url("/b"), "event_types": ["scim.member.update"]}]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let config: Value = call(reqwest::Method::GET, "webhooks", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["secret"], secret.expose_secret());
    assert_eq!(
        config["endpoints"][1]["event_types"],
        json!(["scim.member.update"])
    );

    let org: Value = call(
        reqwest::Method::POST,
        "organizations",
        json!({"organization_name": "Acme", "organization_slug": "acme", "source": "dashboard"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let org = org["organization_id"].as_str().unwrap().to_owned();
    let member: Value = call(
        reqwest::Method::POST,
        "members",
        json!({"organization_id": org, "email_address": "a@acme.test", "name": "Ada", "roles": ["stytch_admin"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let member = member["member_id"].as_str().unwrap().to_owned();
    let updated: Value = call(
        reqwest::Method::PUT,
        &format!("members/{member}"),
        json!({"roles": [], "status": "deleted", "source": "SCIM"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(updated["member"]["status"], "deleted");
    assert_eq!(updated["member"]["name"], "Ada");

    let got = rx.first(4).await;
    assert!(got.iter().all(|r| signature_ok(secret.expose_secret(), r)));
    let scim: Vec<&Received> = got
        .iter()
        .filter(|r| r.json()["source"] == "SCIM")
        .collect();
    assert_eq!(scim.len(), 2, "to /a and to /b");
    assert_eq!(
        event(&got, "CREATE", "organization").json()["source"],
        "DASHBOARD"
    );

    for (method, path, body, status, error_type) in [
        (
            reqwest::Method::PUT,
            format!("members/{member}"),
            json!({"status": "x"}),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::PUT,
            "members/member-test-nope".to_owned(),
            json!({}),
            404,
            "member_not_found",
        ),
        (
            reqwest::Method::DELETE,
            "organizations/organization-test-nope".to_owned(),
            json!({}),
            404,
            "organization_not_found",
        ),
        (
            reqwest::Method::POST,
            "webhooks".to_owned(),
            json!({"secret": "nope"}),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::POST,
            "webhooks".to_owned(),
            json!({"endpoints": ["ftp://x"]}),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::DELETE,
            format!("members/{member}"),
            json!({"source": "fax"}),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::POST,
            "webhooks/redeliver".to_owned(),
            json!({"msg_id": "msg_x"}),
            404,
            "message_not_found",
        ),
    ] {
        let resp = call(method, &path, body).await.unwrap();
        let code = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(
            (code, answer["error_type"].as_str().unwrap()),
            (status, error_type),
            "{path}"
        );
    }

    let resp = call(
        reqwest::Method::DELETE,
        &format!("members/{member}"),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = call(
        reqwest::Method::DELETE,
        &format!("organizations/{org}"),
        json!({"source": "DIRECT"}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let got = rx.first(6).await;
    assert_eq!(
        event(&got, "DELETE", "organization").json()["id"],
        org.as_str()
    );

    let deliveries: Value = call(reqwest::Method::GET, "webhooks/deliveries", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = &deliveries["deliveries"][0];
    assert_eq!(first["event_type"], "dashboard.organization.create");
    assert_eq!(first["state"], "delivered");
    let resp = call(
        reqwest::Method::POST,
        "webhooks/redeliver",
        json!({"msg_id": first["msg_id"]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let got = rx.first(7).await;
    assert_eq!(got[6].header("svix-id"), first["msg_id"].as_str().unwrap());

    let wrong = WebhookSecret::generate();
    let sent: Value = call(
        reqwest::Method::POST,
        "webhooks/send",
        json!({"event_type": "direct.member.delete", "payload": {"project_id": "other"}, "secret": wrong.expose_secret(), "timestamp": 1, "endpoints": [rx.url("/c")]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let got = rx.first(8).await;
    assert_eq!(got[7].header("svix-id"), sent["msg_id"].as_str().unwrap());
    assert_eq!(
        (got[7].path.as_str(), got[7].header("svix-timestamp")),
        ("/c", "1")
    );
    assert!(signature_ok(wrong.expose_secret(), &got[7]));
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    // If this failed, a test log printing the emulator or its config would leak the webhook
    // secret.
    let secret = WebhookSecret::generate();
    let config = EmulatorConfig::new().webhook_secret(secret.clone());
    let emu = Emulator::start(config.clone()).await.unwrap();
    for shown in [
        format!("{config:?}"),
        format!("{emu:?}"),
        format!("{secret:?}"),
    ] {
        assert!(!shown.contains(secret.expose_secret()), "{shown}");
        assert!(!shown.contains(emu.secret()), "{shown}");
    }
}
