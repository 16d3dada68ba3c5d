//! [`Workers`]: the proxy's connections served the way nginx serves them, one event loop
//! per worker.
//!
//! Each worker is a thread of its own running a single-threaded (current-thread) Tokio
//! runtime: a connection, its requests, its upstream connections
//! ([`upstream`](crate::upstream)) and their tasks all stay on one thread, with no work
//! stealing, no cross-thread wake-ups and no lock shared with another worker on a request's
//! path. One acceptor, on the runtime that runs [`Gateway::run`](crate::Gateway::run),
//! accepts every connection, takes its [slot](crate::conn::Slots) (the `--max-connections`
//! cap is the process's, across workers) and hands the socket to the worker with the
//! fewest open connections (in turn among equals), as nginx's `accept_mutex` spreads them.
//! One listening socket, so the port is bound once: no second process can share it (as
//! `SO_REUSEPORT` would let one), and port 0 works.
//!
//! The acceptor's runtime keeps everything else: the signals, the metrics endpoint, the
//! start-up check, and the tasks the auth layer starts when it is built (policy refresh,
//! revocation retries, the Redis bus). Tasks the layer starts while serving a request (a
//! revocation's pipeline, the live-connection follower) run on that request's worker; the
//! workers therefore outlive the drain: they end only when [`Draining::finish`] is called,
//! after the pending revocations were flushed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::body::Body;
use crate::conn::{ConnectionLimits, Slot, Slots};
use crate::error::GatewayError;
use crate::server::{Connection, Drain, Protocols};

/// The workers, started and waiting for connections.
pub(crate) struct Workers {
    workers: Vec<Worker>,
    /// Each worker's drain, once the acceptor stopped.
    drained: Vec<oneshot::Receiver<Drain>>,
    draining: Draining,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("count", &self.workers.len())
            .finish()
    }
}

/// A connection accepted, for a worker to serve.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
}

/// One running worker, as the acceptor sees it.
struct Worker {
    sockets: mpsc::UnboundedSender<Accepted>,
    /// Its open connections.
    load: Arc<AtomicUsize>,
}

/// Workers that drained their connections and still run, for the tasks the auth layer
/// started on them; [`finish`](Self::finish) ends them.
#[derive(Debug)]
pub(crate) struct Draining {
    exit: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How the workers serve the connections of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// The listener's name (metrics, log lines).
    pub(crate) name: &'static str,
    /// Every connection's timeouts; the cap is the acceptor's, across workers.
    pub(crate) limits: ConnectionLimits,
    /// How long a worker lets its in-flight requests finish after the acceptor stopped.
    pub(crate) drain_timeout: Duration,
}

impl Workers {
    /// Starts `count` workers (one per CPU when `None`), each a thread with its runtime,
    /// serving with `service` the connections [`serve`](Self::serve) will hand them. Dropped
    /// unused, they end.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Runtime`] when a thread or its runtime cannot be started.
    pub(crate) async fn start<S>(
        count: Option<usize>,
        service: S,
        settings: Settings,
    ) -> Result<Self, GatewayError>
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let count = count.filter(|n| *n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let mut started = Self {
            workers: Vec::with_capacity(count),
            drained: Vec::with_capacity(count),
            draining: Draining {
                exit: Vec::with_capacity(count),
                threads: Vec::with_capacity(count),
            },
        };
        for index in 0..count {
            let (sockets, incoming) = mpsc::unbounded_channel();
            let (done, drained) = oneshot::channel();
            let (exit, exited) = oneshot::channel();
            let (ready, running) = oneshot::channel();
            let serving = Serving {
                settings,
                incoming,
                done,
                exited,
            };
            let service = service.clone();
            let thread = std::thread::Builder::new()
                .name(format!("gateway-worker-{index}"))
                .spawn(move || serving.run_thread(service, ready))
                .map_err(GatewayError::Runtime)?;
            // Pushed first: an error below drops the senders, and every started worker ends.
            started.draining.threads.push(thread);
            started.draining.exit.push(exit);
            match running.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(GatewayError::Runtime(err)),
                Err(_) => return Err(GatewayError::Runtime(std::io::ErrorKind::Other.into())),
            }
            let load = Arc::new(AtomicUsize::new(0));
            started.workers.push(Worker { sockets, load });
            started.drained.push(drained);
        }
        Ok(started)
    }

    /// Accepts on `listener` until `shutdown` completes, handing each connection to a
    /// worker; then stops accepting and lets each worker finish its in-flight requests (idle
    /// keep-alive connections are closed) for at most the drain timeout. Returns how that
    /// went, and the workers, still running until [`Draining::finish`].
    pub(crate) async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        settings: Settings,
    ) -> (Drain, Draining) {
        let Self {
            workers,
            drained,
            draining,
        } = self;
        accept(listener, &workers, shutdown, settings).await;
        drop(workers);
        let mut drain = Drain::Complete;
        for worker in drained {
            if worker.await != Ok(Drain::Complete) {
                drain = Drain::TimedOut;
            }
        }
        (drain, draining)
    }
}

/// Accepts connections on `listener` until `shutdown` completes, handing each (with its
/// slot) to the least loaded of `workers`.
async fn accept(
    listener: TcpListener,
    workers: &[Worker],
    shutdown: impl Future<Output = ()>,
    settings: Settings,
) {
    let name = settings.name;
    let mut slots = Slots::new(name, settings.limits.max_connections);
    let mut next = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        crate::metrics::record_connection(name);
        // Past the cap: dropping the stream closes it at once.
        let Some(mut slot) = slots.take(peer) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let Some(worker) = least_loaded(workers, &mut next) else {
            return;
        };
        slot.count_in(Arc::clone(&worker.load));
        if worker
            .sockets
            .send(Accepted { stream, peer, slot })
            .is_err()
        {
            tracing::error!("a worker stopped: its connection is closed");
        }
    }
}

/// The worker with the fewest open connections, the first from `next` on among equals
/// (`next` then moves past it).
fn least_loaded<'w>(workers: &'w [Worker], next: &mut usize) -> Option<&'w Worker> {
    let count = workers.len();
    let chosen = (0..count)
        .map(|i| (*next + i) % count)
        .min_by_key(|&i| workers[i].load.load(Ordering::Relaxed))?;
    *next = (chosen + 1) % count;
    workers.get(chosen)
}

/// What a worker thread runs.
struct Serving {
    settings: Settings,
    incoming: mpsc::UnboundedReceiver<Accepted>,
    done: oneshot::Sender<Drain>,
    exited: oneshot::Receiver<()>,
}

impl Serving {
    /// The worker thread: builds its runtime (telling `ready` how that went) and runs on it.
    fn run_thread<S>(self, service: S, ready: oneshot::Sender<std::io::Result<()>>)
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => {
                let _ = ready.send(Ok(()));
                runtime.block_on(self.run(service));
            }
            Err(err) => {
                let _ = ready.send(Err(err));
            }
        }
    }

    /// Serves the connections handed over until the acceptor stops, drains them, reports,
    /// and keeps the runtime's other tasks running until told to exit.
    async fn run<S>(mut self, service: S)
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let Settings {
            name,
            limits,
            drain_timeout,
        } = self.settings;
        let protocols = Protocols::new();
        while let Some(Accepted { stream, peer, slot }) = self.incoming.recv().await {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, %peer, "cannot serve an accepted connection");
                    continue;
                }
            };
            let connection = Connection::new(name, peer, limits, slot);
            connection.spawn(stream, service.clone(), &protocols);
        }
        let drain = protocols.drain(drain_timeout).await;
        let _ = self.done.send(drain);
        let _ = self.exited.await;
    }
}

impl Draining {
    /// Ends the workers (their remaining tasks are dropped) and waits for their threads.
    pub(crate) async fn finish(self) {
        drop(self.exit);
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }
}
