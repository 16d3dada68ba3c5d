//! The session cache's exact secondary indexes: member → entries, session → entries and
//! organization → entries, each also telling whose the entries are.
//!
//! Laid out for a million entries: an index holds handles on the cached entries themselves
//! (one `Arc` each: the entry knows its key and its session), never a copy of an id or a key.
//! The member and session indexes are hash tables of handles hashed by the id (a member's
//! or a session's entries, nearly always one or two, are slots of their own: 8 bytes and a
//! control byte each); the organization index holds, per organization, a table of its
//! entries by address (an organization can have a million).

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::Arc;

use hashbrown::HashTable;

use super::CachedSession;
use crate::session::{MemberSession, StytchId};

/// The hasher of the indexes.
type IndexHasher = foldhash::fast::RandomState;

/// A cached entry, as the indexes hold it.
pub(super) type Entry = Arc<CachedSession>;

/// Which id of a session an index is by.
pub(super) trait IdOf {
    fn id(session: &MemberSession) -> &StytchId;
}

/// By member (`member_id`).
pub(super) enum Member {}
/// By session (`member_session_id`).
pub(super) enum Session {}
/// By organization (`organization_id`).
pub(super) enum Organization {}

impl IdOf for Member {
    fn id(session: &MemberSession) -> &StytchId {
        &session.member_id
    }
}

impl IdOf for Session {
    fn id(session: &MemberSession) -> &StytchId {
        &session.member_session_id
    }
}

impl IdOf for Organization {
    fn id(session: &MemberSession) -> &StytchId {
        session.organization_id()
    }
}

/// Entries by the id `I` picks: several entries of one id are several slots of one hash.
pub(super) struct Multi<I> {
    table: HashTable<Entry>,
    hasher: IndexHasher,
    by: PhantomData<fn() -> I>,
}

impl<I> Default for Multi<I> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            hasher: IndexHasher::default(),
            by: PhantomData,
        }
    }
}

impl<I: IdOf> Multi<I> {
    fn add(&mut self, entry: &Entry) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(I::id(&entry.session));
        self.table.insert_unique(hash, Arc::clone(entry), |e| {
            hasher.hash_one(I::id(&e.session))
        });
    }

    /// Removes `entry` (this very one), if it is there.
    fn remove(&mut self, entry: &Entry) {
        let hash = self.hasher.hash_one(I::id(&entry.session));
        if let Ok(found) = self.table.find_entry(hash, |e| Arc::ptr_eq(e, entry)) {
            found.remove();
        }
    }

    /// One entry of `id` (they all agree on whose it is), if any.
    pub(super) fn first(&self, id: &StytchId) -> Option<&Entry> {
        let hash = self.hasher.hash_one(id);
        self.table.find(hash, |e| I::id(&e.session) == id)
    }

    /// Removes and returns every entry of `id`.
    pub(super) fn take(&mut self, id: &StytchId) -> Vec<Entry> {
        let hash = self.hasher.hash_one(id);
        let mut taken = Vec::new();
        while let Ok(found) = self.table.find_entry(hash, |e| I::id(&e.session) == id) {
            taken.push(found.remove().0);
        }
        taken
    }

    /// How many entries `id` has.
    #[cfg(test)]
    pub(super) fn count(&self, id: &StytchId) -> usize {
        let hash = self.hasher.hash_one(id);
        self.table
            .iter_hash(hash)
            .filter(|e| I::id(&e.session) == id)
            .count()
    }

    /// Whether it holds nothing.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// One organization's entries, by address.
struct Group {
    organization_id: StytchId,
    entries: HashTable<Entry>,
}

/// Entries by organization: a table of organizations, each with a table of its entries.
#[derive(Default)]
pub(super) struct ByOrganization {
    groups: HashTable<Group>,
    hasher: IndexHasher,
}

/// The hash of an entry in its organization's table: its address.
fn address(hasher: &IndexHasher, entry: &Entry) -> u64 {
    hasher.hash_one(Arc::as_ptr(entry).addr())
}

impl ByOrganization {
    fn add(&mut self, entry: &Entry) {
        let hasher = &self.hasher;
        let id = Organization::id(&entry.session);
        let hash = hasher.hash_one(id);
        let group = match self.groups.find_mut(hash, |g| g.organization_id == *id) {
            Some(group) => group,
            None => self
                .groups
                .insert_unique(
                    hash,
                    Group {
                        organization_id: id.clone(),
                        entries: HashTable::new(),
                    },
                    |g| hasher.hash_one(&g.organization_id),
                )
                .into_mut(),
        };
        group
            .entries
            .insert_unique(address(hasher, entry), Arc::clone(entry), |e| {
                address(hasher, e)
            });
    }

    /// Removes `entry` (this very one), if it is there.
    fn remove(&mut self, entry: &Entry) {
        let id = Organization::id(&entry.session);
        let hash = self.hasher.hash_one(id);
        let Ok(mut group) = self.groups.find_entry(hash, |g| g.organization_id == *id) else {
            return;
        };
        let entries = &mut group.get_mut().entries;
        if let Ok(found) =
            entries.find_entry(address(&self.hasher, entry), |e| Arc::ptr_eq(e, entry))
        {
            found.remove();
        }
        if entries.is_empty() {
            group.remove();
        }
    }

    /// Removes and returns every entry of the organization `id`.
    pub(super) fn take(&mut self, id: &StytchId) -> Vec<Entry> {
        let hash = self.hasher.hash_one(id);
        match self.groups.find_entry(hash, |g| g.organization_id == *id) {
            Ok(group) => group.remove().0.entries.into_iter().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// How many entries the organization `id` has.
    #[cfg(test)]
    pub(super) fn count(&self, id: &StytchId) -> usize {
        let hash = self.hasher.hash_one(id);
        self.groups
            .find(hash, |g| g.organization_id == *id)
            .map_or(0, |g| g.entries.len())
    }

    /// Whether it holds nothing.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// The three indexes.
#[derive(Default)]
pub(super) struct Index {
    pub(super) by_member: Multi<Member>,
    pub(super) by_session: Multi<Session>,
    pub(super) by_organization: ByOrganization,
}

impl Index {
    pub(super) fn add(&mut self, entry: &Entry) {
        self.by_member.add(entry);
        self.by_session.add(entry);
        self.by_organization.add(entry);
    }

    pub(super) fn remove(&mut self, entry: &Entry) {
        self.by_member.remove(entry);
        self.by_session.remove(entry);
        self.by_organization.remove(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cache::tests::session;
    use std::time::Duration;

    fn entry(key: u8, session: &MemberSession) -> Entry {
        Arc::new(CachedSession::new(
            [key; 32],
            session.clone(),
            Duration::from_secs(60),
            None,
            None,
            None,
        ))
    }

    fn id(text: &str) -> StytchId {
        StytchId::new(text)
    }

    #[test]
    fn entries_are_found_by_id_and_go_one_by_one() {
        // If this broke, a revocation would miss entries (a revoked session served again) or
        // the index would keep entries evicted from the cache forever (a leak).
        let mut index = Index::default();
        let a = session("member-a", "session-a1");
        let a2 = session("member-a", "session-a2");
        let b = session("member-b", "session-b1");
        let (e1, e2, e3, e4) = (entry(1, &a), entry(2, &a), entry(3, &a2), entry(4, &b));
        for e in [&e1, &e2, &e3, &e4] {
            index.add(e);
        }
        assert_eq!(index.by_member.count(&id("member-a")), 3);
        assert_eq!(index.by_session.count(&id("session-a1")), 2);
        assert_eq!(index.by_session.count(&id("session-a2")), 1);
        assert_eq!(index.by_organization.count(&id("organization-test-1")), 4);
        let owner = index.by_session.first(&id("session-b1")).unwrap();
        assert_eq!(owner.session.member_id, "member-b");

        index.remove(&e1);
        // Another entry of the same key and session is another entry: it stays.
        index.remove(&entry(2, &a));
        assert_eq!(index.by_session.count(&id("session-a1")), 1);
        index.remove(&e2);
        assert!(index.by_session.first(&id("session-a1")).is_none());
        assert_eq!(index.by_member.count(&id("member-a")), 1);
        index.remove(&e3);
        index.remove(&e4);
        // Removing an entry that is not there changes nothing.
        index.remove(&e4);
        assert!(index.by_member.is_empty());
        assert!(index.by_session.is_empty());
        assert!(index.by_organization.is_empty());
    }

    #[test]
    fn many_entries_come_back_whole() {
        // If this broke, revoking a member (or an organization) with many sessions would
        // evict only some.
        let mut index = Index::default();
        let entries: Vec<Entry> = (0..200u8)
            .map(|n| entry(n, &session(&format!("member-{}", n % 2), &format!("s{n}"))))
            .collect();
        for e in &entries {
            index.add(e);
        }
        let mut keys: Vec<_> = index
            .by_member
            .take(&id("member-0"))
            .iter()
            .map(|e| e.key)
            .collect();
        keys.sort_unstable();
        let want: Vec<_> = (0..200u8).step_by(2).map(|n| [n; 32]).collect();
        assert_eq!(keys, want);
        assert_eq!(index.by_member.count(&id("member-0")), 0);
        assert_eq!(index.by_member.count(&id("member-1")), 100);
        assert_eq!(
            index.by_organization.take(&id("organization-test-1")).len(),
            200
        );
        assert!(index.by_organization.is_empty());
    }
}
