//! Sessions, members and credentials revoked through this process: refused here whatever the
//! cache or local JWT verification would say, from the moment of revocation until no
//! credential of theirs can still verify (a JWT lives up to 5 minutes).
//!
//! Every refusal is a *hold* of one revocation ([`RevocationId`]). One session, member or
//! credential can be held by several revocations at once; undoing a revocation (Stytch refused
//! it) removes its holds and no other, so what another revocation refuses stays refused.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use crate::CLOCK_SKEW;
use crate::credential::CacheKey;
use crate::session::MemberSession;

/// The hasher of the denylist's maps: read on every cache hit while anything is held, so not
/// SipHash; randomly seeded per process.
type Hasher = foldhash::fast::RandomState;

/// Identifies one revocation decided in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RevocationId(pub(crate) u64);

/// Sessions remembered per member hold as "Stytch said it survived the revocation"; beyond
/// this, such sessions are asked about again (never refused or accepted by guess).
const MAX_CLEARED_PER_HOLD: usize = 1024;

/// What the denylist says about an authenticated session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// No revocation here concerns it.
    Allow,
    /// Revoked here.
    Deny,
    /// A member-wide revocation confirmed by Stytch, and the session started too close to it
    /// (within [`CLOCK_SKEW`]) to tell on which side: only Stytch can say whether it survived.
    /// The ids are the revocations to clear it for when Stytch says it is alive.
    Ask(Vec<RevocationId>),
}

#[derive(Debug, Clone, Copy)]
struct Hold {
    id: RevocationId,
    until: Instant,
    /// Stytch confirmed it: it can no longer be undone.
    confirmed: bool,
}

#[derive(Debug, Clone, Copy)]
struct KeyHold {
    id: RevocationId,
    until: Instant,
    confirmed: bool,
    /// A credential nothing here could authenticate (counted against its own bound).
    unverified: bool,
}

#[derive(Debug)]
struct MemberHold {
    id: RevocationId,
    until: Instant,
    /// When Stytch confirmed the revocation (this host's clock); `None` until then, and every
    /// session of the member is refused meanwhile: Stytch revokes those live when it runs it.
    revoked_at: Option<SystemTime>,
    /// Sessions Stytch said are alive after the revocation.
    cleared: HashSet<String, Hasher>,
}

/// What one revocation holds, to find its holds again.
#[derive(Debug, Default)]
struct Touched {
    sessions: Vec<String>,
    members: Vec<String>,
    keys: Vec<CacheKey>,
    organizations: Vec<String>,
    until: Option<Instant>,
}

/// A member's roles changed at Stytch (a webhook): sessions of the member that Stytch has not
/// vouched for since, and whose roles differ, are re-validated at Stytch.
#[derive(Debug, Clone)]
struct Mark {
    /// When Stytch sent the event: of two marks, the later event wins.
    event_at: SystemTime,
    /// When this process learnt of it (this host's clock): an authenticate sent after it
    /// saw the new roles.
    noted_at: SystemTime,
    /// The member's role ids after the change, sorted.
    roles: Vec<String>,
    until: Instant,
}

/// Where a role mark was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkSource {
    /// A webhook received (and verified) here.
    Here,
    /// A peer, through the revocation bus.
    Peer,
}

/// A member's marks, one per [`MarkSource`], kept apart so that a peer's (anyone who can
/// write to Redis) never replaces, and so never hides, one received here.
#[derive(Debug, Default)]
struct Marks {
    here: Option<Mark>,
    peer: Option<Mark>,
}

impl Marks {
    fn slot(&mut self, source: MarkSource) -> &mut Option<Mark> {
        match source {
            MarkSource::Here => &mut self.here,
            MarkSource::Peer => &mut self.peer,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Mark> {
        self.here.iter().chain(self.peer.iter())
    }

    /// Drops the marks ended by `now`; whether any is left.
    fn retain(&mut self, now: Instant) -> bool {
        self.here = self.here.take().filter(|m| m.until > now);
        self.peer = self.peer.take().filter(|m| m.until > now);
        self.here.is_some() || self.peer.is_some()
    }
}

#[derive(Debug, Default)]
struct Entries {
    sessions: HashMap<String, Vec<Hold>, Hasher>,
    members: HashMap<String, Vec<MemberHold>, Hasher>,
    keys: HashMap<CacheKey, Vec<KeyHold>, Hasher>,
    /// Organizations deleted at Stytch: every session of theirs refused.
    organizations: HashMap<String, Vec<Hold>, Hasher>,
    /// Members whose roles changed at Stytch.
    marks: HashMap<String, Marks, Hasher>,
    by_id: HashMap<RevocationId, Touched, Hasher>,
    unverified: usize,
    purge_at_len: usize,
}

impl Entries {
    /// [`Denylist::is_key_denied`] as of `now`.
    fn is_key_denied(&self, key: &CacheKey, now: Instant) -> bool {
        self.keys
            .get(key)
            .is_some_and(|holds| holds.iter().any(|h| h.until > now))
    }

    /// [`Denylist::needs_revalidation`] as of `now`.
    fn needs_revalidation(
        &self,
        session: &MemberSession,
        stytch_checked_at: Option<SystemTime>,
        now: Instant,
    ) -> bool {
        let Some(marks) = self.marks.get(&session.member_id) else {
            return false;
        };
        let mut roles: Vec<&str> = session.roles.iter().map(String::as_str).collect();
        roles.sort_unstable();
        roles.dedup();
        // Any mark asking is enough: a needless re-validation costs a Stytch call, a missed
        // one serves stale roles.
        marks.iter().any(|mark| {
            mark.until > now
                && stytch_checked_at.is_none_or(|at| at < mark.noted_at)
                && !roles
                    .iter()
                    .copied()
                    .eq(mark.roles.iter().map(String::as_str))
        })
    }

    /// [`Denylist::check`] as of `now`.
    fn check(
        &self,
        session: &MemberSession,
        stytch_checked_at: Option<SystemTime>,
        now: Instant,
    ) -> Check {
        let held =
            |holds: Option<&Vec<Hold>>| holds.is_some_and(|h| h.iter().any(|h| h.until > now));
        if held(self.sessions.get(&session.member_session_id))
            || held(self.organizations.get(&session.organization_id))
        {
            return Check::Deny;
        }
        let mut ask = Vec::new();
        for hold in self.members.get(&session.member_id).into_iter().flatten() {
            if hold.until <= now {
                continue;
            }
            let Some(revoked_at) = hold.revoked_at else {
                return Check::Deny;
            };
            match session.started_at {
                Some(started) if started + CLOCK_SKEW < revoked_at => return Check::Deny,
                Some(started) if started > revoked_at + CLOCK_SKEW => {}
                _ if hold.cleared.contains(&session.member_session_id)
                    || stytch_checked_at.is_some_and(|at| at >= revoked_at) => {}
                _ => ask.push(hold.id),
            }
        }
        if ask.is_empty() {
            Check::Allow
        } else {
            Check::Ask(ask)
        }
    }

    /// Sessions, members and credentials held (0: nothing is refused).
    fn len(&self) -> usize {
        self.sessions.len()
            + self.members.len()
            + self.keys.len()
            + self.organizations.len()
            + self.marks.len()
    }

    /// What purging is sized by: the entries, and the revocations holding them (one target
    /// revoked over and over is one entry with many holds).
    fn size(&self) -> usize {
        self.len() + self.by_id.len()
    }

    fn touched(&mut self, id: RevocationId, until: Instant) -> &mut Touched {
        let touched = self.by_id.entry(id).or_default();
        touched.until = Some(touched.until.map_or(until, |u| u.max(until)));
        touched
    }

    fn purge(&mut self, now: Instant) {
        self.sessions.retain(|_, holds| {
            holds.retain(|h| h.until > now);
            !holds.is_empty()
        });
        self.members.retain(|_, holds| {
            holds.retain(|h| h.until > now);
            !holds.is_empty()
        });
        let mut unverified_gone = 0;
        self.keys.retain(|_, holds| {
            holds.retain(|h| {
                let keep = h.until > now;
                unverified_gone += usize::from(!keep && h.unverified);
                keep
            });
            !holds.is_empty()
        });
        self.unverified = self.unverified.saturating_sub(unverified_gone);
        self.organizations.retain(|_, holds| {
            holds.retain(|h| h.until > now);
            !holds.is_empty()
        });
        self.marks.retain(|_, marks| marks.retain(now));
        self.by_id
            .retain(|_, touched| touched.until.is_some_and(|until| until > now));
        self.purge_at_len = (self.size() * 2).max(1024);
    }

    /// Drops the confirmed holds of a session that `keep`'s confirmed hold makes redundant
    /// (it ends no earlier). Unconfirmed holds stay: they may still be undone.
    fn coalesce_session(&mut self, session: &str, keep: RevocationId) {
        let Some(holds) = self.sessions.get_mut(session) else {
            return;
        };
        let Some(until) = holds
            .iter()
            .find(|h| h.id == keep && h.confirmed)
            .map(|h| h.until)
        else {
            return;
        };
        holds.retain(|h| h.id == keep || !h.confirmed || h.until > until);
    }

    /// [`coalesce_session`](Self::coalesce_session) for a credential.
    fn coalesce_key(&mut self, key: &CacheKey, keep: RevocationId) {
        let Some(holds) = self.keys.get_mut(key) else {
            return;
        };
        let Some(until) = holds
            .iter()
            .find(|h| h.id == keep && h.confirmed)
            .map(|h| h.until)
        else {
            return;
        };
        let mut unverified_gone = 0;
        holds.retain(|h| {
            let keep = h.id == keep || !h.confirmed || h.until > until;
            unverified_gone += usize::from(!keep && h.unverified);
            keep
        });
        self.unverified = self.unverified.saturating_sub(unverified_gone);
    }

    /// [`coalesce_session`](Self::coalesce_session) for a member: a confirmed hold with an
    /// earlier (or equal) `revoked_at` and end refuses nothing the later one does not (Stytch
    /// ended every session live at the later one), and what it cleared is asked again.
    fn coalesce_member(&mut self, member: &str, keep: RevocationId) {
        let Some(holds) = self.members.get_mut(member) else {
            return;
        };
        let Some((revoked_at, until)) = holds
            .iter()
            .find(|h| h.id == keep)
            .and_then(|h| Some((h.revoked_at?, h.until)))
        else {
            return;
        };
        holds.retain(|h| {
            h.id == keep || h.revoked_at.is_none_or(|at| at > revoked_at) || h.until > until
        });
    }

    /// Removes every hold of `id`.
    fn release(&mut self, id: RevocationId) {
        let Some(touched) = self.by_id.remove(&id) else {
            return;
        };
        for session in &touched.sessions {
            if let Some(holds) = self.sessions.get_mut(session) {
                holds.retain(|h| h.id != id);
                if holds.is_empty() {
                    self.sessions.remove(session);
                }
            }
        }
        for member in &touched.members {
            if let Some(holds) = self.members.get_mut(member) {
                holds.retain(|h| h.id != id);
                if holds.is_empty() {
                    self.members.remove(member);
                }
            }
        }
        for organization in &touched.organizations {
            if let Some(holds) = self.organizations.get_mut(organization) {
                holds.retain(|h| h.id != id);
                if holds.is_empty() {
                    self.organizations.remove(organization);
                }
            }
        }
        for key in &touched.keys {
            if let Some(holds) = self.keys.get_mut(key) {
                let unverified = holds.iter().filter(|h| h.id == id && h.unverified).count();
                holds.retain(|h| h.id != id);
                self.unverified = self.unverified.saturating_sub(unverified);
                if holds.is_empty() {
                    self.keys.remove(key);
                }
            }
        }
    }
}

/// The revocation denylist. Bounded by time: holds are purged once expired, amortised over
/// inserts; unverified credential holds are also counted, for their own bound. The check on
/// every request is one atomic load when nothing was revoked.
#[derive(Debug, Default)]
pub(crate) struct Denylist {
    len: AtomicUsize,
    entries: RwLock<Entries>,
}

impl Denylist {
    fn write<T>(&self, f: impl FnOnce(&mut Entries) -> T) -> T {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let out = f(&mut entries);
        if entries.size() >= entries.purge_at_len {
            entries.purge(Instant::now());
        }
        self.len.store(entries.len(), Ordering::Release);
        out
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Revocation `id` refuses one session until `until`. `confirmed`: Stytch confirmed it
    /// (see [`confirm`](Self::confirm)).
    pub(crate) fn hold_session(
        &self,
        id: RevocationId,
        member_session_id: &str,
        until: Instant,
        confirmed: bool,
    ) {
        self.write(|e| {
            e.touched(id, until)
                .sessions
                .push(member_session_id.to_owned());
            let holds = e.sessions.entry(member_session_id.to_owned()).or_default();
            holds.push(Hold {
                id,
                until,
                confirmed,
            });
            e.coalesce_session(member_session_id, id);
        });
    }

    /// Revocation `id` refuses the member's sessions until `until`: all of them while
    /// `revoked_at` is `None` (Stytch has not confirmed), then those that started before
    /// `revoked_at` (see [`check`](Self::check)).
    pub(crate) fn hold_member(
        &self,
        id: RevocationId,
        member_id: &str,
        until: Instant,
        revoked_at: Option<SystemTime>,
    ) {
        self.write(|e| {
            e.touched(id, until).members.push(member_id.to_owned());
            e.members
                .entry(member_id.to_owned())
                .or_default()
                .push(MemberHold {
                    id,
                    until,
                    revoked_at,
                    cleared: HashSet::default(),
                });
            e.coalesce_member(member_id, id);
        });
    }

    /// Revocation `id` refuses one credential (by its hash) until `until`. `unverified`: the
    /// credential could not be authenticated here (see
    /// [`unverified_holds`](Self::unverified_holds)).
    pub(crate) fn hold_key(
        &self,
        id: RevocationId,
        key: CacheKey,
        until: Instant,
        confirmed: bool,
        unverified: bool,
    ) {
        self.write(|e| {
            e.touched(id, until).keys.push(key);
            e.keys.entry(key).or_default().push(KeyHold {
                id,
                until,
                confirmed,
                unverified,
            });
            e.unverified += usize::from(unverified);
            e.coalesce_key(&key, id);
        });
    }

    /// Revocation `id` (an organization deleted at Stytch) refuses every session of
    /// `organization_id` until `until`. Stytch made it: it is confirmed from the start.
    pub(crate) fn hold_organization(
        &self,
        id: RevocationId,
        organization_id: &str,
        until: Instant,
    ) {
        self.write(|e| {
            e.touched(id, until)
                .organizations
                .push(organization_id.to_owned());
            e.organizations
                .entry(organization_id.to_owned())
                .or_default()
                .push(Hold {
                    id,
                    until,
                    confirmed: true,
                });
        });
    }

    /// The member's roles changed at Stytch at `event_at` (noted here at `noted_at`): until
    /// `until`, a session of the member whose roles differ from `roles` and that Stytch has
    /// not vouched for since `noted_at` is re-validated (see
    /// [`needs_revalidation`](Self::needs_revalidation)). An older event than the one held
    /// from the same `source` changes nothing (Svix may deliver out of order); a mark from
    /// one source never replaces one from the other. Returns whether it was recorded.
    pub(crate) fn mark_roles(
        &self,
        member_id: &str,
        source: MarkSource,
        event_at: SystemTime,
        noted_at: SystemTime,
        mut roles: Vec<String>,
        until: Instant,
    ) -> bool {
        roles.sort();
        roles.dedup();
        self.write(|e| {
            let now = Instant::now();
            let slot = e
                .marks
                .entry(member_id.to_owned())
                .or_default()
                .slot(source);
            match slot {
                Some(held) if held.until > now && held.event_at > event_at => false,
                _ => {
                    *slot = Some(Mark {
                        event_at,
                        noted_at,
                        roles,
                        until,
                    });
                    true
                }
            }
        })
    }

    /// Whether `session`'s roles must be asked of Stytch again: its member's roles changed
    /// at Stytch (a mark), its roles differ from the new ones, and Stytch has not vouched for
    /// it since the change was noted here (`stytch_checked_at`: when the authenticate call
    /// behind it was sent; `None` for a locally verified JWT).
    pub(crate) fn needs_revalidation(
        &self,
        session: &MemberSession,
        stytch_checked_at: Option<SystemTime>,
    ) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.read()
            .needs_revalidation(session, stytch_checked_at, Instant::now())
    }

    /// Stytch confirmed revocation `id` at `revoked_at`: its holds now end at `until` (only
    /// JWTs minted before it can still verify), its member holds refuse the sessions that
    /// started before `revoked_at`, and the confirmed holds it makes redundant go.
    pub(crate) fn confirm(&self, id: RevocationId, until: Instant, revoked_at: SystemTime) {
        self.write(|e| {
            let Some(touched) = e.by_id.get_mut(&id) else {
                return;
            };
            touched.until = Some(until);
            let touched = std::mem::take(touched);
            for session in &touched.sessions {
                for h in e.sessions.get_mut(session).into_iter().flatten() {
                    if h.id == id {
                        (h.until, h.confirmed) = (until, true);
                    }
                }
                e.coalesce_session(session, id);
            }
            for member in &touched.members {
                for h in e.members.get_mut(member).into_iter().flatten() {
                    if h.id == id {
                        (h.until, h.revoked_at) = (until, Some(revoked_at));
                    }
                }
                e.coalesce_member(member, id);
            }
            for key in &touched.keys {
                for h in e.keys.get_mut(key).into_iter().flatten() {
                    if h.id == id {
                        (h.until, h.confirmed) = (until, true);
                    }
                }
                e.coalesce_key(key, id);
            }
            e.by_id.insert(id, touched);
        });
    }

    /// Undoes revocation `id` here: removes its holds, and only its holds.
    pub(crate) fn release(&self, id: RevocationId) {
        self.write(|e| e.release(id));
    }

    /// Holds on unverified credentials in force (their bound is checked before adding one).
    pub(crate) fn unverified_holds(&self) -> usize {
        self.read().unverified
    }

    /// Whether the credential `key` is refused.
    pub(crate) fn is_key_denied(&self, key: &CacheKey) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.read().is_key_denied(key, Instant::now())
    }

    /// What the revocations here say about `session`. `stytch_checked_at`: when Stytch last
    /// said this session is alive, if the caller knows (a remote authenticate sent then).
    ///
    /// A member-wide revocation refuses every session of the member until Stytch confirms
    /// it; then, with `revoked_at` its confirmation, sessions started before
    /// `revoked_at - CLOCK_SKEW` are refused, those started after `revoked_at + CLOCK_SKEW`
    /// are not concerned, and those in between (or of unknown start) are [`Check::Ask`]ed of
    /// Stytch unless Stytch already said they are alive after `revoked_at`.
    pub(crate) fn check(
        &self,
        session: &MemberSession,
        stytch_checked_at: Option<SystemTime>,
    ) -> Check {
        if self.len.load(Ordering::Acquire) == 0 {
            return Check::Allow;
        }
        self.read()
            .check(session, stytch_checked_at, Instant::now())
    }

    /// Whether a cache hit of credential `key` for `session` may be served as it is: the
    /// credential not refused, no re-validation due
    /// ([`needs_revalidation`](Self::needs_revalidation)) and [`Check::Allow`]
    /// ([`check`](Self::check)). The three under one read lock and one clock reading: this
    /// runs on every cache hit.
    pub(crate) fn serves(
        &self,
        key: &CacheKey,
        session: &MemberSession,
        stytch_checked_at: Option<SystemTime>,
    ) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return true;
        }
        let now = Instant::now();
        let entries = self.read();
        !entries.is_key_denied(key, now)
            && !entries.needs_revalidation(session, stytch_checked_at, now)
            && matches!(entries.check(session, stytch_checked_at, now), Check::Allow)
    }

    /// Stytch said `member_session_id` is alive after the member revocations `ids`: it is not
    /// asked about again for them.
    pub(crate) fn clear(&self, ids: &[RevocationId], member_id: &str, member_session_id: &str) {
        self.write(|e| {
            for hold in e.members.get_mut(member_id).into_iter().flatten() {
                if ids.contains(&hold.id) && hold.cleared.len() < MAX_CLEARED_PER_HOLD {
                    hold.cleared.insert(member_session_id.to_owned());
                }
            }
        });
    }

    /// Number of sessions, members and credentials held, not yet purged.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::cache::tests::session;

    const R1: RevocationId = RevocationId(1);
    const R2: RevocationId = RevocationId(2);

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn started(member: &str, id: &str, at: SystemTime) -> MemberSession {
        let mut s = session(member, id);
        s.make_mut().started_at = Some(at);
        s
    }

    #[test]
    fn a_cache_hit_is_served_only_when_every_check_allows_it() {
        // If this broke, the one-lock verdict of a cache hit (`serves`) would serve a
        // credential, session, organization or member revoked here, or stale roles, that the
        // separate checks refuse.
        let d = Denylist::default();
        let key = [7u8; 32];
        let s1 = session("m1", "s1");
        let separate = |d: &Denylist, key: &CacheKey, s: &MemberSession| {
            !d.is_key_denied(key)
                && !d.needs_revalidation(s, None)
                && d.check(s, None) == Check::Allow
        };
        assert!(d.serves(&key, &s1, None), "nothing held");
        d.hold_session(R2, "other-session", later(), false);
        assert!(d.serves(&key, &s1, None), "someone else's revocation");
        let other_key = [8u8; 32];
        d.hold_key(R1, other_key, later(), false, false);
        assert!(!d.serves(&other_key, &s1, None));
        assert!(d.serves(&key, &s1, None));
        d.release(R1);
        d.hold_session(R1, "s1", later(), false);
        assert!(!d.serves(&key, &s1, None));
        d.release(R1);
        d.hold_member(R1, "m1", later(), None);
        assert!(!d.serves(&key, &s1, None));
        d.release(R1);
        d.hold_organization(R1, "organization-test-1", later());
        assert!(!d.serves(&key, &s1, None));
        d.release(R1);
        assert!(d.serves(&key, &s1, None));
        let now = SystemTime::now();
        assert!(d.mark_roles(
            "m1",
            MarkSource::Here,
            now,
            now,
            vec!["admin".into()],
            later()
        ));
        assert!(!d.serves(&key, &s1, None), "roles changed at Stytch");
        for (k, s) in [(&key, &s1), (&other_key, &session("m2", "s2"))] {
            assert_eq!(d.serves(k, s, None), separate(&d, k, s));
        }
    }

    #[test]
    fn session_revocation_hits_only_that_session() {
        // If this broke, a logged-out session's JWT would still be accepted here.
        let d = Denylist::default();
        let s1 = session("m1", "s1");
        let s2 = session("m1", "s2");
        assert_eq!(d.check(&s1, None), Check::Allow);
        d.hold_session(R1, "s1", later(), false);
        assert_eq!(d.check(&s1, None), Check::Deny);
        assert_eq!(d.check(&s2, None), Check::Allow);
    }

    #[test]
    fn undo_releases_only_that_revocations_holds() {
        // If this broke, Stytch refusing one revocation would also lift another revocation
        // of the same session (or leave the refused one in force).
        let d = Denylist::default();
        let s1 = session("m1", "s1");
        let key = [7u8; 32];
        d.hold_session(R1, "s1", later(), false);
        d.hold_session(R2, "s1", later(), false);
        d.hold_key(R1, key, later(), false, false);
        d.release(R1);
        assert_eq!(d.check(&s1, None), Check::Deny, "R2 still holds it");
        assert!(!d.is_key_denied(&key));
        d.release(R2);
        assert_eq!(d.check(&s1, None), Check::Allow);
        d.release(R2); // twice: nothing left, nothing breaks
        d.hold_member(R1, "m1", later(), None);
        d.release(R1);
        assert_eq!(d.check(&s1, None), Check::Allow);
    }

    #[test]
    fn unconfirmed_member_revocation_refuses_every_session_of_the_member() {
        // If this broke, a session started while a member-wide revocation waits for Stytch
        // would be served here, though Stytch revokes it when the revocation reaches it.
        let d = Denylist::default();
        d.hold_member(R1, "m1", later(), None);
        let fresh = started("m1", "s9", SystemTime::now() + Duration::from_secs(3600));
        assert_eq!(d.check(&fresh, None), Check::Deny);
        assert_eq!(d.check(&session("m2", "s3"), None), Check::Allow);
    }

    #[test]
    fn confirmed_member_revocation_refuses_before_spares_after_and_asks_in_between() {
        // If this broke, with clocks apart a session started just before a member-wide
        // revocation would be accepted, or one started just after refused (a 401 loop).
        let d = Denylist::default();
        let at = UNIX_EPOCH + Duration::from_secs(10_000);
        d.hold_member(R1, "m1", later(), None);
        d.confirm(R1, later(), at);
        let skew = CLOCK_SKEW;
        let before = started("m1", "s1", at - skew - Duration::from_secs(1));
        let just_before = started("m1", "s2", at - Duration::from_secs(1));
        let just_after = started("m1", "s3", at + skew);
        let after = started("m1", "s4", at + skew + Duration::from_secs(1));
        let mut unknown = session("m1", "s5");
        unknown.make_mut().started_at = None;
        assert_eq!(d.check(&before, None), Check::Deny);
        assert_eq!(d.check(&just_before, None), Check::Ask(vec![R1]));
        assert_eq!(d.check(&just_after, None), Check::Ask(vec![R1]));
        assert_eq!(d.check(&unknown, None), Check::Ask(vec![R1]));
        assert_eq!(d.check(&after, None), Check::Allow);
        // Stytch said s3 is alive: not asked again; an answer from before the confirmation
        // says nothing.
        d.clear(&[R1], "m1", "s3");
        assert_eq!(d.check(&just_after, None), Check::Allow);
        assert_eq!(
            d.check(&just_before, Some(at - Duration::from_secs(1))),
            Check::Ask(vec![R1])
        );
        assert_eq!(d.check(&just_before, Some(at)), Check::Allow);
        // A second, unconfirmed revocation of the member refuses them all again.
        d.hold_member(R2, "m1", later(), None);
        assert_eq!(d.check(&after, None), Check::Deny);
    }

    #[test]
    fn confirmation_shortens_the_holds() {
        // If this broke, a confirmed revocation would keep its long outage hold (or lose it).
        let d = Denylist::default();
        let key = [1u8; 32];
        d.hold_key(
            R1,
            key,
            Instant::now() + Duration::from_secs(3600),
            false,
            false,
        );
        d.hold_session(R1, "s1", Instant::now() + Duration::from_secs(3600), false);
        d.confirm(R1, Instant::now(), SystemTime::now());
        assert!(!d.is_key_denied(&key));
        assert_eq!(d.check(&session("m1", "s1"), None), Check::Allow);
    }

    #[test]
    fn confirmed_holds_of_one_target_coalesce_and_unconfirmed_ones_stay() {
        // If this broke, a target revoked over and over would pile up holds that every
        // request walks (or a hold Stytch has not confirmed, still undoable, would be lost).
        let d = Denylist::default();
        let key = [9u8; 32];
        for n in 0..100 {
            let id = RevocationId(n);
            d.hold_member(id, "m1", later(), None);
            d.hold_session(id, "s1", later(), false);
            d.hold_key(id, key, later(), false, true);
            d.confirm(id, later(), SystemTime::now());
        }
        d.hold_member(RevocationId(500), "m1", later(), None);
        let counts = |d: &Denylist| {
            let e = d.read();
            (
                e.members["m1"].len(),
                e.sessions["s1"].len(),
                e.keys[&key].len(),
            )
        };
        assert_eq!(counts(&d), (2, 1, 1));
        assert_eq!(d.unverified_holds(), 1);
        d.release(RevocationId(500));
        assert_eq!(counts(&d), (1, 1, 1));
        assert_eq!(d.check(&session("m1", "s1"), None), Check::Deny);
    }

    #[test]
    fn unverified_holds_are_counted_until_released_or_expired() {
        // If this broke, the bound on junk-credential holds would never free up (or not hold).
        let d = Denylist::default();
        d.hold_key(R1, [1u8; 32], later(), false, true);
        d.hold_key(R2, [2u8; 32], Instant::now(), false, true);
        d.hold_key(RevocationId(3), [3u8; 32], later(), false, false);
        assert_eq!(d.unverified_holds(), 2);
        d.release(R1);
        assert_eq!(d.unverified_holds(), 1);
        d.write(|e| e.purge(Instant::now()));
        assert_eq!(d.unverified_holds(), 0);
    }

    #[test]
    fn entries_expire_and_are_purged() {
        // If this broke, the denylist would grow forever (or refuse forever).
        let d = Denylist::default();
        let past = Instant::now();
        for n in 0..3000 {
            d.hold_session(RevocationId(n), &format!("s{n}"), past, false);
        }
        assert!(d.len() < 3000, "{}", d.len());
        assert_eq!(d.check(&session("m", "s2999"), None), Check::Allow);
        let key = [7u8; 32];
        d.hold_key(R1, key, later(), false, false);
        assert!(d.is_key_denied(&key));
        assert!(!d.is_key_denied(&[8u8; 32]));
        assert!(d.read().by_id.len() < 3000);
        // One target revoked over and over is purged too.
        for n in 0..3000 {
            d.hold_member(RevocationId(10_000 + n), "m", past, None);
        }
        assert!(d.read().members.get("m").map_or(0, Vec::len) < 3000);
    }

    #[test]
    fn organization_hold_refuses_its_members_only_until_undone() {
        // If this broke, members of an organization deleted at Stytch would stay signed in
        // here (or members of other organizations would be refused).
        let d = Denylist::default();
        let mut other = session("m2", "s2");
        other.make_mut().organization_id = "organization-test-2".to_owned();
        d.hold_organization(R1, "organization-test-1", later());
        assert_eq!(d.check(&session("m1", "s1"), None), Check::Deny);
        assert_eq!(d.check(&other, None), Check::Allow);
        d.release(R1);
        assert_eq!(d.check(&session("m1", "s1"), None), Check::Allow);
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn role_mark_revalidates_differing_sessions_not_vouched_for_since() {
        // If this broke, a demoted admin's sessions would keep their old roles here until the
        // cache entry or JWT expired, or every request of the member would go to Stytch.
        let d = Denylist::default();
        let noted = SystemTime::now();
        let mut admin = session("m1", "s1");
        admin.make_mut().roles = vec!["stytch_member".to_owned(), "stytch_admin".to_owned()];
        let mut demoted = session("m1", "s2");
        demoted.make_mut().roles = vec!["stytch_member".to_owned()];
        assert!(!d.needs_revalidation(&admin, None));
        assert!(d.mark_roles(
            "m1",
            MarkSource::Here,
            noted,
            noted,
            vec!["stytch_member".to_owned()],
            later()
        ));
        // Old roles, locally verified or checked at Stytch before the change: asked again.
        assert!(d.needs_revalidation(&admin, None));
        assert!(d.needs_revalidation(&admin, Some(noted - Duration::from_secs(1))));
        // Checked at Stytch since, or already the new roles: served.
        assert!(!d.needs_revalidation(&admin, Some(noted)));
        assert!(!d.needs_revalidation(&demoted, None));
        // Another member: not concerned.
        assert!(!d.needs_revalidation(&session("m2", "s3"), None));
        // An older event delivered late changes nothing.
        let older = noted - Duration::from_secs(10);
        assert!(!d.mark_roles(
            "m1",
            MarkSource::Here,
            older,
            noted,
            vec!["stytch_admin".to_owned()],
            later()
        ));
        assert!(!d.needs_revalidation(&demoted, None));
    }

    #[test]
    fn a_peers_role_mark_never_hides_one_received_here() {
        // If this broke, whoever can write to Redis could keep a demoted admin's sessions
        // served as admin on the instance that received Stytch's webhook, with a `roles`
        // message naming their old roles and a later change time.
        let d = Denylist::default();
        let noted = SystemTime::now();
        let mut admin = session("m1", "s1");
        admin.make_mut().roles = vec!["stytch_admin".to_owned()];
        let future = noted + Duration::from_secs(86_400);
        let old_roles = || vec!["stytch_admin".to_owned()];
        assert!(d.mark_roles("m1", MarkSource::Peer, future, noted, old_roles(), later()));
        assert!(!d.needs_revalidation(&admin, None));
        // The genuine, earlier event received here is recorded all the same, and asks.
        assert!(d.mark_roles("m1", MarkSource::Here, noted, noted, Vec::new(), later()));
        assert!(d.needs_revalidation(&admin, None));
        // Nor does a later peer mark replace it.
        let later_still = future + Duration::from_secs(1);
        assert!(d.mark_roles(
            "m1",
            MarkSource::Peer,
            later_still,
            noted,
            old_roles(),
            later()
        ));
        assert!(d.needs_revalidation(&admin, None));
        // Between peers, the later event wins as before.
        assert!(!d.mark_roles("m1", MarkSource::Peer, noted, noted, Vec::new(), later()));
    }
}
