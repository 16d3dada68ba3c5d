//! [`RouteTable::classify`]: which routes the layer answers itself, which pass without a
//! credential, which are hooked. (How one pattern matches a path is `route_pattern`.)

use http::Method;

use super::route_pattern::RoutePattern;
use crate::revoke::Target;

/// What the layer does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Revoke the caller's own session, or with `everywhere` every session of the caller.
    Logout { everywhere: bool },
    /// Admin: revoke every session of a member ([`Target::Member`]) or one session
    /// ([`Target::Session`]), acting as the caller.
    Admin(Target),
    /// A route of the layer, with a method it does not serve.
    MethodNotAllowed(&'static str),
    /// The host app's route: authenticate, call it, and on 2xx force the member out.
    Hook(String),
    /// No credential needed; nothing attached.
    Public,
    /// The member is attached when a valid credential is present.
    Optional,
    /// A valid credential is required.
    Protected,
}

/// The configured routes.
#[derive(Debug, Clone)]
pub(crate) struct RouteTable {
    pub(crate) logout: Option<String>,
    pub(crate) logout_everywhere: Option<String>,
    pub(crate) logout_allow_get: bool,
    pub(crate) admin_member: Option<RoutePattern>,
    pub(crate) admin_session: Option<RoutePattern>,
    pub(crate) hooks: Vec<RoutePattern>,
    pub(crate) public: Vec<RoutePattern>,
    pub(crate) optional: Vec<RoutePattern>,
}

impl RouteTable {
    /// What the layer does with `method path`: the layer's own routes first (logout, admin),
    /// then the app's hooked routes, then public, optional, and everything else protected.
    pub(crate) fn classify(&self, method: &Method, path: &str) -> Route {
        if let Some(route) = self.logout(method, path) {
            return route;
        }
        if let Some(route) = self.admin(method, path) {
            return route;
        }
        if let Some(route) = self.hook(method, path) {
            return route;
        }
        // A path that another server could normalise differently (dot segments, encoded
        // slashes, backslashes) is never public: behind a proxy, `/assets/../admin` must not
        // inherit the public status of `/assets/`.
        if is_ambiguous(path) {
            return Route::Protected;
        }
        let matches =
            |patterns: &[RoutePattern]| patterns.iter().any(|p| p.matches(method, path).is_some());
        if matches(&self.public) {
            Route::Public
        } else if matches(&self.optional) {
            Route::Optional
        } else {
            Route::Protected
        }
    }

    fn logout(&self, method: &Method, path: &str) -> Option<Route> {
        let everywhere = if self.logout.as_deref() == Some(path) {
            false
        } else if self.logout_everywhere.as_deref() == Some(path) {
            true
        } else {
            return None;
        };
        let allowed = method == Method::POST || (self.logout_allow_get && method == Method::GET);
        Some(if allowed {
            Route::Logout { everywhere }
        } else if self.logout_allow_get {
            Route::MethodNotAllowed("GET, POST")
        } else {
            Route::MethodNotAllowed("POST")
        })
    }

    fn admin(&self, method: &Method, path: &str) -> Option<Route> {
        let admin: [(_, fn(String) -> Target); 2] = [
            (&self.admin_member, Target::Member),
            (&self.admin_session, Target::Session),
        ];
        for (pattern, target) in admin {
            let Some(pattern) = pattern else { continue };
            if let Some(mut captures) = pattern.match_path(path) {
                if !pattern.method_matches(method) {
                    return Some(Route::MethodNotAllowed("POST"));
                }
                let id = captures.pop().map(|(_, v)| v).unwrap_or_default();
                return Some(Route::Admin(target(id)));
            }
        }
        None
    }

    fn hook(&self, method: &Method, path: &str) -> Option<Route> {
        let captures = self
            .hooks
            .iter()
            .find_map(|hook| hook.matches(method, path))?;
        let member_id = captures
            .into_iter()
            .find(|(name, _)| name == "member_id")
            .map(|(_, v)| v)
            .unwrap_or_default();
        Some(Route::Hook(member_id))
    }
}

/// Whether `path` has a `.` or `..` segment (also percent-encoded), an encoded `/` or `\`,
/// or a backslash.
pub(crate) fn is_ambiguous(path: &str) -> bool {
    // Fast path for the common case, without allocating.
    if !path.bytes().any(|b| matches!(b, b'%' | b'\\' | b'.')) {
        return false;
    }
    if path.contains('\\') {
        return true;
    }
    path.split('/').any(|segment| {
        let lower = segment.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") {
            return true;
        }
        let decoded = lower.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable {
            logout: Some("/logout".into()),
            logout_everywhere: Some("/logout/everywhere".into()),
            logout_allow_get: false,
            admin_member: Some(
                RoutePattern::parse("POST /admin/members/{member_id}/revoke-sessions").unwrap(),
            ),
            admin_session: Some(
                RoutePattern::parse("POST /admin/sessions/{member_session_id}/revoke").unwrap(),
            ),
            hooks: vec![RoutePattern::parse("DELETE /api/members/{member_id}").unwrap()],
            public: vec![RoutePattern::prefix("/assets/").unwrap()],
            optional: vec![RoutePattern::parse("GET /").unwrap()],
        }
    }

    #[test]
    fn classifies_every_kind_of_route() {
        // If this broke, logout/admin/hook routes would reach the app unauthenticated or unhandled.
        let t = table();
        assert_eq!(
            t.classify(&Method::POST, "/logout"),
            Route::Logout { everywhere: false }
        );
        assert_eq!(
            t.classify(&Method::GET, "/logout"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(
            t.classify(&Method::POST, "/logout/everywhere"),
            Route::Logout { everywhere: true }
        );
        assert_eq!(
            t.classify(
                &Method::POST,
                "/admin/members/member-test-1/revoke-sessions"
            ),
            Route::Admin(Target::Member("member-test-1".into()))
        );
        assert_eq!(
            t.classify(&Method::GET, "/admin/members/member-test-1/revoke-sessions"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(
            t.classify(&Method::POST, "/admin/sessions/session-test-1/revoke"),
            Route::Admin(Target::Session("session-test-1".into()))
        );
        assert_eq!(
            t.classify(&Method::DELETE, "/api/members/member-test-2"),
            Route::Hook("member-test-2".into())
        );
        assert_eq!(
            t.classify(&Method::GET, "/api/members/member-test-2"),
            Route::Protected
        );
        assert_eq!(t.classify(&Method::GET, "/assets/app.js"), Route::Public);
        assert_eq!(t.classify(&Method::GET, "/"), Route::Optional);
        assert_eq!(t.classify(&Method::GET, "/secret"), Route::Protected);
        // Dot segments and encoded slashes never match a public route.
        for odd in [
            "/assets/../secret",
            "/assets/%2e%2e/secret",
            "/assets/%2E./secret",
            "/assets/./x",
            "/assets/a%2fb",
            "/assets/a%5Cb",
            "/assets/a\\b",
        ] {
            assert_eq!(t.classify(&Method::GET, odd), Route::Protected, "{odd}");
        }
        assert_eq!(
            t.classify(&Method::GET, "/assets/.well-known"),
            Route::Public
        );
        assert_eq!(t.classify(&Method::GET, "/assets/v1..2.js"), Route::Public);
        let mut get = table();
        get.logout_allow_get = true;
        assert_eq!(
            get.classify(&Method::GET, "/logout"),
            Route::Logout { everywhere: false }
        );
    }
}
