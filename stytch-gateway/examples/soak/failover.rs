//! The soak's Sentinel failover: the Redis primary is SIGKILLed and the Sentinels promote its
//! replica. The replica is first cut off for a while (SIGSTOP, its replication connection
//! closed by the primary), so that the promoted replica lacks what the old primary
//! acknowledged last, as an asynchronous replica can. Measured: the time to the promotion,
//! and to gateway 0's bus switching to the new primary and writing there (its `/metrics`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::load::Run;
use super::ops::{signal, until};

/// The Sentinel set the gateways share.
#[derive(Debug)]
pub(crate) struct Failover {
    pub(crate) primary_port: u16,
    pub(crate) primary_pidfile: PathBuf,
    pub(crate) replica_port: u16,
    pub(crate) replica_pidfile: PathBuf,
    /// A Sentinel's port.
    pub(crate) sentinel_port: u16,
    /// The name the Sentinels monitor.
    pub(crate) master: String,
    /// How long the replica is cut off before the kill.
    pub(crate) lag: Duration,
    /// Gateway 0's `/metrics` address.
    pub(crate) metrics: SocketAddr,
}

/// What a failover took, in milliseconds from the kill.
#[derive(Debug)]
pub(crate) struct Figures {
    pub(crate) promoted_ms: u128,
    pub(crate) gateway0_switched_ms: u128,
    pub(crate) gateway0_writing_ms: u128,
}

fn pid(file: &std::path::Path) -> Result<u32, String> {
    std::fs::read_to_string(file)
        .map_err(|e| format!("pid file {}: {e}", file.display()))?
        .trim()
        .parse()
        .map_err(|_| format!("pid file {}: not a pid", file.display()))
}

/// `redis-cli -p port args…`'s output (its password, if any, from `REDISCLI_AUTH`, set by
/// the script: never on a command line); `sentinel`: without it.
fn cli(port: u16, args: &[&str], sentinel: bool) -> String {
    let mut command = Command::new("redis-cli");
    command.args(["-p", &port.to_string()]).args(args);
    if sentinel {
        command.env_remove("REDISCLI_AUTH");
    }
    command
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The sum of every series of `name` in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Failover {
    async fn metrics(&self, http: &reqwest::Client) -> String {
        let url = format!("http://{}/metrics", self.metrics);
        match http.get(url).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Whether the Sentinels name the replica and it answers as a primary.
    fn promoted(&self) -> bool {
        let named = cli(
            self.sentinel_port,
            &["SENTINEL", "get-master-addr-by-name", &self.master],
            true,
        );
        named.lines().nth(1) == Some(self.replica_port.to_string().as_str())
            && cli(self.replica_port, &["ROLE"], false).lines().next() == Some("master")
    }

    /// Cuts the replica off, kills the primary, waits for the promotion (the outage ends
    /// then) and for gateway 0 to write to the new primary.
    pub(crate) async fn run(&self, run: &Run) -> Result<Figures, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        let replica = pid(&self.replica_pidfile)?;
        signal("-STOP", replica)?;
        let cut = cli(
            self.primary_port,
            &["CLIENT", "KILL", "TYPE", "replica"],
            false,
        );
        if cut.trim() != "1" {
            signal("-CONT", replica)?;
            return Err(format!("CLIENT KILL TYPE replica answered {cut:?}"));
        }
        tokio::time::sleep(self.lag).await;
        let before = metric(
            &self.metrics(&http).await,
            "stytch_bus_primary_changes_total",
        );
        signal("-KILL", pid(&self.primary_pidfile)?)?;
        let killed = Instant::now();
        run.outage.started(killed);
        signal("-CONT", replica)?;
        if !until(Duration::from_secs(30), || self.promoted()).await {
            return Err("the Sentinels never promoted the replica".into());
        }
        let promoted = killed.elapsed();
        run.outage.ended(Instant::now());
        let (switched, writing) = self.gateway0_writing(&http, before).await?;
        Ok(Figures {
            promoted_ms: promoted.as_millis(),
            gateway0_switched_ms: switched.duration_since(killed).as_millis(),
            gateway0_writing_ms: writing.duration_since(killed).as_millis(),
        })
    }

    /// When gateway 0's bus noted a new primary (its primary changes above `before`), and
    /// when it then wrote a message (its published count grew).
    async fn gateway0_writing(
        &self,
        http: &reqwest::Client,
        before: f64,
    ) -> Result<(Instant, Instant), String> {
        let end = Instant::now() + Duration::from_secs(30);
        let mut switched: Option<(Instant, f64)> = None;
        while Instant::now() < end {
            let text = self.metrics(http).await;
            let published = metric(&text, "stytch_bus_published_total");
            match switched {
                None if metric(&text, "stytch_bus_primary_changes_total") > before => {
                    switched = Some((Instant::now(), published));
                }
                Some((at, then)) if published > then => return Ok((at, Instant::now())),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err("gateway 0's bus never wrote to the new primary".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_series_are_summed_by_name() {
        // If this broke, the soak would misread when gateway 0 switched or wrote again.
        let text = "# TYPE stytch_bus_published_total counter\n\
                    stytch_bus_published_total{kind=\"session\"} 3\n\
                    stytch_bus_published_total{kind=\"confirm\"} 4\n\
                    stytch_bus_published_totalx 100\n\
                    stytch_bus_primary_changes_total 1\n";
        assert_eq!(metric(text, "stytch_bus_published_total"), 7.0);
        assert_eq!(metric(text, "stytch_bus_primary_changes_total"), 1.0);
        assert_eq!(metric(text, "stytch_bus_restored_total"), 0.0);
    }
}
