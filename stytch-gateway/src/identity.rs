//! Identity headers: what the gateway tells the upstream about the authenticated member, or
//! the M2M client a route's rule admitted.
//!
//! Client-sent copies of these headers are always removed before a request is forwarded, so
//! an upstream may trust them as long as it is reachable only through the gateway.

use http::{HeaderMap, HeaderName, HeaderValue};

use tower_stytch::{MachineClient, MemberSession};

/// `X-Stytch-Member-Id`: the member's id.
pub(crate) const MEMBER_ID: HeaderName = HeaderName::from_static("x-stytch-member-id");
/// `X-Stytch-Organization-Id`: the member's organization.
pub(crate) const ORGANIZATION_ID: HeaderName = HeaderName::from_static("x-stytch-organization-id");
/// `X-Stytch-Member-Session-Id`: the member session's id (not a credential).
pub(crate) const MEMBER_SESSION_ID: HeaderName =
    HeaderName::from_static("x-stytch-member-session-id");
/// `X-Stytch-Roles`: the session's roles, comma separated.
pub(crate) const ROLES: HeaderName = HeaderName::from_static("x-stytch-roles");

/// `X-Stytch-Client-Id`: the M2M client's id (a machine's request).
pub(crate) const CLIENT_ID: HeaderName = HeaderName::from_static("x-stytch-client-id");
/// `X-Stytch-Scopes`: the M2M client's token's scopes, space separated (as OAuth's `scope`).
pub(crate) const SCOPES: HeaderName = HeaderName::from_static("x-stytch-scopes");

/// Every identity header the gateway sets (and strips from client requests).
pub(crate) static IDENTITY_HEADERS: [HeaderName; 6] = [
    MEMBER_ID,
    ORGANIZATION_ID,
    MEMBER_SESSION_ID,
    ROLES,
    CLIENT_ID,
    SCOPES,
];

/// Sets the identity headers of whoever the layer admitted (a member's session, or an M2M
/// client), from the request's extensions; nothing for an anonymous request.
pub(crate) fn insert_identity(headers: &mut HeaderMap, extensions: &http::Extensions) {
    if let Some(session) = extensions.get::<MemberSession>() {
        insert_identity_headers(headers, session);
    } else if let Some(machine) = extensions.get::<MachineClient>() {
        insert_machine_headers(headers, machine);
    }
}

/// Sets the identity headers of an M2M client, replacing any present.
pub(crate) fn insert_machine_headers(headers: &mut HeaderMap, machine: &MachineClient) {
    let scopes = machine.scopes.join(" ");
    for (name, value) in [
        (CLIENT_ID, machine.client_id.as_str()),
        (SCOPES, scopes.as_str()),
    ] {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(_) => {
                headers.remove(&name);
            }
        }
    }
}

/// Removes every identity header (all copies) from `headers`.
pub(crate) fn strip_identity_headers(headers: &mut HeaderMap) {
    // One pass over the names first: a client rarely sends any.
    if !headers.keys().any(|name| IDENTITY_HEADERS.contains(name)) {
        return;
    }
    for name in &IDENTITY_HEADERS {
        while headers.remove(name).is_some() {}
    }
}

/// Sets the identity headers of `session` on `headers`, replacing any present.
///
/// A value that is not a valid header value (Stytch ids are ASCII, so this does not happen
/// with real sessions) is left out rather than sent mangled.
pub(crate) fn insert_identity_headers(headers: &mut HeaderMap, session: &MemberSession) {
    let roles = session.roles().join(",");
    // Stytch's ids are rendered on the stack (no allocation).
    let (member_id, organization_id, member_session_id) = (
        session.member_id.as_str(),
        session.organization_id().as_str(),
        session.member_session_id.as_str(),
    );
    let values = [
        (MEMBER_ID, &*member_id),
        (ORGANIZATION_ID, &*organization_id),
        (MEMBER_SESSION_ID, &*member_session_id),
        (ROLES, roles.as_str()),
    ];
    for (name, value) in values {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(_) => {
                headers.remove(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> MemberSession {
        serde_json::from_value(serde_json::json!({
            "member_session_id": "session-1", "member_id": "member-1",
            "organization_id": "organization-1", "roles": ["stytch_member", "editor"],
            "expires_at": "2099-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn strips_every_copy_and_sets_ours() {
        // If this broke, a client could impersonate another member towards the upstream.
        let mut headers = HeaderMap::new();
        headers.append(MEMBER_ID, HeaderValue::from_static("spoofed"));
        headers.append("X-Stytch-Member-ID", HeaderValue::from_static("spoofed2"));
        headers.append(ROLES, HeaderValue::from_static("stytch_admin"));
        strip_identity_headers(&mut headers);
        assert!(headers.is_empty());
        insert_identity_headers(&mut headers, &session());
        assert_eq!(headers[MEMBER_ID], "member-1");
        assert_eq!(headers[ORGANIZATION_ID], "organization-1");
        assert_eq!(headers[MEMBER_SESSION_ID], "session-1");
        assert_eq!(headers[ROLES], "stytch_member,editor");
        assert_eq!(headers.get_all(MEMBER_ID).iter().count(), 1);
    }
}
