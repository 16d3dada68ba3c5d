//! The revocation bus through failovers, on real processes on loopback: a primary behind
//! Sentinels killed (SIGKILL), and in Redis Cluster the slot of the project's keys moved to
//! another node, then that node killed and its replica promoted. Two instances make
//! revocations all along; the replica promoted each time is cut off for the last ~600 ms
//! before the kill (paused with SIGSTOP, its replication connection closed), so it lacks what
//! the old primary acknowledged last, as an asynchronous replica can.
//!
//! If these fail, a revocation made shortly before (or during) a failover is lost with the
//! old primary: peers that had not read it, and every instance started afterwards, serve the
//! revoked session's JWT (verified locally) for up to five minutes; or the bus never finds
//! the new primary and stops carrying revocations at all.
//!
//! Each test prints its figures (`--nocapture`): the time from the kill to both instances
//! writing to the new primary, and what they wrote again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use stytch_emulator::{EmulatorEndpoint, Fault, SessionInfo};
use tower_stytch::bus::{BusHandle, BusState, RedisBus};

use crate::redis_cluster::Cluster;
use crate::redis_proc::RedisProc;
use crate::redis_sentinel::SentinelSet;
use crate::support::{Served, World, app, serve};

/// Bound for a revocation to reach the other instances once the bus is live again (the goal
/// is 50 ms; the margin is for a loaded 2-core machine).
const PROPAGATION: Duration = Duration::from_secs(2);
/// Longest wait for a failover to complete (Sentinel: 1 s to declare the primary down, then
/// the election and the promotion).
const FAILOVER: Duration = Duration::from_secs(20);
const PASSWORD: &str = "failover-test-password";

async fn instance(w: &World, url: &str) -> Arc<Served> {
    let bus = RedisBus::builder(url)
        .max_backoff(Duration::from_millis(200))
        .build()
        .unwrap();
    let layer = w.builder().revocation_bus(bus).build().unwrap();
    let handle = layer.revocation_bus().unwrap().clone();
    handle.ready().await;
    assert!(handle.caught_up(), "the bus did not catch up at startup");
    Arc::new(serve(layer, app()).await)
}

fn bus_of(s: &Served) -> &BusHandle {
    s.layer.revocation_bus().unwrap()
}

fn log_key(w: &World) -> String {
    format!("{{tower-stytch:{}}}:revocations", w.emulator.project_id())
}

/// Entries of `key` on `node` itself (in a cluster, `READONLY` first: a replica answers too).
fn xlen(node: &RedisProc, key: &str, cluster: bool) -> i64 {
    let client = redis::Client::open(node.url()).unwrap();
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    if cluster {
        let () = redis::cmd("READONLY").query(&mut conn).unwrap();
    }
    redis::cmd("XLEN").arg(key).query(&mut conn).unwrap()
}

/// One logout answered 2xx by the churn.
struct Made {
    jwt: String,
    at: Instant,
}

/// Logs out a fresh session every 20 ms, alternately on each instance, until stopped.
struct Churn {
    made: Arc<Mutex<Vec<Made>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Churn {
    fn start(sessions: Vec<SessionInfo>, instances: Vec<Arc<Served>>) -> Self {
        let made = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (made2, stop2) = (made.clone(), stop.clone());
        let task = tokio::spawn(async move {
            for (i, session) in sessions.into_iter().enumerate() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let on = &instances[i % instances.len()];
                let res = on
                    .post_as("/logout", session.session_token.expose_secret())
                    .await;
                if res.status().is_success() {
                    made2.lock().unwrap().push(Made {
                        jwt: session.session_jwt.expose_secret().to_owned(),
                        at: Instant::now(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the churn ran out of sessions");
        });
        Self { made, stop, task }
    }

    async fn stop(self) -> Vec<Made> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        std::mem::take(&mut *self.made.lock().unwrap())
    }
}

/// Waits until every instance reads from `primary`, is live and has written all it queued;
/// the time since `since`.
async fn recovered(instances: &[&Served], primary: &str, since: Instant) -> Duration {
    let end = Instant::now() + FAILOVER;
    loop {
        let mut all = true;
        for s in instances {
            let bus = bus_of(s);
            all &= bus.primary().as_deref() == Some(primary)
                && bus.state() == BusState::Live
                && bus.flush(Duration::ZERO).await == 0;
        }
        if all {
            return since.elapsed();
        }
        assert!(
            Instant::now() < end,
            "the buses never settled on {primary}: {:?}",
            instances
                .iter()
                .map(|s| (bus_of(s).primary(), bus_of(s).state()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that every JWT of `made` is refused by every instance within `within`.
async fn refused_everywhere(instances: &[&Served], made: &[Made], within: Duration) {
    let end = Instant::now() + within;
    let mut left: Vec<(usize, usize)> = (0..instances.len())
        .flat_map(|i| (0..made.len()).map(move |m| (i, m)))
        .collect();
    while !left.is_empty() {
        let mut still = Vec::new();
        for (i, m) in left {
            if instances[i].whoami(&made[m].jwt).await != StatusCode::UNAUTHORIZED {
                still.push((i, m));
            }
        }
        left = still;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < end,
            "{} revocations still accepted (instance, revocation made after the start): {:?}",
            left.len(),
            left.iter().take(10).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new revocation on each instance reaches the other within [`PROPAGATION`].
async fn new_revocations_propagate(w: &World, a: &Served, b: &Served) {
    for (on, peer) in [(a, b), (b, a)] {
        let session = w.emulator.create_session(&w.member2.member_id);
        let jwt = session.session_jwt.expose_secret();
        assert_eq!(peer.whoami(jwt).await, StatusCode::OK);
        let res = on
            .post_as("/logout", session.session_token.expose_secret())
            .await;
        assert!(res.status().is_success());
        let made = [Made {
            jwt: jwt.to_owned(),
            at: Instant::now(),
        }];
        refused_everywhere(&[peer], &made, PROPAGATION).await;
    }
}

/// Makes `n` sessions for the churn (a member of their own, left alone by the checks).
fn sessions(w: &World, n: usize) -> Vec<SessionInfo> {
    (0..n)
        .map(|_| w.emulator.create_session(&w.member.member_id))
        .collect()
}

/// Cuts the replica on `replica` off the primary on `primary`: paused (SIGSTOP), so that it
/// cannot reconnect, and its replication connection closed by the primary (`CLIENT KILL TYPE
/// replica`). What the primary acknowledges from now on, the replica lacks.
fn cut_replica(nodes: &[RedisProc], [primary, replica]: [u16; 2]) {
    let node = |port: u16| nodes.iter().find(|n| n.port == port).unwrap();
    node(replica).signal("-STOP");
    let cut: i64 = node(primary)
        .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"))
        .unwrap();
    assert_eq!(cut, 1, "one replica connection closed");
}

/// Kills the primary on `primary` (SIGKILL) and resumes the replica on `replica` (cut off
/// by [`cut_replica`]), which lacks entries of stream `key` (asserted). The kill's instant
/// and how many entries it lacks.
fn kill_primary_ahead_of_its_replica(
    nodes: &mut [RedisProc],
    [primary, replica]: [u16; 2],
    key: &str,
    cluster: bool,
) -> (Instant, i64) {
    let at = |port: u16| nodes.iter().position(|n| n.port == port).unwrap();
    let (primary, replica) = (at(primary), at(replica));
    let logged = xlen(&nodes[primary], key, cluster);
    nodes[primary].kill();
    let killed = Instant::now();
    nodes[replica].signal("-CONT");
    let kept = xlen(&nodes[replica], key, cluster);
    assert!(
        kept < logged,
        "the replica has the primary's {logged} entries: the test would prove nothing"
    );
    (killed, logged - kept)
}

/// [`cut_replica`], 600 ms of churn, [`kill_primary_ahead_of_its_replica`].
async fn fail_over_ahead_of_the_replica(
    nodes: &mut [RedisProc],
    ports: [u16; 2],
    key: &str,
    cluster: bool,
) -> (Instant, i64) {
    cut_replica(nodes, ports);
    tokio::time::sleep(Duration::from_millis(600)).await;
    kill_primary_ahead_of_its_replica(nodes, ports, key, cluster)
}

/// The checks after a failover: every revocation of `made` refused on `a`, `b` and an
/// instance started now (it knows only what the new primary holds); those of the second
/// before `killed` among them; new ones propagate. Returns what `a` and `b` wrote again.
async fn nothing_lost(
    w: &World,
    url: &str,
    [a, b]: [&Served; 2],
    made: &[Made],
    killed: Instant,
) -> (u64, u64) {
    let before_kill = made
        .iter()
        .filter(|m| m.at <= killed && killed.duration_since(m.at) <= Duration::from_secs(1))
        .count();
    assert!(
        before_kill > 0,
        "no revocation in the second before the kill"
    );
    let c = instance(w, url).await;
    refused_everywhere(&[a, b, &c], made, PROPAGATION).await;
    new_revocations_propagate(w, a, b).await;
    for s in [a, b] {
        let bus = bus_of(s);
        assert!(bus.primary_changes() >= 1);
        assert!(bus.last_primary_change().is_some());
    }
    let restored = (bus_of(a).restored(), bus_of(b).restored());
    assert!(restored.0 > 0 && restored.1 > 0, "{restored:?}");
    restored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_to_a_replica_lacking_the_last_writes_loses_no_revocation() {
    // If this broke, see the module's doc: the primary behind the Sentinels dies, and the
    // replica they promote lacks the revocations of its last ~600 ms.
    let mut set = tokio::task::spawn_blocking(|| SentinelSet::start(PASSWORD))
        .await
        .unwrap();
    let w = World::new().await;
    let (url, key) = (set.url(), log_key(&w));
    let (a, b) = (instance(&w, &url).await, instance(&w, &url).await);
    let old = format!("127.0.0.1:{}", set.nodes[0].port);
    let new = format!("127.0.0.1:{}", set.nodes[1].port);
    assert_eq!(bus_of(&a).primary(), Some(old));
    let churn = Churn::start(sessions(&w, 1500), vec![a.clone(), b.clone()]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ports = [set.nodes[0].port, set.nodes[1].port];
    let (killed, lacking) =
        fail_over_ahead_of_the_replica(&mut set.nodes, ports, &key, false).await;
    let recovery = recovered(&[&a, &b], &new, killed).await;
    // The Sentinels agree (a Sentinel other than the failover's leader learns it a moment
    // later).
    let agreed = || set.primary_addr().as_deref() == Some(new.as_str());
    assert!(crate::support::eventually(Duration::from_secs(5), agreed).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let made = churn.stop().await;
    let restored = nothing_lost(&w, &url, [&a, &b], &made, killed).await;
    println!(
        "sentinel failover: revocations={} entries_the_promoted_replica_lacked={lacking} \
         kill_to_both_writing_to_the_new_primary_ms={} restored a={} b={}",
        made.len(),
        recovery.as_millis(),
        restored.0,
        restored.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_reshard_then_failover_to_a_replica_lacking_the_last_writes_loses_no_revocation() {
    // If this broke, see the module's doc: the slot of the project's keys moves to another
    // primary (MOVED/ASK followed), then that primary dies and its replica, promoted with
    // CLUSTER FAILOVER FORCE, lacks the revocations of its last ~600 ms.
    let mut cluster = tokio::task::spawn_blocking(|| Cluster::start(PASSWORD))
        .await
        .unwrap();
    let w = World::new().await;
    let (url, key) = (cluster.url(), log_key(&w));
    let slot = cluster.slot(&key);
    let (a, b) = (instance(&w, &url).await, instance(&w, &url).await);
    let first = cluster.owner(slot, None);
    assert_eq!(bus_of(&a).primary(), Some(format!("127.0.0.1:{first}")));
    let churn = Churn::start(sessions(&w, 2000), vec![a.clone(), b.clone()]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = cluster
        .topology(None)
        .iter()
        .find(|l| l.primary && l.port != first)
        .map(|l| l.port)
        .unwrap();
    let moved = Instant::now();
    tokio::task::block_in_place(|| cluster.move_slot(slot, first, second));
    let reshard = recovered(&[&a, &b], &format!("127.0.0.1:{second}"), moved).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replica = cluster.replica_of(second);
    let (killed, lacking) =
        fail_over_ahead_of_the_replica(&mut cluster.nodes, [second, replica], &key, true).await;
    let () = cluster
        .node(replica)
        .query(redis::cmd("CLUSTER").arg("FAILOVER").arg("FORCE"))
        .unwrap();
    let recovery = recovered(&[&a, &b], &format!("127.0.0.1:{replica}"), killed).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let made = churn.stop().await;
    let restored = nothing_lost(&w, &url, [&a, &b], &made, killed).await;
    assert!(
        bus_of(&a).primary_changes() >= 2,
        "the reshard and the failover"
    );
    println!(
        "cluster reshard and failover: revocations={} slot_move_to_both_writing_ms={} \
         entries_the_promoted_replica_lacked={lacking} kill_to_both_writing_to_the_new_primary_ms={} \
         restored a={} b={}",
        made.len(),
        reshard.as_millis(),
        recovery.as_millis(),
        restored.0,
        restored.1
    );
}

/// The layer of `builder`, its bus ready, on a runtime of its own (shut down abruptly, it
/// dies as a process does).
async fn on_a_runtime_of_its_own(
    builder: tower_stytch::StytchAuthLayerBuilder,
) -> (tokio::runtime::Runtime, tower_stytch::StytchAuthLayer) {
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let layer = runtime.block_on(async move {
            let layer = builder.build().unwrap();
            layer.revocation_bus().unwrap().ready().await;
            layer
        });
        (runtime, layer)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_pending_through_a_sentinel_failover_are_completed_after_their_instance_dies() {
    // If this broke, revocations Stytch had not confirmed, whose pending entries the
    // promoted replica lacked, would die with the instance that made them when it died after
    // the failover: Stytch would never end those sessions. A runs on a runtime of its own,
    // shut down abruptly, as a process dies.
    let mut set = tokio::task::spawn_blocking(|| SentinelSet::start(PASSWORD))
        .await
        .unwrap();
    let w = World::new().await;
    let url = set.url();
    let pending_key = format!("{{tower-stytch:{}}}:pending", w.emulator.project_id());
    let bus = |url: &str| {
        RedisBus::builder(url)
            .lease(Duration::from_millis(900))
            .max_backoff(Duration::from_millis(200))
            .build()
            .unwrap()
    };
    let unavailable = Fault::Status {
        status: 503,
        retry_after: None,
    };
    w.emulator
        .inject_fault(EmulatorEndpoint::Revoke, unavailable, 100_000);
    let b = w.builder().revocation_bus(bus(&url)).build().unwrap();
    b.revocation_bus().unwrap().ready().await;
    let b = serve(b, app()).await;
    let (a_runtime, a) = on_a_runtime_of_its_own(w.builder().revocation_bus(bus(&url))).await;
    let sessions = sessions(&w, 3);
    let ports = [set.nodes[0].port, set.nodes[1].port];
    cut_replica(&set.nodes, ports);
    for session in &sessions {
        let (a, id) = (a.clone(), session.member_session_id.clone());
        let outcome = a_runtime
            .spawn(async move { a.revoker().revoke_session(&id, None).await.unwrap() })
            .await
            .unwrap();
        assert_eq!(outcome.as_str(), "pending");
    }
    let old = &set.nodes[0];
    assert!(crate::support::eventually(PROPAGATION, || xlen(old, &pending_key, false) == 3).await);
    kill_primary_ahead_of_its_replica(&mut set.nodes, ports, &pending_key, false);
    // A finds the new primary and writes its entries there again at once…
    let new = &set.nodes[1];
    assert!(crate::support::eventually(FAILOVER, || xlen(new, &pending_key, false) == 3).await);
    // …and dies: none of its tasks runs again.
    tokio::task::spawn_blocking(move || a_runtime.shutdown_background())
        .await
        .unwrap();
    drop(a);
    w.emulator.clear_faults();
    for session in &sessions {
        assert_eq!(
            b.whoami(session.session_jwt.expose_secret()).await,
            StatusCode::UNAUTHORIZED
        );
        assert!(
            w.ended_at_stytch(&session.member_session_id, Duration::from_secs(15))
                .await,
            "B never completed a revocation A left pending"
        );
    }
    assert!(crate::support::eventually(PROPAGATION, || xlen(new, &pending_key, false) == 0).await);
}
