//! The delivery task: one per emulator, with its own HTTP client; each delivery runs its
//! attempts in a task of its own (no order between deliveries, as at Svix).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Job, Webhooks, unix_now};

/// Runs deliveries until the task is aborted (when the emulator stops).
pub(crate) async fn run(webhooks: Arc<Webhooks>, mut queue: mpsc::UnboundedReceiver<Job>) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("stytch-emulator/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "emulator: cannot build the webhook HTTP client");
            return;
        }
    };
    let mut deliveries = JoinSet::new();
    loop {
        tokio::select! {
            job = queue.recv() => match job {
                Some(job) => {
                    deliveries.spawn(deliver(client.clone(), webhooks.clone(), job));
                }
                None => break,
            },
            Some(_) = deliveries.join_next(), if !deliveries.is_empty() => {}
        }
    }
}

/// Attempts one delivery: at once, then after each retry delay, until a 2xx answer.
async fn deliver(client: reqwest::Client, webhooks: Arc<Webhooks>, job: Job) {
    let schedule = std::iter::once(Duration::ZERO).chain(webhooks.policy.delays.iter().copied());
    for delay in schedule {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let secret = job
            .signing
            .secret
            .clone()
            .unwrap_or_else(|| webhooks.secret());
        let timestamp = job.signing.timestamp.unwrap_or_else(unix_now);
        let signature = secret.sign(&job.msg.id, timestamp, &job.msg.body);
        let outcome = client
            .post(&job.endpoint)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("svix-id", &job.msg.id)
            .header("svix-timestamp", timestamp.to_string())
            .header("svix-signature", signature)
            .timeout(webhooks.policy.timeout)
            .body(job.msg.body.clone())
            .send()
            .await;
        let (status, error) = match outcome {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (None, Some(failure_kind(&error).to_owned())),
        };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        tracing::debug!(
            msg_id = %job.msg.id,
            event_type = %job.msg.event_type,
            status,
            "emulator: webhook attempt"
        );
        webhooks.attempted(job.record, status, error);
        if delivered {
            return;
        }
    }
    webhooks.gave_up(job.record);
}

/// Why an attempt got no answer, without the URL (it may carry credentials).
fn failure_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_request() {
        "request"
    } else {
        "other"
    }
}
