//! The local session cache: moka, keyed by SHA-256 of the credential, with per-entry expiry,
//! a separate negative cache, and exact secondary indexes member → entries, session →
//! entries and organization → entries (which also tell, for a member or session cached
//! here, its organization).

mod index;

use std::future::Future;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

use crate::credential::{CacheKey, SessionJwt};
use crate::session::{MemberSession, StytchId};

use index::{Entry, Index};

/// Settings of the session cache: start from [`CacheConfig::default`] and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Longest time a remotely authenticated session is trusted without asking Stytch again
    /// (default 60 s). Each entry also expires with its session, and a locally verified JWT
    /// entry with the JWT.
    pub max_ttl: Duration,
    /// Most entries kept (default 100 000).
    pub max_capacity: u64,
    /// How long a credential Stytch declared invalid is refused without asking again
    /// (default 60 s; a dead token never comes back to life).
    pub negative_ttl: Duration,
    /// Most negative entries kept, separately from good ones so a flood of junk cannot evict
    /// them (default 10 000).
    pub negative_capacity: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_ttl: Duration::from_secs(60),
            max_capacity: 100_000,
            negative_ttl: Duration::from_secs(60),
            negative_capacity: 10_000,
        }
    }
}

/// A cached authentication result: 88 bytes besides the session (a million are cached).
#[derive(Debug)]
pub(crate) struct CachedSession {
    /// The entry's key (the indexes find entries, revocations evict keys).
    pub(crate) key: CacheKey,
    pub(crate) session: MemberSession,
    /// A JWT freshly minted by Stytch for this credential (set back in the JWT cookie).
    /// Boxed: nearly always `None`, and a `SessionJwt` is 48 bytes.
    pub(crate) refreshed_jwt: Option<Box<SessionJwt>>,
    /// Stytch's request id of the authenticate call, when there was one (logged; a
    /// `StytchId`, so no allocation for Stytch's `request-id-…-<uuid>`).
    pub(crate) request_id: Option<StytchId>,
    /// [`stytch_checked_at`](Self::stytch_checked_at), in nanoseconds since the epoch.
    checked_at: Option<NonZeroU64>,
    /// [`ttl`](Self::ttl), in milliseconds.
    ttl_ms: u32,
}

impl CachedSession {
    /// An entry for `key`: `session`, served for `ttl` (at most 49 days) from its creation.
    pub(crate) fn new(
        key: CacheKey,
        session: MemberSession,
        ttl: Duration,
        refreshed_jwt: Option<Box<SessionJwt>>,
        request_id: Option<StytchId>,
        stytch_checked_at: Option<SystemTime>,
    ) -> Self {
        Self {
            key,
            session,
            refreshed_jwt,
            request_id,
            checked_at: stytch_checked_at.and_then(|at| {
                let nanos = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_nanos();
                NonZeroU64::new(u64::try_from(nanos).unwrap_or(u64::MAX))
            }),
            // Rounded down: an entry never outlives what it was given.
            ttl_ms: u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// How long the entry may be served from when it was created.
    pub(crate) fn ttl(&self) -> Duration {
        Duration::from_millis(u64::from(self.ttl_ms))
    }

    /// When the authenticate call that said this session is alive was sent (`None` for a
    /// locally verified JWT): a member-wide revocation Stytch confirmed before then did not
    /// end it.
    pub(crate) fn stytch_checked_at(&self) -> Option<SystemTime> {
        self.checked_at
            .map(|nanos| SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos.get()))
    }

    /// The request id as logged (empty when there was none).
    pub(crate) fn logged_request_id(&self) -> impl std::fmt::Display + '_ {
        struct Logged<'a>(Option<&'a StytchId>);
        impl std::fmt::Display for Logged<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.map_or(Ok(()), |id| std::fmt::Display::fmt(id, f))
            }
        }
        Logged(self.request_id.as_ref())
    }
}

struct SessionExpiry;

impl Expiry<CacheKey, Arc<CachedSession>> for SessionExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedSession>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl())
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedSession>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        // The session's expiry could have changed: compute it again.
        Some(value.ttl())
    }
}

/// The caches' hasher. A key is already a SHA-256 digest; foldhash (randomly seeded per
/// process, so bucket placement stays unpredictable to whoever picks the credentials) costs a
/// fraction of the default SipHash on every lookup.
type KeyHasher = foldhash::fast::RandomState;

/// The cache shared by every clone of a layer.
pub(crate) struct SessionCache {
    entries: Cache<CacheKey, Arc<CachedSession>, KeyHasher>,
    negative: Cache<CacheKey, (), KeyHasher>,
    index: Arc<Mutex<Index>>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("entries", &self.entries.entry_count())
            .field("negative", &self.negative.entry_count())
            .finish()
    }
}

fn lock(index: &Mutex<Index>) -> std::sync::MutexGuard<'_, Index> {
    // The index holds no invariant a panic elsewhere could break half-way: keep using it.
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SessionCache {
    pub(crate) fn new(config: &CacheConfig) -> Self {
        let index = Arc::new(Mutex::new(Index::default()));
        let listener_index = Arc::clone(&index);
        let entries = Cache::builder()
            .max_capacity(config.max_capacity)
            .expire_after(SessionExpiry)
            .eviction_listener(
                move |_key: Arc<CacheKey>, value: Arc<CachedSession>, cause: RemovalCause| {
                    // The index holds this very entry (a replacement was added on its own).
                    lock(&listener_index).remove(&value);
                    if cause == RemovalCause::Replaced {
                        return;
                    }
                    let cause = match cause {
                        RemovalCause::Expired => "expired",
                        RemovalCause::Explicit => "revoked",
                        RemovalCause::Size => "size",
                        RemovalCause::Replaced => "replaced",
                    };
                    crate::metrics::cache_eviction(cause);
                },
            )
            .build_with_hasher(KeyHasher::default());
        let negative = Cache::builder()
            .max_capacity(config.negative_capacity)
            .time_to_live(config.negative_ttl)
            .build_with_hasher(KeyHasher::default());
        Self {
            entries,
            negative,
            index,
        }
    }

    /// The cached entry for `key`, if any.
    pub(crate) async fn get(&self, key: &CacheKey) -> Option<Arc<CachedSession>> {
        self.entries.get(key).await
    }

    /// Whether `key` was recently declared invalid.
    pub(crate) async fn is_negative(&self, key: &CacheKey) -> bool {
        self.negative.contains_key(key)
    }

    /// Records that `key` is invalid.
    pub(crate) async fn insert_negative(&self, key: CacheKey) {
        self.negative.insert(key, ()).await;
    }

    /// The entry for `key`, computing it with `init` on a miss. Concurrent misses of one key
    /// are coalesced into one `init`; errors are not cached.
    pub(crate) async fn get_or_try_insert<F, E>(
        &self,
        key: CacheKey,
        init: F,
    ) -> Result<Arc<CachedSession>, Arc<E>>
    where
        F: Future<Output = Result<Arc<CachedSession>, E>>,
        E: Send + Sync + 'static,
    {
        let index = &self.index;
        self.entries
            .try_get_with(key, async move {
                let value = init.await?;
                debug_assert_eq!(value.key, key);
                lock(index).add(&value);
                Ok(value)
            })
            .await
    }

    /// Inserts an entry directly.
    #[cfg(test)]
    pub(crate) async fn insert(&self, key: CacheKey, value: Arc<CachedSession>) {
        // The tests build entries without caring for their key: this one is `key`'s.
        let value = Arc::new(CachedSession::new(
            key,
            value.session.clone(),
            value.ttl(),
            value.refreshed_jwt.clone(),
            value.request_id.clone(),
            value.stytch_checked_at(),
        ));
        lock(&self.index).add(&value);
        self.entries.insert(key, value).await;
    }

    /// The organization of a member with a cached session, as authenticated (by Stytch or by
    /// a JWT Stytch signed).
    pub(crate) fn organization_of_member(&self, member_id: &str) -> Option<StytchId> {
        lock(&self.index)
            .by_member
            .first(&StytchId::new(member_id))
            .map(|owner| owner.session.organization_id().clone())
    }

    /// The member and organization of a cached session, as authenticated.
    pub(crate) fn owner_of_session(&self, member_session_id: &str) -> Option<(StytchId, StytchId)> {
        lock(&self.index)
            .by_session
            .first(&StytchId::new(member_session_id))
            .map(|owner| {
                (
                    owner.session.member_id.clone(),
                    owner.session.organization_id().clone(),
                )
            })
    }

    /// Removes every entry of one session and returns their keys. Costs time proportional to
    /// that session's entries.
    pub(crate) async fn evict_session(&self, member_session_id: &str) -> Vec<CacheKey> {
        let entries = lock(&self.index)
            .by_session
            .take(&StytchId::new(member_session_id));
        self.invalidate(entries).await
    }

    /// Removes every entry of one member and returns their keys. Costs time proportional to
    /// that member's entries.
    pub(crate) async fn evict_member(&self, member_id: &str) -> Vec<CacheKey> {
        let entries = lock(&self.index).by_member.take(&StytchId::new(member_id));
        self.invalidate(entries).await
    }

    /// Removes every entry of one organization's members and returns their keys. Costs time
    /// proportional to that organization's entries.
    pub(crate) async fn evict_organization(&self, organization_id: &str) -> Vec<CacheKey> {
        let entries = lock(&self.index)
            .by_organization
            .take(&StytchId::new(organization_id));
        self.invalidate(entries).await
    }

    /// Removes one entry.
    pub(crate) async fn evict_key(&self, key: &CacheKey) {
        self.entries.invalidate(key).await;
    }

    async fn invalidate(&self, entries: Vec<Entry>) -> Vec<CacheKey> {
        let keys: Vec<CacheKey> = entries.iter().map(|e| e.key).collect();
        // Dropped before awaiting: the cache may have evicted some meanwhile.
        drop(entries);
        for key in &keys {
            self.entries.invalidate(key).await;
        }
        keys
    }

    /// Runs moka's pending maintenance (expiry, eviction listener calls).
    pub(crate) async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
        self.negative.run_pending_tasks().await;
    }

    /// Approximate number of entries.
    pub(crate) fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Keys indexed for a member (tests and benches).
    #[cfg(test)]
    pub(crate) fn indexed_keys_of_member(&self, member_id: &str) -> usize {
        lock(&self.index).by_member.count(&StytchId::new(member_id))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    pub(crate) fn session(member: &str, id: &str) -> MemberSession {
        serde_json::from_value(serde_json::json!({
            "member_session_id": id, "member_id": member, "organization_id": "organization-test-1",
            "expires_at": humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600)).to_string(),
            "started_at": humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(1_000)).to_string(),
        }))
        .unwrap()
    }

    fn entry(member: &str, id: &str, ttl: Duration) -> Arc<CachedSession> {
        Arc::new(CachedSession::new(
            [0; 32],
            session(member, id),
            ttl,
            None,
            None,
            None,
        ))
    }

    fn key(n: u32) -> CacheKey {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_be_bytes());
        k
    }

    #[test]
    fn an_entry_and_its_session_stay_small() {
        // If this broke, a million cached sessions would take more memory (BENCHMARKS.md):
        // each allocation is rounded up to malloc's next 16-byte size class.
        assert_eq!(size_of::<CachedSession>(), 88);
        assert_eq!(size_of::<crate::session::MemberSessionData>(), 104);
    }

    #[tokio::test]
    async fn evicting_a_member_removes_all_and_only_their_entries() {
        // If this broke, a forced sign-out would leave cached sessions alive (or hit others).
        let cache = SessionCache::new(&CacheConfig::default());
        let hour = Duration::from_secs(3600);
        cache.insert(key(1), entry("m1", "s1", hour)).await;
        cache.insert(key(2), entry("m1", "s2", hour)).await;
        cache.insert(key(3), entry("m2", "s3", hour)).await;
        assert_eq!(cache.evict_member("m1").await.len(), 2);
        assert!(cache.get(&key(1)).await.is_none());
        assert!(cache.get(&key(2)).await.is_none());
        assert!(cache.get(&key(3)).await.is_some());
        cache.run_pending_tasks().await;
        assert_eq!(cache.indexed_keys_of_member("m1"), 0);
        assert_eq!(cache.indexed_keys_of_member("m2"), 1);
    }

    #[tokio::test]
    async fn evicting_an_organization_removes_all_and_only_its_entries() {
        // If this broke, members of an organization deleted at Stytch would be served from
        // the cache (or members of other organizations evicted).
        let cache = SessionCache::new(&CacheConfig::default());
        let hour = Duration::from_secs(3600);
        let mut other = entry("m3", "s3", hour);
        Arc::get_mut(&mut other)
            .unwrap()
            .session
            .make_mut()
            .set_organization("organization-test-2", "");
        cache.insert(key(1), entry("m1", "s1", hour)).await;
        cache.insert(key(2), entry("m2", "s2", hour)).await;
        cache.insert(key(3), other).await;
        let mut evicted = cache.evict_organization("organization-test-1").await;
        evicted.sort_unstable();
        assert_eq!(evicted, vec![key(1), key(2)]);
        assert!(cache.get(&key(1)).await.is_none());
        assert!(cache.get(&key(3)).await.is_some());
        cache.run_pending_tasks().await;
        assert_eq!(cache.indexed_keys_of_member("m1"), 0);
        assert!(
            cache
                .evict_organization("organization-test-1")
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_index_knows_the_organization_of_cached_members_and_sessions() {
        // If this broke, an outage admin could sign out a member of another organization
        // here (or none at all), since the outage rule asks the index whose member it is.
        let cache = SessionCache::new(&CacheConfig::default());
        let hour = Duration::from_secs(3600);
        cache.insert(key(1), entry("m1", "s1", hour)).await;
        assert_eq!(
            cache.organization_of_member("m1"),
            Some("organization-test-1".into())
        );
        assert_eq!(
            cache.owner_of_session("s1"),
            Some(("m1".into(), "organization-test-1".into()))
        );
        assert_eq!(cache.organization_of_member("m2"), None);
        assert_eq!(cache.owner_of_session("s2"), None);
        cache.evict_member("m1").await;
        cache.run_pending_tasks().await;
        assert_eq!(cache.organization_of_member("m1"), None);
        assert_eq!(cache.owner_of_session("s1"), None);
    }

    #[tokio::test]
    async fn evicting_a_session_keeps_the_members_other_sessions() {
        // If this broke, logging out on one device would log the member out everywhere.
        let cache = SessionCache::new(&CacheConfig::default());
        let hour = Duration::from_secs(3600);
        cache.insert(key(1), entry("m1", "s1", hour)).await; // token of s1
        cache.insert(key(2), entry("m1", "s1", hour)).await; // JWT of s1
        cache.insert(key(3), entry("m1", "s2", hour)).await;
        assert_eq!(cache.evict_session("s1").await.len(), 2);
        assert!(cache.get(&key(1)).await.is_none() && cache.get(&key(2)).await.is_none());
        assert!(cache.get(&key(3)).await.is_some());
    }

    #[tokio::test]
    async fn index_follows_expiry_and_capacity_eviction() {
        // If this broke, the secondary indexes would grow without bound.
        let cache = SessionCache::new(&CacheConfig {
            max_capacity: 10,
            ..CacheConfig::default()
        });
        cache
            .insert(key(1), entry("m1", "s1", Duration::from_millis(30)))
            .await;
        // moka's timer wheel removes expired entries with about one second of granularity.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cache.run_pending_tasks().await;
        assert!(cache.get(&key(1)).await.is_none());
        assert_eq!(cache.indexed_keys_of_member("m1"), 0);
        for n in 0..200 {
            cache
                .insert(
                    key(100 + n),
                    entry("flood", &format!("s{n}"), Duration::from_secs(60)),
                )
                .await;
        }
        cache.run_pending_tasks().await;
        let kept = cache.entry_count() as usize;
        assert!(kept <= 10, "{kept}");
        assert_eq!(cache.indexed_keys_of_member("flood"), kept);
    }

    #[tokio::test]
    async fn concurrent_misses_run_init_once_and_errors_are_not_cached() {
        // If this broke, a burst of requests with one cold token would each call Stytch.
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = Arc::new(SessionCache::new(&CacheConfig::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_try_insert(key(9), async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(Arc::new(CachedSession::new(
                            key(9),
                            session("m", "s"),
                            Duration::from_secs(60),
                            None,
                            None,
                            None,
                        )))
                    })
                    .await
                    .is_ok()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let err = cache
            .get_or_try_insert(key(10), async { Err::<Arc<CachedSession>, _>("down") })
            .await;
        assert!(err.is_err());
        assert!(cache.get(&key(10)).await.is_none());
    }
}

/// The memory a cached session costs, indexes included: `cargo test -p tower-stytch --lib
/// --release -- --ignored --nocapture rss_per_cached_session` (see BENCHMARKS.md).
#[cfg(all(test, target_os = "linux"))]
mod memory {
    use super::*;

    /// This process's resident set size, in bytes (`VmRSS` of /proc/self/status).
    fn rss() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }

    /// Stytch's answer to a session authenticate, as bytes off the wire: Stytch's ids, 1,000
    /// organizations (with a slug), one role, one authentication factor as Stytch sends it
    /// (an email magic link: its timestamps, its email factor with the member's own address
    /// and email id), no custom claims, a request id.
    fn authenticate_answer(n: u64) -> Vec<u8> {
        let org = n % 1000;
        let at = |secs: u64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_secs(1_767_000_000 + secs),
            )
            .to_string()
        };
        serde_json::to_vec(&serde_json::json!({
            "status_code": 200,
            "request_id": format!("request-id-test-{n:08x}-89ce-45d5-8fd5-4b1a1a1a1a1a"),
            "member_session": {
                "member_session_id": format!("member-session-test-{n:08x}-6286-479f-8a4f-b046a6c46509"),
                "member_id": format!("member-test-{n:08x}-9c09-4da3-bd2e-c9ce4da9375f"),
                "organization_id": format!("organization-test-{org:08x}-ac8b-4cdb-9c15-63b17e653931"),
                "organization_slug": format!("organization-{org}"),
                "roles": ["stytch_member"],
                "started_at": at(n),
                "last_accessed_at": at(n + 60),
                "expires_at": "2099-01-10T07:41:52Z",
                "authentication_factors": [{
                    "type": "magic_link",
                    "delivery_method": "email",
                    "last_authenticated_at": at(n),
                    "created_at": at(n),
                    "updated_at": at(n),
                    "email_factor": {
                        "email_id": format!("email-test-{n:08x}-86e1-4d95-bd44-bb3495224953"),
                        "email_address": format!("member{n}@company{org}.com")
                    }
                }]
            },
            "session_token": "mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q",
            "session_jwt": "",
            "member": {},
            "organization": {}
        }))
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "fills a million entries; run by hand for BENCHMARKS.md"]
    async fn rss_per_cached_session() {
        // If this broke (a panic), the figure in BENCHMARKS.md could not be reproduced.
        const N: u64 = 1_000_000;
        let cache = SessionCache::new(&CacheConfig {
            max_ttl: Duration::from_secs(3600),
            max_capacity: N + 1000,
            ..CacheConfig::default()
        });
        cache.run_pending_tasks().await;
        let before = rss();
        for n in 0..N {
            let key = crate::credential::Credential::parse(&format!("token-{n:040}"))
                .unwrap()
                .cache_key();
            // As `Authenticator::remote` reads Stytch's answer and caches it.
            let answer: crate::client::AuthenticateResponse =
                serde_json::from_slice(&authenticate_answer(n)).unwrap();
            let entry = CachedSession::new(
                key,
                answer.member_session,
                Duration::from_secs(3600),
                None,
                Some(StytchId::from(answer.request_id)),
                Some(SystemTime::now()),
            );
            let inserted = cache
                .get_or_try_insert(key, async { Ok::<_, ()>(Arc::new(entry)) })
                .await;
            assert!(inserted.is_ok());
        }
        cache.run_pending_tasks().await;
        let after = rss();
        assert_eq!(cache.entry_count(), N);
        println!(
            "{N} cached sessions: RSS +{} MiB, {} bytes per session",
            (after - before) >> 20,
            (after - before) / N
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "fills a million entries; run by hand for BENCHMARKS.md"]
    async fn rss_per_entry_of_the_cache_library_alone() {
        // The floor under `rss_per_cached_session`: moka built as the session cache is (per-entry
        // expiry, the same hasher, the same key type), holding a one-word value. If this broke
        // (a panic), the figure in BENCHMARKS.md could not be reproduced.
        struct Hour;
        impl Expiry<CacheKey, Arc<u64>> for Hour {
            fn expire_after_create(
                &self,
                _key: &CacheKey,
                _value: &Arc<u64>,
                _created_at: Instant,
            ) -> Option<Duration> {
                Some(Duration::from_secs(3600))
            }
        }
        const N: u64 = 1_000_000;
        let cache: Cache<CacheKey, Arc<u64>, KeyHasher> = Cache::builder()
            .max_capacity(N + 1000)
            .expire_after(Hour)
            .build_with_hasher(KeyHasher::default());
        let before = rss();
        for n in 0..N {
            let key = crate::credential::Credential::parse(&format!("token-{n:040}"))
                .unwrap()
                .cache_key();
            cache.insert(key, Arc::new(n)).await;
        }
        cache.run_pending_tasks().await;
        let after = rss();
        assert_eq!(cache.entry_count(), N);
        println!(
            "{N} moka entries alone: RSS +{} MiB, {} bytes per entry",
            (after - before) >> 20,
            (after - before) / N
        );
    }
}
