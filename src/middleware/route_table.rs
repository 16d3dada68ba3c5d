//! [`RouteTable::classify`]: which routes the layer answers itself, which pass without a
//! credential, which are hooked. (How one pattern matches a path is `route_pattern`; how
//! servers may read a path is `path`.)

use http::Method;

use super::rejection::RejectionKind;
use crate::revoke::Target;
#[cfg(test)]
use crate::routing::path::is_ambiguous;
use crate::routing::path::{is_malformed, readings, router_segments};
use crate::routing::pattern::RoutePattern;
use crate::session::is_stytch_id;

/// What the layer does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Revoke the caller's own session, or with `everywhere` every session of the caller.
    Logout { everywhere: bool },
    /// Admin: revoke every session of a member ([`Target::Member`]) or one session
    /// ([`Target::Session`]), acting as the caller.
    Admin(Target),
    /// Admin: cut an M2M client off (by `client_id`), here and on every instance.
    AdminClient(String),
    /// A route of the layer, with a method it does not serve.
    MethodNotAllowed(&'static str),
    /// The host app's route: authenticate, call it, and when it acted (2xx, a redirect) force the member out. The
    /// member id is the capture as the app's router decodes it, and a Stytch id.
    Hook(String),
    /// Refused before anything else runs: a hooked route whose member id is not a Stytch id
    /// ([`RejectionKind::InvalidParameter`]), or a path that some server could read as a
    /// hooked route ([`RejectionKind::MalformedRequest`]).
    Refused(RejectionKind),
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
    pub(crate) admin_client: Option<RoutePattern>,
    pub(crate) hooks: Vec<RoutePattern>,
    pub(crate) public: Vec<RoutePattern>,
    pub(crate) optional: Vec<RoutePattern>,
}

impl RouteTable {
    /// The routes the layer answers itself, as `"METHOD /path"` (and the webhook path, when
    /// configured, is the layer's too).
    pub(crate) fn own_routes(&self) -> Vec<String> {
        let method = if self.logout_allow_get {
            "GET|POST"
        } else {
            "POST"
        };
        let mut routes: Vec<String> = [&self.logout, &self.logout_everywhere]
            .into_iter()
            .flatten()
            .map(|path| format!("{method} {path}"))
            .collect();
        routes.extend(
            [&self.admin_member, &self.admin_session, &self.admin_client]
                .into_iter()
                .flatten()
                .map(|p| p.as_str().to_owned()),
        );
        routes
    }

    /// What the layer does with `method path`: a path only some servers decode is refused;
    /// then the layer's own routes (logout, admin), the app's hooked routes (matched with
    /// `hook_method`, the method the app will act on: see [`effective_method`]), public,
    /// optional, and everything else protected.
    #[cfg(test)]
    pub(crate) fn classify(&self, method: &Method, hook_method: &Method, path: &str) -> Route {
        self.classify_with(method, hook_method, path, is_ambiguous(path))
    }

    /// [`classify`](Self::classify), with whether `path` is [ambiguous](is_ambiguous)
    /// computed once by the caller (the authorization rules need it too).
    pub(crate) fn classify_with(
        &self,
        method: &Method,
        hook_method: &Method,
        path: &str,
        ambiguous: bool,
    ) -> Route {
        if is_malformed(path) {
            return Route::Refused(RejectionKind::MalformedRequest);
        }
        if let Some(route) = self.logout(method, path) {
            return route;
        }
        if let Some(route) = self.admin(method, path) {
            return route;
        }
        if let Some(route) = self.hook(hook_method, path, ambiguous) {
            return route;
        }
        // A path that another server could normalise differently (dot segments, encoded
        // slashes, backslashes) is never public: behind a proxy, `/assets/../admin` must not
        // inherit the public status of `/assets/`.
        if ambiguous {
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
        let pattern = self.admin_client.as_ref()?;
        let mut captures = pattern.match_path(path)?;
        if !pattern.method_matches(method) {
            return Some(Route::MethodNotAllowed("POST"));
        }
        let id = captures.pop().map(|(_, v)| v).unwrap_or_default();
        Some(Route::AdminClient(id))
    }

    /// A forced-sign-out hook, matched the way the app's router may read the path: segments
    /// percent-decoded (axum decodes `member%2Dtest%2D…` into `member-test-…`), empty ones and
    /// a trailing slash ignored, literal segments ASCII case-insensitively (Express, ASP.NET
    /// and IIS route `/API/Members/…` to `/api/members/…`; a case-sensitive app answers such a
    /// path 404, which fires nothing). Either the hook fires when the app answers with
    /// success or a redirect, or the request is refused before the app runs; never "the app
    /// acts and the member stays signed in".
    fn hook(&self, method: &Method, path: &str, ambiguous: bool) -> Option<Route> {
        let mut hooks = self.hooks.iter().filter(|h| h.method_matches(method));
        hooks.clone().next()?;
        if ambiguous {
            // Dot segments, `;` parameters, encoded separators: some server could resolve the
            // path to a hooked route that the router reading does not show.
            let hooked = readings(path).iter().any(|reading| {
                hooks
                    .clone()
                    .any(|h| h.match_segments_ignore_case(reading).is_some())
            });
            return hooked.then_some(Route::Refused(RejectionKind::MalformedRequest));
        }
        let segments = router_segments(path);
        let captures = hooks.find_map(|hook| hook.match_segments_ignore_case(&segments))?;
        let member_id = captures
            .into_iter()
            .find(|(name, _)| name == "member_id")
            .map(|(_, v)| v)
            .unwrap_or_default();
        Some(if is_stytch_id(&member_id) {
            Route::Hook(member_id)
        } else {
            Route::Refused(RejectionKind::InvalidParameter)
        })
    }
}

/// Headers through which Rails (Rack), Laravel, Symfony, ASP.NET and Express apps let a POST
/// stand for another method.
const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The method the app behind will act on: a POST's method override (one of
/// [`METHOD_OVERRIDE_HEADERS`], or a `_method` query parameter, as Laravel and Symfony read
/// it), else the request's own method. Only a POST is overridden, as those frameworks do.
/// Several different overrides are ambiguous: `None`, and the request is refused (400: no
/// honest client sends two). A `_method` in a form body is not seen here (the body is the
/// app's); put a method-override middleware outside this layer, or use the gateway, which
/// reads it.
pub(crate) fn effective_method(
    method: &Method,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Option<Method> {
    if method != Method::POST {
        return Some(method.clone());
    }
    let mut overrides = METHOD_OVERRIDE_HEADERS
        .iter()
        .flat_map(|name| headers.get_all(*name))
        .map(|v| v.as_bytes().trim_ascii().to_ascii_uppercase())
        .chain(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .filter(|(k, _)| k == "_method")
                .map(|(_, v)| v.trim().to_ascii_uppercase().into_bytes()),
        );
    let Some(first) = overrides.next() else {
        return Some(Method::POST);
    };
    if overrides.any(|other| other != first) {
        return None;
    }
    Method::from_bytes(&first).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn table_for_proptest() -> RouteTable {
        table()
    }

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
            admin_client: Some(
                RoutePattern::parse("POST /admin/m2m-clients/{client_id}/revoke").unwrap(),
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
            t.classify(&Method::POST, &Method::POST, "/logout"),
            Route::Logout { everywhere: false }
        );
        assert_eq!(
            t.classify(&Method::GET, &Method::GET, "/logout"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(
            t.classify(&Method::POST, &Method::POST, "/logout/everywhere"),
            Route::Logout { everywhere: true }
        );
        assert_eq!(
            t.classify(
                &Method::POST,
                &Method::POST,
                "/admin/members/member-test-1/revoke-sessions"
            ),
            Route::Admin(Target::Member("member-test-1".into()))
        );
        assert_eq!(
            t.classify(
                &Method::GET,
                &Method::GET,
                "/admin/members/member-test-1/revoke-sessions"
            ),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(
            t.classify(
                &Method::POST,
                &Method::POST,
                "/admin/sessions/session-test-1/revoke"
            ),
            Route::Admin(Target::Session("session-test-1".into()))
        );
        assert_eq!(
            t.classify(
                &Method::DELETE,
                &Method::DELETE,
                "/api/members/member-test-2"
            ),
            Route::Hook("member-test-2".into())
        );
        assert_eq!(
            t.classify(&Method::GET, &Method::GET, "/api/members/member-test-2"),
            Route::Protected
        );
        assert_eq!(
            t.classify(&Method::GET, &Method::GET, "/assets/app.js"),
            Route::Public
        );
        assert_eq!(t.classify(&Method::GET, &Method::GET, "/"), Route::Optional);
        assert_eq!(
            t.classify(&Method::GET, &Method::GET, "/secret"),
            Route::Protected
        );
        let mut get = table();
        get.logout_allow_get = true;
        assert_eq!(
            get.classify(&Method::GET, &Method::GET, "/logout"),
            Route::Logout { everywhere: false }
        );
    }

    #[test]
    fn public_prefixes_never_cover_a_path_another_server_reads_differently() {
        // If this broke, `/assets/../secret`, `/assets/..;/admin` (Tomcat, Jetty) or
        // `/assets/%252e%252e/admin` (double decoding) would pass without a credential.
        let t = table();
        for odd in [
            "/assets/../secret",
            "/assets/%2e%2e/secret",
            "/assets/%2E./secret",
            "/assets/./x",
            "/assets/a%2fb",
            "/assets/a%5Cb",
            "/assets/a\\b",
            "/assets/..;/admin",
            "/assets/%252e%252e/admin",
            "/assets/%252E%252E/admin",
            "/assets/a%252fb",
            "/assets/x;a=b",
        ] {
            assert_eq!(
                t.classify(&Method::GET, &Method::GET, odd),
                Route::Protected,
                "{odd}"
            );
        }
        assert_eq!(
            t.classify(&Method::GET, &Method::GET, "/assets/.well-known"),
            Route::Public
        );
        assert_eq!(
            t.classify(&Method::GET, &Method::GET, "/assets/v1..2.js"),
            Route::Public
        );
    }

    #[test]
    fn hooks_match_the_way_the_apps_router_reads_the_path() {
        // If this broke, the app could act on a member (delete, suspend) while the member
        // stays signed in: the hook missed a path the app's router accepted.
        let t = table();
        let hook = |path: &str| t.classify(&Method::DELETE, &Method::DELETE, path);
        let id = Route::Hook("member-test-2".into());
        for path in [
            "/api/members/member-test-2",
            "/api/members/member%2Dtest%2D2",
            "/api/members/member%2dtest-2",
            "/api/members/member-test-2/",
            "//api/members/member-test-2",
            "/api//members/member-test-2",
            "/api/%6Dembers/member-test-2",
        ] {
            assert_eq!(hook(path), id, "{path}");
        }
        // A decoded capture that is not a Stytch id: refused before the app runs.
        for path in [
            "/api/members/member%20test",
            "/api/members/member%2Btest%3F",
        ] {
            assert_eq!(
                hook(path),
                Route::Refused(RejectionKind::InvalidParameter),
                "{path}"
            );
        }
        // Not UTF-8 once decoded: refused on every route, hooked or not.
        assert_eq!(
            hook("/api/members/%ff"),
            Route::Refused(RejectionKind::MalformedRequest)
        );
        // Paths some server resolves to a hooked route: refused before the app runs.
        for path in [
            "/api/members/x/../member-test-2",
            "/api/x/..;/members/member-test-2",
            "/api/members/member-test-2;x=y",
            "/api/members/member-test-2/.",
            "/api/members/%2e/member-test-2",
            "/api/members/x/%252e%252e/member-test-2",
            "/api/members%2fmember-test-2",
            "/api\\members\\member-test-2",
        ] {
            assert_eq!(
                hook(path),
                Route::Refused(RejectionKind::MalformedRequest),
                "{path}"
            );
        }
        // Not a hooked route under any reading: authenticated like any other route.
        assert_eq!(hook("/api/other/../x"), Route::Protected);
        assert_eq!(
            t.classify(
                &Method::GET,
                &Method::GET,
                "/api/members/x/../member-test-2"
            ),
            Route::Protected
        );
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::routing::path::readings;

    /// Path pieces that servers read in different ways.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "/", "//", ".", "..", ";", ";a=b", "%2e", "%2E", "%252e", "%2f", "%2F", "%252f", "%5c",
            "%255c", "%25", "%", "\\", "assets", "admin", "a", "x.js", "%41", "%ff",
        ])
    }

    proptest! {
        #[test]
        fn classification_never_panics_nor_makes_an_ambiguous_path_public(
            pieces in prop::collection::vec(piece(), 0..12),
            method in prop::sample::select(vec![Method::GET, Method::POST, Method::DELETE]),
        ) {
            // If this broke, a crafted path could crash a worker, or reach the app without a
            // credential by resolving, on some server, outside the public prefix.
            let path = format!("/assets/{}", pieces.concat());
            let mut t = tests::table_for_proptest();
            t.optional.clear();
            let route = t.classify(&method, &method, &path);
            if route == Route::Public {
                for reading in readings(&path) {
                    prop_assert_eq!(reading.first().map(String::as_str), Some("assets"), "{}", path);
                }
            }
        }

        #[test]
        fn a_hooked_route_is_never_passed_to_the_app_unhooked(
            pieces in prop::collection::vec(piece(), 0..10),
            tail in prop::sample::select(vec!["member-test-2", "member%2Dtest%2D2", "member-test-2/"]),
        ) {
            // If this broke, the app could act on a member through a path that some server
            // reads as the hooked route, while the layer let it through without the hook.
            let path = format!("/api/members/{}{}", pieces.concat(), tail);
            let t = tests::table_for_proptest();
            let route = t.classify(&Method::DELETE, &Method::DELETE, &path);
            let hooked = readings(&path).iter().any(|r| {
                r.len() == 3 && r[0] == "api" && r[1] == "members"
            });
            if hooked {
                prop_assert!(
                    matches!(route, Route::Hook(_) | Route::Refused(_)),
                    "{} -> {:?}", path, route
                );
            }
        }
    }
}
