//! [`Link`]: what the bus's tasks share: the keys, the state, the queue of what waits for
//! Redis, the map from peers' revocations to local ids, and the pending revocations this
//! instance keeps claimed. Also the [`Peers`] side: what the revocation pipeline tells.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::conn::{Conn, Connector};
use super::history::History;
use super::message::{Body, InstanceId, Message, RevKey, unix_ms};
use super::switch::Switches;
use crate::metrics;
use crate::revoke::inbound::Live;
use crate::revoke::{Inbound, RemoteTarget, RevocationId};

/// The bus's settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(super) namespace: Option<String>,
    pub(super) startup_wait: Duration,
    pub(super) lease: Duration,
    pub(super) max_backoff: Duration,
    pub(super) max_queued: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            startup_wait: Duration::from_secs(5),
            lease: Duration::from_secs(15),
            max_backoff: Duration::from_secs(2),
            max_queued: 10_000,
        }
    }
}

/// The state of the bus's connection to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusState {
    /// Not connected yet since startup.
    Connecting,
    /// Connected, reading what was logged before (at startup or after a reconnect).
    CatchingUp,
    /// Connected and up to date.
    Live,
    /// Redis is unreachable: revocations apply here and wait to be published.
    Down,
}

impl BusState {
    /// `connecting`, `catching_up`, `live` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::CatchingUp => "catching_up",
            Self::Live => "live",
            Self::Down => "down",
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Down,
            1 => Self::Connecting,
            2 => Self::CatchingUp,
            _ => Self::Live,
        }
    }

    /// The value of the `stytch_bus_state` gauge.
    fn as_u8(self) -> u8 {
        match self {
            Self::Down => 0,
            Self::Connecting => 1,
            Self::CatchingUp => 2,
            Self::Live => 3,
        }
    }
}

/// What waits to be written to Redis, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Out {
    /// A message for the log.
    Log(Message),
    /// Write the pending entry of local revocation `id` (see [`Link::mine`]).
    PendingAdd(RevocationId),
    /// The pending entry of `id` is finished: acknowledge and delete it.
    PendingDone(RevocationId),
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Out>,
    queued: HashSet<Out>,
}

/// A pending revocation whose entry this instance keeps claimed.
#[derive(Debug)]
pub(crate) struct Held {
    /// Its entry's id, once written (or claimed).
    pub(super) stream_id: Option<String>,
    /// What the entry holds (written again if Redis lost it).
    pub(super) message: Message,
    /// Stytch answered (here or elsewhere): the entry goes.
    pub(super) done: bool,
}

/// A peer's revocation applied here.
#[derive(Debug)]
struct Mapped {
    id: RevocationId,
    forget_at: Instant,
    /// Applied so far by a credential's hash alone: its origin may still name the
    /// credential's session (see [`Link::map_applied`]).
    by_key_only: bool,
}

/// Peers' revocations applied here, both ways, with when the mapping can be forgotten.
#[derive(Debug, Default)]
struct Ids {
    local: HashMap<RevKey, Mapped>,
    remote: HashMap<RevocationId, RevKey>,
    inserts: usize,
}

/// Redis keys of one project.
#[derive(Debug)]
pub(crate) struct Keys {
    pub(super) log: String,
    pub(super) pending: String,
    /// The M2M client cut-offs, kept as long as the longest lasts (the log keeps the
    /// denylist's window only, a cut-off lasts as long as an access token lives).
    pub(super) cut_offs: String,
    pub(super) group: &'static str,
    /// A random value set once (`SET NX`): another value later means Redis lost its data.
    pub(super) epoch: String,
}

/// State shared by the bus's tasks and the revocation pipeline.
pub(crate) struct Link {
    pub(super) me: InstanceId,
    pub(super) connector: Arc<Connector>,
    /// The URL without user or password.
    pub(super) url: String,
    pub(super) keys: Keys,
    pub(super) settings: Settings,
    /// How long the log is kept: the denylist's window, plus a margin for clocks.
    pub(super) keep: Duration,
    /// How long the cut-offs' Stream is kept: the longest cut-off, plus the margin.
    pub(super) keep_cut_offs: Duration,
    pub(super) started: Instant,
    inbound: Inbound,
    state: AtomicU8,
    caught_up: AtomicBool,
    caught_up_notify: Notify,
    queue: Mutex<Queue>,
    /// New work for the writer.
    pub(super) out_work: Notify,
    ids: Mutex<Ids>,
    /// Pending revocations this instance keeps claimed: its own and those it took over.
    pub(super) mine: Mutex<HashMap<RevocationId, Held>>,
    /// The log messages of the window this instance knows, its own and its peers'.
    pub(super) history: History,
    /// Redis lost the log: the writer writes [`Link::history`] again.
    restore: AtomicBool,
    /// The node serving the keys, its switches, and what restores wrote.
    pub(super) switches: Switches,
    /// Wakes the pending task before its next round (the primary changed).
    pub(super) pending_work: Notify,
}

/// Margin over the denylist's window for the log's trimming (clocks of instances and Redis).
const KEEP_MARGIN: Duration = Duration::from_secs(60);

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here is left half-updated by a panic elsewhere.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    pub(crate) fn new(
        connector: Arc<Connector>,
        url: String,
        namespace: &str,
        settings: Settings,
        inbound: Inbound,
    ) -> Arc<Self> {
        let keep = inbound.window() + KEEP_MARGIN;
        let history = History::new(keep, settings.max_queued);
        let link = Arc::new(Self {
            me: InstanceId::random(),
            connector,
            url,
            keys: Keys {
                log: format!("{{{namespace}}}:revocations"),
                pending: format!("{{{namespace}}}:pending"),
                cut_offs: format!("{{{namespace}}}:m2m-cut-offs"),
                group: "tower-stytch",
                epoch: format!("{{{namespace}}}:epoch"),
            },
            settings,
            keep,
            keep_cut_offs: inbound.longest_cut_off() + KEEP_MARGIN,
            started: Instant::now(),
            inbound,
            state: AtomicU8::new(BusState::Connecting.as_u8()),
            caught_up: AtomicBool::new(false),
            caught_up_notify: Notify::new(),
            queue: Mutex::default(),
            out_work: Notify::new(),
            ids: Mutex::default(),
            mine: Mutex::default(),
            history,
            restore: AtomicBool::new(false),
            switches: Switches::default(),
            pending_work: Notify::new(),
        });
        metrics::bus_state(BusState::Connecting.as_u8());
        link
    }

    /// The layer's revoker, while the layer lives.
    pub(crate) fn revoker(&self) -> Option<Live> {
        self.inbound.live()
    }

    /// Whether the layer still lives (the bus's tasks end with it).
    pub(crate) fn is_live(&self) -> bool {
        self.inbound.is_live()
    }

    /// The handle on the layer's revoker.
    pub(crate) fn inbound(&self) -> &Inbound {
        &self.inbound
    }

    pub(crate) fn state(&self) -> BusState {
        BusState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, state: BusState) {
        let old = self.state.swap(state.as_u8(), Ordering::AcqRel);
        if old != state.as_u8() {
            metrics::bus_state(state.as_u8());
            tracing::info!(state = state.as_str(), "revocation bus");
        }
    }

    pub(crate) fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    pub(crate) fn set_caught_up(&self) {
        if !self.caught_up.swap(true, Ordering::AcqRel) {
            self.caught_up_notify.notify_waiters();
        }
    }

    pub(crate) async fn wait_caught_up(&self) {
        loop {
            let notified = self.caught_up_notify.notified();
            if self.is_caught_up() {
                return;
            }
            notified.await;
        }
    }

    /// A new connection to the node serving the keys. `response_timeout` must exceed any
    /// `BLOCK` sent on it.
    pub(crate) async fn connect(&self, response_timeout: Duration) -> redis::RedisResult<Conn> {
        self.connector.connect(response_timeout).await
    }

    /// Asks the writer to write every message of [`Link::history`] again (Redis lost the
    /// log).
    pub(crate) fn request_restore(&self) {
        self.restore.store(true, Ordering::SeqCst);
        self.out_work.notify_one();
    }

    /// Whether a restore waits (see [`Link::request_restore`]).
    pub(crate) fn restore_requested(&self) -> bool {
        self.restore.load(Ordering::SeqCst)
    }

    /// The messages to write again, when a restore was requested (the request is taken):
    /// the history, but for what is still queued (written next anyway), and every M2M
    /// client cut-off in force here (older than the history's window, most of them).
    pub(crate) fn take_restore(&self) -> Option<Vec<Message>> {
        if !self.restore.swap(false, Ordering::SeqCst) {
            return None;
        }
        let mut history = self.history.snapshot();
        if let Some(revoker) = self.revoker() {
            for (client, issued_before, until) in revoker.client_cut_offs() {
                let body = Body::ClientCutOff {
                    client,
                    issued_before,
                    until,
                };
                history.push(self.message(revoker.next_id(), body));
            }
        }
        let queue = lock(&self.queue);
        history.retain(|m| !queue.queued.contains(&Out::Log(m.clone())));
        Some(history)
    }

    /// Queues `out` for the writer, unless the same is queued already. When the queue is
    /// full the oldest goes. A log message is also noted in [`Link::history`].
    pub(crate) fn push(&self, out: Out) {
        if let Out::Log(message) = &out {
            self.history.record(message);
        }
        {
            let mut queue = lock(&self.queue);
            if queue.queued.contains(&out) {
                return;
            }
            if queue.items.len() >= self.settings.max_queued
                && let Some(dropped) = queue.items.pop_front()
            {
                queue.queued.remove(&dropped);
                tracing::warn!("revocation bus queue full: the oldest message is dropped");
                metrics::bus_dropped();
            }
            queue.queued.insert(out.clone());
            queue.items.push_back(out);
        }
        self.out_work.notify_one();
    }

    /// The first `n` queued items, left queued.
    pub(crate) fn peek(&self, n: usize) -> Vec<Out> {
        lock(&self.queue).items.iter().take(n).cloned().collect()
    }

    /// Removes the first `n` queued items (written).
    pub(crate) fn pop(&self, n: usize) {
        let mut queue = lock(&self.queue);
        for _ in 0..n {
            if let Some(out) = queue.items.pop_front() {
                queue.queued.remove(&out);
            }
        }
    }

    /// Puts `outs` back at the front of the queue, in their order, ahead of what waits
    /// there (skipping any queued already): written before it, they go again first.
    pub(crate) fn requeue_front(&self, outs: Vec<Out>) {
        let mut queue = lock(&self.queue);
        for out in outs.into_iter().rev() {
            if queue.queued.insert(out.clone()) {
                queue.items.push_front(out);
            }
        }
    }

    /// Items waiting for Redis.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.queue).items.len()
    }

    /// The bus identity of local revocation `id`.
    fn key_of(&self, id: RevocationId) -> RevKey {
        lock(&self.ids).remote.get(&id).cloned().unwrap_or(RevKey {
            origin: self.me.clone(),
            rev: id.0,
        })
    }

    /// The local id of `key`, if it is applied here.
    pub(crate) fn local_id(&self, key: &RevKey) -> Option<RevocationId> {
        if key.origin == self.me {
            return Some(RevocationId(key.rev));
        }
        lock(&self.ids).local.get(key).map(|m| m.id)
    }

    /// Maps a peer's revocation `key` to a fresh local id; `None` when it has one already.
    pub(crate) fn map_new(&self, key: &RevKey, revoker: &Live) -> Option<RevocationId> {
        self.map(key, false, revoker)
    }

    /// The local id under which a peer's `Applied` message about `target` is applied here:
    /// a fresh one for a revocation new here; the one it has when its origin, having revoked
    /// a credential known only by its hash, now names the credential's session (a logout
    /// whose token could not be looked up when it was decided); `None` otherwise (a message
    /// read again after a reconnect).
    pub(crate) fn map_applied(
        &self,
        key: &RevKey,
        target: &RemoteTarget,
        revoker: &Live,
    ) -> Option<RevocationId> {
        // This instance's own keys are never mapped: `map` refuses them.
        if let Some(mapped) = lock(&self.ids).local.get_mut(key) {
            if mapped.by_key_only && matches!(target, RemoteTarget::Session(_)) {
                mapped.by_key_only = false;
                return Some(mapped.id);
            }
            return None;
        }
        self.map(key, matches!(target, RemoteTarget::Key(_)), revoker)
    }

    fn map(&self, key: &RevKey, by_key_only: bool, revoker: &Live) -> Option<RevocationId> {
        if key.origin == self.me {
            return None;
        }
        let mut ids = lock(&self.ids);
        if ids.local.contains_key(key) {
            return None;
        }
        let id = revoker.next_id();
        let forget_at = Instant::now() + revoker.longest_hold() + self.keep;
        ids.local.insert(
            key.clone(),
            Mapped {
                id,
                forget_at,
                by_key_only,
            },
        );
        ids.remote.insert(id, key.clone());
        ids.inserts += 1;
        if ids.inserts.is_multiple_of(4096) {
            let now = Instant::now();
            let Ids { local, remote, .. } = &mut *ids;
            local.retain(|_, mapped| {
                let keep = mapped.forget_at > now;
                if !keep {
                    remote.remove(&mapped.id);
                }
                keep
            });
        }
        Some(id)
    }

    pub(super) fn message(&self, id: RevocationId, body: Body) -> Message {
        Message {
            from: self.me.clone(),
            key: self.key_of(id),
            body,
        }
    }

    /// Stytch answered about `id` (here or elsewhere): its pending entry, if this instance
    /// keeps one, goes.
    pub(crate) fn finish_pending(&self, id: RevocationId) {
        let held = {
            let mut mine = lock(&self.mine);
            match mine.get_mut(&id) {
                Some(held) if !held.done => {
                    held.done = true;
                    true
                }
                _ => false,
            }
        };
        if held {
            self.push(Out::PendingDone(id));
        }
    }

    /// Applies a message read from the log (or a pending entry, as `Applied`). `live`: read
    /// as it was written, not caught up (then its propagation time is recorded).
    pub(crate) async fn receive(&self, message: Message, written_ms: Option<u64>) {
        if message.from == self.me {
            return;
        }
        let Some(revoker) = self.revoker() else {
            return;
        };
        self.history.record(&message);
        metrics::bus_received(message.body.kind());
        if let Some(written) = written_ms {
            let now = unix_ms(SystemTime::now());
            metrics::bus_propagation(Duration::from_millis(now.saturating_sub(written)));
        }
        match message.body {
            Body::Applied {
                target,
                confirmed,
                until,
                revoked_at,
            } => {
                if let Some(id) = self.map_applied(&message.key, &target, &revoker) {
                    revoker
                        .apply_remote(id, &target, confirmed, until, revoked_at)
                        .await;
                }
            }
            // A verdict about a revocation decided here (another instance completed it) only
            // ends its pending entry: its holds follow Stytch's answer to this instance's own
            // retries, so that whoever can write to Redis cannot release what this instance
            // revoked.
            Body::Confirmed { .. } | Body::Undone if message.key.origin == self.me => {
                self.finish_pending(RevocationId(message.key.rev));
            }
            Body::Confirmed { until, revoked_at } => {
                if let Some(id) = self.local_id(&message.key) {
                    revoker.confirm_remote(id, until, revoked_at);
                    self.finish_pending(id);
                }
            }
            Body::Undone => {
                if let Some(id) = self.local_id(&message.key) {
                    revoker.undo_remote(id);
                    self.finish_pending(id);
                }
            }
            Body::MadeByStytch {
                target,
                revoked_at,
                until,
            } => {
                if let Some(id) = self.map_new(&message.key, &revoker) {
                    revoker
                        .made_by_stytch_remote(id, target, revoked_at, until)
                        .await;
                }
            }
            Body::RolesChanged {
                member,
                changed_at,
                roles,
                until,
            } => {
                // Mapped like a revocation so that reading it twice (a reconnect's catch-up)
                // does not note it again.
                if self.map_new(&message.key, &revoker).is_some() {
                    revoker.roles_changed_remote(&member, changed_at, roles, until);
                }
            }
            // Read twice (the log and the cut-offs' Stream, a reconnect's catch-up), it is
            // applied once: mapped like a revocation. (Applied again once the mapping is
            // forgotten, it changes nothing: a cut-off only ever extends.)
            Body::ClientCutOff {
                client,
                issued_before,
                until,
            } => {
                if self.map_new(&message.key, &revoker).is_some() {
                    revoker
                        .client_cut_off_remote(&client, issued_before, until)
                        .await;
                }
            }
        }
    }
}
