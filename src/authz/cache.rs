//! [`PolicyCache`]: Stytch's RBAC policy of the project and the custom roles of the
//! organizations seen, kept here so that a check costs a map lookup.
//!
//! Loaded at start (when a rule needs it) and refreshed in the background every
//! [`PolicyConfig::refresh_every`](super::PolicyConfig::refresh_every) (5 min, as Stytch's
//! Node and Go SDKs); an organization's roles are fetched on its first use and refreshed
//! alike. One fetch at a time. A failed refresh keeps the last good policy (warning, and
//! `stytch_authz_policy_refresh_total{result="error"}`); a policy never loaded answers
//! "unavailable", and after a failure nothing is asked again for a second (a flood of
//! requests during an outage makes one Stytch call a second, not one each).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use super::policy::Compiled;
use crate::client::{OrgPolicy, StytchClient};
use crate::metrics;
use crate::session::StytchId;

/// The hasher of the organizations' map: read on every authorized request.
type Hasher = foldhash::fast::RandomState;

/// After a failed fetch, a missing policy is not asked for again for this long.
const COOLDOWN: Duration = Duration::from_secs(1);
/// Longest wait between two tries while the project's policy was never loaded.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A policy, and when it was loaded.
#[derive(Debug, Clone)]
struct Loaded {
    policy: Arc<Compiled>,
    at: Instant,
}

/// What is loaded.
#[derive(Debug, Default)]
struct Policies {
    project: Option<Loaded>,
    organizations: HashMap<String, Loaded, Hasher>,
}

/// The policy could not be loaded (Stytch unreachable, or refusing) and none was before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

/// The project's policy and the organizations' custom roles, shared by every clone of a
/// layer.
#[derive(Debug)]
pub(crate) struct PolicyCache {
    client: StytchClient,
    refresh_every: Duration,
    max_organizations: usize,
    /// The project's policy and the organizations' roles, under one lock (one read per
    /// decision).
    policies: RwLock<Policies>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    /// When a fetch of a missing policy last failed, by key (`""` for the project's).
    failed: RwLock<HashMap<String, Instant>>,
    started: AtomicBool,
}

impl PolicyCache {
    pub(crate) fn new(
        client: StytchClient,
        refresh_every: Duration,
        max_organizations: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            refresh_every,
            max_organizations,
            policies: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
            failed: RwLock::default(),
            started: AtomicBool::new(false),
        })
    }

    /// Starts the background refresh (the first load at once) if it was not, within a Tokio
    /// runtime; outside one, the first use loads it.
    pub(crate) fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(refresh(Arc::downgrade(self)));
            }
            Err(_) => self.started.store(false, Ordering::Release),
        }
    }

    /// The project's policy, if loaded.
    pub(crate) fn project_now(&self) -> Option<Arc<Compiled>> {
        read(&self.policies)
            .project
            .as_ref()
            .map(|l| Arc::clone(&l.policy))
    }

    /// An organization's custom roles, if loaded.
    pub(crate) fn organization_now(&self, organization_id: &str) -> Option<Arc<Compiled>> {
        read(&self.policies)
            .organizations
            .get(organization_id)
            .map(|l| Arc::clone(&l.policy))
    }

    /// The project's policy, loaded now if it never was.
    pub(crate) async fn project(self: &Arc<Self>) -> Result<Arc<Compiled>, Unavailable> {
        self.start();
        if let Some(policy) = self.project_now() {
            return Ok(policy);
        }
        self.load_project(false).await
    }

    /// An organization's custom roles, fetched now on first use.
    pub(crate) async fn organization(
        self: &Arc<Self>,
        organization_id: &str,
    ) -> Result<Arc<Compiled>, Unavailable> {
        self.start();
        if let Some(policy) = self.organization_now(organization_id) {
            return Ok(policy);
        }
        self.load_organization(organization_id, false).await
    }

    /// Whether `roles` grant `action` on `resource` by what is loaded, under the read lock:
    /// `None` when that cannot be told yet (the project's policy not loaded, or, when the
    /// project's roles do not grant it, `organization_id`'s custom roles not loaded). A grant
    /// by the project's roles needs no organization lookup: an organization's roles only add.
    pub(crate) fn allows_loaded(
        &self,
        organization_id: &StytchId,
        roles: &[String],
        resource: &str,
        action: &str,
    ) -> Option<bool> {
        let policies = read(&self.policies);
        let project = &policies.project.as_ref()?.policy;
        if super::policy::allows(project, None, roles, resource, action) {
            return Some(true);
        }
        // Rendered only when the project's policy did not decide (the cache hit's common
        // case does not).
        let org = &policies
            .organizations
            .get(&*organization_id.as_str())?
            .policy;
        Some(super::policy::allows(org, None, roles, resource, action))
    }

    /// How long ago the project's policy was loaded (`None`: never).
    pub(crate) fn age(&self) -> Option<Duration> {
        read(&self.policies)
            .project
            .as_ref()
            .map(|l| l.at.elapsed())
    }

    /// Loads the project's policy (`refresh`: even if one is loaded).
    async fn load_project(&self, refresh: bool) -> Result<Arc<Compiled>, Unavailable> {
        if !refresh && self.cooling_down("") {
            return Err(Unavailable);
        }
        let _one = self.fetching.lock().await;
        if !refresh && let Some(policy) = self.project_now() {
            return Ok(policy);
        }
        match self.client.rbac_policy().await {
            Ok(response) => {
                let policy = Arc::new(Compiled::project(&response.policy));
                write(&self.policies).project = Some(Loaded {
                    policy: Arc::clone(&policy),
                    at: Instant::now(),
                });
                write(&self.failed).remove("");
                metrics::policy_refresh("project", "ok");
                metrics::policy_age(Duration::ZERO);
                Ok(policy)
            }
            Err(err) => {
                metrics::policy_refresh("project", "error");
                write(&self.failed).insert(String::new(), Instant::now());
                match self.project_now() {
                    Some(policy) => {
                        tracing::warn!(error = %err, "RBAC policy refresh failed: the last good policy stays");
                        Ok(policy)
                    }
                    None => {
                        tracing::warn!(error = %err, "RBAC policy not loaded: authorized routes answer 503");
                        Err(Unavailable)
                    }
                }
            }
        }
    }

    /// Loads an organization's custom roles (`refresh`: even if loaded). An organization
    /// Stytch does not know has none.
    async fn load_organization(
        &self,
        organization_id: &str,
        refresh: bool,
    ) -> Result<Arc<Compiled>, Unavailable> {
        if !refresh && self.cooling_down(organization_id) {
            return Err(Unavailable);
        }
        let _one = self.fetching.lock().await;
        if !refresh && let Some(policy) = self.organization_now(organization_id) {
            return Ok(policy);
        }
        let org_policy = match self.client.organization_policy(organization_id).await {
            Ok(response) => Ok(response.org_policy),
            Err(err) if err.api_error().is_some_and(|e| e.status == 404) => {
                Ok(OrgPolicy::default())
            }
            Err(err) => Err(err),
        };
        match org_policy {
            Ok(org_policy) => {
                let policy = Arc::new(Compiled::organization(&org_policy));
                self.keep_organization(organization_id, Arc::clone(&policy));
                write(&self.failed).remove(organization_id);
                metrics::policy_refresh("organization", "ok");
                Ok(policy)
            }
            Err(err) => {
                metrics::policy_refresh("organization", "error");
                write(&self.failed).insert(organization_id.to_owned(), Instant::now());
                match self.organization_now(organization_id) {
                    Some(policy) => {
                        tracing::warn!(error = %err, "organization roles refresh failed: the last good ones stay");
                        Ok(policy)
                    }
                    None => {
                        tracing::warn!(error = %err, "organization roles not loaded: its authorized routes answer 503");
                        Err(Unavailable)
                    }
                }
            }
        }
    }

    /// Keeps `policy` for `organization_id`; beyond the bound, the one loaded longest ago
    /// goes (it is fetched again on its next use).
    fn keep_organization(&self, organization_id: &str, policy: Arc<Compiled>) {
        let mut policies = write(&self.policies);
        let organizations = &mut policies.organizations;
        if organizations.len() >= self.max_organizations
            && !organizations.contains_key(organization_id)
            && let Some(oldest) = organizations
                .iter()
                .min_by_key(|(_, l)| l.at)
                .map(|(k, _)| k.clone())
        {
            organizations.remove(&oldest);
        }
        let at = Instant::now();
        organizations.insert(organization_id.to_owned(), Loaded { policy, at });
    }

    fn cooling_down(&self, key: &str) -> bool {
        read(&self.failed)
            .get(key)
            .is_some_and(|at| at.elapsed() < COOLDOWN)
    }

    /// Refreshes the project's policy and every organization's roles loaded here.
    async fn refresh_all(&self) {
        let _ = self.load_project(true).await;
        let organizations: Vec<String> =
            read(&self.policies).organizations.keys().cloned().collect();
        for organization_id in organizations {
            let _ = self.load_organization(&organization_id, true).await;
        }
    }
}

/// The background refresh: loads at once, then every `refresh_every` (sooner, with a
/// backoff, while the project's policy was never loaded). Ends with the layer.
async fn refresh(cache: Weak<PolicyCache>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(this) = cache.upgrade() else { return };
        let due = this
            .age()
            .is_none_or(|age| age >= this.refresh_every.saturating_sub(Duration::from_millis(50)));
        if due {
            this.refresh_all().await;
        }
        let wait = match this.age() {
            Some(age) => {
                metrics::policy_age(age);
                backoff = Duration::from_secs(1);
                this.refresh_every
                    .saturating_sub(age)
                    .min(Duration::from_secs(30))
            }
            None => {
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        drop(this);
        tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Every update is one assignment: a panic elsewhere leaves nothing half-written.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
