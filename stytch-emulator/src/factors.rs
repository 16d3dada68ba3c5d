//! Authentication factors of a session: how the member authenticated, and when.
//!
//! Stytch lists them in `member_session.authentication_factors` and in the session JWT's
//! `https://stytch.com/session` claim. Each item has `type`, `delivery_method`,
//! `last_authenticated_at`, `created_at`, `updated_at` and one method-specific object
//! (`email_factor`, `phone_number_factor`, `authenticator_app_factor`, …); the values used
//! here are those of the SDKs' strict enums (python `stytch/consumer/models/sessions.py`
//! `AuthenticationFactorType` and `AuthenticationFactorDeliveryMethod`: `otp` is SMS only,
//! `email_otp` is email, `totp` is `authenticator_app`, `recovery_codes` is
//! `recovery_code`).
//!
//! A leaf: uses no other module of the crate.

/// A method a member authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FactorKind {
    /// Email magic link (`magic_link` / `email`): the emulator's default primary factor.
    MagicLink,
    /// Email one-time passcode (`email_otp` / `email`), a primary factor.
    EmailOtp,
    /// Password (`password` / `knowledge`), a primary factor.
    Password,
    /// SAML SSO (`sso` / `sso_saml`), a primary factor.
    SamlSso,
    /// OIDC SSO (`sso` / `sso_oidc`), a primary factor.
    OidcSso,
    /// SMS one-time passcode to this phone number (`otp` / `sms`), a second factor.
    SmsOtp {
        /// The phone number, E.164 (`+15555550123`).
        phone_number: String,
    },
    /// Authenticator app TOTP (`totp` / `authenticator_app`), a second factor.
    Totp,
    /// Recovery code (`recovery_codes` / `recovery_code`), a second factor.
    RecoveryCode,
}

impl FactorKind {
    /// Every `(type, delivery_method)` pair the emulator knows, for parsing.
    pub(crate) const PAIRS: [(&'static str, &'static str); 8] = [
        ("magic_link", "email"),
        ("email_otp", "email"),
        ("password", "knowledge"),
        ("sso", "sso_saml"),
        ("sso", "sso_oidc"),
        ("otp", "sms"),
        ("totp", "authenticator_app"),
        ("recovery_codes", "recovery_code"),
    ];

    /// Stytch's `type`.
    pub fn factor_type(&self) -> &'static str {
        self.pair().0
    }

    /// Stytch's `delivery_method`.
    pub fn delivery_method(&self) -> &'static str {
        self.pair().1
    }

    fn pair(&self) -> (&'static str, &'static str) {
        let index = match self {
            Self::MagicLink => 0,
            Self::EmailOtp => 1,
            Self::Password => 2,
            Self::SamlSso => 3,
            Self::OidcSso => 4,
            Self::SmsOtp { .. } => 5,
            Self::Totp => 6,
            Self::RecoveryCode => 7,
        };
        Self::PAIRS[index]
    }

    /// The kind with this `type` and `delivery_method`; SMS needs the phone number.
    pub fn from_names(
        factor_type: &str,
        delivery_method: &str,
        phone_number: Option<&str>,
    ) -> Option<Self> {
        Some(match (factor_type, delivery_method) {
            ("magic_link", "email") => Self::MagicLink,
            ("email_otp", "email") => Self::EmailOtp,
            ("password", "knowledge") => Self::Password,
            ("sso", "sso_saml") => Self::SamlSso,
            ("sso", "sso_oidc") => Self::OidcSso,
            ("otp", "sms") => Self::SmsOtp {
                phone_number: phone_number?.to_owned(),
            },
            ("totp", "authenticator_app") => Self::Totp,
            ("recovery_codes", "recovery_code") => Self::RecoveryCode,
            _ => return None,
        })
    }
}

/// A factor to start a session with or to add to one (Stytch's MFA step).
///
/// ```
/// # use stytch_emulator::AuthenticationFactor;
/// let totp = AuthenticationFactor::totp();
/// let sms_a_minute_ago = AuthenticationFactor::sms_otp("+15555550123").at(1_700_000_000);
/// # let _ = (totp, sms_a_minute_ago);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationFactor {
    pub(crate) kind: FactorKind,
    pub(crate) at: Option<i64>,
}

impl AuthenticationFactor {
    /// A factor of this kind, authenticated at the emulator's current time.
    pub fn new(kind: FactorKind) -> Self {
        Self { kind, at: None }
    }

    /// Email magic link.
    pub fn magic_link() -> Self {
        Self::new(FactorKind::MagicLink)
    }

    /// Email one-time passcode.
    pub fn email_otp() -> Self {
        Self::new(FactorKind::EmailOtp)
    }

    /// Password.
    pub fn password() -> Self {
        Self::new(FactorKind::Password)
    }

    /// SMS one-time passcode to `phone_number`.
    pub fn sms_otp(phone_number: impl Into<String>) -> Self {
        Self::new(FactorKind::SmsOtp {
            phone_number: phone_number.into(),
        })
    }

    /// Authenticator app (TOTP).
    pub fn totp() -> Self {
        Self::new(FactorKind::Totp)
    }

    /// Recovery code.
    pub fn recovery_code() -> Self {
        Self::new(FactorKind::RecoveryCode)
    }

    /// Authenticated at this Unix time (seconds) instead of the emulator's current time.
    #[must_use]
    pub fn at(mut self, unix_seconds: i64) -> Self {
        self.at = Some(unix_seconds);
        self
    }

    /// The kind.
    pub fn kind(&self) -> &FactorKind {
        &self.kind
    }
}

/// A factor as a session holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionFactor {
    pub(crate) kind: FactorKind,
    /// The method-specific id (`totp_id`, `phone_id`, …; for email factors the member's
    /// `email_id` is used instead).
    pub(crate) id: String,
    pub(crate) created_at: i64,
    pub(crate) last_authenticated_at: i64,
}

impl SessionFactor {
    /// Whether `other` is the same method (type and delivery method).
    pub(crate) fn same_method(&self, other: &FactorKind) -> bool {
        self.kind.factor_type() == other.factor_type()
            && self.kind.delivery_method() == other.delivery_method()
    }
}

/// Adds `factor` to `factors` at `now` (or its own time), or, when the session already has
/// that method, updates its `last_authenticated_at`, as Stytch's MFA step does.
pub(crate) fn add_factor(
    factors: &mut Vec<SessionFactor>,
    factor: AuthenticationFactor,
    id: String,
    now: i64,
) {
    let at = factor.at.unwrap_or(now);
    match factors.iter_mut().find(|f| f.same_method(&factor.kind)) {
        Some(existing) => {
            existing.last_authenticated_at = at;
            existing.kind = factor.kind;
        }
        None => factors.push(SessionFactor {
            kind: factor.kind,
            id,
            created_at: at,
            last_authenticated_at: at,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_follow_the_sdk_enums() {
        // If this broke, the control API could not name a factor, or the emulator would
        // send a type/delivery pair the SDKs' strict enums refuse.
        for (t, d) in FactorKind::PAIRS {
            let kind = FactorKind::from_names(t, d, Some("+15555550123")).unwrap();
            assert_eq!((kind.factor_type(), kind.delivery_method()), (t, d));
        }
        assert_eq!(FactorKind::from_names("otp", "sms", None), None);
        assert_eq!(FactorKind::from_names("otp", "email", None), None);
    }

    #[test]
    fn a_repeated_method_updates_its_time_instead_of_adding_a_factor() {
        // If this broke, a session that did TOTP twice would list it twice, and a step-up
        // check reading the first item would see the old time.
        let mut factors = Vec::new();
        add_factor(
            &mut factors,
            AuthenticationFactor::magic_link(),
            "a".into(),
            10,
        );
        add_factor(&mut factors, AuthenticationFactor::totp(), "b".into(), 20);
        add_factor(
            &mut factors,
            AuthenticationFactor::totp().at(30),
            "c".into(),
            40,
        );
        assert_eq!(factors.len(), 2);
        assert_eq!(
            (
                factors[1].id.as_str(),
                factors[1].created_at,
                factors[1].last_authenticated_at
            ),
            ("b", 20, 30)
        );
    }
}
