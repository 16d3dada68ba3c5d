//! A Redis Cluster on loopback for the failover tests: three primaries with one replica each
//! (six `redis-server --cluster-enabled yes`), created with `redis-cli --cluster create`,
//! password-protected, node timeout 1 s. The harness moves a slot to another primary
//! (`CLUSTER SETSLOT` … `MIGRATE`, as `redis-cli --cluster reshard` does) and promotes a
//! replica (`CLUSTER FAILOVER FORCE`). Everything is killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::process::Command;
use std::time::Duration;

use crate::redis_proc::{RedisProc, TempDir, free_port, wait_until};

pub struct Cluster {
    pub password: String,
    pub nodes: Vec<RedisProc>,
    _dir: TempDir,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    /// A replica's primary id.
    pub replica_of: Option<String>,
    pub failed: bool,
    /// The slots it serves (a primary).
    pub slots: Vec<std::ops::RangeInclusive<u16>>,
}

impl Cluster {
    /// Starts six nodes, creates the cluster (`redis-cli --cluster create … --cluster-replicas
    /// 1`) and waits until every node sees it whole and every replica is in sync.
    pub fn start(password: &str) -> Self {
        let dir = TempDir::new("cluster");
        let nodes: Vec<RedisProc> = (0..6).map(|_| node(&dir, password)).collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .env("REDISCLI_AUTH", password)
            .output()
            .unwrap_or_else(|err| {
                panic!("cannot run redis-cli ({err}): apt-get install -y redis-tools (redis-server depends on it)")
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = Self {
            password: password.to_owned(),
            nodes,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(20), || cluster.settled()),
            "the cluster never settled"
        );
        cluster
    }

    /// Every live node says `cluster_state:ok`, and every live replica is in sync.
    pub fn settled(&self) -> bool {
        self.live().all(|n| {
            n.cluster_info().get("cluster_state").map(String::as_str) == Some("ok") && {
                let replication = n.info("replication");
                replication.get("role").map(String::as_str) == Some("master")
                    || replication.get("master_link_status").map(String::as_str) == Some("up")
            }
        })
    }

    fn live(&self) -> impl Iterator<Item = &RedisProc> {
        self.nodes.iter().filter(|n| n.pid() != 0)
    }

    /// `redis+cluster://:<password>@<three seed nodes>`.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes[..3]
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://:{}@{}", self.password, seeds.join(","))
    }

    /// The node on `port`.
    pub fn node(&self, port: u16) -> &RedisProc {
        self.nodes.iter().find(|n| n.port == port).unwrap()
    }

    pub fn node_mut(&mut self, port: u16) -> &mut RedisProc {
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }

    /// `CLUSTER NODES` as seen by `from` (any live node when `None`).
    pub fn topology(&self, from: Option<u16>) -> Vec<NodeLine> {
        let node = from.map_or_else(|| self.live().next().unwrap(), |p| self.node(p));
        let text: String = node.query(redis::cmd("CLUSTER").arg("NODES")).unwrap();
        text.lines().filter_map(parse_line).collect()
    }

    /// The hash slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        let node = self.live().next().unwrap();
        node.query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .unwrap()
    }

    /// The port of the primary serving `slot`, as `from` sees it.
    pub fn owner(&self, slot: u16, from: Option<u16>) -> u16 {
        self.topology(from)
            .into_iter()
            .find(|l| l.primary && l.slots.iter().any(|r| r.contains(&slot)))
            .map(|l| l.port)
            .unwrap()
    }

    /// Moves `slot` from the primary on `from` to the primary on `to`, keys included, as
    /// `redis-cli --cluster reshard` does: IMPORTING / MIGRATING, `MIGRATE` the keys, then the
    /// new owner announced to every primary.
    pub fn move_slot(&self, slot: u16, from: u16, to: u16) {
        let id = |port: u16| -> String {
            self.node(port)
                .query(redis::cmd("CLUSTER").arg("MYID"))
                .unwrap()
        };
        let (from_id, to_id) = (id(from), id(to));
        let setslot = |port: u16, state: &str, node: &str| {
            let () = self
                .node(port)
                .query(
                    redis::cmd("CLUSTER")
                        .arg("SETSLOT")
                        .arg(slot)
                        .arg(state)
                        .arg(node),
                )
                .unwrap();
        };
        setslot(to, "IMPORTING", &from_id);
        setslot(from, "MIGRATING", &to_id);
        loop {
            let keys: Vec<String> = self
                .node(from)
                .query(
                    redis::cmd("CLUSTER")
                        .arg("GETKEYSINSLOT")
                        .arg(slot)
                        .arg(100),
                )
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("AUTH")
                .arg(&self.password)
                .arg("KEYS")
                .arg(&keys);
            let () = self.node(from).query(&migrate).unwrap();
        }
        setslot(to, "NODE", &to_id);
        setslot(from, "NODE", &to_id);
        for line in self.topology(Some(to)) {
            if line.primary && !line.failed && line.port != to && line.port != from {
                setslot(line.port, "NODE", &to_id);
            }
        }
    }

    /// The port of a replica of the primary on `port`.
    pub fn replica_of(&self, port: u16) -> u16 {
        let topology = self.topology(Some(port));
        let primary = topology.iter().find(|l| l.port == port).unwrap();
        topology
            .iter()
            .find(|l| l.replica_of.as_deref() == Some(primary.id.as_str()))
            .map(|l| l.port)
            .unwrap()
    }
}

fn parse_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split(' ').collect();
    let addr = fields.get(1)?.split(['@', ',']).next()?;
    let port = addr.rsplit_once(':')?.1.parse().ok()?;
    let flags = fields.get(2)?;
    Some(NodeLine {
        id: fields[0].to_owned(),
        port,
        primary: flags.split(',').any(|f| f == "master"),
        replica_of: Some(fields.get(3)?.to_string()).filter(|m| m != "-"),
        failed: flags.split(',').any(|f| f == "fail" || f == "fail?"),
        // `0-5460`, `5461`; `[5461->-id]` (migrating) is not a slot served.
        slots: fields
            .iter()
            .skip(8)
            .filter_map(|r| match r.split_once('-') {
                Some((a, b)) => Some(a.parse().ok()?..=b.parse().ok()?),
                None => r.parse().ok().map(|s| s..=s),
            })
            .collect(),
    })
}

/// One node; its cluster bus on a port of its own (`cluster-port`: the default, port + 10000,
/// may be taken or out of range).
fn node(dir: &TempDir, password: &str) -> RedisProc {
    let port = free_port();
    let bus = free_port().to_string();
    let conf = dir.0.join(format!("nodes-{port}.conf"));
    let conf = conf.to_string_lossy().into_owned();
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &conf,
        "--cluster-port",
        &bus,
        "--cluster-node-timeout",
        "1000",
        "--cluster-require-full-coverage",
        "no",
        "--cluster-announce-ip",
        "127.0.0.1",
        "--requirepass",
        password,
        "--masterauth",
        password,
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    RedisProc::spawn(&args, port, &dir.0, Some(password))
}
