//! The tower middleware: [`StytchAuthLayer`] builds [`StytchAuth`], whose
//! [`ResponseFuture`] authenticates a request and calls the inner service.
//!
//! This module maps HTTP to the engine's verbs and their outcomes to responses; it holds no
//! session state of its own (that is the [`Engine`](crate::engine::Engine)'s).
//!
//! The modules form a DAG: an arrow goes from a module to one it uses, and no module uses
//! one drawn to its left or above it. Modules also use others further along directly
//! (`service` uses `origin` and `route_table`, `shared` uses `rejection`, …); `body` is used
//! by `service` and `future`.
//!
//! ```text
//! layer ─► service ─► future ─► endpoints ─► shared ─► origin ─► route_table ─► rejection
//! ```
//!
//! | module | its one job |
//! |---|---|
//! | `layer` | [`StytchAuthLayer`]: the layer, what it shares with its clones, its accessors |
//! | `builder` | [`StytchAuthLayerBuilder`]: check every setting, build the engine and [`Shared`](shared) |
//! | `service` | [`StytchAuth::call`]: classify the route, refuse cross-site requests, extract the credential, pick what to run |
//! | `future` | [`ResponseFuture`]: await the admission, call the inner service, run a forced sign-out hook |
//! | `admission` | credential and rule → a member or an M2M client admitted, or the rejection |
//! | `endpoints` | the routes the layer answers itself: logout, admin revocation, forced sign-out |
//! | `shared` | the state shared by every clone of a layer and its services |
//! | `rejection` | [`Rejection`]s and the one mapping from every error to a response |
//! | `origin` | which routes refuse cross-site requests, the check itself, and the `return_to` redirect allowlist |
//! | `route_table` | which [`Route`](route_table) a request is: logout, admin, hook, public, optional, protected, refused |
//! | `body` | [`ResponseBody`]: the inner body, or one the layer wrote |

mod admission;
mod body;
mod builder;
mod endpoints;
mod future;
mod layer;
mod origin;
mod rejection;
mod route_table;
mod service;
mod shared;

pub use self::body::{BoxError, ResponseBody};
pub use self::builder::StytchAuthLayerBuilder;
pub use self::endpoints::{FORCED_SIGNOUT_HEADER, LOGOUT_HEADER};
pub use self::future::ResponseFuture;
pub use self::layer::StytchAuthLayer;
pub use self::rejection::{DefaultRejection, Rejection, RejectionHandler, RejectionKind};
pub use self::service::StytchAuth;
