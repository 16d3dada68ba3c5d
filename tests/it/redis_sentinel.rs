//! A Sentinel-managed Redis on loopback for the failover tests: a primary, one replica, and
//! three Sentinels (quorum 2) that declare a silent primary down after 1 s. The data nodes
//! require a password; the Sentinels do not. Everything is killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use crate::redis_proc::{RedisProc, TempDir, free_port, wait_until};

/// The name the Sentinels monitor.
pub const MASTER: &str = "mymaster";

pub struct SentinelSet {
    pub password: String,
    /// `[primary, replica]` as started (the roles swap on a failover).
    pub nodes: Vec<RedisProc>,
    pub sentinels: Vec<RedisProc>,
    _dir: TempDir,
}

impl SentinelSet {
    /// Starts it and waits until every Sentinel knows the replica and the two other
    /// Sentinels (before that, a failover cannot be authorized).
    pub fn start(password: &str) -> Self {
        let dir = TempDir::new("sentinel");
        let auth = ["--requirepass", password, "--masterauth", password];
        let base = ["--save", "", "--appendonly", "no"];
        let primary_port = free_port();
        let primary = RedisProc::spawn(
            &[&base[..], &auth[..]].concat(),
            primary_port,
            &dir.0,
            Some(password),
        );
        let port = primary_port.to_string();
        let replica_args = [&base[..], &auth[..], &["--replicaof", "127.0.0.1", &port]].concat();
        let replica = RedisProc::spawn(&replica_args, free_port(), &dir.0, Some(password));
        assert!(
            wait_until(Duration::from_secs(10), || {
                replica.info("replication").get("master_link_status") == Some(&"up".to_owned())
            }),
            "the replica never synchronized"
        );
        let sentinels = (0..3)
            .map(|i| sentinel(&dir, i, primary_port, password))
            .collect();
        let set = Self {
            password: password.to_owned(),
            nodes: vec![primary, replica],
            sentinels,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(15), || set.sentinels_agree()),
            "the Sentinels never found each other and the replica"
        );
        set
    }

    fn sentinels_agree(&self) -> bool {
        self.sentinels.iter().all(|s| {
            let peers: redis::RedisResult<Vec<redis::Value>> =
                s.query(redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER));
            let replicas: redis::RedisResult<Vec<std::collections::HashMap<String, String>>> =
                s.query(redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER));
            peers.is_ok_and(|p| p.len() == 2)
                && replicas
                    .is_ok_and(|r| r.len() == 1 && r[0].get("flags").is_some_and(|f| f == "slave"))
        })
    }

    /// `redis+sentinel://:<password>@<sentinel>,<sentinel>,<sentinel>/mymaster`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!(
            "redis+sentinel://:{}@{}/{MASTER}",
            self.password,
            hosts.join(",")
        )
    }

    /// The address every Sentinel gives for the primary now; `None` while they disagree.
    pub fn primary_addr(&self) -> Option<String> {
        let named: Vec<Option<String>> = self
            .sentinels
            .iter()
            .map(|s| {
                let addr: (String, u16) = s
                    .query(
                        redis::cmd("SENTINEL")
                            .arg("GET-MASTER-ADDR-BY-NAME")
                            .arg(MASTER),
                    )
                    .ok()?;
                Some(format!("{}:{}", addr.0, addr.1))
            })
            .collect();
        named
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| named.first().cloned().flatten())
            .flatten()
    }
}

/// Sentinel `i`, monitoring the primary on `primary_port` (its configuration file must be
/// writable: Sentinels rewrite it).
fn sentinel(dir: &TempDir, i: usize, primary_port: u16, password: &str) -> RedisProc {
    let port = free_port();
    let conf = dir.0.join(format!("sentinel-{i}.conf"));
    std::fs::write(
        &conf,
        format!(
            "sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
             sentinel auth-pass {MASTER} {password}\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 5000\n\
             sentinel parallel-syncs {MASTER} 1\n"
        ),
    )
    .unwrap();
    let conf = conf.to_string_lossy().into_owned();
    RedisProc::spawn(&[&conf, "--sentinel"], port, &dir.0, None)
}
