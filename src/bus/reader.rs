//! Reads the log on a connection of its own: at startup from the window's start (the
//! catch-up), then as it grows (`XREAD BLOCK`), applying what peers published. After a
//! reconnect it goes on from the last id read (from the window's start if that was trimmed).
//! Once the log is read to its end, the pending revocations too are applied (some may be
//! older than the log's window), and the bus is caught up.
//!
//! On every connection it first checks whether Redis lost the log ([`check_lost`]): the
//! project's epoch key changed (Redis came back empty), or the log's newest entry is older
//! than the last one read here (Redis came back from an older snapshot). Then the writer
//! writes what this instance knows of the window again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redis::Value;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadReply};

use super::link::{BusState, Link};
use super::message::{Body, Decoded, InstanceId, Message};
use super::util::{Backoff, describe, id_before, id_ms, min_id};
use crate::metrics;

/// Entries read per call.
const COUNT: usize = 256;
/// How long one `XREAD` waits for new entries (then the reader checks the layer is alive).
const BLOCK: Duration = Duration::from_secs(1);

pub(super) async fn run(link: Arc<Link>) {
    let mut last: Option<String> = None;
    let mut backoff = Backoff::new(link.settings.max_backoff);
    let mut connected_before = false;
    let mut epoch: Option<String> = None;
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
        let read = match check_lost(&link, &mut conn, &mut epoch, last.as_deref()).await {
            Ok(()) => follow(&link, &mut conn, &mut last, &mut backoff).await,
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

/// Whether Redis lost the log since this instance last read it, and if so a restore for
/// the writer ([`Link::request_restore`]). Two signs, read in one round trip:
///
/// - the project's epoch key, set if missing (`SET NX` a random value), holds another value
///   than `seen` (the last one read here): Redis lost its data (restarted without
///   persistence, flushed, failed over to an empty replica);
/// - the log's newest entry is older than `last_read` (or the log is gone): Redis came back
///   from a snapshot older than what this instance read, the epoch key included.
///
/// Either way the log lacks revocations an instance starting now would need.
async fn check_lost(
    link: &Link,
    conn: &mut MultiplexedConnection,
    seen: &mut Option<String>,
    last_read: Option<&str>,
) -> redis::RedisResult<()> {
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
    let emptied = seen.is_some() && *seen != current;
    let went_back = match (last_read, newest.ids.first()) {
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
        link.request_restore();
    }
    *seen = current;
    Ok(())
}

/// Reads until the connection fails (`Err`) or the layer is gone (`Ok`).
async fn follow(
    link: &Link,
    conn: &mut MultiplexedConnection,
    last: &mut Option<String>,
    backoff: &mut Backoff,
) -> redis::RedisResult<()> {
    let threshold = min_id(SystemTime::now(), link.keep);
    let mut cursor = match last.as_deref() {
        Some(id) if !id_before(id, &threshold) => id.to_owned(),
        _ => threshold,
    };
    let mut live = false;
    while link.is_live() {
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
            cursor = entry.id;
            *last = Some(cursor.clone());
        }
        if !live && read < COUNT {
            catch_up_pending(link, conn).await?;
            live = true;
            backoff.reset();
            link.set_state(BusState::Live);
            link.set_caught_up();
        }
    }
    Ok(())
}

/// Applies every pending revocation in Redis (held here until its retrying ends plus the
/// window; peers' own log messages, read first, give the same).
async fn catch_up_pending(link: &Link, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
    let mut start = "-".to_owned();
    loop {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&link.keys.pending)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(COUNT)
            .query_async(conn)
            .await?;
        let read = reply.ids.len();
        for entry in reply.ids {
            if let Some(mut message) = decode(&entry.map) {
                if let Body::Applied { until, .. } = &mut message.body {
                    *until += link.keep;
                }
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
