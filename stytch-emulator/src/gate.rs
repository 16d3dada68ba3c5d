//! Whether the emulator accepts connections: the [`Refused`](crate::Fault::Refused) fault
//! closes the listening socket for a while.
//!
//! The accept loop and every connection task watch one channel: on `Refusing` the loop drops
//! its listener (connects then get `ECONNREFUSED`) and each connection shuts down gracefully
//! (requests in flight are answered first); on `Open` the loop binds the same address again.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// What the accept loop should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateState {
    /// Listen and accept.
    Open,
    /// Keep no listening socket, until `until` (or until opened, when `None`).
    Refusing {
        /// When to listen again on its own.
        until: Option<Instant>,
    },
}

/// The shared switch between accepting and refusing connections.
#[derive(Debug)]
pub(crate) struct Gate {
    tx: watch::Sender<GateState>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(GateState::Open),
        }
    }
}

impl Gate {
    /// Refuses connections from now on, for `duration` or until [`open`](Self::open).
    pub(crate) fn refuse(&self, duration: Option<Duration>) {
        let until = duration.map(|d| Instant::now() + d);
        self.tx.send_replace(GateState::Refusing { until });
    }

    /// Accepts connections again (a no-op when already open).
    pub(crate) fn open(&self) {
        self.tx.send_if_modified(|state| {
            let changed = *state != GateState::Open;
            *state = GateState::Open;
            changed
        });
    }

    /// Opens the gate if the refusal that ends at `until` is still the current one.
    pub(crate) fn open_if_still(&self, until: Instant) {
        self.tx.send_if_modified(|state| {
            let due = *state == GateState::Refusing { until: Some(until) };
            if due {
                *state = GateState::Open;
            }
            due
        });
    }

    /// Whether connections are being refused.
    pub(crate) fn is_refusing(&self) -> bool {
        *self.tx.borrow() != GateState::Open
    }

    /// A receiver that sees every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<GateState> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_timed_refusal_ends_only_itself() {
        // If this broke, an expired timer of an older refusal could reopen the emulator in
        // the middle of a newer, longer one.
        let gate = Gate::default();
        gate.refuse(Some(Duration::from_secs(1)));
        let GateState::Refusing { until: Some(first) } = *gate.subscribe().borrow() else {
            panic!("refusing");
        };
        gate.refuse(None);
        gate.open_if_still(first);
        assert!(gate.is_refusing());
        gate.open();
        assert!(!gate.is_refusing());
    }
}
