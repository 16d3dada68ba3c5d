//! A verified Stytch event, parsed: what it does here ([`Effect`]) and its bounded metric
//! label ([`Event::kind`]). Parsed only after the signature is verified.
//!
//! Stytch's body names the event by `source` (`DIRECT` | `DASHBOARD` | `SCIM`),
//! `object_type` and `action` (the Svix event type, `scim.member.delete`, is not in the
//! body); `id` is the affected entity, `timestamp` (RFC 3339) when Stytch sent it, and
//! CREATE/UPDATE carry the object (`member`: `member_id`, `organization_id`, `status`,
//! `roles: [{role_id, …}]`).

use std::time::SystemTime;

use serde::Deserialize;

use crate::session::is_stytch_id;

/// What an event does here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// The member was deleted, or is no longer `active`: every session refused.
    RevokeMember(String),
    /// The organization was deleted: every session of its members refused.
    RevokeOrganization(String),
    /// The member was updated (still active): sessions whose roles differ from `roles` are
    /// re-validated at Stytch on their next request.
    Revalidate {
        member_id: String,
        roles: Vec<String>,
    },
    /// Nothing to do here (another project, another object or action, unparsable).
    Ignore(&'static str),
}

/// A parsed event.
#[derive(Debug)]
pub(crate) struct Event {
    /// `{source}.{object}.{action}` from a fixed set, else `other` (a metric label).
    pub(crate) kind: &'static str,
    pub(crate) effect: Effect,
    /// When Stytch sent it (never later than `now`), else `now`.
    pub(crate) at: SystemTime,
}

#[derive(Deserialize)]
struct Envelope {
    project_id: Option<String>,
    action: Option<String>,
    object_type: Option<String>,
    source: Option<String>,
    id: Option<String>,
    timestamp: Option<String>,
    member: Option<Member>,
}

#[derive(Deserialize)]
struct Member {
    member_id: Option<String>,
    status: Option<String>,
    #[serde(default)]
    roles: Vec<Role>,
}

#[derive(Deserialize)]
struct Role {
    role_id: String,
}

impl Event {
    /// Parses a verified body for project `project_id`, at `now`.
    pub(crate) fn parse(body: &[u8], project_id: &str, now: SystemTime) -> Self {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
            return Self {
                kind: "other",
                effect: Effect::Ignore("unparsable"),
                at: now,
            };
        };
        let kind = kind(&envelope);
        let at = envelope
            .timestamp
            .as_deref()
            .and_then(crate::session::rfc3339::parse)
            .map_or(now, |at| at.min(now));
        let effect = if envelope.project_id.as_deref() != Some(project_id) {
            Effect::Ignore("other_project")
        } else {
            effect(envelope)
        };
        Self { kind, effect, at }
    }
}

fn effect(envelope: Envelope) -> Effect {
    let lower = |s: &Option<String>| s.as_deref().unwrap_or_default().to_ascii_lowercase();
    let (object, action) = (lower(&envelope.object_type), lower(&envelope.action));
    let id = envelope.id.filter(|id| is_stytch_id(id));
    match (object.as_str(), action.as_str()) {
        ("member", "delete") => id.map_or(Effect::Ignore("no_id"), Effect::RevokeMember),
        ("organization", "delete") => {
            id.map_or(Effect::Ignore("no_id"), Effect::RevokeOrganization)
        }
        ("member", "update") => {
            let Some(member) = envelope.member else {
                return Effect::Ignore("no_member");
            };
            let Some(member_id) = member
                .member_id
                .or(id)
                .filter(|member_id| is_stytch_id(member_id))
            else {
                return Effect::Ignore("no_id");
            };
            if member.status.as_deref().is_some_and(|s| s != "active") {
                Effect::RevokeMember(member_id)
            } else {
                let mut roles: Vec<String> = member.roles.into_iter().map(|r| r.role_id).collect();
                roles.sort();
                roles.dedup();
                Effect::Revalidate { member_id, roles }
            }
        }
        _ => Effect::Ignore("not_handled"),
    }
}

/// The metric label: known sources, objects and actions only (bounded), `other` otherwise.
fn kind(envelope: &Envelope) -> &'static str {
    let lower = |s: &Option<String>| s.as_deref().unwrap_or_default().to_ascii_lowercase();
    let (source, object, action) = (
        lower(&envelope.source),
        lower(&envelope.object_type),
        lower(&envelope.action),
    );
    KINDS
        .iter()
        .find(|k| {
            let mut parts = k.split('.');
            parts.next() == Some(&*source)
                && parts.next() == Some(&*object)
                && parts.next() == Some(&*action)
        })
        .copied()
        .unwrap_or("other")
}

/// Every event type label besides `other`.
const KINDS: [&str; 18] = [
    "direct.member.create",
    "direct.member.update",
    "direct.member.delete",
    "dashboard.member.create",
    "dashboard.member.update",
    "dashboard.member.delete",
    "scim.member.create",
    "scim.member.update",
    "scim.member.delete",
    "direct.organization.create",
    "direct.organization.update",
    "direct.organization.delete",
    "dashboard.organization.create",
    "dashboard.organization.update",
    "dashboard.organization.delete",
    "scim.organization.create",
    "scim.organization.update",
    "scim.organization.delete",
];

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;

    const PROJECT: &str = "project-test-1";

    fn parse(body: serde_json::Value) -> Event {
        Event::parse(body.to_string().as_bytes(), PROJECT, SystemTime::now())
    }

    fn member(status: &str, roles: &[&str]) -> serde_json::Value {
        json!({
            "member_id": "member-test-1", "organization_id": "organization-test-1",
            "status": status,
            "roles": roles.iter().map(|r| json!({"role_id": r, "sources": []})).collect::<Vec<_>>(),
        })
    }

    fn envelope(source: &str, object: &str, action: &str) -> serde_json::Value {
        json!({
            "project_id": PROJECT, "event_id": "event-1", "action": action,
            "object_type": object, "source": source, "id": "member-test-1",
            "timestamp": "2024-01-02T03:04:05.678901Z", "vertical": "B2B",
        })
    }

    /// Long on purpose: a table, one entry per kind of event.
    #[test]
    fn effects_table() {
        // If this broke, a deleted, deprovisioned or demoted member would keep being served
        // (or a harmless event would sign someone out).
        let with = |mut e: serde_json::Value, key: &str, v: serde_json::Value| {
            e[key] = v;
            e
        };
        let revoke = Effect::RevokeMember("member-test-1".to_owned());
        let cases = [
            (
                "dashboard delete",
                envelope("DASHBOARD", "member", "DELETE"),
                revoke.clone(),
            ),
            (
                "scim delete",
                envelope("SCIM", "member", "DELETE"),
                revoke.clone(),
            ),
            (
                "scim deactivation",
                with(
                    envelope("SCIM", "member", "UPDATE"),
                    "member",
                    member("inactive", &[]),
                ),
                revoke.clone(),
            ),
            (
                "role change",
                with(
                    envelope("DASHBOARD", "member", "UPDATE"),
                    "member",
                    member("active", &["stytch_member", "editor", "editor"]),
                ),
                Effect::Revalidate {
                    member_id: "member-test-1".to_owned(),
                    roles: vec!["editor".to_owned(), "stytch_member".to_owned()],
                },
            ),
            (
                "org delete",
                with(
                    envelope("DIRECT", "organization", "DELETE"),
                    "id",
                    json!("organization-test-9"),
                ),
                Effect::RevokeOrganization("organization-test-9".to_owned()),
            ),
            (
                "member create",
                with(
                    envelope("DIRECT", "member", "CREATE"),
                    "member",
                    member("active", &[]),
                ),
                Effect::Ignore("not_handled"),
            ),
            (
                "other project",
                with(
                    envelope("DASHBOARD", "member", "DELETE"),
                    "project_id",
                    json!("project-test-2"),
                ),
                Effect::Ignore("other_project"),
            ),
            (
                "id not a stytch id",
                with(
                    envelope("DASHBOARD", "member", "DELETE"),
                    "id",
                    json!("../x"),
                ),
                Effect::Ignore("no_id"),
            ),
        ];
        for (name, body, want) in cases {
            assert_eq!(parse(body).effect, want, "{name}");
        }
        assert_eq!(
            Event::parse(b"not json", PROJECT, SystemTime::now()).effect,
            Effect::Ignore("unparsable")
        );
    }

    #[test]
    fn kinds_are_bounded_and_time_is_stytchs_but_never_future() {
        // If this broke, the metric's label set would grow with attacker-chosen values, or an
        // event would refuse sessions started after it.
        let event = parse(envelope("SCIM", "member", "DELETE"));
        assert_eq!(event.kind, "scim.member.delete");
        assert_eq!(
            event.at,
            UNIX_EPOCH + Duration::from_secs(1_704_164_645) + Duration::from_micros(678_901)
        );
        assert_eq!(parse(envelope("EVIL", "member", "DELETE")).kind, "other");
        let now = SystemTime::now();
        let mut future = envelope("SCIM", "member", "DELETE");
        future["timestamp"] = json!("2999-01-01T00:00:00Z");
        let event = Event::parse(future.to_string().as_bytes(), PROJECT, now);
        assert_eq!(event.at, now);
    }
}
