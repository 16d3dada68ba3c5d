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
mod sign;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

pub(crate) use self::deliver::run;
pub use self::sign::WebhookSecret;
use self::sign::new_msg_id;
use crate::EmulatorError;

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
    fn as_str(self) -> &'static str {
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
    url: String,
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

    fn wants(&self, event_type: &str) -> bool {
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
    event_type: String,
    payload: Value,
    signing: Signing,
    endpoints: Option<Vec<String>>,
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

/// How a message is signed: by default the current secret and the time of each attempt.
#[derive(Debug, Clone, Default)]
pub(crate) struct Signing {
    secret: Option<WebhookSecret>,
    timestamp: Option<i64>,
}

/// A message as sent: its id, type and exact body.
#[derive(Debug)]
pub(crate) struct Message {
    id: String,
    event_id: Option<String>,
    event_type: String,
    body: Bytes,
}

/// One delivery in the log.
#[derive(Debug)]
struct Record {
    id: u64,
    msg: Arc<Message>,
    endpoint: String,
    signing: Signing,
    attempts: u32,
    last_status: Option<u16>,
    last_error: Option<String>,
    state: DeliveryState,
}

/// Work for the delivery task: attempt one delivery until it succeeds or gives up.
#[derive(Debug)]
pub(crate) struct Job {
    record: u64,
    msg: Arc<Message>,
    endpoint: String,
    signing: Signing,
}

/// Retry delays and the per-attempt timeout.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub(crate) delays: Vec<Duration>,
    pub(crate) timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            delays: DEFAULT_WEBHOOK_RETRY_DELAYS.to_vec(),
            timeout: DEFAULT_WEBHOOK_TIMEOUT,
        }
    }
}

/// Endpoints, secret and delivery log, shared by the emulator and its delivery task.
#[derive(Debug)]
pub(crate) struct Webhooks {
    secret: RwLock<WebhookSecret>,
    endpoints: RwLock<Vec<WebhookEndpoint>>,
    pub(crate) policy: RetryPolicy,
    records: Mutex<VecDeque<Record>>,
    next_record: AtomicU64,
    jobs: mpsc::UnboundedSender<Job>,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn write<T>(lock: &RwLock<T>, value: T) {
    *lock
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = value;
}

/// Wall-clock Unix seconds (the receiver checks `svix-timestamp` against its own clock, so
/// the emulator's clock offset does not apply).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Webhooks {
    /// The shared part, and the receiving end of its job queue for [`run`].
    pub(crate) fn new(
        secret: WebhookSecret,
        endpoints: Vec<WebhookEndpoint>,
        policy: RetryPolicy,
    ) -> (Self, mpsc::UnboundedReceiver<Job>) {
        let (jobs, queue) = mpsc::unbounded_channel();
        let webhooks = Self {
            secret: RwLock::new(secret),
            endpoints: RwLock::new(endpoints),
            policy,
            records: Mutex::new(VecDeque::new()),
            next_record: AtomicU64::new(0),
            jobs,
        };
        (webhooks, queue)
    }

    pub(crate) fn secret(&self) -> WebhookSecret {
        read(&self.secret)
    }

    pub(crate) fn set_secret(&self, secret: WebhookSecret) {
        write(&self.secret, secret);
    }

    pub(crate) fn endpoints(&self) -> Vec<WebhookEndpoint> {
        read(&self.endpoints)
    }

    pub(crate) fn set_endpoints(&self, endpoints: Vec<WebhookEndpoint>) {
        write(&self.endpoints, endpoints);
    }

    fn records(&self) -> MutexGuard<'_, VecDeque<Record>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends a Stytch event about `object_type` `id`; `object` is the whole object for
    /// CREATE and UPDATE. Returns the message id.
    pub(crate) fn emit(&self, event: Event<'_>) -> String {
        let event_id = format!("webhook-event-{}-{}", event.env, uuid::Uuid::new_v4());
        let mut payload = Map::new();
        payload.insert("project_id".into(), event.project_id.into());
        payload.insert("event_id".into(), event_id.into());
        payload.insert("action".into(), event.action.as_str().into());
        payload.insert("object_type".into(), event.object_type.into());
        payload.insert("source".into(), event.source.as_str().into());
        payload.insert("id".into(), event.id.into());
        payload.insert(
            "timestamp".into(),
            humantime::format_rfc3339_micros(SystemTime::now())
                .to_string()
                .into(),
        );
        payload.insert("vertical".into(), "B2B".into());
        if let Some(object) = event.object {
            payload.insert(event.object_type.into(), object);
        }
        let event_type = format!(
            "{}.{}.{}",
            event.source.as_str(),
            event.object_type,
            event.action.as_str()
        )
        .to_ascii_lowercase();
        self.send(WebhookMessage::new(event_type, Value::Object(payload)))
    }

    /// Queues a message to its endpoints; returns its id.
    pub(crate) fn send(&self, message: WebhookMessage) -> String {
        let body = Bytes::from(message.payload.to_string());
        let msg = Arc::new(Message {
            id: new_msg_id(),
            event_id: message
                .payload
                .get("event_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            event_type: message.event_type,
            body,
        });
        let targets = match message.endpoints {
            Some(urls) => urls,
            None => self
                .endpoints()
                .into_iter()
                .filter(|e| e.wants(&msg.event_type))
                .map(|e| e.url)
                .collect(),
        };
        for endpoint in targets {
            let record = self.next_record.fetch_add(1, Ordering::Relaxed);
            {
                let mut records = self.records();
                if records.len() >= DELIVERY_LOG_CAPACITY {
                    records.pop_front();
                }
                records.push_back(Record {
                    id: record,
                    msg: msg.clone(),
                    endpoint: endpoint.clone(),
                    signing: message.signing.clone(),
                    attempts: 0,
                    last_status: None,
                    last_error: None,
                    state: DeliveryState::Pending,
                });
            }
            self.queue(Job {
                record,
                msg: msg.clone(),
                endpoint,
                signing: message.signing.clone(),
            });
        }
        msg.id.clone()
    }

    fn queue(&self, job: Job) {
        // The delivery task lives as long as the emulator; a send fails only while the
        // emulator is being dropped, when nothing is delivered any more anyway.
        let _ = self.jobs.send(job);
    }

    /// Sends message `msg_id` again to every endpoint it went to (same `svix-id`, fresh
    /// timestamp and signature); `false` when no such message is in the log.
    pub(crate) fn redeliver(&self, msg_id: &str) -> bool {
        let jobs: Vec<Job> = {
            let mut records = self.records();
            records
                .iter_mut()
                .filter(|r| r.msg.id == msg_id)
                .map(|r| {
                    r.state = DeliveryState::Pending;
                    Job {
                        record: r.id,
                        msg: r.msg.clone(),
                        endpoint: r.endpoint.clone(),
                        signing: r.signing.clone(),
                    }
                })
                .collect()
        };
        let found = !jobs.is_empty();
        for job in jobs {
            self.queue(job);
        }
        found
    }

    /// Notes the outcome of one attempt.
    fn attempted(&self, record: u64, status: Option<u16>, error: Option<String>) {
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        if let Some(r) = self.records().iter_mut().rev().find(|r| r.id == record) {
            r.attempts += 1;
            r.last_status = status;
            r.last_error = error;
            if delivered {
                r.state = DeliveryState::Delivered;
            }
        }
    }

    /// Marks a delivery failed after its last attempt.
    fn gave_up(&self, record: u64) {
        if let Some(r) = self.records().iter_mut().rev().find(|r| r.id == record)
            && r.state == DeliveryState::Pending
        {
            r.state = DeliveryState::Failed;
        }
    }

    /// The delivery log, oldest first.
    pub(crate) fn deliveries(&self) -> Vec<WebhookDelivery> {
        self.records()
            .iter()
            .map(|r| WebhookDelivery {
                msg_id: r.msg.id.clone(),
                event_id: r.msg.event_id.clone(),
                event_type: r.msg.event_type.clone(),
                endpoint: r.endpoint.clone(),
                attempts: r.attempts,
                last_status: r.last_status,
                last_error: r.last_error.clone(),
                state: r.state,
            })
            .collect()
    }
}

/// A Stytch event to send (see [`Webhooks::emit`]).
#[derive(Debug)]
pub(crate) struct Event<'a> {
    pub(crate) project_id: &'a str,
    pub(crate) env: &'a str,
    pub(crate) source: EventSource,
    pub(crate) object_type: &'static str,
    pub(crate) action: Action,
    pub(crate) id: &'a str,
    pub(crate) object: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhooks(urls: &[WebhookEndpoint]) -> (Webhooks, mpsc::UnboundedReceiver<Job>) {
        Webhooks::new(
            WebhookSecret::generate(),
            urls.to_vec(),
            RetryPolicy::default(),
        )
    }

    #[test]
    fn events_have_stytchs_envelope_and_a_lower_case_type() {
        // If this broke, receivers keyed on Stytch's fields would not recognise the events.
        let hook = WebhookEndpoint::new("http://127.0.0.1:1/hook").unwrap();
        let (w, mut queue) = webhooks(&[hook]);
        let msg_id = w.emit(Event {
            project_id: "project-test-1",
            env: "test",
            source: EventSource::Scim,
            object_type: "member",
            action: Action::Delete,
            id: "member-test-1",
            object: None,
        });
        let job = queue.try_recv().unwrap();
        assert_eq!(job.msg.id, msg_id);
        assert_eq!(job.msg.event_type, "scim.member.delete");
        let body: Value = serde_json::from_slice(&job.msg.body).unwrap();
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
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
            "DELETE carries the envelope only"
        );
        assert_eq!(body["action"], "DELETE");
        assert_eq!(body["source"], "SCIM");
        assert_eq!(body["vertical"], "B2B");
        assert!(
            body["event_id"]
                .as_str()
                .unwrap()
                .starts_with("webhook-event-test-")
        );
        let at = body["timestamp"].as_str().unwrap();
        assert!(
            humantime::parse_rfc3339(at).is_ok() && at.ends_with('Z'),
            "{at}"
        );
        assert_eq!(
            w.deliveries()[0].event_id,
            body["event_id"].as_str().map(str::to_owned)
        );
    }

    #[test]
    fn endpoints_get_only_their_subscribed_types() {
        // If this broke, an endpoint subscribed to some types would get all of them, or none.
        let all = WebhookEndpoint::new("http://127.0.0.1:1/all").unwrap();
        let some = WebhookEndpoint::new("https://127.0.0.1:1/some")
            .unwrap()
            .event_types(["direct.member.delete"]);
        let (w, mut queue) = webhooks(&[all, some]);
        w.send(WebhookMessage::new("direct.member.update", Value::Null));
        w.send(WebhookMessage::new("direct.member.delete", Value::Null));
        let mut got = Vec::new();
        while let Ok(job) = queue.try_recv() {
            got.push((job.msg.event_type.clone(), job.endpoint));
        }
        assert_eq!(
            got,
            [
                (
                    "direct.member.update".into(),
                    "http://127.0.0.1:1/all".into()
                ),
                (
                    "direct.member.delete".into(),
                    "http://127.0.0.1:1/all".into()
                ),
                (
                    "direct.member.delete".into(),
                    "https://127.0.0.1:1/some".into()
                ),
            ]
        );
        assert!(WebhookEndpoint::new("ftp://x/").is_err());
        assert!(WebhookEndpoint::new("/relative").is_err());
    }

    #[test]
    fn redelivery_reuses_the_message_and_the_log_is_bounded() {
        // If this broke, duplicate-delivery tests would send a new svix-id, or a long soak
        // would grow the delivery log without bound.
        let (w, mut queue) = webhooks(&[WebhookEndpoint::new("http://127.0.0.1:1/").unwrap()]);
        let first = w.send(WebhookMessage::new("t", Value::Null));
        assert!(w.redeliver(&first));
        assert!(!w.redeliver("msg_unknown"));
        let a = queue.try_recv().unwrap();
        let b = queue.try_recv().unwrap();
        assert!(Arc::ptr_eq(&a.msg, &b.msg) && a.record == b.record);
        for _ in 0..DELIVERY_LOG_CAPACITY {
            w.send(WebhookMessage::new("t", Value::Null));
        }
        let log = w.deliveries();
        assert_eq!(log.len(), DELIVERY_LOG_CAPACITY);
        assert_ne!(log[0].msg_id, first);
    }
}
