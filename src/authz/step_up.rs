//! Step-up: whether a session carries a second factor, and how long ago the member last
//! authenticated, from its `authentication_factors` (`type`, `delivery_method`,
//! `last_authenticated_at`).
//!
//! A second factor is one whose `delivery_method` is one of Stytch B2B's MFA methods: `sms`
//! and `whatsapp` (OTP by text message), `authenticator_app` (TOTP) and `recovery_code`.
//! `type` alone does not tell: an email one-time passcode is a primary factor.

use std::time::{Duration, SystemTime};

use crate::session::{AuthenticationFactors, rfc3339};

/// The `delivery_method`s of Stytch B2B's second factors.
pub(crate) const SECOND_FACTOR_METHODS: [&str; 4] =
    ["sms", "whatsapp", "authenticator_app", "recovery_code"];

/// What a session's factors say about step-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StepUp {
    /// A second factor is among them.
    pub(crate) second_factor: bool,
    /// When the member last authenticated with any factor.
    pub(crate) newest: Option<SystemTime>,
}

impl StepUp {
    /// Reads `factors`. A factor whose fields are missing or malformed counts for nothing.
    pub(crate) fn of(factors: &AuthenticationFactors) -> Self {
        let mut step_up = Self::default();
        for factor in factors.values() {
            let method = factor.get("delivery_method").and_then(|m| m.as_str());
            if method.is_some_and(|m| SECOND_FACTOR_METHODS.contains(&m)) {
                step_up.second_factor = true;
            }
            let at = factor
                .get("last_authenticated_at")
                .and_then(|t| t.as_str())
                .and_then(rfc3339::parse);
            step_up.newest = step_up.newest.max(at);
        }
        step_up
    }

    /// Whether the newest authentication is at most `max_age` old at `now` (a factor stamped
    /// in the future, from a clock ahead of ours, counts as now).
    pub(crate) fn is_recent(&self, max_age: Duration, now: SystemTime) -> bool {
        self.newest
            .is_some_and(|at| now.duration_since(at).unwrap_or_default() <= max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::AuthenticationFactors;

    fn factors(json: &str) -> AuthenticationFactors {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn second_factors_are_told_by_delivery_method_not_type() {
        // If this broke, an email one-time passcode (type `otp` in some payloads) would pass
        // for MFA, or an authenticator app would not.
        let primary = factors(
            r#"[{"type":"magic_link","delivery_method":"email","last_authenticated_at":"2026-12-06T10:00:00Z"},
                {"type":"otp","delivery_method":"email","last_authenticated_at":"2026-12-06T10:01:00Z"}]"#,
        );
        assert!(!StepUp::of(&primary).second_factor);
        for method in SECOND_FACTOR_METHODS {
            let json = format!(
                r#"[{{"type":"magic_link","delivery_method":"email"}},{{"type":"x","delivery_method":"{method}"}}]"#
            );
            assert!(StepUp::of(&factors(&json)).second_factor, "{method}");
        }
        assert!(!StepUp::of(&factors("[]")).second_factor);
    }

    #[test]
    fn the_newest_factor_decides_the_age() {
        // If this broke, a member who authenticated long ago but stepped up a minute ago would
        // be asked again (or the reverse: an old step-up would count as fresh).
        let f = factors(
            r#"[{"delivery_method":"email","last_authenticated_at":"2026-12-06T10:00:00Z"},
                {"delivery_method":"authenticator_app","last_authenticated_at":"2026-12-06T11:00:00Z"},
                {"delivery_method":"sms","last_authenticated_at":"not a time"}]"#,
        );
        let step_up = StepUp::of(&f);
        let newest = rfc3339::parse("2026-12-06T11:00:00Z").unwrap();
        assert_eq!(step_up.newest, Some(newest));
        let minute = Duration::from_secs(60);
        assert!(step_up.is_recent(minute, newest + minute));
        assert!(!step_up.is_recent(minute, newest + minute * 2));
        assert!(
            step_up.is_recent(minute, newest - minute),
            "a clock behind Stytch's"
        );
        assert!(!StepUp::of(&factors("[]")).is_recent(minute, newest));
    }
}
