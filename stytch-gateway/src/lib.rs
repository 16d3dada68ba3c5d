//! `stytch-gateway`: an authenticating reverse proxy for Stytch B2B sessions, built on
//! [`tower_stytch::StytchAuthLayer`], with health and metrics endpoints and graceful
//! shutdown; with the default feature `demo`, also the `emulator` and `demo` commands.
//!
//! The binary (`src/main.rs`) calls [`main`]. The library exposes only what an embedder
//! needs to run the proxy in-process: [`Gateway`] built from [`ServeOptions`], and how it
//! ended ([`ShutdownReport`], [`Drain`], [`GatewayError`]). Every other module is private
//! to this crate; its in-process tests live in `src/tests/`.
//!
//! # Features
//!
//! `demo` (default): the `emulator` and `demo` commands (and the hidden `upstream` of the
//! load runs), with the Stytch emulator, the demo web app and its WebSocket. Without it
//! (`cargo install stytch-gateway --no-default-features`) the binary is the proxy alone:
//! `serve`, linking no test double (`stytch-emulator` is not even in its dependency tree).
//!
//! # Modules
//!
//! The service stack, outermost first: `access_log` (request ids, one line per request) →
//! `form` (a POST form's `_method` shown to the layer)
//! → `health` (`/healthz`, `/readyz`, before auth) →
//! `auth_only` (the auth-only endpoint's refusals without a body) → `StytchAuth` (logout,
//! admin revoke, forced sign-out hooks, webhooks, public routes, authentication) → `app`
//! (the auth-only endpoint, else `proxy`), served by `server` on the `workers` (one thread
//! with a single-threaded runtime each, as nginx runs one event loop per worker), the proxy's
//! upstream connections pooled per worker (`upstream`).
//!
//! Bottom up, each module may use only the crate's modules listed on its line (the import
//! graph is a DAG; `lib.rs` only declares the modules and re-exports the public types):
//!
//! | module | job | may use |
//! |---|---|---|
//! | `body` | `Body` of every response, `full_body`, `text_response` | — |
//! | `error` | [`GatewayError`], and its one-line cause chain | — |
//! | `identity` | the identity headers the upstream receives | — |
//! | `credentials` | which of the client's credentials reach the upstream | — |
//! | `forwarded` | forwarding headers, trusted proxies | — |
//! | `ws_close` | the close frame a tunnelled WebSocket gets when the gateway ends it (1008 session revoked, 1001 at shutdown), after the frame in flight | — |
//! | `upgrade` | which requests are upgrades, which are tunnelled (allowed protocols, never `h2c`; authenticated routes); the tunnel | `error`, `ws_close` |
//! | `underscore` | request headers with `_` in their names: dropped unless allowed | `error`, `forwarded`, `identity` |
//! | `target` | the upstream's URL; a path under its prefix (dot segments resolved, an escape refused) | `error` |
//! | `request_body` | the client's request body under the body timeout | `body` |
//! | `auth_only` | the auth-only endpoint's refusals, without a body | — |
//! | `service` | `ServiceFn`: the one always-ready `Service` over a `Handler` | `body` |
//! | `live` | streams (server-sent events, unknown-length bodies and long polls past a grace period) ended when their session is revoked | `body` |
//! | `tls` | the upstream's TLS roots (system or `--upstream-ca`) | `error` |
//! | `upstream` | the connections to the upstream on hyper's `client::conn`: TCP, TLS (ALPN), one pool per worker thread, upgrades on connections of their own | `body`, `error` |
//! | `metrics` | the Prometheus recorder, `/metrics`, the upstream and connection metrics | `body`, `error`, `service` |
//! | `conn` | each connection's timeouts (first request, header, keep-alive) and the cap on open connections | `metrics` |
//! | `form` | a POST form's `_method`, read (bounded) and shown to the auth layer | `body`, `metrics`, `service` |
//! | `health` | `/healthz`, `/readyz` (cached readiness) | `body`, `service` |
//! | `server` | a runtime's connections (HTTP/1 + HTTP/2, graceful drain), the single-runtime accept loop (metrics, demo), `bind`, the signals | `body`, `conn`, `error`, `metrics` |
//! | `workers` | the proxy's workers (a thread and a single-threaded runtime each) and the acceptor handing them connections | `body`, `conn`, `error`, `metrics`, `server` |
//! | `access_log` | request ids (`X-Request-Id`), the access log (`--access-log`) | `body`, `forwarded`, `server`, `service` |
//! | `proxy` | forwarding to the upstream over a pooled client; 400 / 403 / 408 / 502 / 504 | `access_log`, `body`, `credentials`, `error`, `form`, `forwarded`, `identity`, `live`, `metrics`, `request_body`, `server`, `service`, `target`, `tls`, `underscore`, `upgrade`, `upstream` |
//! | `app` | behind the auth layer: the auth-only endpoint, else the proxy | `body`, `identity`, `proxy`, `service` |
//! | `routes` | the routes file (`--routes`): authorization rules onto the layer's builder | `error` |
//! | `config_file` | `serve --config FILE` (TOML: a key per flag, `[[route]]` tables; flag > env > file > default), `check-config FILE`'s output | `error`, `routes` |
//! | `options` | `serve`'s flags and [`ServeOptions`] (checked) | `access_log`, `config_file` (their flags), `error`, `forwarded`, `health`, `proxy`, `routes`; `conn`, `form`, `live`, `request_body`, `upgrade` (their defaults) |
//! | `startup` | the start-up check of Stytch: reachable, credentials accepted (else exit 2) | `error` |
//! | `serve` | [`Gateway`]: options → the stack, its listeners, the shutdown | all of the above |
//! | `demo` | (feature `demo`) the `emulator`, `demo` and `upstream` commands | `body`, `error`, `identity`, `options`, `routes`, `serve`, `server`, `service`, `upgrade` |
//! | `cli` | [`main`]: parsing (with the configuration file), logging, runtime, dispatch, `check-config`, exit codes | `access_log`, `config_file`, `demo`, `error`, `options`, `serve`, `server` |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access_log;
mod app;
mod auth_only;
mod body;
mod cli;
mod config_file;
mod conn;
mod credentials;
#[cfg(feature = "demo")]
mod demo;
mod error;
mod form;
mod forwarded;
mod health;
mod identity;
mod live;
mod metrics;
mod options;
mod proxy;
mod request_body;
mod routes;
mod serve;
mod server;
mod service;
mod startup;
mod target;
mod tls;
mod underscore;
mod upgrade;
mod upstream;
mod workers;
mod ws_close;

#[cfg(test)]
mod tests;

pub use self::cli::main;
pub use self::error::GatewayError;
pub use self::options::ServeOptions;
pub use self::serve::{Gateway, ShutdownReport};
pub use self::server::Drain;
