//! The denylist's maps: holds per session, member, credential and organization, role marks,
//! and what each revocation holds. Read and written under the [`Denylist`](super::Denylist)'s
//! lock only.

use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime};

use super::{CLOCK_SKEW, Check, Hasher, MarkSource, RevocationId};
use crate::credential::CacheKey;
use crate::session::MemberSession;

#[derive(Debug, Clone, Copy)]
pub(super) struct Hold {
    pub(super) id: RevocationId,
    pub(super) until: Instant,
    /// Stytch confirmed it: it can no longer be undone.
    pub(super) confirmed: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct KeyHold {
    pub(super) id: RevocationId,
    pub(super) until: Instant,
    pub(super) confirmed: bool,
    /// A credential nothing here could authenticate (counted against its own bound).
    pub(super) unverified: bool,
}

#[derive(Debug)]
pub(super) struct MemberHold {
    pub(super) id: RevocationId,
    pub(super) until: Instant,
    /// When Stytch confirmed the revocation (this host's clock); `None` until then, and every
    /// session of the member is refused meanwhile: Stytch revokes those live when it runs it.
    pub(super) revoked_at: Option<SystemTime>,
    /// Sessions Stytch said are alive after the revocation.
    pub(super) cleared: HashSet<String, Hasher>,
}

/// What one revocation holds, to find its holds again.
#[derive(Debug, Default)]
pub(super) struct Touched {
    pub(super) sessions: Vec<String>,
    pub(super) members: Vec<String>,
    pub(super) keys: Vec<CacheKey>,
    pub(super) organizations: Vec<String>,
    pub(super) until: Option<Instant>,
}

/// A member's roles changed at Stytch (a webhook): sessions of the member that Stytch has not
/// vouched for since, and whose roles differ, are re-validated at Stytch.
#[derive(Debug, Clone)]
pub(super) struct Mark {
    /// When Stytch sent the event: of two marks, the later event wins.
    pub(super) event_at: SystemTime,
    /// When this process learnt of it (this host's clock): an authenticate sent after it
    /// saw the new roles.
    pub(super) noted_at: SystemTime,
    /// The member's role ids after the change, sorted.
    pub(super) roles: Vec<String>,
    pub(super) until: Instant,
}

/// A member's marks, one per [`MarkSource`], kept apart so that a peer's (anyone who can
/// write to Redis) never replaces, and so never hides, one received here.
#[derive(Debug, Default)]
pub(super) struct Marks {
    pub(super) here: Option<Mark>,
    pub(super) peer: Option<Mark>,
}

impl Marks {
    pub(super) fn slot(&mut self, source: MarkSource) -> &mut Option<Mark> {
        match source {
            MarkSource::Here => &mut self.here,
            MarkSource::Peer => &mut self.peer,
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Mark> {
        self.here.iter().chain(self.peer.iter())
    }

    /// Drops the marks ended by `now`; whether any is left.
    pub(super) fn retain(&mut self, now: Instant) -> bool {
        self.here = self.here.take().filter(|m| m.until > now);
        self.peer = self.peer.take().filter(|m| m.until > now);
        self.here.is_some() || self.peer.is_some()
    }
}

#[derive(Debug, Default)]
pub(super) struct Entries {
    pub(super) sessions: HashMap<String, Vec<Hold>, Hasher>,
    pub(super) members: HashMap<String, Vec<MemberHold>, Hasher>,
    pub(super) keys: HashMap<CacheKey, Vec<KeyHold>, Hasher>,
    /// Organizations deleted at Stytch: every session of theirs refused.
    pub(super) organizations: HashMap<String, Vec<Hold>, Hasher>,
    /// Members whose roles changed at Stytch.
    pub(super) marks: HashMap<String, Marks, Hasher>,
    pub(super) by_id: HashMap<RevocationId, Touched, Hasher>,
    pub(super) unverified: usize,
    pub(super) purge_at_len: usize,
}

impl Entries {
    /// [`Denylist::is_key_denied`] as of `now`.
    pub(super) fn is_key_denied(&self, key: &CacheKey, now: Instant) -> bool {
        self.keys
            .get(key)
            .is_some_and(|holds| holds.iter().any(|h| h.until > now))
    }

    /// [`Denylist::needs_revalidation`] as of `now`.
    pub(super) fn needs_revalidation(
        &self,
        session: &MemberSession,
        stytch_checked_at: Option<SystemTime>,
        now: Instant,
    ) -> bool {
        let Some(marks) = self.marks.get(&*session.member_id.as_str()) else {
            return false;
        };
        let mut roles: Vec<&str> = session.roles().iter().map(String::as_str).collect();
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
    pub(super) fn check(
        &self,
        session: &MemberSession,
        stytch_checked_at: Option<SystemTime>,
        now: Instant,
    ) -> Check {
        let held =
            |holds: Option<&Vec<Hold>>| holds.is_some_and(|h| h.iter().any(|h| h.until > now));
        if held(self.sessions.get(&*session.member_session_id.as_str()))
            || held(self.organizations.get(&*session.organization_id().as_str()))
        {
            return Check::Deny;
        }
        let mut ask = Vec::new();
        for hold in self
            .members
            .get(&*session.member_id.as_str())
            .into_iter()
            .flatten()
        {
            if hold.until <= now {
                continue;
            }
            let Some(revoked_at) = hold.revoked_at else {
                return Check::Deny;
            };
            match session.started_at() {
                Some(started) if started + CLOCK_SKEW < revoked_at => return Check::Deny,
                Some(started) if started > revoked_at + CLOCK_SKEW => {}
                _ if hold.cleared.contains(&*session.member_session_id.as_str())
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
    pub(super) fn len(&self) -> usize {
        self.sessions.len()
            + self.members.len()
            + self.keys.len()
            + self.organizations.len()
            + self.marks.len()
    }

    /// What purging is sized by: the entries, and the revocations holding them (one target
    /// revoked over and over is one entry with many holds).
    pub(super) fn size(&self) -> usize {
        self.len() + self.by_id.len()
    }

    pub(super) fn touched(&mut self, id: RevocationId, until: Instant) -> &mut Touched {
        let touched = self.by_id.entry(id).or_default();
        touched.until = Some(touched.until.map_or(until, |u| u.max(until)));
        touched
    }

    pub(super) fn purge(&mut self, now: Instant) {
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
    pub(super) fn coalesce_session(&mut self, session: &str, keep: RevocationId) {
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
    pub(super) fn coalesce_key(&mut self, key: &CacheKey, keep: RevocationId) {
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
    pub(super) fn coalesce_member(&mut self, member: &str, keep: RevocationId) {
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
    pub(super) fn release(&mut self, id: RevocationId) {
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
