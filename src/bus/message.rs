//! The bus's wire format: one Stream entry is one message of flat string fields, versioned
//! (`v`) and typed (`kind`), holding ids, hashes and times only, never a credential.
//!
//! | field | in | what |
//! |---|---|---|
//! | `v` | all | format version, `1` |
//! | `kind` | all | `session`, `member`, `key` (applied), `confirm`, `undo`; made by Stytch (told by its webhook): `stytch_member`, `stytch_organization`, `roles`; an M2M client cut off: `m2m_client` |
//! | `from` | all | the publishing instance (skipped by itself) |
//! | `origin`, `rev` | all | the revocation (or roles mark): the instance that decided it (got the webhook) and its id there |
//! | `id` | applied, by Stytch, `m2m_client` | `member_session_id`, `member_id`, or the credential's SHA-256 (hex); `member_id` or `organization_id`; the M2M `client_id` |
//! | `confirmed` | applied | `1` when Stytch had confirmed it when it was applied |
//! | `until` | applied, confirm, by Stytch, `m2m_client` | when its holds (or mark, or cut-off) end (Unix ms); for a pending entry, when retrying ends |
//! | `revoked_at` | member applied (confirmed), confirm, `stytch_*` | when Stytch confirmed (or made) it (Unix ms) |
//! | `changed_at` | `roles` | when Stytch changed the member's roles (its event's timestamp, Unix ms) |
//! | `roles` | `roles` | the member's role ids after the change: a JSON array of strings, at most 1 MiB |
//! | `issued_before` | `m2m_client` | the cut-off: the client's tokens issued before it (plus the clock skew) are refused (Unix ms) |
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
    pub(super) origin: InstanceId,
    pub(super) rev: u64,
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
    /// M2M client `client` was cut off: its tokens issued before `issued_before` are refused
    /// until `until` (the longest of them has expired).
    ClientCutOff {
        client: String,
        issued_before: SystemTime,
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
            Self::ClientCutOff { .. } => "m2m_client",
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Message {
    /// The instance that published it.
    pub(super) from: InstanceId,
    pub(super) key: RevKey,
    pub(super) body: Body,
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
            Body::ClientCutOff {
                client,
                issued_before,
                until,
            } => {
                fields.push(("id", client.clone()));
                fields.push(("issued_before", unix_ms(*issued_before).to_string()));
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
                "issued_before" => &mut f.issued_before,
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
    issued_before: Option<&'a str>,
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
            "m2m_client" => self.client_cut_off()?,
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

impl Fields<'_> {
    fn client_cut_off(&self) -> Result<Body, &'static str> {
        let client = self.id.ok_or("no_id")?;
        if !is_stytch_id(client) {
            return Err("bad_id");
        }
        Ok(Body::ClientCutOff {
            client: client.to_owned(),
            issued_before: time(self.issued_before.ok_or("no_issued_before")?)?,
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
mod tests;
