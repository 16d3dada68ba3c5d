//! Revocations shared between instances through Redis (feature `redis`): [`RedisBus`].
//!
//! One Redis Stream per project is the revocation log, `{tower-stytch:<project_id>}:revocations`
//! (the hash tag puts every key of a project in one Redis Cluster slot), trimmed to the
//! denylist's window. Every instance appends what it applies, undoes and confirms, and what
//! the Stytch webhooks it received did (`message`), and reads the log from its last id on a
//! connection of its own (`reader`): the Stream is both the broadcast and the catch-up, at
//! startup and after a reconnect. What
//! cannot be written while Redis is down waits in a bounded queue (`link`) for the writer
//! (`writer`). Revocations Stytch has not confirmed are also kept in a second Stream read
//! through a consumer group (`pending`), so another instance completes them if their own dies.
//! Each instance also keeps the window's messages it knows (`history`): when the project's
//! epoch key changes (Redis lost its data), it writes them all again.
//!
//! Each instance also notes which node serves the keys (`switch`): on a single node, behind
//! Sentinels (`redis+sentinel://`) or in Redis Cluster (`redis+cluster://`; `target`,
//! `conn`). A failover may promote a replica that lacks the last writes, so after every
//! switch each instance writes its window again, as when the epoch changes.
//!
//! Redis is never in a request's path: requests read the local denylist and cache only.

mod conn;
mod history;
mod link;
mod message;
mod outbound;
mod pending;
mod reader;
mod switch;
mod target;
mod util;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use self::conn::Connector;
pub use self::link::BusState;
use self::link::{Link, Settings};
use self::target::Target;
use crate::revoke::Revoker;

/// A Redis URL or the bus's settings were refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The URL cannot be used. The URL in the message has no user or password.
    #[error("invalid Redis URL {url:?}")]
    InvalidUrl {
        /// The URL as given, its user and password replaced by `***`.
        url: String,
    },
    /// A duration setting is zero.
    #[error("{name} must be more than zero")]
    ZeroDuration {
        /// The setting's name.
        name: &'static str,
    },
}

/// Revocations shared with every instance using the same Redis and the same Stytch project:
/// give it to [`StytchAuthLayerBuilder::revocation_bus`](crate::StytchAuthLayerBuilder::revocation_bus).
///
/// Building one does no I/O: the layer connects in the background, and keeps serving (from
/// its own cache and denylist) while Redis is unreachable. Its `Debug` output and errors
/// never show a user or password.
///
/// Three topologies, by the URL's scheme (the user and password are the Redis nodes'; TLS
/// with `rediss`, `redis+sentinels`, `redis+clusters`):
///
/// - one node: `redis://[user:password@]host[:port][/db]`;
/// - a primary found through Sentinels, followed through failovers:
///   `redis+sentinel://[user:password@]host[:port],host[:port]…/master[/db]` (Sentinel
///   port 26379 by default; a password of the Sentinels' own with
///   [`sentinel_password`](RedisBusBuilder::sentinel_password));
/// - Redis Cluster, following `MOVED`/`ASK` redirections, resharding and failovers:
///   `redis+cluster://[user:password@]host[:port],host[:port]…` (seed nodes; every key of a
///   project shares one hash slot).
///
/// ```no_run
/// # fn run(client: tower_stytch::StytchClient) -> Result<(), Box<dyn std::error::Error>> {
/// use tower_stytch::StytchAuthLayer;
/// use tower_stytch::bus::RedisBus;
///
/// // One node.
/// let bus = RedisBus::new("redis://127.0.0.1:6379/")?;
/// // The primary the Sentinels monitor as `mymaster` (their own password only if they
/// // require one).
/// let sentinel = RedisBus::builder(
///     "redis+sentinel://:PASSWORD@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster",
/// )
/// .sentinel_password("SENTINEL-PASSWORD")
/// .build()?;
/// // Redis Cluster, from seed nodes.
/// let cluster =
///     RedisBus::new("redis+cluster://:PASSWORD@10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379")?;
/// # let _ = (sentinel, cluster);
/// // Inside a Tokio runtime: the bus's tasks start with the layer.
/// let layer = StytchAuthLayer::builder(client).revocation_bus(bus).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBus {
    /// Shared by the layers given clones of this bus.
    connector: Arc<Connector>,
    topology: &'static str,
    url: String,
    settings: Settings,
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBus")
            .field("url", &self.url)
            .field("topology", &self.topology)
            .field("settings", &self.settings)
            .finish()
    }
}

impl RedisBus {
    /// A bus over the Redis at `url` (see [`RedisBus`] for the forms), with the default
    /// settings.
    ///
    /// # Errors
    ///
    /// [`BusError::InvalidUrl`].
    pub fn new(url: &str) -> Result<Self, BusError> {
        Self::builder(url).build()
    }

    /// A builder of a bus over the Redis at `url` (see [`RedisBus`] for the forms).
    pub fn builder(url: &str) -> RedisBusBuilder {
        RedisBusBuilder {
            url: url.to_owned(),
            sentinel_password: None,
            settings: Settings::default(),
        }
    }

    /// Starts the bus's tasks for `revoker` (the project's log and pending Streams).
    pub(crate) fn attach(self, revoker: &Revoker, project_id: &str) -> BusHandle {
        let namespace = self
            .settings
            .namespace
            .clone()
            .unwrap_or_else(|| format!("tower-stytch:{project_id}"));
        let inbound = revoker.inbound();
        let link = Link::new(self.connector, self.url, &namespace, self.settings, inbound);
        link.inbound()
            .connect(Arc::clone(&link) as Arc<dyn crate::revoke::Peers>);
        tokio::spawn(reader::run(Arc::clone(&link)));
        tokio::spawn(writer::run(Arc::clone(&link)));
        tokio::spawn(pending::run(Arc::clone(&link)));
        BusHandle { link }
    }
}

/// Builder of [`RedisBus`]. Its `Debug` output shows no user or password.
#[must_use]
pub struct RedisBusBuilder {
    url: String,
    sentinel_password: Option<String>,
    settings: Settings,
}

impl fmt::Debug for RedisBusBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBusBuilder")
            .field("url", &redact(&self.url))
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "***"),
            )
            .field("settings", &self.settings)
            .finish()
    }
}

impl RedisBusBuilder {
    /// The Sentinels' own password (their `requirepass`), for a `redis+sentinel://` URL
    /// whose Sentinels require one; the URL's password is the Redis nodes'. Ignored by the
    /// other topologies.
    pub fn sentinel_password(mut self, password: &str) -> Self {
        self.sentinel_password = Some(password.to_owned());
        self
    }

    /// The key prefix inside the hash tag (default `tower-stytch:<project_id>`): instances
    /// share revocations when they share Redis and this.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.settings.namespace = Some(namespace.to_owned());
        self
    }

    /// Longest wait at startup for the log to be read before the layer reports itself
    /// [ready](BusHandle::is_ready) anyway (default 5 s).
    pub fn startup_wait(mut self, wait: Duration) -> Self {
        self.settings.startup_wait = wait;
        self
    }

    /// How long a pending revocation's instance may stay silent before another instance takes
    /// it over (default 15 s). Its instance renews it every third of this.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.settings.lease = lease;
        self
    }

    /// Longest wait between two reconnection attempts (default 2 s; the wait doubles from
    /// 50 ms, with jitter).
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.settings.max_backoff = max;
        self
    }

    /// Most messages waiting for Redis while it is unreachable (default 10 000); beyond it
    /// the oldest are dropped (logged and counted), and peers learn those revocations when
    /// their cache entries expire. Also the most messages of the log's window this instance
    /// keeps to write again if Redis loses its data (the oldest go first).
    pub fn max_queued(mut self, max: usize) -> Self {
        self.settings.max_queued = max.max(1);
        self
    }

    /// The bus.
    ///
    /// # Errors
    ///
    /// The URL cannot be used, or a duration is zero.
    pub fn build(self) -> Result<RedisBus, BusError> {
        let url = redact(&self.url);
        let Some(target) = Target::parse(&self.url, self.sentinel_password.as_deref()) else {
            return Err(BusError::InvalidUrl { url });
        };
        let topology = target.topology();
        let Ok(connector) = Connector::new(target) else {
            return Err(BusError::InvalidUrl { url });
        };
        for (name, value) in [
            ("startup_wait", self.settings.startup_wait),
            ("lease", self.settings.lease),
            ("max_backoff", self.settings.max_backoff),
        ] {
            if value.is_zero() {
                return Err(BusError::ZeroDuration { name });
            }
        }
        Ok(RedisBus {
            connector: Arc::new(connector),
            topology,
            url,
            settings: self.settings,
        })
    }
}

/// The running bus of a layer: its state, for readiness probes and status pages.
#[derive(Clone)]
pub struct BusHandle {
    link: Arc<Link>,
}

impl fmt::Debug for BusHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusHandle")
            .field("url", &self.link.url)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl BusHandle {
    /// The connection's state now.
    pub fn state(&self) -> BusState {
        self.link.state()
    }

    /// Whether the log has been read to its end at least once since startup.
    pub fn caught_up(&self) -> bool {
        self.link.is_caught_up()
    }

    /// Ready to serve: caught up, or the [startup wait](RedisBusBuilder::startup_wait) has
    /// passed (Redis down at startup must not keep every instance out of the load balancer).
    pub fn is_ready(&self) -> bool {
        self.caught_up() || self.link.started.elapsed() >= self.link.settings.startup_wait
    }

    /// Waits until [`is_ready`](Self::is_ready).
    pub async fn ready(&self) {
        let left = self
            .link
            .settings
            .startup_wait
            .saturating_sub(self.link.started.elapsed());
        let _ = tokio::time::timeout(left, self.link.wait_caught_up()).await;
    }

    /// Waits until every message queued for Redis is written, or `deadline` has passed
    /// (graceful shutdown, after [`Revoker::flush`](crate::Revoker::flush)). Returns how many
    /// are still queued: peers learn those revocations only when their own cache entries
    /// expire.
    pub async fn flush(&self, deadline: Duration) -> usize {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let queued = self.link.queued();
            if queued == 0 || tokio::time::Instant::now() >= end {
                return queued;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// This instance's id on the bus (random at each start).
    pub fn instance_id(&self) -> &str {
        self.link.me.as_str()
    }

    /// The node (`host:port`) that served the project's keys when last checked: the one
    /// node, the primary the Sentinels named, or the Redis Cluster node serving their slot.
    /// `None` before the first connection.
    pub fn primary(&self) -> Option<String> {
        self.link.switches.primary()
    }

    /// How many times the node serving the keys changed since startup (failovers, the slot
    /// moved); each time, this instance wrote its window again.
    pub fn primary_changes(&self) -> u64 {
        self.link.switches.changes()
    }

    /// When the node serving the keys last changed (`None`: never since startup).
    pub fn last_primary_change(&self) -> Option<SystemTime> {
        self.link.switches.last()
    }

    /// How many messages this instance wrote again because Redis lost them or the primary
    /// changed (the window it knew, each time), since startup.
    pub fn restored(&self) -> u64 {
        self.link.switches.restored_total()
    }
}

/// `url` with its user and password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        // If this broke, a Redis password would be printed in logs, errors or Debug output.
        let url = "redis://user:s3cret@127.0.0.1:6379/0";
        assert_eq!(redact(url), "redis://***@127.0.0.1:6379/0");
        assert_eq!(redact("rediss://:s3cret@h/"), "rediss://***@h/");
        assert_eq!(redact("redis://h:1/"), "redis://h:1/");
        let bus = RedisBus::new(url).unwrap();
        assert!(!format!("{bus:?}").contains("s3cret"));
        let err = RedisBus::new("http://u:s3cret@h/").unwrap_err();
        assert!(!err.to_string().contains("s3cret"));
        assert!(!format!("{err:?}").contains("s3cret"));
        // Nor the Sentinel and Cluster forms', or the Sentinels' own password.
        let builder = RedisBus::builder("redis+sentinel://:s3cret@h1:26379,h2/mymaster")
            .sentinel_password("s3cret-too");
        assert!(!format!("{builder:?}").contains("s3cret"), "{builder:?}");
        let bus = builder.build().unwrap();
        let debug = format!("{bus:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(
            debug.contains("redis+sentinel://***@h1:26379,h2/mymaster"),
            "{debug}"
        );
        let cluster = RedisBus::new("redis+cluster://u:s3cret@h1:7000,h2:7001").unwrap();
        assert!(!format!("{cluster:?}").contains("s3cret"));
        let err = RedisBus::new("redis+sentinel://:s3cret@h1,h2").unwrap_err();
        assert!(!err.to_string().contains("s3cret"));
    }
}
