//! The emulator's control API: members, sessions, fault rates, counts, and the final check
//! that revoked sessions no longer authenticate at Stytch.

use std::sync::Arc;
use std::sync::Mutex;

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use super::state::{Session, State};

/// The emulator, reached with the project's credentials.
#[derive(Debug, Clone)]
pub(crate) struct Emulator {
    pub(crate) base: String,
    pub(crate) project_id: String,
    pub(crate) secret: String,
    pub(crate) http: reqwest::Client,
}

/// Any failure of a setup step (the soak cannot run).
pub(crate) type SetupResult<T> = Result<T, String>;

impl Emulator {
    async fn control(
        &self,
        method: reqwest::Method,
        what: &str,
        body: Value,
    ) -> SetupResult<Value> {
        let response = self
            .http
            .request(method, format!("{}/emulator/v1/{what}", self.base))
            .basic_auth(&self.project_id, Some(&self.secret))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("control {what}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("control {what}: {status}"));
        }
        response
            .json()
            .await
            .map_err(|e| format!("control {what}: {e}"))
    }

    async fn post(&self, what: &str, body: Value) -> SetupResult<Value> {
        self.control(reqwest::Method::POST, what, body).await
    }

    /// A member of `org` with `roles`, and one session of it.
    async fn session(&self, org: &str, n: usize, roles: &[&str]) -> SetupResult<Session> {
        let email = format!("soak-{n}@soak.test");
        let member = self
            .post(
                "members",
                json!({"organization_id": org, "email_address": email, "roles": roles}),
            )
            .await?;
        let member_id = field(&member, "member_id")?;
        let s = self
            .post("sessions", json!({"member_id": member_id}))
            .await?;
        Ok(Session {
            member_id,
            member_session_id: field(&s, "member_session_id")?,
            token: field(&s, "session_token")?,
            jwt: field(&s, "session_jwt")?,
            state: Mutex::new(State::Live),
        })
    }

    /// An organization, its admin (role `stytch_admin`) and `count` members with a session
    /// each, created 64 at a time.
    pub(crate) async fn population(&self, count: usize) -> SetupResult<(Session, Vec<Session>)> {
        let org = self
            .post(
                "organizations",
                json!({"organization_name": "Soak", "organization_slug": "soak"}),
            )
            .await?;
        let org = field(&org, "organization_id")?;
        let admin = self.session(&org, usize::MAX, &["stytch_admin"]).await?;
        let sessions: Vec<SetupResult<Session>> = stream::iter(0..count)
            .map(|n| {
                let org = org.clone();
                async move { self.session(&org, n, &[]).await }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        Ok((admin, sessions.into_iter().collect::<SetupResult<_>>()?))
    }

    /// Makes `percent` % of `endpoint`'s calls answer `status` (no `Retry-After`).
    pub(crate) async fn fault_rate(
        &self,
        endpoint: &str,
        status: u16,
        percent: f64,
    ) -> SetupResult<()> {
        let fault = json!({"type": "status", "status": status});
        self.post(
            "faults",
            json!({"endpoint": endpoint, "fault": fault, "percent": percent}),
        )
        .await
        .map(drop)
    }

    /// Stops every fault.
    pub(crate) async fn clear_faults(&self) -> SetupResult<()> {
        self.control(reqwest::Method::DELETE, "faults", json!({}))
            .await
            .map(drop)
    }

    /// The emulator's counts: calls per endpoint and `injected` faults.
    pub(crate) async fn counts(&self) -> SetupResult<Value> {
        self.control(reqwest::Method::GET, "counts", json!({}))
            .await
    }

    /// Whether Stytch still takes `token` as a live session (200), or not (404).
    pub(crate) async fn live(&self, token: &str) -> SetupResult<bool> {
        let response = self
            .http
            .post(format!("{}/v1/b2b/sessions/authenticate", self.base))
            .basic_auth(&self.project_id, Some(&self.secret))
            .json(&json!({"session_token": token}))
            .send()
            .await
            .map_err(|e| format!("authenticate: {e}"))?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            other => Err(format!("authenticate answered {other}")),
        }
    }

    /// Of `sessions`, how many still authenticate at Stytch once `settle` has passed (asked
    /// again every half second until then).
    pub(crate) async fn still_live(
        &self,
        sessions: &[Arc<Session>],
        settle: std::time::Duration,
    ) -> SetupResult<Vec<Arc<Session>>> {
        let end = std::time::Instant::now() + settle;
        let mut left: Vec<Arc<Session>> = sessions.to_vec();
        loop {
            let checked: Vec<SetupResult<(Arc<Session>, bool)>> = stream::iter(left)
                .map(|s| async move { self.live(&s.token).await.map(|live| (s, live)) })
                .buffer_unordered(32)
                .collect()
                .await;
            left = Vec::new();
            for c in checked {
                let (s, live) = c?;
                if live {
                    left.push(s);
                }
            }
            if left.is_empty() || std::time::Instant::now() >= end {
                return Ok(left);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

fn field(v: &Value, name: &str) -> SetupResult<String> {
    v[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the emulator's answer has no {name}"))
}
