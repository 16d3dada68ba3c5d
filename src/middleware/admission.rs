//! Admission: from a request's credential (and its route's rule) to who is admitted, a
//! member or an M2M client, or the rejection. [`admit_now`] decides a cache hit without
//! waiting; [`admit_later`] everything else (a miss, a policy to fetch, an access token to
//! verify). A route admits machines only when its rule says so, and only from a bearer JWT
//! (a browser's cookie is never a machine's credential).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tracing::Instrument;

use super::rejection::{Rejection, RejectionKind, retry_after};
use super::shared::Shared;
use crate::authz::Decision;
use crate::authz::rules::RouteRule;
use crate::credential::{CacheKey, Credential};
use crate::extract::Found;
use crate::machine::MachineClient;
use crate::store::cache::CachedSession;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Who a request was admitted as.
pub(crate) enum Admitted {
    /// A member's session.
    Member(Arc<CachedSession>),
    /// An M2M client, on a route whose rule admits machines.
    Machine(MachineClient),
}

/// A request's authorization rule, and what deciding it needs from the request.
pub(crate) struct RuleCtx {
    pub(crate) rule: Arc<RouteRule>,
    /// The value of the rule's organization parameter.
    pub(crate) organization: Option<String>,
    /// Where a browser is sent for a step-up (`return_to` included): a browser navigation on
    /// a rule with a step-up page.
    pub(crate) step_up_page: Option<String>,
}

impl RuleCtx {
    /// A copy for the lookup future (the rule is shared).
    fn copy(&self) -> Self {
        Self {
            rule: Arc::clone(&self.rule),
            organization: self.organization.clone(),
            step_up_page: self.step_up_page.clone(),
        }
    }
}

/// Whether this request may be a machine's: its rule admits machines and its credential is
/// a JWT that did not come from a cookie.
fn may_be_machine(shared: &Shared, found: &Found, rule: Option<&RuleCtx>) -> bool {
    rule.is_some_and(|r| r.rule.rule.principals.machines())
        && found.credential.is_jwt()
        && found.cookie_name(&shared.sources).is_none()
}

/// The admission of a cache hit whose decision needs nothing fetched; `None` sends the
/// request to [`admit_later`].
pub(crate) fn admit_now(
    shared: &Shared,
    found: &Found,
    rule: Option<&RuleCtx>,
    key: CacheKey,
    path: &str,
) -> Option<Result<Admitted, Rejection>> {
    if may_be_machine(shared, found, rule) {
        let machine = shared.engine.store.machines.cached_now(&key)?;
        return Some(machine_decided(shared, rule?, machine));
    }
    let entry = shared
        .engine
        .authenticator
        .cached(&key, &found.credential, path)?;
    match rule {
        None => Some(Ok(Admitted::Member(entry))),
        // A rule whose policy is not loaded yet needs the asynchronous path (it fetches).
        Some(rule) => shared
            .authorizer
            .decide_now(&rule.rule, &entry.session, rule.organization.as_deref())
            .map(|decision| member_decided(shared, rule, key, entry, decision)),
    }
}

/// The admission of everything [`admit_now`] could not decide, in a `stytch_auth` span.
pub(crate) fn admit_later(
    shared: Arc<Shared>,
    found: &Found,
    rule: Option<&RuleCtx>,
    key: CacheKey,
    path: &str,
) -> BoxFuture<Result<Admitted, Rejection>> {
    let span = tracing::debug_span!(
        "stytch_auth",
        path = %path,
        credential = found.credential.kind(),
        outcome = tracing::field::Empty,
        request_id = tracing::field::Empty,
    );
    let credential = found.credential.clone();
    let machine = may_be_machine(&shared, found, rule);
    let rule = rule.map(RuleCtx::copy);
    Box::pin(
        async move {
            let result = if machine {
                machine_or_member(&shared, rule.as_ref(), key, &credential).await
            } else {
                member(&shared, rule.as_ref(), key, &credential).await
            };
            record(&result);
            result
        }
        .instrument(span),
    )
}

/// The outcome in the current `stytch_auth` span.
fn record(result: &Result<Admitted, Rejection>) {
    let span = tracing::Span::current();
    match result {
        Ok(Admitted::Member(entry)) => {
            span.record("outcome", "authenticated");
            if let Some(id) = &entry.request_id {
                span.record("request_id", &*id.as_str());
            }
        }
        Ok(Admitted::Machine(_)) => {
            span.record("outcome", "authenticated_machine");
        }
        Err(rejection) => {
            span.record("outcome", rejection.kind().as_str());
            if let Some(id) = rejection.stytch_request_id() {
                span.record("request_id", id);
            }
        }
    }
}

/// A route admitting machines: an M2M access token is verified (and its scopes checked);
/// anything else goes the member's way when the rule admits members too, else is refused.
async fn machine_or_member(
    shared: &Shared,
    rule: Option<&RuleCtx>,
    key: CacheKey,
    credential: &Credential,
) -> Result<Admitted, Rejection> {
    let found = shared
        .engine
        .authenticator
        .authenticate_machine(key, credential)
        .await
        .map_err(|err| Rejection::from(&*err))?;
    match (found, rule) {
        (Some(machine), Some(rule)) => machine_decided(shared, rule, machine),
        (None, Some(rule)) if !rule.rule.rule.principals.members() => {
            Err(Rejection::new(RejectionKind::InvalidCredential))
        }
        (_, rule) => member(shared, rule, key, credential).await,
    }
}

/// A member's session: authenticated, then its rule decided (fetching the policy if needed).
async fn member(
    shared: &Shared,
    rule: Option<&RuleCtx>,
    key: CacheKey,
    credential: &Credential,
) -> Result<Admitted, Rejection> {
    let entry = shared
        .engine
        .authenticator
        .authenticate_keyed(key, credential)
        .await
        .map_err(|err| Rejection::from(&*err))?;
    let Some(rule) = rule else {
        return Ok(Admitted::Member(entry));
    };
    let decision = shared
        .authorizer
        .decide(&rule.rule, &entry.session, rule.organization.as_deref())
        .await;
    member_decided(shared, rule, key, entry, decision)
}

/// A machine admitted by `rule` (its scopes against the permission), or the rejection; the
/// decision counted.
fn machine_decided(
    shared: &Shared,
    rule: &RuleCtx,
    machine: MachineClient,
) -> Result<Admitted, Rejection> {
    let decision = shared.authorizer.decide_machine(&rule.rule, &machine);
    rule.rule.count(decision);
    if decision == Decision::Allow {
        return Ok(Admitted::Machine(machine));
    }
    tracing::info!(
        rule = &*rule.rule.label,
        outcome = decision.as_str(),
        client_id = %machine.client_id,
        "M2M client refused by the route's rule"
    );
    Err(Rejection::new(RejectionKind::InsufficientPermission))
}

/// The authenticated `entry` admitted by `decision` on its route's rule, or the rejection;
/// the decision counted. A session refused for a missing step-up is asked of Stytch again on
/// its next request (an opaque token keeps its key when the member steps up), at most once
/// every few seconds.
fn member_decided(
    shared: &Shared,
    rule: &RuleCtx,
    key: CacheKey,
    entry: Arc<CachedSession>,
    decision: Decision,
) -> Result<Admitted, Rejection> {
    rule.rule.count(decision);
    let rejection = match decision {
        Decision::Allow => return Ok(Admitted::Member(entry)),
        Decision::PermissionDenied => Rejection::new(RejectionKind::InsufficientPermission),
        Decision::WrongOrganization => Rejection::new(RejectionKind::WrongOrganization),
        Decision::Unavailable => {
            Rejection::new(RejectionKind::StytchUnavailable).with_retry_after(retry_after(None))
        }
        Decision::StepUp { max_age } => {
            shared.engine.authenticator.recheck_soon(key, &entry);
            Rejection::step_up(max_age, rule.step_up_page.clone())
        }
    };
    tracing::info!(
        rule = &*rule.rule.label,
        outcome = decision.as_str(),
        member_id = %entry.session.member_id,
        "refused by the route's rule"
    );
    Err(rejection)
}
