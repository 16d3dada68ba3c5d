//! Webhook deliveries mutated from a genuinely signed one (the emulator's own, independent
//! Svix signer): the id, timestamp, signature header and body edited by the fuzzer, the
//! header family switched between `svix-*` and `webhook-*`, or arbitrary headers and bodies,
//! through the whole layer.
//!
//! Checked: no panic; the answer is 2xx only when the id, timestamp and body are the genuine
//! signed ones (whatever else was added to the signature header), otherwise a 4xx.
#![no_main]

#[path = "common.rs"]
mod common;

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use stytch_emulator::WebhookSecret;
use tower::{Service, ServiceExt, service_fn};
use tower_stytch::StytchAuthLayer;
use tower_stytch::webhook::WebhookSecrets;

const PATH: &str = "/stytch/webhooks";

#[derive(Debug, Arbitrary)]
struct Input {
    id: Option<String>,
    timestamp_shift: Option<i32>,
    extra_signature: Option<String>,
    drop_genuine_signature: bool,
    body: Option<Vec<u8>>,
    unbranded: bool,
    raw_headers: Vec<(bool, Vec<u8>)>,
}

struct Fixture {
    secret: WebhookSecret,
    layer: StytchAuthLayer,
    body: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let w = common::world();
        let _guard = w.runtime.enter();
        let secret = WebhookSecret::generate();
        let layer = StytchAuthLayer::builder(common::client(&w.emulator))
            .webhook(
                PATH,
                WebhookSecrets::parse(secret.expose_secret()).unwrap(),
            )
            .build()
            .unwrap();
        let body = format!(
            r#"{{"project_id":"{}","event_id":"event-test-1","source":"DASHBOARD","object_type":"member","action":"UPDATE","timestamp":"2026-01-01T00:00:00Z","member":{{"member_id":"member-test-00000000-0000-0000-0000-000000000000","organization_id":"organization-test-00000000-0000-0000-0000-000000000000","status":"active","roles":[]}}}}"#,
            w.emulator.project_id()
        )
        .into_bytes();
        Fixture {
            secret,
            layer,
            body,
        }
    })
}

async fn app(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    panic!("a webhook delivery reached the app");
}

fuzz_target!(|input: Input| {
    let w = common::world();
    let f = fixture();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let genuine_id = "msg_genuine";
    let signature = f.secret.sign(genuine_id, now, &f.body);
    let id = input.id.clone().unwrap_or_else(|| genuine_id.to_owned());
    let timestamp = now + i64::from(input.timestamp_shift.unwrap_or(0));
    let body = input.body.clone().unwrap_or_else(|| f.body.clone());
    let mut signatures = Vec::new();
    if !input.drop_genuine_signature {
        signatures.push(signature);
    }
    if let Some(extra) = &input.extra_signature {
        signatures.push(extra.clone());
    }
    let prefix = if input.unbranded { "webhook" } else { "svix" };
    let mut builder = Request::builder().method(Method::POST).uri(PATH);
    builder = builder
        .header(format!("{prefix}-id"), id.as_bytes())
        .header(format!("{prefix}-timestamp"), timestamp.to_string())
        .header(
            format!("{prefix}-signature"),
            signatures.join(" ").as_bytes(),
        );
    for (branded, value) in input.raw_headers.iter().take(4) {
        let name = if *branded {
            "svix-signature"
        } else {
            "webhook-id"
        };
        builder = builder.header(name, value.as_slice());
    }
    let Ok(req) = builder.body(Full::new(Bytes::from(body.clone()))) else {
        return;
    };
    let status = w.runtime.block_on(async {
        let mut svc = tower::Layer::layer(&f.layer, service_fn(app));
        svc.ready().await.unwrap().call(req).await.unwrap().status()
    });
    let genuine =
        id == genuine_id && timestamp == now && body == f.body && !input.drop_genuine_signature;
    if status.is_success() {
        assert!(genuine, "a delivery not signed by the secret was accepted");
    } else {
        assert!(status.is_client_error(), "{status}");
    }
});
