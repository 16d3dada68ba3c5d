//! The dispatcher: the accept loop, one task per connection, and (in [`dispatch`]) the steps
//! every request goes through before its handler: routing, body limit, request log, faults,
//! Basic auth. [`faulty`] builds the answers of injected faults.
//!
//! The top of the module graph: it uses the handlers ([`api`](crate::api),
//! [`control`](crate::control)) and what they use; nothing uses it but
//! the `emulator` module, to spawn it.

mod dispatch;
mod faulty;

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinSet;

use crate::gate::GateState;
use crate::shared::Shared;

/// Serves connections until `stop` fires (or its sender is dropped), closing and reopening
/// the listening socket as the [`Gate`](crate::gate::Gate) says.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let addr = listener.local_addr().ok();
    let mut listener = Some(listener);
    let mut gate = shared.gate.subscribe();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let state = *gate.borrow_and_update();
        match (state, listener.as_ref()) {
            (GateState::Open, Some(open)) => {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = gate.changed() => {}
                    accepted = open.accept() => match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(serve_connection(stream, shared.clone()));
                        }
                        Err(error) => {
                            tracing::warn!(%error, "emulator: accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                }
            }
            (GateState::Open, None) => {
                // Listen again on the same port; it may take a moment to be free.
                let Some(addr) = addr else { break };
                tokio::select! {
                    _ = &mut stop => break,
                    bound = TcpListener::bind(addr) => match bound {
                        Ok(reopened) => listener = Some(reopened),
                        Err(error) => {
                            tracing::warn!(%error, %addr, "emulator: cannot listen again yet");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                }
            }
            (GateState::Refusing { until }, _) => {
                // Dropping the listener makes connects fail with ECONNREFUSED.
                listener = None;
                let wake = async {
                    match until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = &mut stop => break,
                    _ = gate.changed() => {}
                    () = wake => {
                        if let Some(at) = until {
                            shared.gate.open_if_still(at);
                        }
                    }
                }
            }
        }
    }
    connections.shutdown().await;
}

/// A handler's way to abort its own connection with a TCP RST.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionAbort(Arc<Notify>);

impl ConnectionAbort {
    /// Asks the connection task to reset the connection (it drops the request too).
    pub(crate) fn reset(&self) {
        self.0.notify_one();
    }
}

/// Serves one connection: HTTP/1 or HTTP/2, shut down gracefully when the gate starts
/// refusing, or aborted with a RST when a handler asks for it.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // A second descriptor of the same socket, kept aside to set SO_LINGER 0 on an injected
    // RST: hyper owns the stream, and the reset goes out when both descriptors are closed.
    let (stream, twin) = match stream.into_std() {
        Ok(std) => {
            let twin = std.try_clone().ok();
            match TcpStream::from_std(std) {
                Ok(stream) => (stream, twin),
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    let abort = ConnectionAbort::default();
    let mut gate = shared.gate.subscribe();
    let handler_abort = abort.clone();
    let service =
        service_fn(move |req| dispatch::handle(shared.clone(), handler_abort.clone(), req));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut watching_gate = true;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = abort.0.notified() => {
                if let Some(twin) = &twin {
                    let _ = socket2::SockRef::from(twin).set_linger(Some(Duration::ZERO));
                }
                // Returning drops the connection and the twin: the kernel sends a RST.
                return;
            }
            changed = gate.changed(), if watching_gate => {
                if changed.is_err() {
                    watching_gate = false;
                } else if *gate.borrow_and_update() != GateState::Open {
                    watching_gate = false;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
