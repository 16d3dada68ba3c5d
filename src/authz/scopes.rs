//! The M2M scope check of Stytch's SDKs (python `stytch/shared/m2m_authorization.py`
//! `perform_authorization_check`, node `lib/b2c/m2m_local.ts`): a scope is `action:resource`
//! (or a bare `scope`, whose resource is `-`); a required `action:resource` is granted by a
//! scope of the same action whose resource is the same or `*`. Only the resource may be a
//! wildcard: `*:documents` grants only `*:documents`. A scope with more than one `:` grants
//! nothing (Python raises on it; Node reads its first two parts).

/// `(action, resource)` of a scope, `None` for one with more than one `:`.
fn parts(scope: &str) -> Option<(&str, &str)> {
    match scope.split_once(':') {
        None => Some((scope, "-")),
        Some((_, rest)) if rest.contains(':') => None,
        Some(pair) => Some(pair),
    }
}

/// Whether `scopes` grant `action` on `resource` (the required scope `action:resource`).
pub(crate) fn scopes_grant(scopes: &[String], resource: &str, action: &str) -> bool {
    scopes
        .iter()
        .filter_map(|s| parts(s))
        .any(|(have_action, have_resource)| {
            have_action == action && (have_resource == "*" || have_resource == resource)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scopes: &[&str], resource: &str, action: &str) -> bool {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        scopes_grant(&scopes, resource, action)
    }

    #[test]
    fn the_sdks_scope_rule() {
        // If this broke, a machine token would be granted (or refused) differently from
        // Stytch's SDKs: a wildcard action, a wildcard resource missed, a prefix match.
        assert!(grant(&["read:documents"], "documents", "read"));
        assert!(grant(&["read:*"], "documents", "read"));
        assert!(grant(&["write:documents", "read:*"], "reports", "read"));
        assert!(!grant(&["read:documents"], "documents", "write"));
        assert!(!grant(&["read:documents"], "reports", "read"));
        assert!(!grant(&["*:documents"], "documents", "read"));
        assert!(grant(&["*:documents"], "documents", "*"));
        assert!(!grant(&["*"], "documents", "read"));
        assert!(!grant(&["read"], "documents", "read"));
        assert!(!grant(&["read:documents:extra"], "documents", "read"));
        assert!(!grant(&["read:doc"], "documents", "read"));
        assert!(!grant(&[], "documents", "read"));
    }
}
