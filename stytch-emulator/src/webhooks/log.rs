//! The webhook log and queue: [`Webhooks`] turns events and messages into deliveries, keeps
//! the delivery log and hands jobs to the delivery task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::sign::new_msg_id;
use super::{
    Action, DEFAULT_WEBHOOK_RETRY_DELAYS, DEFAULT_WEBHOOK_TIMEOUT, DELIVERY_LOG_CAPACITY,
    DeliveryState, EventSource, WebhookDelivery, WebhookEndpoint, WebhookMessage, WebhookSecret,
};

/// How a message is signed: by default the current secret and the time of each attempt.
#[derive(Debug, Clone, Default)]
pub(crate) struct Signing {
    pub(crate) secret: Option<WebhookSecret>,
    pub(crate) timestamp: Option<i64>,
}

/// A message as sent: its id, type and exact body.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) event_id: Option<String>,
    pub(crate) event_type: String,
    pub(crate) body: Bytes,
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
    pub(crate) record: u64,
    pub(crate) msg: Arc<Message>,
    pub(crate) endpoint: String,
    pub(crate) signing: Signing,
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
    pub(crate) fn attempted(&self, record: u64, status: Option<u16>, error: Option<String>) {
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
    pub(crate) fn gave_up(&self, record: u64) {
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
    use crate::webhooks::{Action, EventSource, WebhookEndpoint, WebhookMessage, WebhookSecret};

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
