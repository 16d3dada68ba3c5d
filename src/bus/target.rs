//! [`Target`]: where the bus finds Redis, from its URL. Three topologies:
//!
//! | URL | topology |
//! |---|---|
//! | `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS) | one node |
//! | `redis+sentinel://[user:password@]host[:port],host[:port]…/master[/db]`, `redis+sentinels://…` (TLS) | the primary named `master`, found through those Sentinels (default port 26379) |
//! | `redis+cluster://[user:password@]host[:port],host[:port]…[/]`, `redis+clusters://…` (TLS) | Redis Cluster, from those seed nodes (default port 6379) |
//!
//! The user and password (percent-encoded in the URL) are those of the Redis nodes; Sentinels
//! that require a password of their own get it from
//! [`RedisBusBuilder::sentinel_password`](super::RedisBusBuilder::sentinel_password). The
//! URL's hosts are a comma-separated list, as in the `redis+sentinel` URLs of other clients;
//! IPv6 addresses go in brackets.

use redis::sentinel::SentinelNodeConnectionInfo;
use redis::{ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, TlsMode};

/// What to connect to (no I/O happens until the bus starts).
#[derive(Clone)]
pub(crate) enum Target {
    /// One node.
    Node(redis::Client),
    /// The primary named `master`, asked of the Sentinels.
    Sentinel(SentinelTarget),
    /// Redis Cluster, discovered from seed nodes.
    Cluster(Vec<ConnectionInfo>),
}

/// The Sentinels, the master's name, and how to reach the nodes they name.
#[derive(Clone)]
pub(crate) struct SentinelTarget {
    pub(super) sentinels: Vec<ConnectionInfo>,
    pub(super) master: String,
    pub(super) node: SentinelNodeConnectionInfo,
}

impl Target {
    /// The topology's name, for logs and `Debug`.
    pub(crate) fn topology(&self) -> &'static str {
        match self {
            Self::Node(_) => "node",
            Self::Sentinel(_) => "sentinel",
            Self::Cluster(_) => "cluster",
        }
    }

    /// Parses `url` (see the module's doc); `None` when it cannot be used.
    pub(crate) fn parse(url: &str, sentinel_password: Option<&str>) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let tls = match scheme {
            "redis" | "rediss" => {
                return redis::Client::open(url).ok().map(Self::Node);
            }
            "redis+sentinel" | "redis+cluster" => false,
            "redis+sentinels" | "redis+clusters" => true,
            _ => return None,
        };
        if rest.contains(['?', '#']) {
            return None;
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let node_scheme = if tls { "rediss" } else { "redis" };
        if scheme.starts_with("redis+sentinel") {
            let hosts = host_list(hosts, 26379)?;
            sentinel(node_scheme, userinfo, &hosts, path, sentinel_password).map(Self::Sentinel)
        } else {
            let hosts = host_list(hosts, 6379)?;
            if !matches!(path, "" | "0") {
                // Redis Cluster has database 0 only.
                return None;
            }
            hosts
                .iter()
                .map(|(host, port)| node_info(node_scheme, userinfo, host, *port, 0))
                .collect::<Option<Vec<_>>>()
                .map(Self::Cluster)
        }
    }
}

fn sentinel(
    node_scheme: &str,
    userinfo: Option<&str>,
    hosts: &[(String, u16)],
    path: &str,
    sentinel_password: Option<&str>,
) -> Option<SentinelTarget> {
    let mut segments = path.trim_end_matches('/').split('/');
    let master = segments.next().filter(|m| !m.is_empty())?.to_owned();
    let db = match segments.next() {
        Some(db) => db.parse::<i64>().ok()?,
        None => 0,
    };
    if segments.next().is_some() {
        return None;
    }
    let (host, port) = hosts.first()?;
    let redis = node_info(node_scheme, userinfo, host, *port, db)?
        .redis_settings()
        .clone();
    let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
    if node_scheme == "rediss" {
        node = node.set_tls_mode(TlsMode::Secure);
    }
    let sentinels = hosts
        .iter()
        .map(|(host, port)| {
            let info = format!("{node_scheme}://{}/", bracketed(host, *port))
                .into_connection_info()
                .ok()?;
            Some(match sentinel_password {
                Some(password) => {
                    info.set_redis_settings(RedisConnectionInfo::default().set_password(password))
                }
                None => info,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(SentinelTarget {
        sentinels,
        master,
        node,
    })
}

/// A node's connection info: `scheme://[userinfo@]host:port/db`, parsed by the redis crate
/// (which decodes the percent-encoded user and password).
fn node_info(
    scheme: &str,
    userinfo: Option<&str>,
    host: &str,
    port: u16,
    db: i64,
) -> Option<ConnectionInfo> {
    let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    format!("{scheme}://{userinfo}{}/{db}", bracketed(host, port))
        .into_connection_info()
        .ok()
}

fn bracketed(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `host[:port],host[:port]…` (IPv6 in brackets), each with `default` as its port when
/// none is given; `None` when empty or malformed.
fn host_list(hosts: &str, default: u16) -> Option<Vec<(String, u16)>> {
    hosts
        .split(',')
        .map(|entry| host_port(entry.trim(), default))
        .collect()
}

fn host_port(entry: &str, default: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match entry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    let port = match port {
        Some(port) => port.parse().ok().filter(|p| *p != 0)?,
        None => default,
    };
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel_of(url: &str, password: Option<&str>) -> SentinelTarget {
        match Target::parse(url, password) {
            Some(Target::Sentinel(s)) => s,
            _ => panic!("not a sentinel target: {url}"),
        }
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_the_master_and_the_nodes_credentials() {
        // If this broke, a `redis+sentinel://` URL would send the bus to the wrong hosts, ask
        // for the wrong master, or authenticate to the nodes (or the Sentinels) with the
        // wrong password.
        let s = sentinel_of(
            "redis+sentinel://:p%40ss@10.0.0.1:26380,10.0.0.2,[::1]:5000/mymaster/2",
            Some("sentinel-secret"),
        );
        let addrs: Vec<String> = s.sentinels.iter().map(|c| c.addr().to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:26380", "10.0.0.2:26379", "::1:5000"]);
        assert_eq!(s.master, "mymaster");
        assert_eq!(
            s.sentinels[0].redis_settings().password(),
            Some("sentinel-secret")
        );
        let plain = sentinel_of("redis+sentinel://h/m", None);
        assert_eq!(plain.sentinels[0].redis_settings().password(), None);
        assert_eq!(plain.master, "m");
        // The nodes' password is decoded; it never reaches the Sentinels.
        let debug = format!("{:?}", s.node);
        assert!(debug.contains("db: 2"), "{debug}");
        assert!(
            !debug.contains("p@ss") && !debug.contains("p%40ss"),
            "{debug}"
        );
        assert!(
            !format!("{:?}", s.sentinels).contains("sentinel-secret"),
            "the redis crate's Debug redacts passwords"
        );
        let tls = sentinel_of("redis+sentinels://h1:1,h2:2/m", None);
        assert!(format!("{:?}", tls.node).contains("Secure"));
        assert!(matches!(
            tls.sentinels[0].addr(),
            redis::ConnectionAddr::TcpTls { .. }
        ));
    }

    #[test]
    fn cluster_urls_list_seed_nodes_with_the_nodes_credentials() {
        // If this broke, a `redis+cluster://` URL would seed the cluster client with the wrong
        // nodes or credentials, or accept a database Redis Cluster does not have.
        let Some(Target::Cluster(nodes)) =
            Target::parse("redis+cluster://user:pw@h1:7000,h2:7001,h3/", None)
        else {
            panic!("not a cluster target");
        };
        let addrs: Vec<String> = nodes.iter().map(|c| c.addr().to_string()).collect();
        assert_eq!(addrs, ["h1:7000", "h2:7001", "h3:6379"]);
        assert!(
            nodes
                .iter()
                .all(|n| n.redis_settings().password() == Some("pw")
                    && n.redis_settings().username() == Some("user"))
        );
        let Some(Target::Cluster(tls)) = Target::parse("redis+clusters://h1", None) else {
            panic!("not a cluster target");
        };
        assert!(matches!(
            tls[0].addr(),
            redis::ConnectionAddr::TcpTls { .. }
        ));
        assert!(Target::parse("redis+cluster://h1/3", None).is_none());
    }

    #[test]
    fn malformed_urls_are_refused() {
        // If this broke, a typo in a URL would start a bus that can never connect (or connects
        // somewhere else) instead of failing at startup.
        for url in [
            "redis+sentinel://h1,h2",
            "redis+sentinel://h1/",
            "redis+sentinel://h1/m/x",
            "redis+sentinel://h1/m/0/extra",
            "redis+sentinel://h1:0/m",
            "redis+sentinel://h1:port/m",
            "redis+sentinel://h1,,h2/m",
            "redis+sentinel:///m",
            "redis+sentinel://h1/m?db=1",
            "redis+cluster://",
            "redis+cluster://h1:70000",
            "redis+cluster://[::1/",
            "http://h1/",
            "h1:6379",
        ] {
            assert!(Target::parse(url, None).is_none(), "{url}");
        }
        assert_eq!(
            Target::parse("redis://h:6379/1", None).map(|t| t.topology()),
            Some("node")
        );
    }
}
