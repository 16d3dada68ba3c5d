//! What happens to the system during the soak: the Redis primary killed (and the Sentinels
//! promoting its replica, `failover`; or, with `SOAK_REDIS=node`, the one Redis restarted
//! empty), the second gateway sent SIGTERM, and the gateways' memory sampled.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::failover::Failover;
use super::load::Run;
use super::state::{Session, Tally};

/// What happens to Redis at 40 % of the requests.
#[derive(Debug)]
pub(crate) enum RedisEvent {
    /// The one Redis killed and restarted empty.
    Restart(Redis),
    /// The primary behind the Sentinels killed; its replica promoted.
    Failover(Failover),
}

/// The redis-server the gateways share, and how to start it again.
#[derive(Debug)]
pub(crate) struct Redis {
    pub(crate) port: u16,
    /// A shell command starting it (daemonized) on the same port.
    pub(crate) start: String,
    /// Its pid file.
    pub(crate) pidfile: std::path::PathBuf,
    /// How long it stays down.
    pub(crate) outage: Duration,
}

fn connectable(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

pub(crate) fn signal(signal: &str, pid: u32) -> Result<(), String> {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .map_err(|e| format!("kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill {signal} {pid} failed"))
    }
}

/// Waits (polling) until `f` holds, at most `limit`; whether it did.
pub(crate) async fn until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while !f() {
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Whether process `pid` is gone (or a zombie waiting for its parent).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(true)
}

impl Redis {
    /// SIGKILL, down for `outage`, started again on the same port (empty: no persistence).
    /// Returns when it accepts connections again.
    async fn restart(&self, run: &Run) -> Result<(), String> {
        let pid: u32 = std::fs::read_to_string(&self.pidfile)
            .map_err(|e| format!("redis pid file: {e}"))?
            .trim()
            .parse()
            .map_err(|_| "redis pid file: not a pid".to_owned())?;
        signal("-KILL", pid)?;
        run.outage.started(Instant::now());
        let port = self.port;
        if !until(Duration::from_secs(10), || !connectable(port)).await {
            return Err("redis-server still listening after SIGKILL".into());
        }
        let _ = std::fs::remove_file(&self.pidfile);
        tokio::time::sleep(self.outage).await;
        let status = std::process::Command::new("sh")
            .args(["-c", &self.start])
            .status()
            .map_err(|e| format!("restarting redis-server: {e}"))?;
        if !status.success() || !until(Duration::from_secs(10), || connectable(port)).await {
            return Err("redis-server did not come back".into());
        }
        run.outage.ended(Instant::now());
        Ok(())
    }
}

/// The soak's events, at fixed shares of the requests: warm-up ends at 10 %, the Redis
/// primary fails over (or Redis restarts) at 40 %, gateway 1 gets SIGTERM at 60 %. Returns a
/// line describing them.
pub(crate) async fn events(
    run: Arc<Run>,
    redis: RedisEvent,
    terminate: u32,
    sampler: Sampler,
) -> Result<String, String> {
    let answered = |share: u64| {
        let run = run.clone();
        move || Tally::get(&run.tally.requests) >= run.total * share / 100
    };
    let forever = Duration::from_secs(86_400);
    until(forever, answered(10)).await;
    sampler.mark_warm();
    until(forever, answered(40)).await;
    let at_kill = Tally::get(&run.tally.requests);
    let killed = Instant::now();
    // The outage: until Redis (or the promoted replica) accepts writes again.
    let (outage, failover) = match &redis {
        RedisEvent::Restart(redis) => {
            redis.restart(&run).await?;
            (killed.elapsed().as_millis(), String::new())
        }
        RedisEvent::Failover(failover) => {
            let f = failover.run(&run).await?;
            let figures = format!(
                " gateway0_switched_ms={} gateway0_writing_ms={}",
                f.gateway0_switched_ms, f.gateway0_writing_ms
            );
            (f.promoted_ms, figures)
        }
    };
    until(forever, answered(60)).await;
    let at_term = Tally::get(&run.tally.requests);
    sampler.mark_terminated(1);
    // Before the signal: from now on a connection cut by gateway 1 is expected.
    run.terminated.store(true, Ordering::Relaxed);
    signal("-TERM", terminate)?;
    let termed = Instant::now();
    let exit = if until(Duration::from_secs(30), || exited(terminate)).await {
        format!("{}", termed.elapsed().as_millis())
    } else {
        "still running after 30000".to_owned()
    };
    Ok(format!(
        "soak: events warm_up_end_at_request={} redis_killed_at_request={at_kill} \
         redis_outage_ms={outage}{failover} sigterm_gateway1_at_request={at_term} \
         gateway1_exited_after_ms={exit}",
        run.total / 10,
    ))
}

/// Every credential of the run that must not appear in a log: session tokens and the
/// signature segment of every JWT, one a line.
pub(crate) fn write_secrets(
    path: &std::path::Path,
    admin: &Session,
    sessions: &[Session],
) -> Result<(), String> {
    let mut out = String::new();
    for s in std::iter::once(admin).chain(sessions) {
        out.push_str(&s.token);
        out.push('\n');
        out.push_str(s.jwt.rsplit('.').next().unwrap_or(&s.jwt));
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| format!("writing the secrets file: {e}"))
}

/// VmRSS of the gateways, sampled every 500 ms.
#[derive(Debug, Clone)]
pub(crate) struct Sampler(Arc<SamplerInner>);

#[derive(Debug)]
struct SamplerInner {
    pids: Vec<u32>,
    stop: AtomicBool,
    figures: Mutex<Figures>,
}

/// What the samples gave, in KiB.
#[derive(Debug, Default)]
struct Figures {
    /// Largest sum over the instances at one sample.
    peak_sum: u64,
    /// Each instance's largest.
    peak: [u64; 2],
    /// Each instance's at the end of the warm-up.
    warm: Option<[u64; 2]>,
    /// Each instance's last sample while it served.
    last: [u64; 2],
    /// Instances no longer serving (sent SIGTERM).
    done: [bool; 2],
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Sampler {
    pub(crate) fn new(pids: Vec<u32>) -> Self {
        let sampler = Self(Arc::new(SamplerInner {
            pids,
            stop: AtomicBool::new(false),
            figures: Mutex::new(Figures::default()),
        }));
        let s = sampler.clone();
        tokio::spawn(async move {
            while !s.0.stop.load(Ordering::Relaxed) {
                s.sample();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        sampler
    }

    fn figures_mut(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.0
            .figures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sample(&self) {
        let now: Vec<u64> = self
            .0
            .pids
            .iter()
            .map(|p| rss_kib(*p).unwrap_or(0))
            .collect();
        let mut f = self.figures_mut();
        let mut sum = 0;
        for (i, kib) in now.iter().enumerate().take(2) {
            sum += kib;
            f.peak[i] = f.peak[i].max(*kib);
            if !f.done[i] {
                f.last[i] = *kib;
            }
        }
        f.peak_sum = f.peak_sum.max(sum);
    }

    pub(crate) fn mark_warm(&self) {
        self.sample();
        let mut f = self.figures_mut();
        f.warm = Some(f.last);
    }

    pub(crate) fn mark_terminated(&self, instance: usize) {
        self.sample();
        self.figures_mut().done[instance] = true;
    }

    pub(crate) fn stop(&self) {
        self.sample();
        self.0.stop.store(true, Ordering::Relaxed);
    }

    /// `(peak, growth)` in MiB: the largest sum of both instances' RSS at one sample, and the
    /// larger of the instances' growth from the end of the warm-up to their last sample while
    /// serving (negative growth counts as 0).
    pub(crate) fn figures(&self) -> (u64, u64) {
        let f = self.figures_mut();
        let warm = f.warm.unwrap_or(f.last);
        let growth = (0..2)
            .map(|i| f.last[i].saturating_sub(warm[i]))
            .max()
            .unwrap_or(0);
        (f.peak_sum.div_ceil(1024), growth.div_ceil(1024))
    }

    /// A line with each instance's figures.
    pub(crate) fn detail(&self) -> String {
        let f = self.figures_mut();
        let warm = f.warm.unwrap_or_default();
        let mb = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
        format!(
            "soak: detail rss_mb gateway0 warm={} last={} peak={} gateway1 warm={} last_before_sigterm={} peak={} peak_sum={}",
            mb(warm[0]),
            mb(f.last[0]),
            mb(f.peak[0]),
            mb(warm[1]),
            mb(f.last[1]),
            mb(f.peak[1]),
            mb(f.peak_sum)
        )
    }
}
