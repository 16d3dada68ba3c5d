//! Faults injected into the next calls of an endpoint, and per-endpoint request counters.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// An endpoint of the emulated Stytch API, for counting requests and injecting faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EmulatorEndpoint {
    /// `POST /v1/b2b/sessions/authenticate`.
    Authenticate,
    /// `POST /v1/b2b/sessions/revoke`.
    Revoke,
    /// `GET /v1/b2b/sessions/jwks/{project_id}`.
    Jwks,
    /// `GET /v1/b2b/sessions?organization_id=…&member_id=…` (Get Sessions).
    GetSessions,
    /// `GET /v1/b2b/rbac/policy`.
    RbacPolicy,
    /// `GET` / `PUT /v1/b2b/rbac/organizations/{organization_id}`.
    RbacOrganization,
    /// Stytch's M2M client API: `/v1/m2m/clients…` (create, get, update, delete, search,
    /// secret rotation).
    M2mClients,
    /// `POST /v1/public/{project_id}/oauth2/token`, the M2M token endpoint.
    M2mToken,
}

/// How many endpoints there are (the size of the per-endpoint arrays).
const ENDPOINTS: usize = 8;

impl EmulatorEndpoint {
    const ALL: [Self; ENDPOINTS] = [
        Self::Authenticate,
        Self::Revoke,
        Self::Jwks,
        Self::GetSessions,
        Self::RbacPolicy,
        Self::RbacOrganization,
        Self::M2mClients,
        Self::M2mToken,
    ];

    fn index(self) -> usize {
        match self {
            Self::Authenticate => 0,
            Self::Revoke => 1,
            Self::Jwks => 2,
            Self::GetSessions => 3,
            Self::RbacPolicy => 4,
            Self::RbacOrganization => 5,
            Self::M2mClients => 6,
            Self::M2mToken => 7,
        }
    }

    /// The name used by the HTTP control API: `authenticate`, `revoke`, `jwks`,
    /// `get_sessions`, `rbac_policy`, `rbac_organization`, `m2m_clients` or `m2m_token`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authenticate => "authenticate",
            Self::Revoke => "revoke",
            Self::Jwks => "jwks",
            Self::GetSessions => "get_sessions",
            Self::RbacPolicy => "rbac_policy",
            Self::RbacOrganization => "rbac_organization",
            Self::M2mClients => "m2m_clients",
            Self::M2mToken => "m2m_token",
        }
    }

    /// The endpoint with this control-API name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// A misbehaviour the emulator shows on the next calls of an endpoint.
///
/// What a client observes, over loopback (each is checked with reqwest in
/// `tests/it/faults.rs`):
///
/// | fault | the client sees |
/// |---|---|
/// | [`Latency`](Self::Latency), [`Hang`](Self::Hang) | its own timeout |
/// | [`Status`](Self::Status) | a Stytch error answer |
/// | [`ConnectionReset`](Self::ConnectionReset) | the connection closed (FIN) before an answer |
/// | [`Rst`](Self::Rst) | the connection reset (TCP RST) before an answer |
/// | [`MalformedBody`](Self::MalformedBody) | a 200 whose body is not JSON (a decode error) |
/// | [`TruncatedBody`](Self::TruncatedBody) | a 200 whose body ends early (a body error) |
/// | [`Trickle`](Self::Trickle) | a valid answer, slowly (its own timeout if it is shorter) |
/// | [`Refused`](Self::Refused) | connection refused (`ECONNREFUSED`) on every endpoint |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// Answer with this status and a Stytch error body (`too_many_requests` for 429,
    /// `internal_server_error` for 500, …), with a `Retry-After` header when given (seconds).
    Status {
        /// HTTP status code.
        status: u16,
        /// `Retry-After` in seconds.
        retry_after: Option<u64>,
    },
    /// Close the connection without answering: an orderly close (FIN), which clients report
    /// as "connection closed before the message completed". The name is historical (control
    /// API: `close`, or `connection_reset`); for a real TCP reset use [`Rst`](Self::Rst).
    ConnectionReset,
    /// Abort the connection without answering with a TCP RST (`SO_LINGER` 0), which clients
    /// report as "connection reset by peer". Control API: `rst`.
    Rst,
    /// Answer 200 with a body that is not valid JSON.
    MalformedBody,
    /// Answer 200 announcing a longer body than is sent, then close the connection.
    TruncatedBody,
    /// Answer normally, but send the body one byte at a time with `interval` before each byte
    /// (the status and headers, with `Content-Length`, go out at once). Control API:
    /// `{"type": "trickle", "interval_millis": 50}`.
    Trickle {
        /// Delay before each byte of the body.
        interval: Duration,
    },
    /// Read the request and never answer; the connection stays open until the client gives
    /// up or the emulator stops. Control API: `hang`.
    Hang,
    /// Refuse connections: the emulator closes its listening socket at once (and, after
    /// answering requests already in flight, its open connections), so that connects get
    /// `ECONNREFUSED`; it listens again on the same port after `duration`, or, when `None`,
    /// once [`Emulator::clear_faults`](crate::Emulator::clear_faults) or
    /// [`Emulator::accept_connections`](crate::Emulator::accept_connections) is called.
    ///
    /// The emulator is one port, so this applies to every endpoint (the control API
    /// included) from the moment it is injected: the endpoint and count given to
    /// [`Emulator::inject_fault`](crate::Emulator::inject_fault) are ignored, and requests
    /// that never arrive are not counted. Control API: `{"type": "refused", "millis": 500}`
    /// (a duration is required there, since the control API itself becomes unreachable).
    Refused {
        /// How long to refuse; `None`: until cleared through the Rust API.
        duration: Option<Duration>,
    },
}

/// Parts per million: the unit of a fault rate.
const MILLION: u64 = 1_000_000;

/// A fault shown on a steady fraction of an endpoint's calls (after its queued faults).
#[derive(Debug)]
struct Rate {
    fault: Fault,
    /// Calls in a million that show it.
    per_million: u64,
    /// Calls of the endpoint since the rate was set: the `n`th shows the fault when
    /// `n * per_million / MILLION` steps up, so the faults are spread evenly and exactly.
    calls: u64,
}

/// Queued faults, fault rates and exact request counts, per endpoint.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    queues: Mutex<[VecDeque<(Fault, usize)>; ENDPOINTS]>,
    rates: Mutex<[Option<Rate>; ENDPOINTS]>,
    counts: [AtomicUsize; ENDPOINTS],
    injected: [AtomicUsize; ENDPOINTS],
}

impl Faults {
    /// Queues `fault` for the next `times` calls of `endpoint` (after faults already queued).
    pub(crate) fn inject(&self, endpoint: EmulatorEndpoint, fault: Fault, times: usize) {
        if times == 0 {
            return;
        }
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queues[endpoint.index()].push_back((fault, times));
    }

    /// Shows `fault` on `percent` % of the calls of `endpoint` from now on (0 stops it),
    /// spread evenly: at 1 %, the 100th, 200th, … call. Queued faults come first.
    pub(crate) fn set_rate(&self, endpoint: EmulatorEndpoint, fault: Fault, percent: f64) {
        // `as` saturates, and NaN becomes 0: any input gives a rate within 0..=100 %.
        let per_million = ((percent * 10_000.0).round() as u64).min(MILLION);
        let mut rates = self
            .rates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rates[endpoint.index()] = (per_million > 0).then_some(Rate {
            fault,
            per_million,
            calls: 0,
        });
    }

    /// Drops every queued fault and fault rate (counts are kept).
    pub(crate) fn clear(&self) {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for queue in queues.iter_mut() {
            queue.clear();
        }
        drop(queues);
        let mut rates = self
            .rates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *rates = Default::default();
    }

    /// Counts one call of `endpoint` and returns the fault it must show, if any.
    pub(crate) fn on_call(&self, endpoint: EmulatorEndpoint) -> Option<Fault> {
        self.counts[endpoint.index()].fetch_add(1, Ordering::Relaxed);
        let fault = self
            .next_queued(endpoint)
            .or_else(|| self.next_rated(endpoint));
        if fault.is_some() {
            self.injected[endpoint.index()].fetch_add(1, Ordering::Relaxed);
        }
        fault
    }

    fn next_queued(&self, endpoint: EmulatorEndpoint) -> Option<Fault> {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let queue = &mut queues[endpoint.index()];
        let (fault, left) = queue.front_mut()?;
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            queue.pop_front();
        }
        Some(fault)
    }

    fn next_rated(&self, endpoint: EmulatorEndpoint) -> Option<Fault> {
        let mut rates = self
            .rates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rate = rates[endpoint.index()].as_mut()?;
        let before = rate.calls * rate.per_million / MILLION;
        rate.calls += 1;
        (rate.calls * rate.per_million / MILLION > before).then(|| rate.fault.clone())
    }

    /// Faults shown so far on calls of `endpoint` (queued and rated; refusals not counted).
    pub(crate) fn injected(&self, endpoint: EmulatorEndpoint) -> usize {
        self.injected[endpoint.index()].load(Ordering::Relaxed)
    }

    /// Calls of `endpoint` received so far.
    pub(crate) fn count(&self, endpoint: EmulatorEndpoint) -> usize {
        self.counts[endpoint.index()].load(Ordering::Relaxed)
    }

    /// `(endpoint, count)` for every endpoint.
    pub(crate) fn counts(&self) -> Vec<(EmulatorEndpoint, usize)> {
        EmulatorEndpoint::ALL
            .into_iter()
            .map(|e| (e, self.count(e)))
            .collect()
    }
}

/// The `error_type` and `error_message` Stytch uses for a status.
pub(crate) fn status_error(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("bad_request", "The request was malformed."),
        401 => ("unauthorized_credentials", "Unauthorized credentials."),
        403 => ("forbidden", "Forbidden."),
        404 => ("not_found", "Not found."),
        429 => ("too_many_requests", "Too many requests have been made."),
        502 => ("bad_gateway", "Bad gateway."),
        503 => (
            "service_unavailable",
            "The service is temporarily unavailable.",
        ),
        504 => ("gateway_timeout", "Gateway timeout."),
        _ => (
            "internal_server_error",
            "Oops, something seems to have gone wrong, please reach out to support@stytch.com to let us know what went wrong.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_to_the_next_n_calls_in_order() {
        // If this broke, injected faults would leak into later calls or vanish early.
        let f = Faults::default();
        f.inject(EmulatorEndpoint::Revoke, Fault::ConnectionReset, 2);
        f.inject(EmulatorEndpoint::Revoke, Fault::MalformedBody, 1);
        assert_eq!(f.on_call(EmulatorEndpoint::Authenticate), None);
        assert_eq!(
            f.on_call(EmulatorEndpoint::Revoke),
            Some(Fault::ConnectionReset)
        );
        assert_eq!(
            f.on_call(EmulatorEndpoint::Revoke),
            Some(Fault::ConnectionReset)
        );
        assert_eq!(
            f.on_call(EmulatorEndpoint::Revoke),
            Some(Fault::MalformedBody)
        );
        assert_eq!(f.on_call(EmulatorEndpoint::Revoke), None);
        assert_eq!(f.count(EmulatorEndpoint::Revoke), 4);
        assert_eq!(f.count(EmulatorEndpoint::Authenticate), 1);
    }

    #[test]
    fn a_fault_rate_fails_exactly_that_share_of_calls_spread_evenly() {
        // If this broke, a soak's "1 % of Stytch calls fail" would fail another share, or
        // in bursts, and its check of the 503s against the injected faults would be wrong.
        let f = Faults::default();
        let fault = Fault::Status {
            status: 503,
            retry_after: None,
        };
        f.set_rate(EmulatorEndpoint::Authenticate, fault.clone(), 1.0);
        let shown: Vec<usize> = (1..=1000)
            .filter(|_| f.on_call(EmulatorEndpoint::Authenticate).is_some())
            .collect();
        assert_eq!(shown, (1..=10).map(|k| k * 100).collect::<Vec<_>>());
        assert_eq!(f.injected(EmulatorEndpoint::Authenticate), 10);
        assert_eq!(
            f.on_call(EmulatorEndpoint::Revoke),
            None,
            "other endpoints untouched"
        );
        // Queued faults come first and are counted too.
        f.inject(EmulatorEndpoint::Authenticate, Fault::Rst, 1);
        assert_eq!(f.on_call(EmulatorEndpoint::Authenticate), Some(Fault::Rst));
        assert_eq!(f.injected(EmulatorEndpoint::Authenticate), 11);
        // 100 % fails every call; clearing stops the rate.
        f.set_rate(EmulatorEndpoint::Revoke, fault.clone(), 100.0);
        assert_eq!(f.on_call(EmulatorEndpoint::Revoke), Some(fault));
        f.clear();
        assert!((0..1000).all(|_| f.on_call(EmulatorEndpoint::Revoke).is_none()));
        assert!((0..1000).all(|_| f.on_call(EmulatorEndpoint::Authenticate).is_none()));
    }

    #[test]
    fn endpoint_names_round_trip() {
        // If this broke, the HTTP control API could not address endpoints.
        for e in EmulatorEndpoint::ALL {
            assert_eq!(EmulatorEndpoint::from_name(e.name()), Some(e));
        }
        assert_eq!(status_error(429).0, "too_many_requests");
    }
}
