//! The load: workers on keep-alive connections, each request checked against the session's
//! state as it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::state::{Outage, Rule, Session, State, Tally};

/// Everything the workers share.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) gateways: Vec<std::net::SocketAddr>,
    pub(crate) sessions: Vec<Arc<Session>>,
    pub(crate) admin: Session,
    pub(crate) total: u64,
    /// Requests handed out so far.
    pub(crate) issued: AtomicU64,
    pub(crate) tally: Tally,
    pub(crate) rule: Rule,
    pub(crate) outage: Outage,
    /// Set when gateway 1 has been sent SIGTERM: its workers move to gateway 0.
    pub(crate) terminated: AtomicBool,
}

/// What one request was.
enum Op {
    Whoami(usize, bool),
    Logout(usize),
    AdminMember(usize),
    AdminSession(usize),
}

/// How long one request may take before it counts as unexpected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a worker waits after a transport failure before it connects again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

type Conn = SendRequest<Empty<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Option<Conn> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(send)
}

impl Run {
    /// One worker: `home` is its gateway until that one is terminated.
    pub(crate) async fn worker(self: Arc<Self>, id: u64, home: usize) {
        let mut rng = fastrand::Rng::with_seed(id);
        let mut conn: Option<(usize, Conn)> = None;
        while self.issued.fetch_add(1, Ordering::Relaxed) < self.total {
            let on = if home == 1 && self.terminated.load(Ordering::Relaxed) {
                0
            } else {
                home
            };
            let op = self.pick(&mut rng);
            if conn
                .as_ref()
                .is_none_or(|(at, c)| *at != on || c.is_closed())
            {
                let Some(c) = connect(self.gateways[on]).await else {
                    self.transport_failure(on, &op, "connect failed");
                    // As a client would: wait a little before trying again, so one refused
                    // worker does not spin and count thousands of failures.
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                };
                if conn.is_some() {
                    Tally::add(&self.tally.reconnects);
                }
                conn = Some((on, c));
            }
            let Some((_, send)) = conn.as_mut() else {
                continue;
            };
            if self.send(send, on, op).await.is_err() {
                conn = None;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    /// Chooses the next request: about 1 % revocations of a live session (half logouts, half
    /// admin revocations), the rest `GET /whoami` with a token or a JWT.
    fn pick(&self, rng: &mut fastrand::Rng) -> Op {
        let i = rng.usize(..self.sessions.len());
        if rng.u32(..100) == 0 {
            let mut state = lock(&self.sessions[i].state);
            if *state == State::Live {
                *state = State::Revoking;
                return match rng.u32(..4) {
                    0 | 1 => Op::Logout(i),
                    2 => Op::AdminMember(i),
                    _ => Op::AdminSession(i),
                };
            }
        }
        Op::Whoami(i, rng.bool())
    }

    /// Sends `op` on `send` to gateway `on` and checks the answer; `Err` when the connection
    /// is unusable afterwards.
    async fn send(&self, send: &mut Conn, on: usize, op: Op) -> Result<(), ()> {
        let (method, path, credential) = match &op {
            Op::Whoami(i, jwt) => {
                let s = &self.sessions[*i];
                (
                    Method::GET,
                    "/whoami".to_owned(),
                    if *jwt { &s.jwt } else { &s.token },
                )
            }
            Op::Logout(i) => (Method::POST, "/logout".to_owned(), &self.sessions[*i].token),
            Op::AdminMember(i) => (
                Method::POST,
                format!(
                    "/admin/members/{}/revoke-sessions",
                    self.sessions[*i].member_id
                ),
                &self.admin.token,
            ),
            Op::AdminSession(i) => (
                Method::POST,
                format!(
                    "/admin/sessions/{}/revoke",
                    self.sessions[*i].member_session_id
                ),
                &self.admin.token,
            ),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "soak.test")
            .header(http::header::AUTHORIZATION, format!("Bearer {credential}"))
            .body(Empty::new())
            .map_err(drop)?;
        let started = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if send.ready().await.is_err() {
                return None;
            }
            let response = send.send_request(request).await.ok()?;
            let (parts, body) = response.into_parts();
            body.collect().await.ok()?;
            Some(parts)
        })
        .await;
        let Ok(Some(parts)) = answer else {
            self.transport_failure(on, &op, "no answer");
            return Err(());
        };
        Tally::add(&self.tally.requests);
        let retry_after = parts.headers.contains_key(http::header::RETRY_AFTER);
        let logout = parts
            .headers
            .get("x-stytch-logout")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match op {
            Op::Whoami(i, jwt) => self.check_whoami(i, jwt, on, started, parts.status, retry_after),
            Op::Logout(i) => {
                Tally::add(&self.tally.logouts);
                let (verdict, how) = match (parts.status, logout) {
                    (StatusCode::NO_CONTENT, "revoked") => (Some(true), "logout:revoked"),
                    (StatusCode::NO_CONTENT, "pending") => (Some(true), "logout:pending"),
                    (StatusCode::NO_CONTENT, "already_revoked") => {
                        (Some(true), "logout:already_revoked")
                    }
                    (StatusCode::NO_CONTENT, "failed") => (None, "logout:failed"),
                    (_, "none") => (Some(false), "logout:none"),
                    _ => (Some(false), "logout"),
                };
                self.revoked(i, on, verdict, parts.status, how);
            }
            Op::AdminMember(i) | Op::AdminSession(i) => {
                Tally::add(&self.tally.admin_revocations);
                let route = if matches!(op, Op::AdminMember(_)) {
                    "admin:member"
                } else {
                    "admin:session"
                };
                let verdict = match parts.status {
                    StatusCode::OK | StatusCode::ACCEPTED => Some(true),
                    StatusCode::SERVICE_UNAVAILABLE if retry_after => None,
                    _ => Some(false),
                };
                self.revoked(i, on, verdict, parts.status, route);
            }
        }
        Ok(())
    }

    /// The rule for `GET /whoami` (RELIABILITY.md, "Soak").
    fn check_whoami(
        &self,
        i: usize,
        jwt: bool,
        on: usize,
        started: Instant,
        status: StatusCode,
        retry_after: bool,
    ) {
        let state = *lock(&self.sessions[i].state);
        let kind = if jwt { "jwt" } else { "token" };
        let t = &self.tally;
        match status {
            StatusCode::OK => Tally::add(&t.ok),
            StatusCode::UNAUTHORIZED => Tally::add(&t.refused),
            StatusCode::SERVICE_UNAVAILABLE if retry_after => {
                Tally::add(&t.unavailable);
                if jwt {
                    Tally::add(&t.unavailable_jwt);
                }
            }
            other => {
                t.unexpected(format_args!(
                    "status={other} instance={on} credential={kind} state={state:?}"
                ));
                return;
            }
        }
        match (state, status) {
            (State::Live, StatusCode::UNAUTHORIZED) => {
                t.unexpected(format_args!(
                    "status=401 instance={on} credential={kind} state=Live"
                ));
            }
            (State::Revoked { at, by, how }, StatusCode::OK) => {
                match self.rule.deadline(at, by, on, &self.outage) {
                    Some(deadline) if started > deadline => {
                        Tally::add(&t.revoked_accepted);
                        let seen = {
                            let mut by = lock(&t.accepted_by);
                            let n = by.entry(format!("{how}/{kind}")).or_default();
                            *n += 1;
                            *n
                        };
                        // The first few of each kind, so that a common kind hides no other.
                        if seen <= 5
                            && t.printed_accepted.fetch_add(1, Ordering::Relaxed)
                                < super::state::PRINT_CAP
                        {
                            println!(
                                "revoked_accepted: instance={on} revoked_by={by} by={how} credential={kind} \
                                 session={} {} ms after the revocation answered; {}",
                                self.sessions[i].member_session_id,
                                started.duration_since(at).as_millis(),
                                self.when(at)
                            );
                        }
                    }
                    _ => Tally::add(&t.accepted_within_bound),
                }
            }
            _ => {}
        }
    }

    /// Where `at` falls relative to the Redis outage and the SIGTERM, for the details.
    fn when(&self, at: Instant) -> String {
        let rel = |t: Instant| {
            if at >= t {
                format!("+{}", at.duration_since(t).as_millis())
            } else {
                format!("-{}", t.duration_since(at).as_millis())
            }
        };
        let outage = *self
            .outage
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match outage {
            Some((down, back)) => format!(
                "revoked at {} ms from the Redis kill, {} ms from its return",
                rel(down),
                back.map_or("?".to_owned(), rel)
            ),
            None => "before the Redis outage".to_owned(),
        }
    }

    /// Records the answer to a revocation of session `i` through gateway `on`: `Some(true)`
    /// revoked, `None` unknown (nothing revoked, or perhaps), `Some(false)` unexpected.
    fn revoked(
        &self,
        i: usize,
        on: usize,
        verdict: Option<bool>,
        status: StatusCode,
        how: &'static str,
    ) {
        let mut state = lock(&self.sessions[i].state);
        match verdict {
            Some(true) => {
                Tally::add(&self.tally.revocations_2xx);
                *state = State::Revoked {
                    at: Instant::now(),
                    by: on,
                    how,
                };
            }
            None => {
                Tally::add(&self.tally.revocations_uncertain);
                *state = State::Uncertain;
            }
            Some(false) => {
                *state = State::Uncertain;
                drop(state);
                self.tally.unexpected(format_args!(
                    "revocation status={status} ({how}) instance={on}"
                ));
            }
        }
    }

    /// No answer from gateway `on`: expected only from the terminated instance.
    fn transport_failure(&self, on: usize, op: &Op, what: &str) {
        // The request was not answered: hand its slot out again.
        self.issued.fetch_sub(1, Ordering::Relaxed);
        if let Op::Logout(i) | Op::AdminMember(i) | Op::AdminSession(i) = op {
            *lock(&self.sessions[*i].state) = State::Uncertain;
        }
        if on == 1 && self.terminated.load(Ordering::Relaxed) {
            Tally::add(&self.tally.cut_by_shutdown);
        } else {
            self.tally
                .unexpected(format_args!("{what} from instance={on}"));
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
