//! Routing: which handler a method and path go to, for Stytch's endpoints and the control
//! API under `/emulator/v1/`.
//!
//! Uses only [`faults`](crate::faults) (to name the endpoint a route counts as).

use http::Method;

use crate::faults::EmulatorEndpoint;

/// Which handler a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Authenticate,
    GetSessions,
    Revoke,
    Jwks(String),
    RbacPolicy,
    RbacOrganization(String),
    SetOrgPolicy(String),
    M2m(M2mOp),
    /// The OAuth token endpoint of this project id.
    M2mToken(String),
    Control(Op),
    MethodNotAllowed(&'static str),
    NotFound,
}

impl Route {
    pub(crate) fn endpoint(&self) -> Option<EmulatorEndpoint> {
        match self {
            Self::Authenticate => Some(EmulatorEndpoint::Authenticate),
            Self::GetSessions => Some(EmulatorEndpoint::GetSessions),
            Self::Revoke => Some(EmulatorEndpoint::Revoke),
            Self::Jwks(_) => Some(EmulatorEndpoint::Jwks),
            Self::RbacPolicy => Some(EmulatorEndpoint::RbacPolicy),
            Self::RbacOrganization(_) | Self::SetOrgPolicy(_) => {
                Some(EmulatorEndpoint::RbacOrganization)
            }
            Self::M2m(_) => Some(EmulatorEndpoint::M2mClients),
            Self::M2mToken(_) => Some(EmulatorEndpoint::M2mToken),
            _ => None,
        }
    }
}

/// The one path segment after `prefix`, percent-decoded: clients may percent-encode ids
/// (Stytch's official SDKs encode every non-alphanumeric character).
fn path_id(path: &str, prefix: &str) -> Option<String> {
    let id = path.strip_prefix(prefix)?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    Some(
        percent_encoding::percent_decode_str(id)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// A call of Stytch's M2M client API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum M2mOp {
    Create,
    Search,
    Get(String),
    Update(String),
    Delete(String),
    RotateStart(String),
    RotateCancel(String),
    Rotate(String),
}

/// Routes `/v1/m2m/clients…` and `/v1/public/{project_id}/oauth2/token` (paths of python
/// `stytch/consumer/api/m2m_clients.py`, `m2m_clients_secrets.py`, `m2m.py`).
fn m2m_route(method: &Method, path: &str) -> Option<Route> {
    let post = |op: M2mOp| {
        if *method == Method::POST {
            Route::M2m(op)
        } else {
            Route::MethodNotAllowed("POST")
        }
    };
    if let Some(project) = path
        .strip_prefix("/v1/public/")
        .and_then(|rest| rest.strip_suffix("/oauth2/token"))
        .filter(|p| !p.is_empty() && !p.contains('/'))
    {
        return Some(if *method == Method::POST {
            Route::M2mToken(project.to_owned())
        } else {
            Route::MethodNotAllowed("POST")
        });
    }
    let rest = path.strip_prefix("/v1/m2m/clients")?;
    if rest.is_empty() {
        return Some(post(M2mOp::Create));
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "search" {
        return Some(post(M2mOp::Search));
    }
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if id.is_empty() {
        return None;
    }
    let id = percent_encoding::percent_decode_str(id)
        .decode_utf8_lossy()
        .into_owned();
    Some(match tail {
        "" => match *method {
            Method::GET => Route::M2m(M2mOp::Get(id)),
            Method::PUT => Route::M2m(M2mOp::Update(id)),
            Method::DELETE => Route::M2m(M2mOp::Delete(id)),
            _ => Route::MethodNotAllowed("GET, PUT, DELETE"),
        },
        "secrets/rotate/start" => post(M2mOp::RotateStart(id)),
        "secrets/rotate/cancel" => post(M2mOp::RotateCancel(id)),
        "secrets/rotate" => post(M2mOp::Rotate(id)),
        _ => return None,
    })
}

/// Routes a method and path.
pub(crate) fn route(method: &Method, path: &str) -> Route {
    let expect = |m: Method, allow: &'static str, r: Route| {
        if *method == m {
            r
        } else {
            Route::MethodNotAllowed(allow)
        }
    };
    match path {
        "/v1/b2b/sessions/authenticate" => expect(Method::POST, "POST", Route::Authenticate),
        "/v1/b2b/sessions/revoke" => expect(Method::POST, "POST", Route::Revoke),
        "/v1/b2b/sessions" => expect(Method::GET, "GET", Route::GetSessions),
        "/v1/b2b/rbac/policy" => expect(Method::GET, "GET", Route::RbacPolicy),
        _ => {
            // The consumer path too: Stytch's SDKs of the consumer vertical verify M2M tokens
            // against it (official Rust SDK `src/client.rs`), and it serves the same keys.
            if let Some(project) = path_id(path, "/v1/b2b/sessions/jwks/")
                .or_else(|| path_id(path, "/v1/sessions/jwks/"))
            {
                return expect(Method::GET, "GET", Route::Jwks(project));
            }
            if let Some(route) = m2m_route(method, path) {
                return route;
            }
            if let Some(org) = path_id(path, "/v1/b2b/rbac/organizations/") {
                return match *method {
                    Method::GET => Route::RbacOrganization(org),
                    Method::PUT => Route::SetOrgPolicy(org),
                    _ => Route::MethodNotAllowed("GET, PUT"),
                };
            }
            if let Some(rest) = path.strip_prefix("/emulator/v1/") {
                return control_route(method, rest);
            }
            Route::NotFound
        }
    }
}

/// A control operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    CreateOrganization,
    DeleteOrganization(String),
    CreateRole,
    CreateMember,
    UpdateMember(String),
    DeleteMember(String),
    CreateSession,
    ListRequests,
    ClearRequests,
    InjectFault,
    ClearFaults,
    RotateKey,
    SetClock,
    Counts,
    WebhookConfig,
    SetWebhookConfig,
    WebhookDeliveries,
    RedeliverWebhook,
    SendWebhook,
    SetPolicy,
    /// `roles`, `resources` or `scopes`.
    SetPolicyItem(&'static str),
    SetOrganizationRoles(String),
    AddSessionFactor(String),
    CreateM2mClient,
    SetM2mTokenLifetime,
}

/// Routes `members/{id}` and `organizations/{id}`.
fn route_item(method: &Method, collection: &str, id: &str) -> Option<Route> {
    if id.is_empty() || id.contains('/') {
        return None;
    }
    let id = id.to_owned();
    Some(match (collection, method) {
        ("members", &Method::PUT) => Route::Control(Op::UpdateMember(id)),
        ("members", &Method::DELETE) => Route::Control(Op::DeleteMember(id)),
        ("members", _) => Route::MethodNotAllowed("PUT, DELETE"),
        ("organizations", &Method::DELETE) => Route::Control(Op::DeleteOrganization(id)),
        ("organizations", _) => Route::MethodNotAllowed("DELETE"),
        _ => return None,
    })
}

/// Routes the RBAC, factor and M2M control paths: `rbac/policy`,
/// `rbac/{roles,resources,scopes}`, `rbac/organizations/{id}`, `sessions/{id}/factors`,
/// `m2m/clients`, `m2m/token_lifetime`.
fn rbac_route(method: &Method, rest: &str) -> Option<Route> {
    let expect = |m: Method, allow: &'static str, op: Op| {
        Some(if *method == m {
            Route::Control(op)
        } else {
            Route::MethodNotAllowed(allow)
        })
    };
    match rest {
        "rbac/policy" => return expect(Method::PUT, "PUT", Op::SetPolicy),
        "rbac/roles" => return expect(Method::POST, "POST", Op::SetPolicyItem("roles")),
        "rbac/resources" => return expect(Method::POST, "POST", Op::SetPolicyItem("resources")),
        "rbac/scopes" => return expect(Method::POST, "POST", Op::SetPolicyItem("scopes")),
        "m2m/clients" => return expect(Method::POST, "POST", Op::CreateM2mClient),
        "m2m/token_lifetime" => return expect(Method::PUT, "PUT", Op::SetM2mTokenLifetime),
        _ => {}
    }
    if let Some(org) = rest.strip_prefix("rbac/organizations/")
        && !org.is_empty()
        && !org.contains('/')
    {
        return expect(Method::PUT, "PUT", Op::SetOrganizationRoles(org.to_owned()));
    }
    let session = rest.strip_prefix("sessions/")?.strip_suffix("/factors")?;
    if session.is_empty() || session.contains('/') {
        return None;
    }
    expect(
        Method::POST,
        "POST",
        Op::AddSessionFactor(session.to_owned()),
    )
}

/// Routes `rest`, the path after `/emulator/v1/`.
fn control_route(method: &Method, rest: &str) -> Route {
    if let Some((collection, id)) = rest.split_once('/')
        && let Some(route) = route_item(method, collection, id)
    {
        return route;
    }
    if let Some(route) = rbac_route(method, rest) {
        return route;
    }
    let op = match (rest, method) {
        ("organizations", &Method::POST) => Op::CreateOrganization,
        ("roles", &Method::POST) => Op::CreateRole,
        ("members", &Method::POST) => Op::CreateMember,
        ("sessions", &Method::POST) => Op::CreateSession,
        ("requests", &Method::GET) => Op::ListRequests,
        ("requests", &Method::DELETE) => Op::ClearRequests,
        ("faults", &Method::POST) => Op::InjectFault,
        ("faults", &Method::DELETE) => Op::ClearFaults,
        ("keys/rotate", &Method::POST) => Op::RotateKey,
        ("clock", &Method::POST) => Op::SetClock,
        ("counts", &Method::GET) => Op::Counts,
        ("webhooks", &Method::GET) => Op::WebhookConfig,
        ("webhooks", &Method::POST) => Op::SetWebhookConfig,
        ("webhooks/deliveries", &Method::GET) => Op::WebhookDeliveries,
        ("webhooks/redeliver", &Method::POST) => Op::RedeliverWebhook,
        ("webhooks/send", &Method::POST) => Op::SendWebhook,
        (
            "organizations" | "roles" | "members" | "sessions" | "keys/rotate" | "clock"
            | "webhooks/redeliver" | "webhooks/send",
            _,
        ) => return Route::MethodNotAllowed("POST"),
        ("faults", _) => return Route::MethodNotAllowed("POST, DELETE"),
        ("requests", _) => return Route::MethodNotAllowed("GET, DELETE"),
        ("webhooks", _) => return Route::MethodNotAllowed("GET, POST"),
        ("counts" | "webhooks/deliveries", _) => return Route::MethodNotAllowed("GET"),
        _ => return Route::NotFound,
    };
    Route::Control(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_stytch_paths_and_methods() {
        // If this broke, clients would hit 404/405 on valid Stytch paths.
        assert_eq!(
            route(&Method::POST, "/v1/b2b/sessions/authenticate"),
            Route::Authenticate
        );
        assert_eq!(
            route(&Method::POST, "/v1/b2b/sessions/revoke"),
            Route::Revoke
        );
        assert_eq!(
            route(&Method::GET, "/v1/b2b/sessions/jwks/project-test-1"),
            Route::Jwks("project-test-1".into())
        );
        assert_eq!(route(&Method::GET, "/v1/b2b/sessions"), Route::GetSessions);
        assert_eq!(
            route(&Method::POST, "/v1/b2b/sessions"),
            Route::MethodNotAllowed("GET")
        );
        assert_eq!(
            route(&Method::GET, "/v1/b2b/sessions/revoke"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(
            route(&Method::GET, "/v1/b2b/sessions/jwks/"),
            Route::NotFound
        );
        assert_eq!(route(&Method::GET, "/nope"), Route::NotFound);
    }

    #[test]
    fn control_routes() {
        // If this broke, control calls would 404.
        assert_eq!(
            control_route(&Method::POST, "organizations"),
            Route::Control(Op::CreateOrganization)
        );
        assert_eq!(
            control_route(&Method::DELETE, "requests"),
            Route::Control(Op::ClearRequests)
        );
        assert_eq!(
            control_route(&Method::GET, "sessions"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(control_route(&Method::GET, "nope"), Route::NotFound);
    }

    #[test]
    fn m2m_routes_follow_the_sdks_paths() {
        // If this broke, the SDKs' M2M calls would get 404 or 405 from the emulator.
        let m2m = |m: Method, p: &str| route(&m, p);
        assert_eq!(
            m2m(Method::POST, "/v1/m2m/clients"),
            Route::M2m(M2mOp::Create)
        );
        assert_eq!(
            m2m(Method::POST, "/v1/m2m/clients/search"),
            Route::M2m(M2mOp::Search)
        );
        assert_eq!(
            m2m(Method::DELETE, "/v1/m2m/clients/m2m-client-test-1"),
            Route::M2m(M2mOp::Delete("m2m-client-test-1".into()))
        );
        assert_eq!(
            m2m(Method::POST, "/v1/m2m/clients/c%2B1/secrets/rotate/start"),
            Route::M2m(M2mOp::RotateStart("c+1".into()))
        );
        assert_eq!(
            m2m(Method::POST, "/v1/m2m/clients/c/secrets/rotate"),
            Route::M2m(M2mOp::Rotate("c".into()))
        );
        assert_eq!(
            m2m(Method::POST, "/v1/public/project-test-1/oauth2/token"),
            Route::M2mToken("project-test-1".into())
        );
        assert_eq!(
            m2m(Method::GET, "/v1/public/project-test-1/oauth2/token"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(
            m2m(Method::GET, "/v1/sessions/jwks/project-test-1"),
            Route::Jwks("project-test-1".into())
        );
        assert_eq!(m2m(Method::GET, "/v1/m2m/clients/c/other"), Route::NotFound);
    }
}
