//! [`Membership`]: a session's organization and roles, shared by every session that has the
//! same (a process-wide interner holding them weakly): a million cached sessions of a
//! thousand organizations hold a thousand copies, not a million.

use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use hashbrown::HashTable;

use super::StytchId;

/// A session's organization (id and slug) and roles.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Membership {
    pub(crate) organization_id: StytchId,
    pub(crate) organization_slug: Box<str>,
    pub(crate) roles: Box<[String]>,
}

impl Membership {
    /// The shared copy of this membership.
    pub(crate) fn shared(
        organization_id: StytchId,
        organization_slug: Box<str>,
        roles: Box<[String]>,
    ) -> Arc<Self> {
        intern(Self {
            organization_id,
            organization_slug,
            roles,
        })
    }
}

/// The interned memberships: weak references with their hash (a dead one cannot be hashed
/// again when the table grows), purged of dead ones whenever the table doubles.
struct Interner {
    table: HashTable<(u64, Weak<Membership>)>,
    hasher: foldhash::fast::RandomState,
    /// Purge dead entries when the table reaches this many.
    purge_at: usize,
}

static MEMBERSHIPS: LazyLock<Mutex<Interner>> = LazyLock::new(|| {
    Mutex::new(Interner {
        table: HashTable::new(),
        hasher: foldhash::fast::RandomState::default(),
        purge_at: 64,
    })
});

/// The shared copy of `membership` (this one, if none is alive).
fn intern(membership: Membership) -> Arc<Membership> {
    // The table holds no invariant a panic elsewhere could break half-way: keep using it.
    let mut interner = MEMBERSHIPS.lock().unwrap_or_else(PoisonError::into_inner);
    let hash = interner.hasher.hash_one(&membership);
    let mut live = None;
    // Upgraded once: the copy that compared equal is the one returned (it cannot die in
    // between).
    interner.table.find(hash, |(h, weak)| {
        *h == hash
            && weak
                .upgrade()
                .filter(|m| **m == membership)
                .map(|m| live = Some(m))
                .is_some()
    });
    if let Some(shared) = live {
        return shared;
    }
    if interner.table.len() >= interner.purge_at {
        interner.table.retain(|(_, weak)| weak.strong_count() > 0);
        interner.purge_at = (interner.table.len() * 2).max(64);
    }
    let shared = Arc::new(membership);
    interner
        .table
        .insert_unique(hash, (hash, Arc::downgrade(&shared)), |(h, _)| *h);
    shared
}

/// How many memberships the interner holds, dead ones included (tests).
#[cfg(test)]
pub(crate) fn interned() -> usize {
    MEMBERSHIPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .table
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(org: &str, roles: &[&str]) -> Membership {
        Membership {
            organization_id: StytchId::new(org),
            organization_slug: "slug".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn the_same_membership_is_shared_and_a_dropped_one_goes() {
        // If this broke, every cached session would hold its own copy of its organization and
        // roles (memory), or two different ones would be merged (a wrong organization).
        let a = intern(membership("organization-test-intern-a", &["x"]));
        let b = intern(membership("organization-test-intern-a", &["x"]));
        let c = intern(membership("organization-test-intern-a", &["x", "y"]));
        let d = intern(membership("organization-test-intern-d", &["x"]));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c) && !Arc::ptr_eq(&a, &d));
        assert_eq!(*c.roles, ["x".to_owned(), "y".to_owned()]);
        drop((a, b, c, d));
        // Many dead ones are purged as the table grows.
        for n in 0..1000 {
            drop(intern(membership(
                &format!("organization-test-intern-{n}"),
                &[],
            )));
        }
        assert!(interned() < 1000, "{}", interned());
    }
}
