//! [`Connector`] opens connections to the node that serves the project's keys, whatever the
//! topology ([`Target`]); [`Conn`] is one, used like a single node's connection (the cluster
//! client follows `MOVED` and `ASK` redirections and refreshes its slot map by itself), and
//! says which node it reaches ([`Conn::primary`]).

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Role, Value};

use super::target::Target;

/// Longest wait for a TCP (and TLS) connection to one node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the Sentinels to name the primary (they are asked in turn).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens [`Conn`]s.
pub(crate) enum Connector {
    Node(redis::Client),
    /// Asked in turn (the client caches its connections to the Sentinels).
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    Cluster(ClusterClient),
}

impl Connector {
    /// The connector of `target`; fails only on settings the redis crate refuses.
    pub(crate) fn new(target: Target) -> RedisResult<Self> {
        Ok(match target {
            Target::Node(client) => Self::Node(client),
            Target::Sentinel(s) => Self::Sentinel(tokio::sync::Mutex::new(SentinelClient::build(
                s.sentinels,
                s.master,
                Some(s.node),
                SentinelServerType::Master,
            )?)),
            Target::Cluster(nodes) => Self::Cluster(
                ClusterClient::builder(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    // A few quick retries inside one call; the bus's own backoff does the rest.
                    .retries(4)
                    .min_retry_wait(50)
                    .max_retry_wait(500)
                    .build()?,
            ),
        })
    }

    /// A new connection. `response_timeout` must exceed any `BLOCK` sent on it.
    pub(crate) async fn connect(&self, response_timeout: Duration) -> RedisResult<Conn> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        match self {
            Self::Node(client) => Ok(Conn::Node {
                conn: client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
                addr: client.get_connection_info().addr().to_string(),
                check_role: false,
            }),
            Self::Sentinel(sentinel) => {
                let lookup = async { sentinel.lock().await.async_get_client().await };
                let client = tokio::time::timeout(LOOKUP_TIMEOUT, lookup)
                    .await
                    .map_err(|_| timed_out())??;
                Ok(Conn::Node {
                    conn: client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                    addr: client.get_connection_info().addr().to_string(),
                    check_role: true,
                })
            }
            Self::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(response_timeout);
                Ok(Conn::Cluster {
                    conn: client.get_async_connection_with_config(config).await?,
                    known: None,
                })
            }
        }
    }

    /// Whether a switch of primary can happen without this connection failing (the cluster
    /// client follows it by itself; a Sentinel may demote a live primary): then the reader
    /// asks [`Conn::primary`] again every second.
    pub(crate) fn can_switch_silently(&self) -> bool {
        !matches!(self, Self::Node(_))
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from the Sentinels",
    ))
}

/// A connection to the node serving the project's keys (through the cluster client, to
/// whichever node serves their slot now).
pub(crate) enum Conn {
    Node {
        conn: MultiplexedConnection,
        /// `host:port`.
        addr: String,
        /// Found through the Sentinels: [`Conn::primary`] checks it is still the primary.
        check_role: bool,
    },
    Cluster {
        conn: ClusterConnection,
        /// The id and `host:port` of the node that served the keys when last asked.
        known: Option<(String, String)>,
    },
}

impl Conn {
    /// `host:port` of the primary serving `key` through this connection. A node a Sentinel
    /// named that is no longer a primary (demoted by a failover) is an error: the caller
    /// reconnects, through the Sentinels, to the new one.
    pub(crate) async fn primary(&mut self, key: &str) -> RedisResult<String> {
        match self {
            Self::Node {
                conn,
                addr,
                check_role,
            } => {
                if *check_role {
                    let role: Role = redis::cmd("ROLE").query_async(conn).await?;
                    if !matches!(role, Role::Primary { .. }) {
                        return Err(RedisError::from((
                            ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
                            "no longer the primary",
                        )));
                    }
                }
                Ok(addr.clone())
            }
            Self::Cluster { conn, known } => {
                // The node's id first (a short answer, asked every second); the whole node
                // list only when it changed.
                let id: String = route_to_key(conn, key, redis::cmd("CLUSTER").arg("MYID")).await?;
                if let Some((known_id, addr)) = known.as_ref()
                    && *known_id == id
                {
                    return Ok(addr.clone());
                }
                let nodes: String =
                    route_to_key(conn, key, redis::cmd("CLUSTER").arg("NODES")).await?;
                let (id, addr) = myself(&nodes).ok_or_else(|| {
                    RedisError::from((ErrorKind::UnexpectedReturnType, "CLUSTER NODES: no myself"))
                })?;
                *known = Some((id, addr.clone()));
                Ok(addr)
            }
        }
    }
}

/// `cmd` sent to the primary serving `key`'s slot (as the cluster client knows it).
async fn route_to_key<T: redis::FromRedisValue>(
    conn: &mut ClusterConnection,
    key: &str,
    cmd: &mut Cmd,
) -> RedisResult<T> {
    let route = Route::with_key(key, SlotAddr::Master);
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
    let value = conn.route_command(cmd.clone(), routing).await?;
    Ok(redis::from_redis_value(value)?)
}

/// The id and `host:port` of the `myself` line of a `CLUSTER NODES` reply.
fn myself(nodes: &str) -> Option<(String, String)> {
    nodes.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let (id, addr, flags) = (fields.next()?, fields.next()?, fields.next()?);
        flags.split(',').any(|f| f == "myself").then(|| {
            let addr = addr.split(['@', ',']).next().unwrap_or(addr);
            (id.to_owned(), addr.to_owned())
        })
    })
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node { conn, .. } => conn.req_packed_command(cmd),
            Self::Cluster { conn, .. } => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node { conn, .. } => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster { conn, .. } => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node { conn, .. } => conn.get_db(),
            Self::Cluster { conn, .. } => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_answering_cluster_nodes_is_found() {
        // If this broke, the bus would not see the slot of its keys move to another node (a
        // resharding, a failover), and would not write its window again there.
        let nodes = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master,myself - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
";
        let found = myself(nodes).unwrap();
        assert_eq!(found.0, "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1");
        assert_eq!(found.1, "127.0.0.1:30002");
        let found = myself("abc 10.0.0.1:7000@17000,h myself,master - 0 0 1 connected\n");
        assert_eq!(found.map(|f| f.1).as_deref(), Some("10.0.0.1:7000"));
        assert_eq!(
            myself("abc 10.0.0.1:7000@17000 master - 0 0 1 connected\n"),
            None
        );
    }
}
