//! Writes what the [`Link`]'s queue holds to Redis, in order: log messages (`XADD`, trimming
//! the log to the window), pending entries (`XADD`), finished ones (`XACK` + `XDEL`). Redis
//! unreachable: everything stays queued, and the writer reconnects with backoff.
//!
//! Redis may lose what it acknowledged just before it went (a restart without persistence, a
//! failover to a replica that had not received it), before every peer read it. So the log
//! messages written in the [`REWRITE_WINDOW`] before a lost connection are written again
//! after it; a peer ignores a message about a revocation it has applied already. When Redis
//! lost more (the reader saw the epoch key change, or the log go back in time), every message
//! of the window this instance knows is written again, its peers' included, before anything
//! else.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::conn::Conn;

use super::link::{BusState, Link, Out};
use super::message::{Body, Message};
use super::util::{Backoff, describe, min_id};
use crate::metrics;

/// Items written per round.
const BATCH: usize = 64;
/// Log messages written this recently are written again after a lost connection.
const REWRITE_WINDOW: Duration = Duration::from_secs(10);
/// At most this many of them.
const REWRITE_MAX: usize = 4096;
/// Longest idle wait before checking whether the layer is gone.
const IDLE_CHECK: Duration = Duration::from_secs(10);

pub(super) async fn run(link: Arc<Link>) {
    let mut conn: Option<Conn> = None;
    let mut backoff = Backoff::new(link.settings.max_backoff);
    let mut recent: VecDeque<(Instant, Out)> = VecDeque::new();
    loop {
        let batch = link.peek(BATCH);
        if batch.is_empty() && !link.restore_requested() {
            if !link.is_live() {
                return;
            }
            let _ = tokio::time::timeout(IDLE_CHECK, link.out_work.notified()).await;
            continue;
        }
        let connection = match conn.as_mut() {
            Some(c) => c,
            None => match link.connect(Duration::from_secs(2)).await {
                Ok(c) => conn.insert(c),
                Err(err) => {
                    tracing::debug!(error = %describe(&err), "revocation bus: cannot connect to write");
                    link.set_state(BusState::Down);
                    tokio::time::sleep(backoff.next()).await;
                    continue;
                }
            },
        };
        if let Some(history) = link.take_restore() {
            match restore(&link, connection, &history).await {
                Ok(()) => {
                    tracing::info!(
                        messages = history.len(),
                        "revocation bus: the window's revocations written again"
                    );
                    backoff.reset();
                }
                Err(err) => {
                    tracing::warn!(error = %describe(&err), "revocation bus: writing the window again failed; will retry");
                    link.request_restore();
                    conn = None;
                    link.set_state(BusState::Down);
                    tokio::time::sleep(backoff.next()).await;
                }
            }
            continue;
        }
        let mut written = 0;
        let mut failed = false;
        while written < batch.len() {
            // A run of log messages goes in one round trip: one at a time, a busy instance
            // wrote fewer than its revocations made, and its peers heard of them seconds late.
            let logs = batch[written..]
                .iter()
                .take_while(|out| matches!(out, Out::Log(_)))
                .count();
            let result = if logs > 0 {
                write_logs(&link, connection, &batch[written..written + logs]).await
            } else {
                write_pending(&link, connection, &batch[written]).await
            };
            if let Err(err) = result {
                tracing::warn!(error = %describe(&err), "revocation bus: write failed; kept queued");
                failed = true;
                break;
            }
            written += logs.max(1);
        }
        remember(&mut recent, &batch[..written]);
        link.pop(written);
        if failed {
            // Redis may have lost what it acknowledged last: it goes again, first.
            link.requeue_front(recent.drain(..).map(|(_, out)| out).collect());
            conn = None;
            link.set_state(BusState::Down);
            tokio::time::sleep(backoff.next()).await;
        } else {
            backoff.reset();
        }
    }
}

/// Writes `history` to the log again, `BATCH` messages per round trip, in order.
async fn restore(link: &Link, conn: &mut Conn, history: &[Message]) -> redis::RedisResult<()> {
    for chunk in history.chunks(BATCH) {
        let outs: Vec<Out> = chunk.iter().cloned().map(Out::Log).collect();
        write_logs(link, conn, &outs).await?;
        link.switches.restored(chunk.len());
    }
    Ok(())
}

/// One pending-stream item (log messages go through [`write_logs`]).
async fn write_pending(link: &Link, conn: &mut Conn, out: &Out) -> redis::RedisResult<()> {
    match out {
        Out::Log(_) => {
            write_logs(link, conn, std::slice::from_ref(out)).await?;
        }
        Out::PendingAdd(id) => {
            let message = {
                let mine = link.mine.lock().unwrap_or_else(|e| e.into_inner());
                match mine.get(id) {
                    Some(held) if !held.done && held.stream_id.is_none() => held.message.clone(),
                    _ => return Ok(()),
                }
            };
            let stream_id: String = xadd(&link.keys.pending, None, &message)
                .query_async(conn)
                .await?;
            let mut mine = link.mine.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(held) = mine.get_mut(id) {
                held.stream_id = Some(stream_id);
            }
        }
        Out::PendingDone(id) => {
            // Forgotten only once deleted: a failed write is tried again.
            let stream_id = link
                .mine
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .and_then(|h| h.stream_id.clone());
            if let Some(stream_id) = stream_id {
                let _: () = redis::pipe()
                    .cmd("XACK")
                    .arg(&link.keys.pending)
                    .arg(link.keys.group)
                    .arg(&stream_id)
                    .ignore()
                    .cmd("XDEL")
                    .arg(&link.keys.pending)
                    .arg(&stream_id)
                    .ignore()
                    .query_async(conn)
                    .await?;
            }
            link.mine
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        }
    }
    Ok(())
}

/// Keeps the log messages just written for [`REWRITE_WINDOW`] (at most [`REWRITE_MAX`]).
fn remember(recent: &mut VecDeque<(Instant, Out)>, written: &[Out]) {
    let now = Instant::now();
    recent.extend(
        written
            .iter()
            .filter(|out| matches!(out, Out::Log(_)))
            .map(|out| (now, out.clone())),
    );
    while recent.len() > REWRITE_MAX
        || recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > REWRITE_WINDOW)
    {
        recent.pop_front();
    }
}

/// Log messages `outs` in one pipeline (one round trip), an M2M client's cut-off also to the
/// cut-offs' Stream (kept longer than the log). On an error none counts as written: all are
/// written again, and peers ignore a message about a revocation they have applied.
async fn write_logs(link: &Link, conn: &mut Conn, outs: &[Out]) -> redis::RedisResult<()> {
    let now = SystemTime::now();
    let threshold = min_id(now, link.keep);
    let cut_offs_threshold = min_id(now, link.keep_cut_offs);
    let mut pipe = redis::pipe();
    let messages: Vec<&Message> = outs
        .iter()
        .filter_map(|out| match out {
            Out::Log(message) => Some(message),
            _ => None,
        })
        .collect();
    for message in &messages {
        pipe.add_command(xadd(&link.keys.log, Some(&threshold), message))
            .ignore();
        if matches!(message.body, Body::ClientCutOff { .. }) {
            pipe.add_command(xadd(
                &link.keys.cut_offs,
                Some(&cut_offs_threshold),
                message,
            ))
            .ignore();
        }
    }
    let () = pipe.query_async(conn).await?;
    for message in messages {
        metrics::bus_published(message.body.kind());
    }
    Ok(())
}

/// `XADD key [MINID ~ threshold] * fields…`.
pub(super) fn xadd(key: &str, trim_below: Option<&str>, message: &Message) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key);
    if let Some(threshold) = trim_below {
        cmd.arg("MINID").arg("~").arg(threshold);
    }
    cmd.arg("*");
    for (name, value) in message.encode() {
        cmd.arg(name).arg(value);
    }
    cmd
}
