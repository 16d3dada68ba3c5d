//! The session cache's exact secondary indexes: member → keys, session → keys and
//! organization → keys, each also telling whose the keys are.
//!
//! Laid out for a million entries: an index entry is keyed by a handle on a cached session
//! (one `Arc`, looked up by the id it holds, so no id is copied), and a member's or session's
//! keys (nearly always one or two: a token and its JWT) are stored inline until there are
//! more.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use crate::credential::CacheKey;
use crate::session::{MemberSession, StytchId};

/// The hasher of the index maps and key sets.
type IndexHasher = foldhash::fast::RandomState;

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

/// An index key: a session of the member (for a session's index: that session; for an
/// organization's: the first one seen), as authenticated, hashed and compared by the id `I`
/// picks, so that a map of them is looked up by `&StytchId`.
pub(super) struct ById<I> {
    pub(super) session: MemberSession,
    by: PhantomData<fn() -> I>,
}

impl<I: IdOf> ById<I> {
    fn new(session: &MemberSession) -> Self {
        Self {
            session: session.clone(),
            by: PhantomData,
        }
    }
}

impl<I: IdOf> Borrow<StytchId> for ById<I> {
    fn borrow(&self) -> &StytchId {
        I::id(&self.session)
    }
}

// `Hash` and `Eq` as the `StytchId` it borrows as, which `HashMap::get(&str)` requires.
impl<I: IdOf> Hash for ById<I> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        I::id(&self.session).hash(state);
    }
}

impl<I: IdOf> PartialEq for ById<I> {
    fn eq(&self, other: &Self) -> bool {
        I::id(&self.session) == I::id(&other.session)
    }
}

impl<I: IdOf> Eq for ById<I> {}

/// The cache keys of one member, session or organization.
#[derive(Debug)]
pub(super) enum Keys {
    /// One key, inline (no allocation).
    One(CacheKey),
    /// Two or more.
    Many(HashSet<CacheKey, IndexHasher>),
}

impl Keys {
    fn insert(&mut self, key: CacheKey) {
        match self {
            Self::One(one) if *one == key => {}
            Self::One(one) => {
                let mut set = HashSet::with_capacity_and_hasher(2, IndexHasher::default());
                set.insert(*one);
                set.insert(key);
                *self = Self::Many(set);
            }
            Self::Many(set) => {
                set.insert(key);
            }
        }
    }

    /// Removes `key`; whether none is left.
    fn remove(&mut self, key: &CacheKey) -> bool {
        match self {
            Self::One(one) => one == key,
            Self::Many(set) => {
                set.remove(key);
                set.is_empty()
            }
        }
    }

    /// How many.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(set) => set.len(),
        }
    }

    /// Every key.
    pub(super) fn into_vec(self) -> Vec<CacheKey> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(set) => set.into_iter().collect(),
        }
    }
}

/// One index: id → keys.
pub(super) type Map<I> = HashMap<ById<I>, Keys, IndexHasher>;

fn add<I: IdOf>(map: &mut Map<I>, key: CacheKey, session: &MemberSession) {
    match map.get_mut(I::id(session)) {
        Some(keys) => keys.insert(key),
        None => {
            map.insert(ById::new(session), Keys::One(key));
        }
    }
}

fn remove<I: IdOf>(map: &mut Map<I>, key: &CacheKey, session: &MemberSession) {
    let id = I::id(session);
    if let Some(keys) = map.get_mut(id)
        && keys.remove(key)
    {
        map.remove(id);
    }
}

/// The three indexes.
#[derive(Default)]
pub(super) struct Index {
    pub(super) by_member: Map<Member>,
    pub(super) by_session: Map<Session>,
    pub(super) by_organization: Map<Organization>,
}

impl Index {
    pub(super) fn add(&mut self, key: CacheKey, session: &MemberSession) {
        add(&mut self.by_member, key, session);
        add(&mut self.by_session, key, session);
        add(&mut self.by_organization, key, session);
    }

    pub(super) fn remove(&mut self, key: &CacheKey, session: &MemberSession) {
        remove(&mut self.by_member, key, session);
        remove(&mut self.by_session, key, session);
        remove(&mut self.by_organization, key, session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cache::tests::session;

    #[test]
    fn keys_are_found_by_id_and_go_with_their_last_entry() {
        // If this broke, a revocation would miss entries (a revoked session served again) or
        // the index would keep keys of evicted entries forever (a leak).
        let mut index = Index::default();
        let a = session("member-a", "session-a1");
        let a2 = session("member-a", "session-a2");
        let b = session("member-b", "session-b1");
        index.add([1; 32], &a);
        index.add([2; 32], &a); // the same session's JWT
        index.add([2; 32], &a); // added twice: still two keys
        index.add([3; 32], &a2);
        index.add([4; 32], &b);
        assert_eq!(
            index
                .by_member
                .get(&StytchId::new("member-a"))
                .map(Keys::len),
            Some(3)
        );
        assert_eq!(
            index
                .by_session
                .get(&StytchId::new("session-a1"))
                .map(Keys::len),
            Some(2)
        );
        assert_eq!(
            index
                .by_session
                .get(&StytchId::new("session-a2"))
                .map(Keys::len),
            Some(1)
        );
        assert_eq!(
            index
                .by_organization
                .get(&StytchId::new("organization-test-1"))
                .map(Keys::len),
            Some(4)
        );
        let (owner, _) = index
            .by_session
            .get_key_value(&StytchId::new("session-b1"))
            .unwrap();
        assert_eq!(owner.session.member_id, "member-b");

        index.remove(&[1; 32], &a);
        index.remove(&[2; 32], &a);
        assert!(!index.by_session.contains_key(&StytchId::new("session-a1")));
        assert_eq!(
            index
                .by_member
                .get(&StytchId::new("member-a"))
                .map(Keys::len),
            Some(1)
        );
        index.remove(&[3; 32], &a2);
        index.remove(&[4; 32], &b);
        // Removing a key that is not there changes nothing.
        index.remove(&[9; 32], &b);
        assert!(index.by_member.is_empty());
        assert!(index.by_session.is_empty());
        assert!(index.by_organization.is_empty());
    }

    #[test]
    fn many_keys_come_back_whole() {
        // If this broke, revoking a member with several sessions would evict only some.
        let mut index = Index::default();
        let s = session("member-a", "session-a1");
        for n in 0..5u8 {
            index.add([n; 32], &s);
        }
        let mut keys = index
            .by_member
            .remove(&StytchId::new("member-a"))
            .unwrap()
            .into_vec();
        keys.sort();
        assert_eq!(keys, (0..5u8).map(|n| [n; 32]).collect::<Vec<_>>());
    }
}
