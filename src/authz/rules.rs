//! [`RouteRules`]: which authorization rule, if any, covers a request; matched the way the
//! app's router may read the path, so that no spelling of a path dodges its rule.
//!
//! - segments percent-decoded once, empty ones and a trailing slash ignored (`/a//b/` is
//!   `/a/b`), literal segments in any ASCII case (`/API/Orgs` is `/api/orgs`: routers such as
//!   Express and ASP.NET read it so; a case-sensitive app answers it 404);
//! - a path with dot segments, `;` parameters or encoded separators that some server could
//!   resolve to a ruled route is refused (400) before anything runs; paths only some servers
//!   decode (`%u002e`, overlong UTF-8) never get here (the route table refuses them);
//! - the method is the one the app acts on (a POST's method override counts).
//!
//! The first rule whose pattern matches applies (rules are tried in the order given).

use std::sync::{Arc, OnceLock};

use http::Method;

use super::{Decision, Rule};
#[cfg(test)]
use crate::routing::path::is_ambiguous;
use crate::routing::path::readings;
use crate::routing::pattern::RoutePattern;

/// A rule with its pattern, as configured.
#[derive(Debug)]
pub(crate) struct RouteRule {
    pub(crate) pattern: RoutePattern,
    pub(crate) rule: Rule,
    /// The pattern as configured: the `rule` label of the decision metric.
    pub(crate) label: Arc<str>,
    /// Its decision counters, by outcome (registered on the first decision).
    counters: OnceLock<[metrics::Counter; Decision::COUNT]>,
}

impl RouteRule {
    pub(crate) fn new(pattern: RoutePattern, rule: Rule) -> Self {
        Self {
            label: Arc::from(pattern.as_str()),
            pattern,
            rule,
            counters: OnceLock::new(),
        }
    }

    /// Counts `decision` (`stytch_authz_decisions_total{rule, outcome}`).
    pub(crate) fn count(&self, decision: Decision) {
        let counters = self.counters.get_or_init(|| {
            crate::metrics::authz_decision_counters(&self.label, Decision::OUTCOMES)
        });
        counters[decision.index()].increment(1);
    }
}

/// What a request's rule is.
#[derive(Debug, Clone)]
pub(crate) enum Matched {
    /// A rule covers it; `organization` is the value of its organization parameter, when it
    /// names one.
    Rule {
        rule: Arc<RouteRule>,
        organization: Option<String>,
    },
    /// Some server could read the path as a ruled route while the router does not: refused.
    Ambiguous,
}

/// Every rule of a layer.
#[derive(Debug, Default)]
pub(crate) struct RouteRules {
    rules: Vec<Arc<RouteRule>>,
}

impl RouteRules {
    pub(crate) fn new(rules: Vec<RouteRule>) -> Self {
        Self {
            rules: rules.into_iter().map(Arc::new).collect(),
        }
    }

    /// The rule covering `method path`, if any; `ambiguous`: whether the path is
    /// [ambiguous](crate::routing::path::is_ambiguous).
    pub(crate) fn find(&self, method: &Method, path: &str, ambiguous: bool) -> Option<Matched> {
        if self.rules.is_empty() {
            return None;
        }
        let mut candidates = self
            .rules
            .iter()
            .filter(|r| r.pattern.method_matches(method));
        if ambiguous {
            let ruled = readings(path).iter().any(|reading| {
                candidates
                    .clone()
                    .any(|r| r.pattern.match_segments_ignore_case(reading).is_some())
            });
            return ruled.then_some(Matched::Ambiguous);
        }
        candidates.find_map(|rule| {
            let organization = rule
                .pattern
                .match_router_path(path, rule.rule.organization.as_deref())?;
            Some(Matched::Rule {
                rule: Arc::clone(rule),
                organization,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RouteRules {
        let rule =
            |pattern: &str, rule: Rule| RouteRule::new(RoutePattern::parse(pattern).unwrap(), rule);
        RouteRules::new(vec![
            rule(
                "DELETE /api/orgs/{organization_id}/documents/{document_id}",
                Rule::new()
                    .permission("documents", "delete")
                    .organization("organization_id"),
            ),
            rule("* /api/admin/{*rest}", Rule::new().mfa()),
        ])
    }

    fn organization_of(m: Option<Matched>) -> Option<String> {
        match m {
            Some(Matched::Rule { organization, .. }) => organization,
            other => panic!("no rule: {other:?}"),
        }
    }

    #[test]
    fn a_rule_cannot_be_dodged_by_case_slashes_or_encodings() {
        // If this broke, `/API/orgs/…`, `/api/orgs/x/documents/y/`, `//api/…` or
        // `/api/orgs/x/%64ocuments/y` would reach a handler that a case-insensitive or
        // lenient router maps to the ruled route, with no rule applied.
        let r = rules();
        for path in [
            "/api/orgs/organization-test-1/documents/d1",
            "/API/Orgs/organization-test-1/Documents/d1",
            "/api/orgs/organization-test-1/documents/d1/",
            "//api/orgs/organization-test-1//documents/d1",
            "/api/orgs/organization-test-1/%64ocuments/d1",
            "/api/orgs/organization%2Dtest%2D1/documents/d1",
        ] {
            assert_eq!(
                organization_of(r.find(&Method::DELETE, path, is_ambiguous(path))).as_deref(),
                Some("organization-test-1"),
                "{path}"
            );
        }
        assert!(
            r.find(
                &Method::GET,
                "/api/orgs/o/documents/d1",
                is_ambiguous("/api/orgs/o/documents/d1")
            )
            .is_none()
        );
        assert!(
            r.find(
                &Method::DELETE,
                "/api/orgs/o/documents",
                is_ambiguous("/api/orgs/o/documents")
            )
            .is_none()
        );
        assert!(
            r.find(
                &Method::POST,
                "/api/admin/x/y",
                is_ambiguous("/api/admin/x/y")
            )
            .is_some(),
            "* matches any method"
        );
    }

    #[test]
    fn a_path_some_server_resolves_to_a_ruled_route_is_ambiguous() {
        // If this broke, `/api/orgs/o/x/../documents/d1` (resolved by nginx, Tomcat) or
        // `/api/orgs/o/documents;x/d1` would run the app's handler without the rule.
        let r = rules();
        for path in [
            "/api/orgs/o/x/../documents/d1",
            "/api/orgs/o/documents;x=1/d1",
            "/api/orgs/o/%2e/documents/d1",
            "/api/x/..;/orgs/o/documents/d1",
        ] {
            assert!(
                matches!(
                    r.find(&Method::DELETE, path, is_ambiguous(path)),
                    Some(Matched::Ambiguous)
                ),
                "{path}"
            );
        }
        // Ambiguous but nowhere near a rule: not this module's business.
        assert!(
            r.find(
                &Method::DELETE,
                "/assets/../x",
                is_ambiguous("/assets/../x")
            )
            .is_none()
        );
    }
}
