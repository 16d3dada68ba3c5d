//! Shared setup for the integration tests: the emulator with a seeded organization, a client
//! for it, and an axum app behind the layer, served on a real loopback socket, with one
//! helper per kind of request.
//!
//! If these helpers break, every test using them fails with them: fix this file first.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{any, delete, get};
use stytch_emulator::{Emulator, EmulatorConfig, SessionInfo};
use tower_stytch::client::RetryPolicy;
use tower_stytch::{
    MemberSession, StytchAuthLayer, StytchAuthLayerBuilder, StytchClient, StytchConfig,
};

pub struct World {
    pub emulator: Emulator,
    pub org: String,
    pub other_org: String,
    pub admin: SessionInfo,
    pub member: SessionInfo,
    pub member2: SessionInfo,
    pub other_admin: SessionInfo,
}

/// A fast retry policy so fault tests stay quick.
pub fn fast_retry() -> RetryPolicy {
    let mut retry = RetryPolicy::default();
    retry.max_attempts = 2;
    retry.base_delay = Duration::from_millis(5);
    retry.max_delay = Duration::from_millis(10);
    retry.deadline = Duration::from_secs(3);
    retry
}

pub fn client_for(emulator: &Emulator) -> StytchClient {
    let config = StytchConfig::builder(emulator.project_id(), emulator.secret())
        .base_url(emulator.base_url())
        .request_timeout(Duration::from_millis(800))
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    StytchClient::new(config).unwrap()
}

impl World {
    pub async fn new() -> Self {
        let emulator = Emulator::start(EmulatorConfig::new()).await.unwrap();
        let org = emulator.create_organization("Acme", "acme");
        let admin_id = emulator.create_member(&org, "admin@acme.test", &["stytch_admin"]);
        let member_id = emulator.create_member(&org, "member@acme.test", &[]);
        let member2_id = emulator.create_member(&org, "member2@acme.test", &[]);
        let other_org = emulator.create_organization("Globex", "globex");
        let other_admin_id =
            emulator.create_member(&other_org, "admin@globex.test", &["stytch_admin"]);
        World {
            admin: emulator.create_session(&admin_id),
            member: emulator.create_session(&member_id),
            member2: emulator.create_session(&member2_id),
            other_admin: emulator.create_session(&other_admin_id),
            org,
            other_org,
            emulator,
        }
    }

    pub fn client(&self) -> StytchClient {
        client_for(&self.emulator)
    }

    /// A client with the library's default timeouts and retry policy (3 s per call, 2 s per
    /// attempt, 3 attempts, the retry budget), as an app would have.
    pub fn client_with_defaults(&self) -> StytchClient {
        self.client_with_retry(RetryPolicy::default())
    }

    /// A client with the library's default timeouts and `retry`.
    pub fn client_with_retry(&self, retry: RetryPolicy) -> StytchClient {
        let config = StytchConfig::builder(self.emulator.project_id(), self.emulator.secret())
            .base_url(self.emulator.base_url())
            .retry_policy(retry)
            .build()
            .unwrap();
        StytchClient::new(config).unwrap()
    }

    /// The default layer builder for this world, cookies without `Secure` for plain http.
    pub fn builder(&self) -> StytchAuthLayerBuilder {
        StytchAuthLayer::builder(self.client()).public_prefix("/public/")
    }

    /// [`builder`](Self::builder) with the forced sign-out hook on [`app`]'s
    /// `DELETE /api/members/{member_id}`.
    pub fn hooked_builder(&self) -> StytchAuthLayerBuilder {
        self.builder()
            .forced_signout("DELETE /api/members/{member_id}")
    }

    /// Whether Stytch ends `member_session_id` within `timeout`.
    pub async fn ended_at_stytch(&self, member_session_id: &str, timeout: Duration) -> bool {
        eventually(timeout, || {
            !self.emulator.is_session_live(member_session_id)
        })
        .await
    }
}

/// `GET /whoami` → the member id; `/public/*` → "public"; `DELETE /api/members/{id}` → 204;
/// `GET /optional` → member id or "anonymous".
pub fn app() -> Router {
    Router::new()
        .route(
            "/whoami",
            get(|session: MemberSession| async move { session.member_id.to_string() }),
        )
        .route(
            "/optional",
            get(|session: Option<MemberSession>| async move {
                session.map_or_else(|| "anonymous".to_owned(), |s| s.member_id.to_string())
            }),
        )
        .route("/public/{*rest}", any(|| async { "public" }))
        .route(
            "/api/members/{member_id}",
            delete(|| async { http::StatusCode::NO_CONTENT }),
        )
}

pub struct Served {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub layer: StytchAuthLayer,
    _task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Stops serving, as a process that exits: the server task ends and the layer (with its
    /// cache, denylist and bus) is dropped.
    pub async fn stop(self) {
        self._task.abort();
        let _ = self._task.await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `method path` with `Authorization: Bearer credential`, when one is given.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        credential: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(credential) = credential {
            request = request.header("authorization", bearer(credential));
        }
        request.send().await.unwrap()
    }

    /// `GET path` without a credential.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// `POST path` without a credential.
    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, None).await
    }

    /// `GET path` with `Authorization: Bearer credential`.
    pub async fn get_as(&self, path: &str, credential: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, Some(credential))
            .await
    }

    /// `POST path` with `Authorization: Bearer credential`.
    pub async fn post_as(&self, path: &str, credential: &str) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(credential))
            .await
    }

    /// `DELETE path` with `Authorization: Bearer credential`.
    pub async fn delete_as(&self, path: &str, credential: &str) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, Some(credential))
            .await
    }

    /// `GET /whoami` with `Authorization: Bearer credential`: the status.
    pub async fn whoami(&self, credential: &str) -> http::StatusCode {
        self.get_as("/whoami", credential).await.status()
    }
}

/// Serves `router` behind `layer` on 127.0.0.1:0.
pub async fn serve(layer: StytchAuthLayer, router: Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router.layer(layer.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Served {
        addr,
        http,
        layer,
        _task: task,
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Waits until `f` holds, up to `timeout`.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
