//! The bus's wire format: one Stream entry is one message of flat string fields, versioned
//! (`v`) and typed (`kind`), holding ids, hashes and times only, never a credential.
//!
//! | field | in | what |
//! |---|---|---|
//! | `v` | all | format version, `1` |
//! | `kind` | all | `session`, `member`, `key` (applied), `confirm`, `undo`; made by Stytch (told by its webhook): `stytch_member`, `stytch_organization`, `roles` |
//! | `from` | all | the publishing instance (skipped by itself) |
//! | `origin`, `rev` | all | the revocation (or roles mark): the instance that decided it (got the webhook) and its id there |
//! | `id` | applied, by Stytch | `member_session_id`, `member_id`, or the credential's SHA-256 (hex); `member_id` or `organization_id` |
//! | `confirmed` | applied | `1` when Stytch had confirmed it when it was applied |
//! | `until` | applied, confirm, by Stytch | when its holds (or mark) end (Unix ms); for a pending entry, when retrying ends |
//! | `revoked_at` | member applied (confirmed), confirm, `stytch_*` | when Stytch confirmed (or made) it (Unix ms) |
//! | `changed_at` | `roles` | when Stytch changed the member's roles (its event's timestamp, Unix ms) |
//! | `roles` | `roles` | the member's role ids after the change: a JSON array of strings, at most 1 MiB |
//!
//! What Stytch made needs no pending entry and no `confirm`: Stytch already made it.
//!
//! A kind this version does not know (a newer instance's) is skipped, not an error; a
//! message that breaks this table is malformed: counted and dropped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::credential::CacheKey;
use crate::revoke::MadeByStytch;
use crate::session::is_stytch_id;

/// The format version written and read.
pub(crate) const VERSION: &str = "1";

/// An instance's id: 128 random bits, as 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct InstanceId(String);

impl InstanceId {
    pub(crate) fn random() -> Self {
        Self(format!(
            "{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        ))
    }

    fn parse(value: &str) -> Option<Self> {
        (value.len() == 32
            && value
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| Self(value.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// One revocation across instances: who decided it, and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RevKey {
    pub(crate) origin: InstanceId,
    pub(crate) rev: u64,
}

/// What a revocation revokes, on the wire.
pub(crate) use crate::revoke::RemoteTarget as WireTarget;

impl WireTarget {
    fn kind(&self) -> &'static str {
        match self {
            Self::Session(_) => "session",
            Self::Member(_) => "member",
            Self::Key(_) => "key",
        }
    }

    fn id(&self) -> String {
        match self {
            Self::Session(id) | Self::Member(id) => id.clone(),
            Self::Key(key) => hex(key),
        }
    }
}

/// What happened to the revocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Body {
    /// Applied by its origin (or, in the pending Stream, waiting for Stytch until `until`).
    Applied {
        target: WireTarget,
        confirmed: bool,
        until: SystemTime,
        revoked_at: Option<SystemTime>,
    },
    /// Stytch confirmed it: holds end at `until`; member-wide ones refuse sessions started
    /// before `revoked_at`.
    Confirmed {
        until: SystemTime,
        revoked_at: SystemTime,
    },
    /// Stytch refused it: its holds go.
    Undone,
    /// Stytch made it (the publisher got its webhook): holds end at `until`; a member's
    /// sessions started before `revoked_at` are refused, an organization's all.
    MadeByStytch {
        target: MadeByStytch,
        revoked_at: SystemTime,
        until: SystemTime,
    },
    /// A member's roles changed at Stytch at `changed_at` (the publisher got its webhook):
    /// their sessions with other roles are re-validated until `until`.
    RolesChanged {
        member: String,
        changed_at: SystemTime,
        roles: Vec<String>,
        until: SystemTime,
    },
}

/// Longest `roles` field: a webhook's body limit, so every role list a verified webhook can
/// carry fits (its JSON array is never longer than the body it came in).
const MAX_ROLES: usize = crate::webhook::MAX_BODY;

impl Body {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Applied { target, .. } => target.kind(),
            Self::Confirmed { .. } => "confirm",
            Self::Undone => "undo",
            Self::MadeByStytch {
                target: MadeByStytch::Member(_),
                ..
            } => "stytch_member",
            Self::MadeByStytch {
                target: MadeByStytch::Organization(_),
                ..
            } => "stytch_organization",
            Self::RolesChanged { .. } => "roles",
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Message {
    /// The instance that published it.
    pub(crate) from: InstanceId,
    pub(crate) key: RevKey,
    pub(crate) body: Body,
}

/// What reading an entry gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Message(Message),
    /// A version or kind this instance does not know: skipped.
    Unknown,
    /// Breaks the format: counted and dropped. The reason is a fixed string.
    Malformed(&'static str),
}

impl Message {
    /// The entry's fields, in order.
    pub(crate) fn encode(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("v", VERSION.to_owned()),
            ("kind", self.body.kind().to_owned()),
            ("from", self.from.0.clone()),
            ("origin", self.key.origin.0.clone()),
            ("rev", self.key.rev.to_string()),
        ];
        match &self.body {
            Body::Applied {
                target,
                confirmed,
                until,
                revoked_at,
            } => {
                fields.push(("id", target.id()));
                fields.push(("confirmed", u8::from(*confirmed).to_string()));
                fields.push(("until", unix_ms(*until).to_string()));
                if let Some(at) = revoked_at {
                    fields.push(("revoked_at", unix_ms(*at).to_string()));
                }
            }
            Body::Confirmed { until, revoked_at } => {
                fields.push(("until", unix_ms(*until).to_string()));
                fields.push(("revoked_at", unix_ms(*revoked_at).to_string()));
            }
            Body::Undone => {}
            Body::MadeByStytch {
                target,
                revoked_at,
                until,
            } => {
                let (MadeByStytch::Member(id) | MadeByStytch::Organization(id)) = target;
                fields.push(("id", id.clone()));
                fields.push(("revoked_at", unix_ms(*revoked_at).to_string()));
                fields.push(("until", unix_ms(*until).to_string()));
            }
            Body::RolesChanged {
                member,
                changed_at,
                roles,
                until,
            } => {
                fields.push(("id", member.clone()));
                fields.push(("changed_at", unix_ms(*changed_at).to_string()));
                fields.push(("roles", serde_json::Value::from(roles.clone()).to_string()));
                fields.push(("until", unix_ms(*until).to_string()));
            }
        }
        fields
    }

    /// Reads an entry's fields. Never panics, whatever the bytes.
    pub(crate) fn decode<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Decoded {
        let mut f = Fields::default();
        for (name, value) in fields {
            let Ok(value) = std::str::from_utf8(value) else {
                return Decoded::Malformed("not_utf8");
            };
            let slot = match name {
                "v" => &mut f.v,
                "kind" => &mut f.kind,
                "from" => &mut f.from,
                "origin" => &mut f.origin,
                "rev" => &mut f.rev,
                "id" => &mut f.id,
                "confirmed" => &mut f.confirmed,
                "until" => &mut f.until,
                "revoked_at" => &mut f.revoked_at,
                "changed_at" => &mut f.changed_at,
                "roles" => &mut f.roles,
                // A newer version may add fields.
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Decoded::Malformed("duplicate_field");
            }
        }
        match f.message() {
            Ok(Some(message)) => Decoded::Message(message),
            Ok(None) => Decoded::Unknown,
            Err(reason) => Decoded::Malformed(reason),
        }
    }
}

#[derive(Default)]
struct Fields<'a> {
    v: Option<&'a str>,
    kind: Option<&'a str>,
    from: Option<&'a str>,
    origin: Option<&'a str>,
    rev: Option<&'a str>,
    id: Option<&'a str>,
    confirmed: Option<&'a str>,
    until: Option<&'a str>,
    revoked_at: Option<&'a str>,
    changed_at: Option<&'a str>,
    roles: Option<&'a str>,
}

impl Fields<'_> {
    fn message(&self) -> Result<Option<Message>, &'static str> {
        if self.v.ok_or("no_version")? != VERSION {
            return Ok(None);
        }
        let kind = self.kind.ok_or("no_kind")?;
        let from = InstanceId::parse(self.from.ok_or("no_from")?).ok_or("bad_from")?;
        let origin = InstanceId::parse(self.origin.ok_or("no_origin")?).ok_or("bad_origin")?;
        let rev = self.rev.ok_or("no_rev")?.parse().map_err(|_| "bad_rev")?;
        let body = match kind {
            "session" | "member" | "key" => self.applied(kind)?,
            "confirm" => Body::Confirmed {
                until: time(self.until.ok_or("no_until")?)?,
                revoked_at: time(self.revoked_at.ok_or("no_revoked_at")?)?,
            },
            "undo" => Body::Undone,
            "stytch_member" | "stytch_organization" => self.made_by_stytch(kind)?,
            "roles" => self.roles_changed()?,
            _ => return Ok(None),
        };
        Ok(Some(Message {
            from,
            key: RevKey { origin, rev },
            body,
        }))
    }

    fn applied(&self, kind: &str) -> Result<Body, &'static str> {
        let id = self.id.ok_or("no_id")?;
        let target = match kind {
            "session" if is_stytch_id(id) => WireTarget::Session(id.to_owned()),
            "member" if is_stytch_id(id) => WireTarget::Member(id.to_owned()),
            "key" => WireTarget::Key(unhex(id).ok_or("bad_key")?),
            _ => return Err("bad_id"),
        };
        let confirmed = match self.confirmed.ok_or("no_confirmed")? {
            "0" => false,
            "1" => true,
            _ => return Err("bad_confirmed"),
        };
        Ok(Body::Applied {
            target,
            confirmed,
            until: time(self.until.ok_or("no_until")?)?,
            revoked_at: self.revoked_at.map(time).transpose()?,
        })
    }
}

impl Fields<'_> {
    fn made_by_stytch(&self, kind: &str) -> Result<Body, &'static str> {
        let id = self.id.ok_or("no_id")?;
        if !is_stytch_id(id) {
            return Err("bad_id");
        }
        let target = if kind == "stytch_member" {
            MadeByStytch::Member(id.to_owned())
        } else {
            MadeByStytch::Organization(id.to_owned())
        };
        Ok(Body::MadeByStytch {
            target,
            revoked_at: time(self.revoked_at.ok_or("no_revoked_at")?)?,
            until: time(self.until.ok_or("no_until")?)?,
        })
    }

    fn roles_changed(&self) -> Result<Body, &'static str> {
        let member = self.id.ok_or("no_id")?;
        if !is_stytch_id(member) {
            return Err("bad_id");
        }
        let roles = self.roles.ok_or("no_roles")?;
        if roles.len() > MAX_ROLES {
            return Err("bad_roles");
        }
        let roles: Vec<String> = serde_json::from_str(roles).map_err(|_| "bad_roles")?;
        Ok(Body::RolesChanged {
            member: member.to_owned(),
            changed_at: time(self.changed_at.ok_or("no_changed_at")?)?,
            roles,
            until: time(self.until.ok_or("no_until")?)?,
        })
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Latest time a message may name: far beyond any hold, short of overflowing `SystemTime`.
const MAX_MS: u64 = 1 << 50;

fn time(value: &str) -> Result<SystemTime, &'static str> {
    let ms: u64 = value.parse().map_err(|_| "bad_time")?;
    if ms > MAX_MS {
        return Err("bad_time");
    }
    Ok(UNIX_EPOCH + Duration::from_millis(ms))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(value: &str) -> Option<CacheKey> {
    let bytes = value.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        key[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn instance(n: u8) -> InstanceId {
        InstanceId(format!("{n:032x}"))
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn decode_owned(fields: &[(&'static str, String)]) -> Decoded {
        Message::decode(fields.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    fn samples() -> Vec<Message> {
        let key = RevKey {
            origin: instance(1),
            rev: 42,
        };
        let applied = |target, revoked_at: Option<SystemTime>| Body::Applied {
            target,
            confirmed: revoked_at.is_some(),
            until: at(1_700_000_300_000),
            revoked_at,
        };
        [
            applied(WireTarget::Session("member-session-test-1".into()), None),
            applied(
                WireTarget::Member("member-test-1".into()),
                Some(at(1_700_000_000_000)),
            ),
            applied(WireTarget::Key([0xab; 32]), None),
            Body::Confirmed {
                until: at(1_700_000_300_000),
                revoked_at: at(1_700_000_000_000),
            },
            Body::Undone,
            Body::MadeByStytch {
                target: MadeByStytch::Member("member-test-1".into()),
                revoked_at: at(1_700_000_000_000),
                until: at(1_700_000_300_000),
            },
            Body::MadeByStytch {
                target: MadeByStytch::Organization("organization-test-1".into()),
                revoked_at: at(1_700_000_000_000),
                until: at(1_700_000_300_000),
            },
            roles_changed(vec!["admin, \"ops\"".into(), "stytch_member".into()]),
        ]
        .into_iter()
        .map(|body| Message {
            from: instance(2),
            key: key.clone(),
            body,
        })
        .collect()
    }

    fn roles_changed(roles: Vec<String>) -> Body {
        Body::RolesChanged {
            member: "member-test-1".into(),
            changed_at: at(1_700_000_000_000),
            roles,
            until: at(1_700_000_300_000),
        }
    }

    /// The encoded fields of sample `pick`, field `name` set to `value`.
    fn with(pick: usize, name: &str, value: &str) -> Decoded {
        let mut fields = samples()[pick].encode();
        for field in &mut fields {
            if field.0 == name {
                field.1 = value.to_owned();
            }
        }
        decode_owned(&fields)
    }

    /// The encoded fields of sample `pick` without field `name`.
    fn without(pick: usize, name: &str) -> Decoded {
        let fields: Vec<_> = samples()[pick]
            .encode()
            .into_iter()
            .filter(|f| f.0 != name)
            .collect();
        decode_owned(&fields)
    }

    #[test]
    fn every_kind_round_trips() {
        // If this broke, peers would drop (or misread) what an instance publishes.
        for message in samples() {
            assert_eq!(
                decode_owned(&message.encode()),
                Decoded::Message(message.clone())
            );
        }
    }

    #[test]
    fn unknown_versions_and_kinds_are_skipped_not_malformed() {
        // If this broke, a rolling upgrade adding a kind (a team-wide revocation, say) would
        // count every new message as malformed on the old instances, or misread it.
        let mut fields = samples()[0].encode();
        fields[1].1 = "team".into();
        assert_eq!(decode_owned(&fields), Decoded::Unknown);
        let mut fields = samples()[0].encode();
        fields[0].1 = "2".into();
        assert_eq!(decode_owned(&fields), Decoded::Unknown);
        let mut fields = samples()[0].encode();
        fields.push(("added_later", "x".into()));
        assert!(matches!(decode_owned(&fields), Decoded::Message(_)));
    }

    #[test]
    fn broken_messages_are_malformed() {
        // If this broke, a garbled or hostile entry would be applied (an id that is not a
        // Stytch id, a hold of absurd length) instead of being counted and dropped.
        let base = samples()[0].encode();
        let with = |name: &str, value: &str| {
            let mut fields = base.clone();
            for field in &mut fields {
                if field.0 == name {
                    field.1 = value.to_owned();
                }
            }
            decode_owned(&fields)
        };
        assert_eq!(with("id", "a b"), Decoded::Malformed("bad_id"));
        assert_eq!(with("from", "XYZ"), Decoded::Malformed("bad_from"));
        assert_eq!(with("rev", "-1"), Decoded::Malformed("bad_rev"));
        assert_eq!(
            with("until", "99999999999999999"),
            Decoded::Malformed("bad_time")
        );
        assert_eq!(
            with("confirmed", "yes"),
            Decoded::Malformed("bad_confirmed")
        );
        let without_id: Vec<_> = base.iter().filter(|f| f.0 != "id").cloned().collect();
        assert_eq!(decode_owned(&without_id), Decoded::Malformed("no_id"));
        let mut twice = base.clone();
        twice.push(("id", "other".into()));
        assert_eq!(decode_owned(&twice), Decoded::Malformed("duplicate_field"));
        let key = samples()[2].encode();
        let bad_key: Vec<_> = key
            .into_iter()
            .map(|(k, v)| {
                if k == "id" {
                    (k, "zz".repeat(32))
                } else {
                    (k, v)
                }
            })
            .collect();
        assert_eq!(decode_owned(&bad_key), Decoded::Malformed("bad_key"));
    }

    #[test]
    fn broken_messages_of_what_stytch_made_are_malformed() {
        // If this broke, a garbled or hostile entry about a webhook's effect would be applied
        // (an id that is not a Stytch id, roles that are not a list, a hold of absurd length,
        // a member-wide revocation without its time) instead of being counted and dropped.
        let (member, organization, roles) = (5, 6, 7);
        assert_eq!(with(member, "id", "a b"), Decoded::Malformed("bad_id"));
        assert_eq!(with(organization, "id", ""), Decoded::Malformed("bad_id"));
        assert_eq!(
            with(organization, "until", "99999999999999999"),
            Decoded::Malformed("bad_time")
        );
        assert_eq!(
            without(member, "revoked_at"),
            Decoded::Malformed("no_revoked_at")
        );
        assert_eq!(
            without(organization, "until"),
            Decoded::Malformed("no_until")
        );
        assert_eq!(with(roles, "id", "x/y"), Decoded::Malformed("bad_id"));
        for bad in ["", "admin", "{\"a\":1}", "[1]", "[\"a\",null]", "[\"a\""] {
            assert_eq!(
                with(roles, "roles", bad),
                Decoded::Malformed("bad_roles"),
                "{bad}"
            );
        }
        let too_long = format!("[\"{}\"]", "r".repeat(MAX_ROLES));
        assert_eq!(
            with(roles, "roles", &too_long),
            Decoded::Malformed("bad_roles")
        );
        assert_eq!(without(roles, "roles"), Decoded::Malformed("no_roles"));
        assert_eq!(
            without(roles, "changed_at"),
            Decoded::Malformed("no_changed_at")
        );
        assert_eq!(
            with(roles, "changed_at", "soon"),
            Decoded::Malformed("bad_time")
        );
        let no_roles = Message {
            body: roles_changed(Vec::new()),
            ..samples()[roles].clone()
        };
        assert_eq!(
            decode_owned(&no_roles.encode()),
            Decoded::Message(no_roles.clone()),
            "a member left with no role is a change like any other"
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(
            fields in proptest::collection::vec(
                (
                    prop_oneof![
                        Just("v"), Just("kind"), Just("from"), Just("origin"), Just("rev"),
                        Just("id"), Just("confirmed"), Just("until"), Just("revoked_at"),
                        Just("changed_at"), Just("roles"), Just("other"),
                    ],
                    proptest::collection::vec(any::<u8>(), 0..80),
                ),
                0..12,
            )
        ) {
            // If this broke, one hostile entry in Redis would crash every instance reading it.
            let _ = Message::decode(fields.iter().map(|(k, v)| (*k, v.as_slice())));
        }

        #[test]
        fn decode_of_mutated_valid_messages_never_panics(
            pick in 0usize..8, field in 0usize..9, value in ".{0,70}"
        ) {
            // If this broke, a near-valid entry (one field changed) could crash a reader.
            let mut fields = samples()[pick].encode();
            let n = fields.len();
            fields[field % n].1 = value;
            let _ = decode_owned(&fields);
        }

        #[test]
        fn any_roles_round_trip(roles in proptest::collection::vec(".{0,20}", 0..8)) {
            // If this broke, a role id holding a comma, a quote or any other character would
            // reach peers as other roles (or be dropped), so peers would re-validate the wrong
            // sessions after a role change.
            let message = Message {
                body: roles_changed(roles),
                ..samples()[7].clone()
            };
            prop_assert_eq!(decode_owned(&message.encode()), Decoded::Message(message));
        }
    }
}
