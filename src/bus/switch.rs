//! [`Switches`]: which node serves the project's keys now, how often that changed, and what
//! the restores wrote; read by [`BusHandle`](super::BusHandle) and the metrics.
//!
//! A switch is the reader finding another node than before behind its keys: a Sentinel
//! failover, a Redis Cluster failover, or the keys' slot moved to another node. The new
//! primary may lack what the old one acknowledged last (replication is asynchronous), so
//! after every switch each instance writes its window again (`reader`, `writer`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::metrics;

/// See the module's doc.
#[derive(Debug, Default)]
pub(crate) struct Switches {
    primary: Mutex<Option<String>>,
    changes: AtomicU64,
    last: Mutex<Option<SystemTime>>,
    restored: AtomicU64,
}

impl Switches {
    /// Notes that `node` (`host:port`) serves the keys now; whether that is a switch (another
    /// node than the last one noted).
    pub(crate) fn observe(&self, node: &str) -> bool {
        let previous = {
            let mut primary = self.primary.lock().unwrap_or_else(PoisonError::into_inner);
            if primary.as_deref() == Some(node) {
                return false;
            }
            primary.replace(node.to_owned())
        };
        let Some(previous) = previous else {
            tracing::info!(primary = node, "revocation bus: primary found");
            return false;
        };
        let now = SystemTime::now();
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
        self.changes.fetch_add(1, Ordering::Relaxed);
        metrics::bus_primary_changed(now);
        tracing::warn!(
            from = %previous,
            to = node,
            "revocation bus: the primary changed; the window known here is written again"
        );
        true
    }

    pub(crate) fn primary(&self) -> Option<String> {
        self.primary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    pub(crate) fn last(&self) -> Option<SystemTime> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `messages` written again by a restore.
    pub(crate) fn restored(&self, messages: usize) {
        self.restored.fetch_add(messages as u64, Ordering::Relaxed);
        metrics::bus_restored(messages);
    }

    pub(crate) fn restored_total(&self) -> u64 {
        self.restored.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_node_counts_as_a_switch() {
        // If this broke, every reconnection to the same node would rewrite the window (or a
        // failover would go unnoticed, and the promoted replica keep lacking revocations).
        let switches = Switches::default();
        assert!(
            !switches.observe("10.0.0.1:6379"),
            "the first node is no switch"
        );
        assert!(!switches.observe("10.0.0.1:6379"));
        assert_eq!((switches.changes(), switches.last()), (0, None));
        assert!(switches.observe("10.0.0.2:6379"));
        assert_eq!(switches.primary().as_deref(), Some("10.0.0.2:6379"));
        assert_eq!(switches.changes(), 1);
        assert!(switches.last().is_some());
        assert!(
            switches.observe("10.0.0.1:6379"),
            "switching back is a switch too"
        );
        assert_eq!(switches.changes(), 2);
    }
}
