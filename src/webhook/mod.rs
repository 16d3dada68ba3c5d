//! Stytch's webhooks: revocations made outside the app (a member deleted in the dashboard,
//! deprovisioned by the customer's IdP through SCIM, demoted; an organization deleted), told
//! by Stytch through Svix, applied here at once.
//!
//! Configured with [`StytchAuthLayerBuilder::webhook`](crate::StytchAuthLayerBuilder::webhook);
//! off otherwise. The layer answers `POST {path}` itself, before authentication and without
//! the cross-site check: its only gate is the Svix signature (`verify`). The signature
//! headers are checked first (present, well-formed, timestamp within five minutes): a
//! delivery that fails is refused 401 before a byte of its body is read. Then the body (at
//! most 1 MiB, within 10 s, at most 16 bodies at once: 503
//! beyond, which Svix retries) is read on this route only, and parsed only once the signature
//! is verified.
//!
//! | event | here |
//! |---|---|
//! | `*.member.delete`, or `*.member.update` with `status` ≠ `active` | member-wide revocation: every session started before the event refused (token and JWT) |
//! | `*.member.update` (active) | sessions whose roles differ from the new ones are re-validated at Stytch on their next request |
//! | `*.organization.delete` | every session of the organization's members refused |
//! | anything else, or another `project_id` | nothing (204) |
//!
//! Everything is applied in memory before the answer (204), so Svix's timeouts are never
//! reached; [`Revoker::events`](crate::Revoker::events) subscribers (peers, live
//! connections) follow asynchronously. No Stytch call is made: Stytch already did it.
//!
//! A redelivery (same `svix-id`) is answered 204 and not applied again while the id is
//! remembered (an hour, at most 10 000 ids); beyond that, applying it again
//! is harmless: every effect is keyed by the event's own timestamp, so it refuses nothing
//! more.

mod event;
mod verify;

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;

use self::event::{Effect, Event};
pub use self::verify::WebhookSecrets;
use crate::metrics;
use crate::revoke::{MadeByStytch, Revoker};

/// Largest webhook body read (1 MiB): a larger one is answered 413 without reading more.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// Longest a delivery's body may take to arrive: a slower one is answered 408.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most webhook bodies read at once (at most [`MAX_BODY`] each): the memory a flood of
/// well-formed but unsigned deliveries can hold is bounded.
pub(crate) const MAX_READING: usize = 16;

/// How long a delivered message id is remembered (Svix retries over hours; a redelivery
/// after this is applied again, harmlessly).
pub(crate) const RECENT_FOR: Duration = Duration::from_secs(3600);

/// Most message ids remembered at once.
pub(crate) const RECENT_MAX: usize = 10_000;

/// The webhook endpoint of a layer.
#[derive(Debug)]
pub(crate) struct Receiver {
    path: String,
    secrets: WebhookSecrets,
    project_id: String,
    /// Room for the bodies being read ([`MAX_READING`]).
    reading: tokio::sync::Semaphore,
    recent: Mutex<Recent>,
}

/// Message ids delivered lately, oldest first.
#[derive(Debug, Default)]
struct Recent {
    ids: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

impl Recent {
    /// Records `id`; `false` when it was already there.
    fn insert(&mut self, id: &str, now: Instant) -> bool {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < RECENT_FOR && self.order.len() < RECENT_MAX {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back((now, id.to_owned()));
        true
    }
}

impl Receiver {
    /// A receiver at `path` for `project_id`'s events signed with one of `secrets`.
    pub(crate) fn new(path: String, secrets: WebhookSecrets, project_id: &str) -> Self {
        Self {
            path,
            secrets,
            project_id: project_id.to_owned(),
            reading: tokio::sync::Semaphore::new(MAX_READING),
            recent: Mutex::default(),
        }
    }

    /// Answers one delivery: 401 unless its signature verifies (nothing else looked at),
    /// then applies its effect here and answers 204.
    pub(crate) async fn receive<B>(&self, revoker: &Revoker, req: Request<B>) -> Response<Bytes>
    where
        B: Body,
    {
        let (parts, body) = req.into_parts();
        let now = SystemTime::now();
        let signed = match verify::check_headers(&parts.headers, now) {
            Ok(signed) => signed,
            Err(refusal) => return refused(refusal),
        };
        let body = match self.read(body).await {
            Ok(body) => body,
            Err(status) => {
                metrics::webhook("unverified", "rejected");
                tracing::info!(status = status.as_u16(), "webhook body refused");
                return status_only(status);
            }
        };
        let id = match verify::check_body(&self.secrets, &signed, &body) {
            Ok(id) => id,
            Err(refusal) => return refused(refusal),
        };
        let event = Event::parse(&body, &self.project_id, now);
        metrics::webhook(event.kind, "verified");
        if !self.first_delivery(id) {
            metrics::webhook(event.kind, "duplicate");
            tracing::debug!(
                kind = event.kind,
                "webhook already delivered: not applied again"
            );
            return status_only(StatusCode::NO_CONTENT);
        }
        let outcome = apply(revoker, event.effect, event.at).await;
        metrics::webhook(event.kind, outcome);
        tracing::info!(kind = event.kind, outcome, "webhook received");
        status_only(StatusCode::NO_CONTENT)
    }

    /// Reads a delivery's body: at most [`MAX_BODY`], within [`BODY_TIMEOUT`], while fewer
    /// than [`MAX_READING`] others are being read (503 otherwise, which Svix retries).
    async fn read<B: Body>(&self, body: B) -> Result<Bytes, StatusCode> {
        let Ok(_permit) = self.reading.try_acquire() else {
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        };
        tokio::time::timeout(BODY_TIMEOUT, read_limited(body, MAX_BODY))
            .await
            .unwrap_or(Err(StatusCode::REQUEST_TIMEOUT))
    }

    /// The path deliveries are posted to.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    fn first_delivery(&self, id: &str) -> bool {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Instant::now())
    }
}

/// Applies an event's effect here; returns the metric outcome (`applied` or `ignored`).
async fn apply(revoker: &Revoker, effect: Effect, at: SystemTime) -> &'static str {
    match effect {
        Effect::RevokeMember(member_id) => {
            tracing::debug!(%member_id, "member revoked at stytch");
            revoker
                .apply_made_by_stytch(MadeByStytch::Member(member_id), at)
                .await;
            "applied"
        }
        Effect::RevokeOrganization(organization_id) => {
            tracing::debug!(%organization_id, "organization deleted at stytch");
            revoker
                .apply_made_by_stytch(MadeByStytch::Organization(organization_id), at)
                .await;
            "applied"
        }
        Effect::Revalidate { member_id, roles } => {
            tracing::debug!(%member_id, "member updated at stytch");
            if revoker.mark_roles_changed(&member_id, at, roles) {
                "applied"
            } else {
                "ignored"
            }
        }
        Effect::Ignore(reason) => {
            tracing::debug!(reason, "webhook event ignored");
            "ignored"
        }
    }
}

/// The whole body, or 413 when it is (or announces to be) over `limit`, 400 when it fails.
async fn read_limited<B: Body>(body: B, limit: usize) -> Result<Bytes, StatusCode> {
    if body.size_hint().lower() > limit as u64 {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = body.as_mut().frame().await {
        let Ok(frame) = frame else {
            return Err(StatusCode::BAD_REQUEST);
        };
        if let Ok(mut data) = frame.into_data() {
            if buf.len() + data.remaining() > limit {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                buf.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok(buf.freeze())
}

/// 401 for a delivery whose signature does not verify (nothing else looked at).
fn refused(refusal: verify::Refusal) -> Response<Bytes> {
    metrics::webhook("unverified", "rejected");
    tracing::warn!(
        reason = refusal.as_str(),
        "webhook refused: signature not verified"
    );
    status_only(StatusCode::UNAUTHORIZED)
}

fn status_only(status: StatusCode) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = status;
    res
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body_util::Full;

    use super::*;

    /// A body of unknown length that never ends.
    struct Endless;

    impl Body for Endless {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                b"0123456789",
            )))))
        }
    }

    #[test]
    fn recent_ids_are_bounded_and_forget_the_oldest() {
        // If this broke, a redelivery would be applied twice, or the set of remembered ids
        // would grow without bound under a flood of signed messages.
        let mut recent = Recent::default();
        let start = Instant::now();
        assert!(recent.insert("msg_1", start));
        assert!(!recent.insert("msg_1", start));
        for n in 0..RECENT_MAX + 10 {
            recent.insert(&format!("m{n}"), start);
        }
        assert!(recent.ids.len() <= RECENT_MAX);
        assert!(recent.insert("msg_1", start), "the oldest id was forgotten");
        assert!(recent.insert("late", start + RECENT_FOR));
        assert!(
            recent.ids.len() <= 2,
            "ids older than RECENT_FOR are dropped"
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_without_reading_them_all() {
        // If this broke, a large body could exhaust memory before its signature is checked.
        let small = Full::new(Bytes::from_static(b"{}"));
        assert_eq!(
            read_limited(small, 2).await.unwrap(),
            Bytes::from_static(b"{}")
        );
        let announced = Full::new(Bytes::from(vec![0u8; 11]));
        assert_eq!(
            read_limited(announced, 10).await,
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        );
        // A streamed body without a length: refused at the first chunk over the limit; the
        // (endless) rest is never read.
        assert_eq!(
            read_limited(Endless, 25).await,
            Err(StatusCode::PAYLOAD_TOO_LARGE)
        );
    }

    /// A body that never sends anything, and counts the times it was polled.
    struct Silent(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Body for Silent {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Poll::Pending
        }
    }

    fn receiver() -> Receiver {
        let secrets = WebhookSecrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        Receiver::new("/stytch/webhooks".into(), secrets, "project-test-1")
    }

    fn delivery(
        signature: &str,
        polled: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> Request<Silent> {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut req = Request::post("/stytch/webhooks")
            .body(Silent(std::sync::Arc::clone(polled)))
            .unwrap();
        let headers = verify::tests::headers("svix", "msg_1", now, signature);
        *req.headers_mut() = headers;
        req
    }

    fn revoker() -> Revoker {
        crate::engine::tests::engine().revoker
    }

    #[tokio::test]
    async fn an_unsigned_slow_body_is_refused_on_its_headers_without_being_read() {
        // If this broke, a flood of unsigned deliveries trickling 1 MiB bodies would each be
        // read (memory, and a connection held) before anything about them was checked.
        let polled = std::sync::Arc::default();
        for junk in ["", "v2,abc", "v1,not-base64!!", "v1,g0hM9SsE"] {
            let res = receiver()
                .receive(&revoker(), delivery(junk, &polled))
                .await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{junk:?}");
        }
        assert_eq!(
            polled.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "a body was read"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn well_formed_deliveries_that_never_finish_are_bounded_in_time_and_number() {
        // If this broke, deliveries with plausible (forged) signature headers and bodies that
        // never end would hold memory and tasks without limit.
        let receiver = std::sync::Arc::new(receiver());
        let revoker = revoker();
        let forged = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let polled = std::sync::Arc::default();
        let mut slow = Vec::new();
        for _ in 0..MAX_READING {
            let (receiver, revoker, req) = (
                std::sync::Arc::clone(&receiver),
                revoker.clone(),
                delivery(forged, &polled),
            );
            slow.push(tokio::spawn(async move {
                receiver.receive(&revoker, req).await
            }));
        }
        tokio::task::yield_now().await;
        let over = receiver.receive(&revoker, delivery(forged, &polled)).await;
        assert_eq!(over.status(), StatusCode::SERVICE_UNAVAILABLE);
        for task in slow {
            assert_eq!(task.await.unwrap().status(), StatusCode::REQUEST_TIMEOUT);
        }
        // Room again once they timed out.
        let again = receiver.receive(&revoker, delivery(forged, &polled)).await;
        assert_eq!(again.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
