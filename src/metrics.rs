//! Every metric this crate records, by name, and the one function that records each.
//!
//! Metrics go through the [`metrics`] facade: install any recorder (the gateway installs
//! Prometheus's). Label values are fixed strings, never an id or a credential.
//!
//! The counters every cache hit increments (`stytch_auth_cache_total{result="hit"}`,
//! `stytch_auth_requests_total{outcome="authenticated"}`) and a rule's decision counters are
//! registered with the recorder on a layer's first use of them, then incremented through the
//! handle: install the recorder before the layer serves requests.

use std::sync::OnceLock;
use std::time::Duration;

/// A counter with fixed labels, registered with the recorder installed at its first
/// increment: then counting is one increment, where `metrics::counter!` hashes its key and
/// asks the recorder for the counter on every call (a few hundred instructions, twice per
/// cache hit).
pub(crate) struct LazyCounter {
    counter: OnceLock<metrics::Counter>,
    register: fn() -> metrics::Counter,
}

impl LazyCounter {
    const fn new(register: fn() -> metrics::Counter) -> Self {
        Self {
            counter: OnceLock::new(),
            register,
        }
    }

    /// Adds one.
    pub(crate) fn increment(&self) {
        self.counter.get_or_init(self.register).increment(1);
    }
}

impl std::fmt::Debug for LazyCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyCounter").finish_non_exhaustive()
    }
}

/// Counter of requests the layer decided, label `outcome` (`authenticated`, `anonymous`, or a
/// [`RejectionKind`](crate::service::RejectionKind) code).
pub const AUTH_REQUESTS: &str = "stytch_auth_requests_total";
/// Counter of requests admitted, by who: label `principal` (`member`: a Stytch member
/// session; `machine`: an M2M access token on a route that admits machines).
pub const AUTH_PRINCIPALS: &str = "stytch_auth_principals_total";
/// Counter of cache lookups, label `result` (`hit`, `miss`, `negative_hit`).
pub const AUTH_CACHE: &str = "stytch_auth_cache_total";
/// Counter of cache evictions, label `cause` (`expired`, `revoked`, `size`, `replaced`).
pub const AUTH_CACHE_EVICTIONS: &str = "stytch_auth_cache_evictions_total";
/// Counter of calls to Stytch, labels `endpoint` and `status` (HTTP status or `error`).
pub const API_REQUESTS: &str = "stytch_api_requests_total";
/// Histogram of the duration of one call to Stytch, in seconds, label `endpoint`.
pub const API_REQUEST_DURATION: &str = "stytch_api_request_duration_seconds";
/// Counter of retries of calls to Stytch not made because the retry budget was spent, label
/// `endpoint`.
pub const API_RETRY_BUDGET_EXHAUSTED: &str = "stytch_api_retry_budget_exhausted_total";
/// Counter of JWKS fetches, labels `outcome` and `reason`.
pub const JWKS_FETCHES: &str = "stytch_jwks_fetches_total";
/// Counter of RSA signature checks run by the local JWT verifier, label `result` (`valid`,
/// `invalid`) (feature `jwt`). A JWT served from the session cache runs none, so this counts
/// distinct JWTs, not requests.
pub const JWT_VERIFICATIONS: &str = "stytch_jwt_verifications_total";
/// Counter of revocations, labels `target` (`session`, `member`, `credential`, `client`: an
/// M2M client's cut-off, `result` `cut_off` here or `cut_off_by_peer` through the bus) and
/// `result`.
pub const REVOCATIONS: &str = "stytch_revocations_total";
/// Gauge of revocations Stytch has not confirmed yet.
pub const REVOCATIONS_PENDING: &str = "stytch_revocations_pending";
/// Counter of background retries of pending revocations, label `result`.
pub const REVOCATIONS_RETRIED: &str = "stytch_revocations_retried_total";
/// Counter of logouts, labels `result` and `everywhere`.
pub const LOGOUTS: &str = "stytch_logouts_total";
/// Counter of forced sign-outs after the app's admin actions, label `result`.
pub const FORCED_SIGNOUTS: &str = "stytch_forced_signouts_total";
/// Counter of Stytch webhooks received, labels `type` (`scim.member.delete`, … for member and
/// organization events; `other`; `unverified` when the signature failed) and `outcome`
/// (`rejected`; `verified` for every verified one, then `applied`, `ignored` or
/// `duplicate`).
pub const WEBHOOKS: &str = "stytch_webhooks_total";

/// Counter of authorization decisions on routes with a rule, labels `rule` (the route
/// pattern as configured) and `outcome` (`allowed`, `permission_denied`,
/// `wrong_organization`, `mfa_required`, `reauthentication_required`, `unavailable`).
pub const AUTHZ_DECISIONS: &str = "stytch_authz_decisions_total";
/// Counter of RBAC policy fetches, labels `kind` (`project`, `organization`) and `result`
/// (`ok`, `error`).
pub const AUTHZ_POLICY_REFRESHES: &str = "stytch_authz_policy_refresh_total";
/// Gauge of how old the project's RBAC policy is, in seconds (updated by the background
/// refresh at least every 30 s).
pub const AUTHZ_POLICY_AGE: &str = "stytch_authz_policy_age_seconds";

pub(crate) fn auth_request(outcome: &'static str) {
    metrics::counter!(AUTH_REQUESTS, "outcome" => outcome).increment(1);
}

/// `auth_request("authenticated")`, counted on every admitted request: registered once per
/// layer (see [`LazyCounter`]).
pub(crate) const fn authenticated() -> LazyCounter {
    LazyCounter::new(|| metrics::counter!(AUTH_REQUESTS, "outcome" => "authenticated"))
}

/// `stytch_auth_principals_total{principal="member"}`, counted on every request admitted with
/// a member's session: registered once per layer (see [`LazyCounter`]).
pub(crate) const fn admitted_member() -> LazyCounter {
    LazyCounter::new(|| metrics::counter!(AUTH_PRINCIPALS, "principal" => "member"))
}

/// `stytch_auth_principals_total{principal="machine"}`, for requests admitted with an M2M
/// access token.
pub(crate) const fn admitted_machine() -> LazyCounter {
    LazyCounter::new(|| metrics::counter!(AUTH_PRINCIPALS, "principal" => "machine"))
}

pub(crate) fn cache_lookup(result: &'static str) {
    metrics::counter!(AUTH_CACHE, "result" => result).increment(1);
}

/// `cache_lookup("hit")`, counted on every cache hit: registered once per layer (see
/// [`LazyCounter`]).
pub(crate) const fn cache_hit() -> LazyCounter {
    LazyCounter::new(|| metrics::counter!(AUTH_CACHE, "result" => "hit"))
}

pub(crate) fn cache_eviction(cause: &'static str) {
    metrics::counter!(AUTH_CACHE_EVICTIONS, "cause" => cause).increment(1);
}

pub(crate) fn api_request(endpoint: &'static str, status: &str, elapsed: Duration) {
    metrics::counter!(API_REQUESTS, "endpoint" => endpoint, "status" => status.to_owned())
        .increment(1);
    metrics::histogram!(API_REQUEST_DURATION, "endpoint" => endpoint).record(elapsed.as_secs_f64());
}

pub(crate) fn retry_budget_exhausted(endpoint: &'static str) {
    metrics::counter!(API_RETRY_BUDGET_EXHAUSTED, "endpoint" => endpoint).increment(1);
}

#[cfg(feature = "jwt")]
pub(crate) fn jwks_fetch(outcome: &'static str, reason: &'static str) {
    metrics::counter!(JWKS_FETCHES, "outcome" => outcome, "reason" => reason).increment(1);
}

/// One RSA check of a session JWT; each label value a `static` key, as [`authenticated`].
#[cfg(feature = "jwt")]
pub(crate) fn jwt_verification(valid: bool) {
    if valid {
        metrics::counter!(JWT_VERIFICATIONS, "result" => "valid").increment(1);
    } else {
        metrics::counter!(JWT_VERIFICATIONS, "result" => "invalid").increment(1);
    }
}

pub(crate) fn revocation(target: &'static str, result: &'static str) {
    metrics::counter!(REVOCATIONS, "target" => target, "result" => result).increment(1);
}

pub(crate) fn revocations_pending(len: usize) {
    metrics::gauge!(REVOCATIONS_PENDING).set(len as f64);
}

pub(crate) fn revocation_retried(result: &'static str) {
    metrics::counter!(REVOCATIONS_RETRIED, "result" => result).increment(1);
}

pub(crate) fn logout(result: &'static str, everywhere: bool) {
    let everywhere = if everywhere { "true" } else { "false" };
    metrics::counter!(LOGOUTS, "result" => result, "everywhere" => everywhere).increment(1);
}

pub(crate) fn webhook(kind: &'static str, outcome: &'static str) {
    metrics::counter!(WEBHOOKS, "type" => kind, "outcome" => outcome).increment(1);
}

pub(crate) fn forced_signout(result: &'static str) {
    metrics::counter!(FORCED_SIGNOUTS, "result" => result).increment(1);
}

/// Gauge of the revocation bus's state: 0 down, 1 connecting, 2 catching up, 3 live
/// (feature `redis`).
pub const BUS_STATE: &str = "stytch_bus_state";
/// Counter of messages written to the revocation bus, label `kind`.
pub const BUS_PUBLISHED: &str = "stytch_bus_published_total";
/// Counter of peers' messages read from the revocation bus, label `kind` (`unknown`: a
/// version or kind this instance does not apply).
pub const BUS_RECEIVED: &str = "stytch_bus_received_total";
/// Counter of malformed messages dropped by the revocation bus.
pub const BUS_MALFORMED: &str = "stytch_bus_malformed_total";
/// Counter of reconnections of the revocation bus's reader.
pub const BUS_RECONNECTS: &str = "stytch_bus_reconnects_total";
/// Counter of messages dropped because the bus's queue was full while Redis was down.
pub const BUS_DROPPED: &str = "stytch_bus_dropped_total";
/// Counter of messages written to the revocation bus again because Redis lost its data (its
/// epoch key changed, its log went back in time) or the primary changed: every revocation of
/// the window an instance knew.
pub const BUS_RESTORED: &str = "stytch_bus_restored_total";
/// Histogram of the time from a peer's write to this instance's read of a message, in
/// seconds (wall clocks of the two hosts).
pub const BUS_PROPAGATION: &str = "stytch_bus_propagation_seconds";
/// Counter of switches of the node serving the revocation bus's keys (a Sentinel or Redis
/// Cluster failover, the keys' slot moved): after each, the window is written again.
pub const BUS_PRIMARY_CHANGES: &str = "stytch_bus_primary_changes_total";
/// Gauge of when the revocation bus last switched primaries, in Unix seconds (absent before
/// the first switch).
pub const BUS_PRIMARY_CHANGED_AT: &str = "stytch_bus_primary_changed_timestamp_seconds";

#[cfg(feature = "redis")]
pub(crate) fn bus_state(state: u8) {
    metrics::gauge!(BUS_STATE).set(f64::from(state));
}

#[cfg(feature = "redis")]
pub(crate) fn bus_published(kind: &'static str) {
    metrics::counter!(BUS_PUBLISHED, "kind" => kind).increment(1);
}

#[cfg(feature = "redis")]
pub(crate) fn bus_received(kind: &'static str) {
    metrics::counter!(BUS_RECEIVED, "kind" => kind).increment(1);
}

#[cfg(feature = "redis")]
pub(crate) fn bus_malformed() {
    metrics::counter!(BUS_MALFORMED).increment(1);
}

#[cfg(feature = "redis")]
pub(crate) fn bus_reconnect() {
    metrics::counter!(BUS_RECONNECTS).increment(1);
}

#[cfg(feature = "redis")]
pub(crate) fn bus_dropped() {
    metrics::counter!(BUS_DROPPED).increment(1);
}

#[cfg(feature = "redis")]
pub(crate) fn bus_restored(messages: usize) {
    metrics::counter!(BUS_RESTORED).increment(messages as u64);
}

#[cfg(feature = "redis")]
pub(crate) fn bus_primary_changed(at: std::time::SystemTime) {
    metrics::counter!(BUS_PRIMARY_CHANGES).increment(1);
    let unix = at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    metrics::gauge!(BUS_PRIMARY_CHANGED_AT).set(unix);
}

#[cfg(feature = "redis")]
pub(crate) fn bus_propagation(elapsed: Duration) {
    metrics::histogram!(BUS_PROPAGATION).record(elapsed.as_secs_f64());
}

/// The decision counters of one rule, one per outcome in `outcomes`' order, registered with
/// the recorder installed now (a rule registers them on its first decision: counting one is
/// then an increment, not a key built and looked up).
pub(crate) fn authz_decision_counters<const N: usize>(
    rule: &std::sync::Arc<str>,
    outcomes: [&'static str; N],
) -> [metrics::Counter; N] {
    outcomes.map(|outcome| {
        let rule = metrics::SharedString::from(std::sync::Arc::clone(rule));
        metrics::counter!(AUTHZ_DECISIONS, "rule" => rule, "outcome" => outcome)
    })
}

pub(crate) fn policy_refresh(kind: &'static str, result: &'static str) {
    metrics::counter!(AUTHZ_POLICY_REFRESHES, "kind" => kind, "result" => result).increment(1);
}

pub(crate) fn policy_age(age: Duration) {
    metrics::gauge!(AUTHZ_POLICY_AGE).set(age.as_secs_f64());
}
