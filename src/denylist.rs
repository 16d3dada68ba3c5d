//! Sessions and members revoked through this process: refused from the moment of revocation
//! until no credential of theirs can still verify (a JWT lives up to 5 minutes), whatever the
//! cache or local JWT verification would say.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::credential::CacheKey;
use crate::session::MemberSession;

/// Sessions that started this long after a member-wide revocation (by Stytch's clock) are
/// still refused, to absorb clock skew between Stytch and this host.
pub(crate) const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Entries {
    sessions: HashMap<String, Instant>,
    members: HashMap<String, (SystemTime, Instant)>,
    keys: HashMap<CacheKey, Instant>,
    purge_at_len: usize,
}

impl Entries {
    fn len(&self) -> usize {
        self.sessions.len() + self.members.len() + self.keys.len()
    }

    fn purge(&mut self, now: Instant) {
        self.sessions.retain(|_, until| *until > now);
        self.members.retain(|_, (_, until)| *until > now);
        self.keys.retain(|_, until| *until > now);
        self.purge_at_len = (self.len() * 2).max(1024);
    }
}

/// The revocation denylist. Bounded by time: entries are purged once expired, amortised over
/// inserts. The check on every request is one atomic load when nothing was revoked.
#[derive(Debug, Default)]
pub(crate) struct Denylist {
    len: AtomicUsize,
    entries: RwLock<Entries>,
}

impl Denylist {
    fn write(&self, f: impl FnOnce(&mut Entries)) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        f(&mut entries);
        let now = Instant::now();
        if entries.len() >= entries.purge_at_len {
            entries.purge(now);
        }
        self.len.store(entries.len(), Ordering::Release);
    }

    fn extend(slot: &mut Instant, until: Instant) {
        if until > *slot {
            *slot = until;
        }
    }

    /// Refuses one session until `until`.
    pub(crate) fn deny_session(&self, member_session_id: &str, until: Instant) {
        self.write(|e| {
            let slot = e
                .sessions
                .entry(member_session_id.to_owned())
                .or_insert(until);
            Self::extend(slot, until);
        });
    }

    /// Refuses every session of a member that started before `revoked_at`, until `until`.
    pub(crate) fn deny_member(&self, member_id: &str, revoked_at: SystemTime, until: Instant) {
        self.write(|e| {
            let slot = e
                .members
                .entry(member_id.to_owned())
                .or_insert((revoked_at, until));
            if revoked_at > slot.0 {
                slot.0 = revoked_at;
            }
            Self::extend(&mut slot.1, until);
        });
    }

    /// Refuses one credential (by its hash) until `until`: used when the session behind it is
    /// not known (Stytch unreachable at logout).
    pub(crate) fn deny_key(&self, key: CacheKey, until: Instant) {
        self.write(|e| {
            let slot = e.keys.entry(key).or_insert(until);
            Self::extend(slot, until);
        });
    }

    /// Sets the end of a session's or member's refusal to `until` (once Stytch confirmed the
    /// revocation, the entry is only needed while JWTs minted before it can verify).
    pub(crate) fn shorten(&self, session: Option<&str>, member: Option<&str>, until: Instant) {
        self.write(|e| {
            if let Some(slot) = session.and_then(|s| e.sessions.get_mut(s)) {
                *slot = until;
            }
            if let Some(slot) = member.and_then(|m| e.members.get_mut(m)) {
                slot.1 = until;
            }
        });
    }

    /// Whether the credential `key` is refused.
    pub(crate) fn is_key_denied(&self, key: &CacheKey) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .keys
            .get(key)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Whether `session` is refused: revoked by id, or its member was revoked after it started.
    pub(crate) fn is_denied(&self, session: &MemberSession) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let now = Instant::now();
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        if entries
            .sessions
            .get(&session.member_session_id)
            .is_some_and(|until| *until > now)
        {
            return true;
        }
        match entries.members.get(&session.member_id) {
            Some((revoked_at, until)) if *until > now => match session.started_at {
                Some(started) => started <= *revoked_at + CLOCK_SKEW_MARGIN,
                // Unknown start: cannot prove it began after the revocation.
                None => true,
            },
            _ => false,
        }
    }

    /// Number of entries not yet purged.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::session;
    use std::time::UNIX_EPOCH;

    #[test]
    fn session_revocation_hits_only_that_session() {
        // If this broke, a logged-out session's JWT would still be accepted here.
        let d = Denylist::default();
        let s1 = session("m1", "s1");
        let s2 = session("m1", "s2");
        assert!(!d.is_denied(&s1));
        d.deny_session("s1", Instant::now() + Duration::from_secs(60));
        assert!(d.is_denied(&s1));
        assert!(!d.is_denied(&s2));
    }

    #[test]
    fn member_revocation_spares_sessions_started_later() {
        // If this broke, a forced-out member could not log in again (or old sessions survive).
        let d = Denylist::default();
        let old = session("m1", "s1"); // started at t=1000
        let revoked_at = UNIX_EPOCH + Duration::from_secs(2_000);
        d.deny_member("m1", revoked_at, Instant::now() + Duration::from_secs(60));
        assert!(d.is_denied(&old));
        let mut fresh = session("m1", "s9");
        fresh.started_at = Some(revoked_at + CLOCK_SKEW_MARGIN + Duration::from_secs(1));
        assert!(!d.is_denied(&fresh));
        let mut unknown = session("m1", "s8");
        unknown.started_at = None;
        assert!(d.is_denied(&unknown));
        assert!(!d.is_denied(&session("m2", "s3")));
    }

    #[test]
    fn entries_expire_and_are_purged() {
        // If this broke, the denylist would grow forever (or refuse forever).
        let d = Denylist::default();
        let past = Instant::now();
        for n in 0..3000 {
            d.deny_session(&format!("s{n}"), past);
        }
        assert!(d.len() < 3000, "{}", d.len());
        assert!(!d.is_denied(&session("m", "s2999")));
        let key = [7u8; 32];
        d.deny_key(key, Instant::now() + Duration::from_secs(60));
        assert!(d.is_key_denied(&key));
        assert!(!d.is_key_denied(&[8u8; 32]));
    }
}
