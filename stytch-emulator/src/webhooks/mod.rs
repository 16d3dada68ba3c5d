//! Svix-signed webhooks, as Stytch sends them for member and organization changes.
//!
//! Every create, update and delete of a member or an organization (through the Rust API or
//! the control API) becomes one Svix message, sent to every configured endpoint subscribed
//! to its event type, in the background:
//!
//! - body: Stytch's event JSON (`project_id`, `event_id`, `action`, `object_type`, `source`,
//!   `id`, `timestamp`, `vertical: "B2B"`, and for CREATE/UPDATE the object under `member` or
//!   `organization`);
//! - headers: `svix-id` (the message id, the same on every attempt and redelivery),
//!   `svix-timestamp` (wall-clock Unix seconds of the attempt) and
//!   `svix-signature: v1,<base64 HMAC-SHA256>`, freshly signed for each attempt;
//! - the event type, `{source}.{object_type}.{action}` in lower case (`scim.member.delete`),
//!   travels as it does at Svix: out of band. Stytch's body has no `type` field and Svix sends
//!   no type header; the type chooses which endpoints get the message (an endpoint may
//!   subscribe to some types only) and is listed in [`WebhookDelivery::event_type`].
//!   Receivers key on `source`/`object_type`/`action` in the body.
//!
//! A delivery is retried, like Svix does, on a non-2xx answer (3xx included: redirects are not
//! followed) or a timeout, after each of the configured delays (by default
//! [`DEFAULT_WEBHOOK_RETRY_DELAYS`], Svix's schedule scaled down from seconds and hours to
//! milliseconds and seconds), then marked failed.

mod deliver;
mod log;
mod sign;

use std::time::Duration;

use serde_json::Value;

pub(crate) use self::deliver::run;
use self::log::Signing;
pub(crate) use self::log::{Event, Job, RetryPolicy, Webhooks, unix_now};
pub use self::sign::WebhookSecret;
use crate::types::EmulatorError;

/// Delays between the attempts of one delivery by default: 5 attempts in about 6.3 s.
pub const DEFAULT_WEBHOOK_RETRY_DELAYS: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(5),
];
/// How long one attempt may take by default before it counts as failed (Svix's 15 s).
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(15);
/// How many deliveries the log keeps (the oldest are dropped).
pub const DELIVERY_LOG_CAPACITY: usize = 10_000;

/// Who made a change: the `source` of Stytch's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EventSource {
    /// An API or backend SDK call (`DIRECT`), the default.
    #[default]
    Direct,
    /// The Stytch dashboard (`DASHBOARD`).
    Dashboard,
    /// The customer's identity provider, through SCIM (`SCIM`).
    Scim,
}

impl EventSource {
    const ALL: [Self; 3] = [Self::Direct, Self::Dashboard, Self::Scim];

    /// The value of the payload's `source`: `DIRECT`, `DASHBOARD` or `SCIM`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "DIRECT",
            Self::Dashboard => "DASHBOARD",
            Self::Scim => "SCIM",
        }
    }

    /// The source with this name, in any case (`scim`, `SCIM`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

/// What happened to the object: the payload's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

/// An endpoint webhooks are sent to, optionally subscribed to some event types only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub(crate) url: String,
    event_types: Option<Vec<String>>,
}

impl WebhookEndpoint {
    /// An endpoint receiving every event type.
    ///
    /// # Errors
    ///
    /// [`EmulatorError::InvalidWebhookUrl`] unless `url` is an absolute `http` or `https` URL.
    pub fn new(url: impl Into<String>) -> Result<Self, EmulatorError> {
        let url = url.into();
        match reqwest::Url::parse(&url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(Self {
                url,
                event_types: None,
            }),
            _ => Err(EmulatorError::InvalidWebhookUrl),
        }
    }

    /// Subscribes the endpoint to these event types only (`direct.member.delete`, …).
    #[must_use]
    pub fn event_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The subscribed event types; `None`: all.
    pub fn subscribed_types(&self) -> Option<&[String]> {
        self.event_types.as_deref()
    }

    pub(crate) fn wants(&self, event_type: &str) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == event_type))
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Attempts are under way or scheduled.
    Pending,
    /// An attempt got a 2xx answer.
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryState {
    /// `pending`, `delivered` or `failed` (the control API's names).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// One message to one endpoint, with its attempts so far.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebhookDelivery {
    /// The Svix message id (`svix-id`).
    pub msg_id: String,
    /// The payload's `event_id`, when the payload has one.
    pub event_id: Option<String>,
    /// The event type, e.g. `scim.member.delete`.
    pub event_type: String,
    /// The endpoint URL.
    pub endpoint: String,
    /// Attempts made (redeliveries add to them).
    pub attempts: u32,
    /// The HTTP status of the last answered attempt.
    pub last_status: Option<u16>,
    /// Why the last attempt got no answer (`timeout`, `connect`, …), if it got none.
    pub last_error: Option<String>,
    /// Where the delivery stands.
    pub state: DeliveryState,
}

/// An arbitrary signed message to send, e.g. an event type a receiver should ignore, another
/// project's event, or one signed with a wrong secret or a stale timestamp.
#[derive(Debug, Clone)]
pub struct WebhookMessage {
    pub(crate) event_type: String,
    pub(crate) payload: Value,
    pub(crate) signing: Signing,
    pub(crate) endpoints: Option<Vec<String>>,
}

impl WebhookMessage {
    /// A message of `event_type` whose body is `payload`, signed with the emulator's secret
    /// and the time of each attempt, to the configured endpoints subscribed to `event_type`.
    pub fn new(event_type: impl Into<String>, payload: Value) -> Self {
        Self {
            event_type: event_type.into(),
            payload,
            signing: Signing::default(),
            endpoints: None,
        }
    }

    /// Signs with another secret (a wrong one, for negative tests of receivers).
    #[must_use]
    pub fn signed_with(mut self, secret: WebhookSecret) -> Self {
        self.signing.secret = Some(secret);
        self
    }

    /// Uses this `svix-timestamp` (Unix seconds) on every attempt, e.g. a stale one.
    #[must_use]
    pub fn timestamp(mut self, unix_seconds: i64) -> Self {
        self.signing.timestamp = Some(unix_seconds);
        self
    }

    /// Sends to this URL (configured or not) instead of the configured endpoints; call it
    /// again to add more.
    #[must_use]
    pub fn to(mut self, url: impl Into<String>) -> Self {
        self.endpoints.get_or_insert_with(Vec::new).push(url.into());
        self
    }
}
