//! Stytch's webhooks: revocations made outside the app (a member deleted in the dashboard,
//! deprovisioned by the customer's IdP through SCIM, demoted; an organization deleted), told
//! by Stytch through Svix, applied here at once.
//!
//! Configured with [`StytchAuthLayerBuilder::webhook`](crate::StytchAuthLayerBuilder::webhook);
//! off otherwise. The layer answers `POST {path}` itself, before authentication and without
//! the cross-site check: its only gate is the Svix signature (`verify`). The body (at most
//! [`MAX_BODY`]) is read on this route only, and parsed only once the signature is verified.
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
//! remembered ([`RECENT_FOR`], at most [`RECENT_MAX`] ids); beyond that, applying it again
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
        let body = match read_limited(body, MAX_BODY).await {
            Ok(body) => body,
            Err(status) => {
                metrics::webhook("unverified", "rejected");
                tracing::info!(status = status.as_u16(), "webhook body refused");
                return status_only(status);
            }
        };
        let now = SystemTime::now();
        let id = match verify::verify(&self.secrets, &parts.headers, &body, now) {
            Ok(id) => id,
            Err(refusal) => {
                metrics::webhook("unverified", "rejected");
                tracing::warn!(
                    reason = refusal.as_str(),
                    "webhook refused: signature not verified"
                );
                return status_only(StatusCode::UNAUTHORIZED);
            }
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
}
