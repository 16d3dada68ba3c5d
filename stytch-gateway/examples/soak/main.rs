//! The soak's load driver (see `benches/soak.sh`, which starts everything and runs it, and
//! RELIABILITY.md, "Soak", for the rule each answer is checked against).
//!
//! Creates sessions at the emulator, then sends `SOAK_REQUESTS` requests over
//! `SOAK_CONNECTIONS` keep-alive connections spread over two gateways: `GET /whoami` with a
//! session token or JWT, and about 1 % logouts and admin revocations. Meanwhile 1 % of
//! Stytch's authenticate and revoke calls fail (the emulator's fault rate), the Redis primary
//! is killed and the Sentinels promote its replica (`SOAK_REDIS=node`: the one Redis is
//! killed and restarted empty on the same port), and the second gateway is sent SIGTERM (its
//! workers move to the first). At the end it checks at the emulator that every revocation answered 2xx
//! reached Stytch. Prints `shutdown: …` and, last, `soak: …`; exits 1 when anything was
//! unexpected. Never prints a credential.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod failover;
mod load;
mod ops;
mod setup;
mod state;

use load::Run;
use state::{Outage, Rule, Tally};

/// The driver's settings, from the environment the script sets.
#[derive(Debug)]
struct Config {
    emulator: setup::Emulator,
    gateways: Vec<std::net::SocketAddr>,
    pids: Vec<u32>,
    requests: u64,
    connections: u64,
    sessions: usize,
    redis: ops::RedisEvent,
    secrets_out: Option<std::path::PathBuf>,
    rule: Rule,
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| format!("{name} is not a number")),
        Err(_) => Ok(default),
    }
}

fn list<T: std::str::FromStr>(name: &str) -> Result<Vec<T>, String> {
    env(name)?
        .split(',')
        .map(|v| v.trim().parse().map_err(|_| format!("{name}: bad item")))
        .collect()
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            emulator: setup::Emulator {
                base: env("SOAK_EMULATOR")?.trim_end_matches('/').to_owned(),
                project_id: env("STYTCH_PROJECT_ID")?,
                secret: env("STYTCH_SECRET")?,
                http,
            },
            gateways: list("SOAK_GATEWAYS")?,
            pids: list("SOAK_GATEWAY_PIDS")?,
            requests: env_num("SOAK_REQUESTS", 1_000_000)?,
            connections: env_num("SOAK_CONNECTIONS", 1_000)?,
            sessions: env_num("SOAK_SESSIONS", 20_000)?,
            redis: redis_event()?,
            secrets_out: std::env::var_os("SOAK_SECRETS_OUT").map(Into::into),
            rule: Rule {
                propagation: Duration::from_millis(env_num("SOAK_PROPAGATION_MS", 1_000)?),
                reconnect: Duration::from_millis(env_num("SOAK_RECONNECT_MS", 3_000)?),
            },
        })
    }
}

/// The Redis event, from `SOAK_REDIS` (`sentinel`, the default, or `node`).
fn redis_event() -> Result<ops::RedisEvent, String> {
    if std::env::var("SOAK_REDIS").is_ok_and(|m| m == "node") {
        return Ok(ops::RedisEvent::Restart(ops::Redis {
            port: env_num("SOAK_REDIS_PORT", 0)?,
            start: env("SOAK_REDIS_START")?,
            pidfile: env("SOAK_REDIS_PIDFILE")?.into(),
            outage: Duration::from_millis(env_num("SOAK_REDIS_OUTAGE_MS", 2_000)?),
        }));
    }
    Ok(ops::RedisEvent::Failover(failover::Failover {
        primary_port: env_num("SOAK_REDIS_PORT", 0)?,
        primary_pidfile: env("SOAK_REDIS_PIDFILE")?.into(),
        replica_port: env_num("SOAK_REPLICA_PORT", 0)?,
        replica_pidfile: env("SOAK_REPLICA_PIDFILE")?.into(),
        sentinel_port: env_num("SOAK_SENTINEL_PORT", 0)?,
        master: env("SOAK_SENTINEL_MASTER")?,
        lag: Duration::from_millis(env_num("SOAK_REPLICA_LAG_MS", 500)?),
        metrics: env("SOAK_METRICS0")?
            .parse()
            .map_err(|_| "SOAK_METRICS0: not an address".to_owned())?,
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match soak().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(err) => {
            eprintln!("soak: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The whole run; `Ok(false)` when anything was unexpected or lost.
async fn soak() -> Result<bool, String> {
    let config = Config::from_env()?;
    if config.gateways.len() != 2 || config.pids.len() != 2 {
        return Err("SOAK_GATEWAYS and SOAK_GATEWAY_PIDS need two entries each".into());
    }
    let setup_started = Instant::now();
    let (admin, sessions) = config.emulator.population(config.sessions).await?;
    if let Some(path) = &config.secrets_out {
        ops::write_secrets(path, &admin, &sessions)?;
    }
    eprintln!(
        "soak: {} sessions created in {:.1} s",
        sessions.len() + 1,
        setup_started.elapsed().as_secs_f64()
    );
    config.emulator.fault_rate("authenticate", 503, 1.0).await?;
    config.emulator.fault_rate("revoke", 500, 1.0).await?;
    let run = Arc::new(Run {
        gateways: config.gateways.clone(),
        sessions: sessions.into_iter().map(Arc::new).collect(),
        admin,
        total: config.requests,
        issued: Default::default(),
        tally: Tally::default(),
        rule: config.rule,
        outage: Outage::default(),
        terminated: Default::default(),
    });
    let started = Instant::now();
    let workers: Vec<_> = (0..config.connections)
        .map(|id| {
            let home = usize::try_from(id % 2).unwrap_or(0);
            tokio::spawn(run.clone().worker(id, home))
        })
        .collect();
    let sampler = ops::Sampler::new(config.pids.clone());
    let events = tokio::spawn(ops::events(
        run.clone(),
        config.redis,
        config.pids[1],
        sampler.clone(),
    ));
    for w in workers {
        w.await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    let event_log = events.await.map_err(|e| e.to_string())??;
    sampler.stop();
    report(&config.emulator, &run, elapsed, &event_log, &sampler).await
}

/// Settles, checks the revocations at Stytch, prints the detail lines and the two result
/// lines; `Ok(false)` when anything was unexpected or lost.
async fn report(
    emulator: &setup::Emulator,
    run: &Run,
    elapsed: Duration,
    events: &str,
    sampler: &ops::Sampler,
) -> Result<bool, String> {
    let counts = emulator.counts().await?;
    emulator.clear_faults().await?;
    let revoked: Vec<_> = run
        .sessions
        .iter()
        .filter(|s| {
            matches!(
                *s.state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                state::State::Revoked { .. }
            )
        })
        .cloned()
        .collect();
    let lost = emulator
        .still_live(&revoked, Duration::from_secs(60))
        .await?;
    let t = &run.tally;
    let requests = Tally::get(&t.requests);
    println!("{events}");
    println!(
        "soak: detail elapsed_s={:.1} requests_per_s={:.0} ok_200={} refused_401={} unavailable_503={} (jwt {}) \
         accepted_within_bound={} logouts={} admin_revocations={} revocations_uncertain={} \
         cut_by_shutdown={} reconnects={}",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        Tally::get(&t.ok),
        Tally::get(&t.refused),
        Tally::get(&t.unavailable),
        Tally::get(&t.unavailable_jwt),
        Tally::get(&t.accepted_within_bound),
        Tally::get(&t.logouts),
        Tally::get(&t.admin_revocations),
        Tally::get(&t.revocations_uncertain),
        Tally::get(&t.cut_by_shutdown),
        Tally::get(&t.reconnects),
    );
    println!("soak: detail stytch_calls={counts}");
    let accepted_by = t
        .accepted_by
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let accepted_by: Vec<String> = accepted_by
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    println!("soak: detail revoked_accepted_by {}", accepted_by.join(" "));
    println!("{}", sampler.detail());
    println!(
        "shutdown: revocations_answered_2xx={} reached_stytch={} lost={}",
        revoked.len(),
        revoked.len() - lost.len(),
        lost.len()
    );
    let (peak, growth) = sampler.figures();
    let unexpected = Tally::get(&t.unexpected);
    let revoked_accepted = Tally::get(&t.revoked_accepted);
    println!(
        "soak: requests={requests} unexpected={unexpected} revoked_accepted={revoked_accepted} \
         peak_rss_mb={peak} rss_growth_after_warmup_mb={growth}"
    );
    let _ = run.issued.load(Ordering::Relaxed);
    Ok(unexpected == 0 && revoked_accepted == 0 && lost.is_empty())
}
