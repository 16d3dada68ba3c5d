//! Reads the log on a connection of its own: at startup from the window's start (the
//! catch-up), then as it grows (`XREAD BLOCK`), applying what peers published. After a
//! reconnect it goes on from the last id read (from the window's start if that was trimmed).
//! Once the log is read to its end, the pending revocations too are applied (some may be
//! older than the log's window), and the bus is caught up.
//!
//! On every connection it first notes which node serves the keys and checks whether Redis
//! lost the log ([`settle`]): the primary changed (a failover, which may have lost what the
//! old primary had not replicated yet), the project's epoch key changed (Redis came back
//! empty), or the log's newest entry is older than the last one read here (Redis came back
//! from an older snapshot). Then the writer writes what this instance knows of the window
//! again, the pending task renews (and writes again) its entries at once, and the reader
//! reads the last [`REREAD`] again. Where the primary can change without the connection
//! failing (Redis Cluster follows it by itself; a Sentinel may demote a live primary), it
//! checks again every [`PRIMARY_CHECK`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use redis::Value;
use redis::streams::{StreamRangeReply, StreamReadReply};

use super::conn::Conn;
use super::link::{BusState, Link};
use super::message::{Body, Decoded, InstanceId, Message};
use super::util::{Backoff, describe, id_before, id_ms, min_id};
use crate::metrics;

/// Entries read per call.
const COUNT: usize = 256;
/// How long one `XREAD` waits for new entries (then the reader checks the layer is alive).
const BLOCK: Duration = Duration::from_secs(1);
/// How often the node serving the keys is checked while reading (see the module's doc).
const PRIMARY_CHECK: Duration = Duration::from_secs(1);
/// After a switch or a loss, the log is read again from this long before the last entry
/// read: entries a new primary wrote with ids below it (its clock behind the old one's) are
/// not missed. Reading a message twice is harmless.
const REREAD: Duration = Duration::from_secs(60);

/// What the reader keeps across connections.
#[derive(Debug, Default)]
struct Progress {
    /// The newest entry id read.
    last: Option<String>,
    /// The epoch key's value when last read.
    epoch: Option<String>,
}

impl Progress {
    /// Notes entry `id` read.
    fn read(&mut self, id: &str) {
        if self.last.as_deref().is_none_or(|last| id_before(last, id)) {
            self.last = Some(id.to_owned());
        }
    }
}

pub(super) async fn run(link: Arc<Link>) {
    let mut progress = Progress::default();
    let mut backoff = Backoff::new(link.settings.max_backoff);
    let mut connected_before = false;
    while link.is_live() {
        let mut conn = match link.connect(BLOCK + Duration::from_secs(3)).await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::debug!(error = %describe(&err), "revocation bus: cannot connect to read");
                link.set_state(BusState::Down);
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        };
        if connected_before {
            metrics::bus_reconnect();
        }
        connected_before = true;
        link.set_state(BusState::CatchingUp);
        let read = match settle(&link, &mut conn, &mut progress).await {
            Ok(reread) => follow(&link, &mut conn, &mut progress, reread, &mut backoff).await,
            Err(err) => Err(err),
        };
        match read {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %describe(&err), "revocation bus: connection lost; revocations still apply here");
                link.set_state(BusState::Down);
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
}

/// Notes the node serving the keys ([`Switches::observe`](super::switch::Switches::observe))
/// and checks for a loss ([`check_lost`]). After a switch or a loss: a restore for the writer
/// ([`Link::request_restore`]), the pending task woken, and `true` (read the log again from
/// [`REREAD`] before the last entry read).
async fn settle(link: &Link, conn: &mut Conn, progress: &mut Progress) -> redis::RedisResult<bool> {
    let node = conn.primary(&link.keys.log).await?;
    let switched = link.switches.observe(&node);
    let lost = check_lost(link, conn, progress).await?;
    if switched || lost {
        link.request_restore();
        link.pending_work.notify_one();
    }
    Ok(switched || lost)
}

/// Whether Redis lost the log since this instance last read it. Two signs, read in one
/// round trip:
///
/// - the project's epoch key, set if missing (`SET NX` a random value), holds another value
///   than the last one read here: Redis lost its data (restarted without persistence,
///   flushed, failed over to an empty replica);
/// - the log's newest entry is older than the last one read here (or the log is gone): Redis
///   came back from a snapshot older than what this instance read, the epoch key included,
///   or a replica promoted without the last entries.
///
/// Either way the log lacks revocations an instance starting now would need.
async fn check_lost(
    link: &Link,
    conn: &mut Conn,
    progress: &mut Progress,
) -> redis::RedisResult<bool> {
    let candidate = InstanceId::random();
    let (current, newest): (Option<String>, StreamRangeReply) = redis::pipe()
        .cmd("SET")
        .arg(&link.keys.epoch)
        .arg(candidate.as_str())
        .arg("NX")
        .ignore()
        .cmd("GET")
        .arg(&link.keys.epoch)
        .cmd("XREVRANGE")
        .arg(&link.keys.log)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    let emptied = progress.epoch.is_some() && progress.epoch != current;
    let went_back = match (progress.last.as_deref(), newest.ids.first()) {
        (Some(last), Some(entry)) => id_before(&entry.id, last),
        // Never empty once written: trimming keeps the entry just added.
        (Some(_), None) => true,
        (None, _) => false,
    };
    if emptied || went_back {
        tracing::warn!(
            emptied,
            went_back,
            "revocation bus: Redis lost revocations; those of the window known here are written again"
        );
    }
    progress.epoch = current;
    Ok(emptied || went_back)
}

/// Where reading starts: after `last` (or [`REREAD`] before it), never before the window.
fn start(last: Option<&str>, reread: bool, keep: Duration) -> String {
    let threshold = min_id(SystemTime::now(), keep);
    let from = match last {
        Some(id) if reread => {
            let ms = id_ms(id).unwrap_or(0);
            let back = u64::try_from(REREAD.as_millis()).unwrap_or(u64::MAX);
            format!("{}-0", ms.saturating_sub(back))
        }
        Some(id) => id.to_owned(),
        None => return threshold,
    };
    if id_before(&from, &threshold) {
        threshold
    } else {
        from
    }
}

/// Reads until the connection fails (`Err`) or the layer is gone (`Ok`).
async fn follow(
    link: &Link,
    conn: &mut Conn,
    progress: &mut Progress,
    reread: bool,
    backoff: &mut Backoff,
) -> redis::RedisResult<()> {
    let mut cursor = start(progress.last.as_deref(), reread, link.keep);
    let mut live = false;
    let mut checked = Instant::now();
    while link.is_live() {
        if live && link.connector.can_switch_silently() && checked.elapsed() >= PRIMARY_CHECK {
            checked = Instant::now();
            if settle(link, conn, progress).await? {
                cursor = start(progress.last.as_deref(), true, link.keep);
            }
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(COUNT);
        if live {
            cmd.arg("BLOCK").arg(BLOCK.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&link.keys.log).arg(&cursor);
        let reply: Option<StreamReadReply> = cmd.query_async(conn).await?;
        let entries: Vec<_> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect();
        let read = entries.len();
        for entry in entries {
            let written = if live { id_ms(&entry.id) } else { None };
            if let Some(message) = decode(&entry.map) {
                link.receive(message, written).await;
            }
            progress.read(&entry.id);
            cursor = entry.id;
        }
        if !live && read < COUNT {
            catch_up_cut_offs(link, conn).await?;
            catch_up_pending(link, conn).await?;
            live = true;
            backoff.reset();
            link.set_state(BusState::Live);
            link.set_caught_up();
        }
    }
    Ok(())
}

/// Applies every M2M client cut-off in Redis's cut-offs Stream (older than the log's window,
/// most of them: a cut-off lasts as long as an access token lives).
async fn catch_up_cut_offs(link: &Link, conn: &mut Conn) -> redis::RedisResult<()> {
    let start = min_id(SystemTime::now(), link.keep_cut_offs);
    read_whole(link, conn, &link.keys.cut_offs, start, |_| {}).await
}

/// Applies every pending revocation in Redis (held here until its retrying ends plus the
/// window; peers' own log messages, read first, give the same).
async fn catch_up_pending(link: &Link, conn: &mut Conn) -> redis::RedisResult<()> {
    read_whole(link, conn, &link.keys.pending, "-".to_owned(), |message| {
        if let Body::Applied { until, .. } = &mut message.body {
            *until += link.keep;
        }
    })
    .await
}

/// Reads Stream `key` from `start` to its end, [`COUNT`] entries per call, and applies each
/// message (after `adjust`).
async fn read_whole(
    link: &Link,
    conn: &mut Conn,
    key: &str,
    mut start: String,
    adjust: impl Fn(&mut Message),
) -> redis::RedisResult<()> {
    loop {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(COUNT)
            .query_async(conn)
            .await?;
        let read = reply.ids.len();
        for entry in reply.ids {
            if let Some(mut message) = decode(&entry.map) {
                adjust(&mut message);
                link.receive(message, None).await;
            }
            start = format!("({}", entry.id);
        }
        if read < COUNT {
            return Ok(());
        }
    }
}

/// An entry's message; `None` (counted) when it is not one this version applies.
pub(super) fn decode(map: &HashMap<String, Value>) -> Option<Message> {
    match decode_entry(map) {
        Decoded::Message(message) => Some(message),
        Decoded::Unknown | Decoded::Malformed(_) => None,
    }
}

/// An entry's message, or why not (counted, and logged when malformed).
pub(super) fn decode_entry(map: &HashMap<String, Value>) -> Decoded {
    let mut fields = Vec::with_capacity(map.len());
    for (name, value) in map {
        match value {
            Value::BulkString(bytes) => fields.push((name.as_str(), bytes.as_slice())),
            Value::SimpleString(text) => fields.push((name.as_str(), text.as_bytes())),
            _ => {
                metrics::bus_malformed();
                return Decoded::Malformed("not_a_string");
            }
        }
    }
    let decoded = Message::decode(fields);
    match &decoded {
        Decoded::Message(_) => {}
        Decoded::Unknown => metrics::bus_received("unknown"),
        Decoded::Malformed(reason) => {
            tracing::warn!(reason, "revocation bus: malformed message dropped");
            metrics::bus_malformed();
        }
    }
    decoded
}
