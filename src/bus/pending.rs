//! Pending revocations that survive their instance. Each one Stytch has not confirmed is an
//! entry of the project's pending Stream, read through one consumer group, in which its
//! instance keeps it claimed. Every third of the lease each instance:
//!
//! 1. hands every entry not yet delivered to the consumer named after the instance that
//!    wrote it (`XREADGROUP` then `XCLAIM` to that consumer);
//! 2. renews its own entries (`XCLAIM` with idle 0), writing again any Redis lost;
//! 3. takes over entries idle longer than the lease (`XAUTOCLAIM`): their instance is gone.
//!    It completes them with the project secret alone, under the rule for pending
//!    revocations (their authorization was verified where they were decided), from its own
//!    outbox; the verdict goes on the log, and the entry is acknowledged and deleted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::conn::Conn;
use redis::streams::{StreamAutoClaimReply, StreamReadReply};

use super::link::{Held, Link, Out};
use super::message::Decoded;
use super::message::{Body, Message, WireTarget};
use super::reader::decode_entry;
use super::util::describe;
use crate::revoke::RevocationId;
use crate::revoke::inbound::Live;

/// Entries handled per call.
const COUNT: usize = 64;

pub(super) async fn run(link: Arc<Link>) {
    let tick = (link.settings.lease / 3).max(Duration::from_millis(100));
    let mut conn: Option<Conn> = None;
    loop {
        // Early when the primary changed: entries it lacks are written again at once, before
        // this instance could die with them.
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = link.pending_work.notified() => {}
        }
        let Some(revoker) = link.revoker() else {
            return;
        };
        let connection = match conn.as_mut() {
            Some(c) => c,
            None => match link.connect(Duration::from_secs(2)).await {
                Ok(c) => conn.insert(c),
                Err(_) => continue,
            },
        };
        if let Err(err) = round(&link, &revoker, connection).await {
            tracing::debug!(error = %describe(&err), "revocation bus: pending round failed");
            conn = None;
        }
    }
}

async fn round(link: &Link, revoker: &Live, conn: &mut Conn) -> redis::RedisResult<()> {
    ensure_group(link, conn).await?;
    intake(link, conn).await?;
    renew(link, conn).await?;
    take_over(link, revoker, conn).await
}

/// Creates the group (again, if Redis lost it), delivering from the Stream's start.
async fn ensure_group(link: &Link, conn: &mut Conn) -> redis::RedisResult<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&link.keys.pending)
        .arg(link.keys.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(err) if err.code() != Some("BUSYGROUP") => Err(err),
        _ => Ok(()),
    }
}

/// Hands every undelivered entry to its writer's consumer.
async fn intake(link: &Link, conn: &mut Conn) -> redis::RedisResult<()> {
    loop {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(link.keys.group)
            .arg(link.me.as_str())
            .arg("COUNT")
            .arg(COUNT)
            .arg("STREAMS")
            .arg(&link.keys.pending)
            .arg(">")
            .query_async(conn)
            .await?;
        let entries: Vec<_> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect();
        let read = entries.len();
        for entry in entries {
            match decode_entry(&entry.map) {
                Decoded::Message(message) if message.key.origin == link.me => {}
                Decoded::Message(message) => {
                    let _: Vec<String> = redis::cmd("XCLAIM")
                        .arg(&link.keys.pending)
                        .arg(link.keys.group)
                        .arg(message.key.origin.as_str())
                        .arg(0)
                        .arg(&entry.id)
                        .arg("JUSTID")
                        .query_async(conn)
                        .await?;
                }
                Decoded::Malformed(_) => delete(link, conn, &entry.id).await?,
                // A newer instance's: left for one that knows it.
                Decoded::Unknown => {}
            }
        }
        if read < COUNT {
            return Ok(());
        }
    }
}

/// Renews this instance's claims, and writes again the entries Redis lost (a restart
/// without persistence).
async fn renew(link: &Link, conn: &mut Conn) -> redis::RedisResult<()> {
    let tracked: Vec<(RevocationId, String)> = {
        let mine = lock(&link.mine);
        mine.iter()
            .filter(|(_, h)| !h.done)
            .filter_map(|(id, h)| Some((*id, h.stream_id.clone()?)))
            .collect()
    };
    if tracked.is_empty() {
        return Ok(());
    }
    let pel: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(&link.keys.pending)
        .arg(link.keys.group)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .arg(link.me.as_str())
        .query_async(conn)
        .await?;
    let claimed: HashSet<&str> = pel.iter().map(|(id, ..)| id.as_str()).collect();
    let mut renew = redis::cmd("XCLAIM");
    renew
        .arg(&link.keys.pending)
        .arg(link.keys.group)
        .arg(link.me.as_str())
        .arg(0);
    let mut any = false;
    for (id, stream_id) in &tracked {
        if claimed.contains(stream_id.as_str()) {
            renew.arg(stream_id);
            any = true;
        } else {
            rewrite_if_lost(link, conn, *id, stream_id).await?;
        }
    }
    if any {
        renew.arg("JUSTID");
        let _: Vec<String> = renew.query_async(conn).await?;
    }
    Ok(())
}

/// An entry of this instance that is not claimed by it: written again if Redis lost it;
/// otherwise it was delivered to another consumer meanwhile, and is theirs now.
async fn rewrite_if_lost(
    link: &Link,
    conn: &mut Conn,
    id: RevocationId,
    stream_id: &str,
) -> redis::RedisResult<()> {
    let exists: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg(&link.keys.pending)
        .arg(stream_id)
        .arg(stream_id)
        .query_async(conn)
        .await?;
    if exists.is_empty() {
        // Lost by Redis (or finished elsewhere a moment ago: written again, it is completed
        // again, harmlessly).
        if let Some(held) = lock(&link.mine).get_mut(&id) {
            held.stream_id = None;
        }
        link.push(Out::PendingAdd(id));
    }
    Ok(())
}

/// Takes over the entries of instances silent for longer than the lease.
async fn take_over(link: &Link, revoker: &Live, conn: &mut Conn) -> redis::RedisResult<()> {
    let lease_ms = link.settings.lease.as_millis() as u64;
    let mut cursor = "0-0".to_owned();
    loop {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&link.keys.pending)
            .arg(link.keys.group)
            .arg(link.me.as_str())
            .arg(lease_ms)
            .arg(&cursor)
            .arg("COUNT")
            .arg(COUNT)
            .query_async(conn)
            .await?;
        for entry in reply.claimed {
            match decode_entry(&entry.map) {
                Decoded::Message(message) => adopt(link, revoker, conn, entry.id, message).await?,
                Decoded::Malformed(_) => delete(link, conn, &entry.id).await?,
                Decoded::Unknown => {}
            }
        }
        cursor = reply.next_stream_id;
        if cursor == "0-0" {
            return Ok(());
        }
    }
}

/// Completes a claimed entry here (see the module's doc).
async fn adopt(
    link: &Link,
    revoker: &Live,
    conn: &mut Conn,
    stream_id: String,
    message: Message,
) -> redis::RedisResult<()> {
    let Body::Applied {
        target,
        until: give_up_at,
        ..
    } = &message.body
    else {
        return delete(link, conn, &stream_id).await;
    };
    let give_up_at = *give_up_at;
    if matches!(target, WireTarget::Key(_)) {
        return delete(link, conn, &stream_id).await;
    }
    let target = target.clone();
    if SystemTime::now() > give_up_at {
        return delete(link, conn, &stream_id).await;
    }
    if let Some(id) = link.local_id(&message.key)
        && let Some(held) = lock(&link.mine).get_mut(&id)
    {
        // One of ours (or already taken over): keep it claimed.
        held.stream_id = Some(stream_id);
        return Ok(());
    }
    if message.key.origin == link.me {
        // One of ours that is finished: only its deletion was lost.
        return delete(link, conn, &stream_id).await;
    }
    let Some(id) = held_here(link, revoker, &message, &target, give_up_at).await else {
        return Ok(());
    };
    let held = Held {
        stream_id: Some(stream_id),
        message,
        done: false,
    };
    lock(&link.mine).insert(id, held);
    if revoker.take_over(id, &target, give_up_at) {
        tracing::info!("revocation bus: took over a pending revocation of an instance gone silent");
    } else {
        // No room here: left to expire its claim again, for another instance.
        lock(&link.mine).remove(&id);
    }
    Ok(())
}

/// The local id of a peer's pending revocation, applied here first if it was not yet.
async fn held_here(
    link: &Link,
    revoker: &Live,
    message: &Message,
    target: &WireTarget,
    give_up_at: SystemTime,
) -> Option<RevocationId> {
    if let Some(id) = link.local_id(&message.key) {
        return Some(id);
    }
    let id = link.map_new(&message.key, revoker)?;
    revoker
        .apply_remote(id, target, false, give_up_at + link.keep, None)
        .await;
    Some(id)
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing behind these locks is left half-updated by a panic elsewhere.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn delete(link: &Link, conn: &mut Conn, stream_id: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("XACK")
        .arg(&link.keys.pending)
        .arg(link.keys.group)
        .arg(stream_id)
        .ignore()
        .cmd("XDEL")
        .arg(&link.keys.pending)
        .arg(stream_id)
        .ignore()
        .query_async(conn)
        .await
}
