//! Hooks for the crate's benches (not part of the public API).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cache::{CacheConfig, CachedSession, SessionCache};
use crate::session::MemberSession;

/// A session cache with synthetic entries.
#[derive(Clone, Debug)]
pub struct Cache(Arc<SessionCache>);

fn key(member: u64, n: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&member.to_be_bytes());
    k[8..16].copy_from_slice(&n.to_be_bytes());
    k
}

fn entry(member: u64, n: u64) -> Arc<CachedSession> {
    let now = SystemTime::now();
    Arc::new(CachedSession {
        session: MemberSession {
            member_session_id: format!("session-test-{member}-{}", n / 2),
            member_id: format!("member-test-{member}"),
            organization_id: "organization-test-bench".to_owned(),
            organization_slug: "bench".to_owned(),
            roles: vec!["stytch_member".to_owned()],
            started_at: Some(now),
            last_accessed_at: Some(now),
            expires_at: now + Duration::from_secs(3600),
            authentication_factors: Vec::new(),
            custom_claims: serde_json::Map::new(),
        },
        ttl: Duration::from_secs(3600),
        refreshed_jwt: None,
        request_id: None,
    })
}

impl Cache {
    /// A cache holding up to `capacity` entries, with a one-hour TTL.
    pub fn new(capacity: u64) -> Self {
        Self(Arc::new(SessionCache::new(&CacheConfig {
            max_ttl: Duration::from_secs(3600),
            max_capacity: capacity,
            ..CacheConfig::default()
        })))
    }

    /// Inserts `per_member` entries for each of `members` members.
    pub async fn populate(&self, members: u64, per_member: u64) {
        for m in 0..members {
            self.restore_member(m, per_member).await;
        }
        self.0.run_pending_tasks().await;
    }

    /// Inserts `per_member` entries for member `m`.
    pub async fn restore_member(&self, m: u64, per_member: u64) {
        for n in 0..per_member {
            let value = entry(m, n);
            let _ = self
                .0
                .get_or_try_insert(key(m, n), async move { Ok::<_, ()>(value) })
                .await;
        }
    }

    /// Evicts every entry of member `m`; returns how many.
    pub async fn evict_member(&self, m: u64) -> usize {
        self.0.evict_member(&format!("member-test-{m}")).await.len()
    }

    /// Approximate number of entries.
    pub fn len(&self) -> u64 {
        self.0.entry_count()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
