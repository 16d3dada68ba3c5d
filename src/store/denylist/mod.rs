//! Sessions, members and credentials revoked through this process: refused here whatever the
//! cache or local JWT verification would say, from the moment of revocation until no
//! credential of theirs can still verify (a JWT lives up to 5 minutes).
//!
//! Every refusal is a *hold* of one revocation ([`RevocationId`]). One session, member or
//! credential can be held by several revocations at once; undoing a revocation (Stytch refused
//! it) removes its holds and no other, so what another revocation refuses stays refused.

mod entries;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use self::entries::{Entries, Hold, KeyHold, Mark, MemberHold};
use crate::credential::CacheKey;
use crate::session::MemberSession;

/// How far this host's clock and Stytch's may be apart. Session starts within this of a
/// member-wide revocation are asked of Stytch rather than guessed.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(30);

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

/// Where a role mark was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkSource {
    /// A webhook received (and verified) here.
    Here,
    /// A peer, through the revocation bus.
    Peer,
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
                    cleared: std::collections::HashSet::default(),
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
