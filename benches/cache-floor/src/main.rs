//! The floor a cache library sets under #14's targets, with the session cache's key type
//! (a 32-byte SHA-256), hasher (foldhash) and per-entry expiry, holding a one-word value:
//!
//! - `cargo run --release -- entry moka` / `-- entry quick_cache`: RSS per entry at 1 M
//!   entries (run each alone: RSS is the process's);
//! - `cargo run --release -- hit`: the time of a hit on a hot key, moka's `get` and
//!   quick_cache's `get` interleaved over four rounds.
//!
//! Not part of the workspace; the figures are in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

type Hasher = foldhash::fast::RandomState;
type Moka = moka::future::Cache<[u8; 32], Arc<u64>, Hasher>;
type Quick = quick_cache::sync::Cache<[u8; 32], Arc<u64>, quick_cache::UnitWeighter, Hasher>;

/// Per-entry expiry, as the session cache has (moka keeps a timer-wheel node per entry).
struct Hour;

impl Expiry<[u8; 32], Arc<u64>> for Hour {
    fn expire_after_create(&self, _: &[u8; 32], _: &Arc<u64>, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(3600))
    }
}

fn moka(capacity: u64) -> Moka {
    moka::future::Cache::builder()
        .max_capacity(capacity)
        .expire_after(Hour)
        .build_with_hasher(Hasher::default())
}

fn quick(capacity: u64) -> Quick {
    quick_cache::sync::Cache::with(
        usize::try_from(capacity).unwrap(),
        capacity,
        quick_cache::UnitWeighter,
        Hasher::default(),
        quick_cache::sync::DefaultLifecycle::default(),
    )
}

/// This process's resident set size, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn key(n: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&n.to_le_bytes());
    k
}

async fn entry(library: &str) {
    const N: u64 = 1_000_000;
    let before = rss();
    // RSS is read while the cache is alive.
    let (held, after) = match library {
        "moka" => {
            let cache = moka(N + 1000);
            for n in 0..N {
                cache.insert(key(n), Arc::new(n)).await;
            }
            cache.run_pending_tasks().await;
            (cache.entry_count(), rss())
        }
        "quick_cache" => {
            let cache = quick(N + 1000);
            for n in 0..N {
                cache.insert(key(n), Arc::new(n));
            }
            (cache.len() as u64, rss())
        }
        other => panic!("unknown library {other}: moka or quick_cache"),
    };
    println!(
        "{library}: {held} entries, {} bytes per entry",
        (after - before) / N
    );
}

async fn hit() {
    const HOT: u64 = 1000;
    const READS: u64 = 2_000_000;
    let (m, q) = (moka(100_000), quick(100_000));
    for n in 0..HOT {
        m.insert(key(n), Arc::new(n)).await;
        q.insert(key(n), Arc::new(n));
    }
    m.run_pending_tasks().await;
    for round in 0..4 {
        let start = Instant::now();
        for i in 0..READS {
            black_box(m.get(&key(i % HOT)).await);
        }
        let moka_ns = start.elapsed().as_nanos() as f64 / READS as f64;
        let start = Instant::now();
        for i in 0..READS {
            black_box(q.get(&key(i % HOT)));
        }
        let quick_ns = start.elapsed().as_nanos() as f64 / READS as f64;
        println!("round {round}: moka get {moka_ns:.1} ns, quick_cache get {quick_ns:.1} ns");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["entry", library] => entry(library).await,
        ["hit"] => hit().await,
        _ => eprintln!("usage: cache-floor entry moka|quick_cache | cache-floor hit"),
    }
}
