use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::store::cache::tests::session;

const R1: RevocationId = RevocationId(1);
const R2: RevocationId = RevocationId(2);

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn started(member: &str, id: &str, at: SystemTime) -> MemberSession {
    let mut s = session(member, id);
    s.make_mut().set_started_at(Some(at));
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
        !d.is_key_denied(key) && !d.needs_revalidation(s, None) && d.check(s, None) == Check::Allow
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
    unknown.make_mut().set_started_at(None);
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
    other.make_mut().set_organization("organization-test-2", "");
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
    admin
        .make_mut()
        .set_roles(vec!["stytch_member".to_owned(), "stytch_admin".to_owned()]);
    let mut demoted = session("m1", "s2");
    demoted
        .make_mut()
        .set_roles(vec!["stytch_member".to_owned()]);
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
    admin.make_mut().set_roles(vec!["stytch_admin".to_owned()]);
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
