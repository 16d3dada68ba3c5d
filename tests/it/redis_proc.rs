//! One `redis-server` process (a data node, a Redis Cluster node or a Sentinel) of the
//! failover tests' topologies (`redis_sentinel`, `redis_cluster`): on a free loopback port,
//! in a temporary directory, without persistence, killed on drop. The harness talks to it
//! with the redis crate's blocking client. `redis-server` missing is a failure, never a skip.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::redis_server::free_port;

/// A temporary directory for one topology, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tower-stytch-{name}-{}-{:x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct RedisProc {
    pub port: u16,
    password: Option<String>,
    child: Option<Child>,
}

impl RedisProc {
    /// `redis-server <args…> --port <port> --bind 127.0.0.1 --dir <dir>` (a Sentinel with
    /// `--sentinel`, its configuration file first in `args`), waiting until it answers
    /// `PING` with `password` (if any).
    pub fn spawn(args: &[&str], port: u16, dir: &Path, password: Option<&str>) -> Self {
        let child = Command::new("redis-server")
            .args(args)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}): the failover tests need it \
                     (apt-get install -y redis-server; .ci/run installs it)"
                )
            });
        let node = Self {
            port,
            password: password.map(str::to_owned),
            child: Some(child),
        };
        let answers = || {
            node.query::<String>(&redis::cmd("PING"))
                .is_ok_and(|r| r == "PONG")
        };
        assert!(
            wait_until(Duration::from_secs(10), answers),
            "redis-server on port {port} never answered PING"
        );
        node
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL: every connection drops, and what it had not replicated is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`), with the shell's `kill` (no procps needed).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("sh")
            .args([
                "-c",
                "kill \"$1\" \"$2\"",
                "sh",
                signal,
                &self.pid().to_string(),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// `redis://[:password@]127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// Runs `cmd` on a new blocking connection (2 s timeouts).
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        cmd.query(&mut conn)
    }

    /// `INFO <section>` as `field → value`.
    pub fn info(&self, section: &str) -> std::collections::HashMap<String, String> {
        fields(
            &self
                .query::<String>(redis::cmd("INFO").arg(section))
                .unwrap_or_default(),
        )
    }

    /// `CLUSTER INFO` as `field → value`.
    pub fn cluster_info(&self) -> std::collections::HashMap<String, String> {
        fields(
            &self
                .query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                .unwrap_or_default(),
        )
    }
}

/// `field:value` lines as `field → value`.
fn fields(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped process must run again to die.
            self.signal("-CONT");
        }
        self.kill();
    }
}

/// Polls `f` every 20 ms until it holds, at most `limit`; whether it did.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
