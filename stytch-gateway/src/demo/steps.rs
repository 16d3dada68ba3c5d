//! The demo's steps: each a request through the gateway and the answer it must get, printed
//! as curl commands by the banner and run by the self-test.

use http::{Method, StatusCode, header};
use stytch_emulator::SessionInfo;

use super::seed::DemoSeed;

/// The demo's steps, in order: the page and a sign-in, bob's calls, the documents' rules, the
/// billing page's step-up, bob's logout, then an admin revocation refused to a member and
/// done by an admin.
pub(crate) fn steps(seed: &DemoSeed) -> Vec<DemoStep> {
    let mut steps = sign_in_steps(seed);
    steps.extend(documents_steps(seed));
    steps.extend(step_up_steps(seed));
    steps.extend(machine_steps(seed));
    steps.extend(logout_steps(seed));
    steps.extend(admin_steps(seed));
    steps
}

/// The page, a sign-in on it, and bob's calls through the gateway.
fn sign_in_steps(seed: &DemoSeed) -> Vec<DemoStep> {
    let bob = &seed.bob;
    vec![
        DemoStep::new(
            "the demo page, for anyone (open it in a browser)",
            Method::GET,
            "/",
            None,
            StatusCode::OK,
        )
        .checking(StepCheck::BodyContains("tower-stytch demo".to_owned())),
        DemoStep::new(
            "signing in as bob on the demo page sets Stytch's session cookies",
            Method::POST,
            "/demo/sign-in",
            None,
            StatusCode::SEE_OTHER,
        )
        .with_form(format!("member_id={}", bob.member_id))
        .checking(StepCheck::SetsSessionCookies),
        DemoStep::new(
            "bob calls the app through the gateway (identity headers reach the upstream)",
            Method::GET,
            "/whoami",
            token(bob),
            StatusCode::OK,
        )
        .checking(StepCheck::BodyContains(bob.member_id.clone())),
        DemoStep::new(
            "bob's active sessions, through Stytch's Get Sessions",
            Method::GET,
            "/api/sessions",
            token(bob),
            StatusCode::OK,
        )
        .checking(StepCheck::BodyContains(bob.member_session_id.clone())),
    ]
}

/// The documents' rules: bob (viewer) reads Acme's but may neither delete one nor read
/// Globex's; alice (documents_admin) deletes one.
fn documents_steps(seed: &DemoSeed) -> Vec<DemoStep> {
    let (bob, acme, globex) = (
        &seed.bob,
        &seed.organization_id,
        &seed.other_organization_id,
    );
    let doc = format!("/api/orgs/{acme}/documents/doc-2");
    vec![
        DemoStep::new(
            "bob (viewer: documents:read) lists Acme's documents",
            Method::GET,
            format!("/api/orgs/{acme}/documents"),
            token(bob),
            StatusCode::OK,
        )
        .checking(StepCheck::BodyContains("Security review notes".to_owned())),
        DemoStep::new(
            "bob may not delete one: the gateway answers 403 insufficient_permission",
            Method::DELETE,
            doc.clone(),
            token(bob),
            StatusCode::FORBIDDEN,
        )
        .checking(StepCheck::BodyContains(
            "insufficient_permission".to_owned(),
        )),
        DemoStep::new(
            "bob may not read Globex's documents (another organization): 403",
            Method::GET,
            format!("/api/orgs/{globex}/documents"),
            token(bob),
            StatusCode::FORBIDDEN,
        )
        .checking(StepCheck::BodyContains(
            "session_authorization_tenancy_error".to_owned(),
        )),
        DemoStep::new(
            "alice (documents_admin: documents:delete) deletes it",
            Method::DELETE,
            doc,
            token(&seed.admin),
            StatusCode::OK,
        )
        .checking(StepCheck::BodyContains("doc-2".to_owned())),
    ]
}

/// The billing page asks bob for a second factor; the step-up page's button adds one and
/// sets the fresh JWT cookie, with which the page loads.
fn step_up_steps(seed: &DemoSeed) -> Vec<DemoStep> {
    let bob = &seed.bob;
    vec![
        DemoStep::new(
            "the billing page asks bob for a second factor (RFC 9470 challenge)",
            Method::GET,
            "/billing",
            token(bob),
            StatusCode::UNAUTHORIZED,
        )
        .checking(StepCheck::HeaderContains(
            header::WWW_AUTHENTICATE,
            "error=\"insufficient_user_authentication\"".to_owned(),
        )),
        DemoStep::new(
            "bob verifies on the step-up page (a TOTP factor; sets the fresh stytch_session_jwt: export it as STEPPED_UP_JWT)",
            Method::POST,
            "/step-up",
            token(bob),
            StatusCode::SEE_OTHER,
        )
        .with_form("return_to=%2Fbilling".to_owned())
        .checking(StepCheck::SetsSteppedUpJwt),
        DemoStep::new(
            "with that JWT, the billing page loads",
            Method::GET,
            "/billing",
            None,
            StatusCode::OK,
        )
        .with_stepped_up_jwt()
        .checking(StepCheck::BodyContains("INV-1042".to_owned())),
    ]
}

/// Bob logs out; his token is refused afterwards.
fn logout_steps(seed: &DemoSeed) -> Vec<DemoStep> {
    let bob = &seed.bob;
    vec![
        DemoStep::new(
            "bob logs out (his session is revoked at Stytch and evicted here)",
            Method::POST,
            "/logout",
            token(bob),
            StatusCode::NO_CONTENT,
        )
        .any_success(),
        DemoStep::new(
            "bob's token is refused afterwards",
            Method::GET,
            "/whoami",
            token(bob),
            StatusCode::UNAUTHORIZED,
        ),
    ]
}

/// The reports job (an M2M client, scope `read:reports`) reads the machines-only reports;
/// bob's session may not; alice (machine_admin) cuts the client off, and its token, which
/// Stytch still signed for an hour, is refused from then on.
fn machine_steps(seed: &DemoSeed) -> Vec<DemoStep> {
    let machine = Some(seed.machine_token.expose_secret().to_owned());
    let client = &seed.machine.client_id;
    vec![
        DemoStep::new(
            "the reports job (M2M token, scope read:reports) reads the machines-only reports",
            Method::GET,
            "/api/reports",
            machine.clone(),
            StatusCode::OK,
        )
        .checking(StepCheck::BodyContains(client.clone())),
        DemoStep::new(
            "bob's session is refused there: the route takes machines only",
            Method::GET,
            "/api/reports",
            token(&seed.bob),
            StatusCode::FORBIDDEN,
        ),
        DemoStep::new(
            "alice (machine_admin: m2m_clients:revoke) cuts the reports job off",
            Method::POST,
            format!("/admin/m2m-clients/{client}/revoke"),
            token(&seed.admin),
            StatusCode::OK,
        ),
        DemoStep::new(
            "the job's token is refused from then on (Stytch signed it for an hour)",
            Method::GET,
            "/api/reports",
            machine,
            StatusCode::UNAUTHORIZED,
        ),
    ]
}

/// Carol may not force bob out; alice, an admin, forces carol out.
fn admin_steps(seed: &DemoSeed) -> Vec<DemoStep> {
    let (bob, carol) = (&seed.bob, &seed.carol);
    vec![
        DemoStep::new(
            "carol (no admin role) tries to force bob out and is refused",
            Method::POST,
            format!("/admin/members/{}/revoke-sessions", bob.member_id),
            token(carol),
            StatusCode::FORBIDDEN,
        ),
        DemoStep::new(
            "alice (stytch_admin) forces carol out of every session",
            Method::POST,
            format!("/admin/members/{}/revoke-sessions", carol.member_id),
            token(&seed.admin),
            StatusCode::NO_CONTENT,
        )
        .any_success(),
        DemoStep::new(
            "carol's token is refused afterwards",
            Method::GET,
            "/whoami",
            token(carol),
            StatusCode::UNAUTHORIZED,
        ),
    ]
}

/// The session's token, sent as a bearer token.
fn token(session: &SessionInfo) -> Option<String> {
    Some(session.session_token.expose_secret().to_owned())
}

/// One step of the demo: a request and the status it must get.
#[derive(Debug, Clone)]
pub(crate) struct DemoStep {
    /// What the step shows.
    pub(crate) title: String,
    /// Request method.
    pub(crate) method: Method,
    /// Request path.
    pub(crate) path: String,
    /// The bearer token sent, if any.
    pub(crate) token: Option<String>,
    /// Whether the bearer token sent is the JWT a [`StepCheck::SetsSteppedUpJwt`] step set.
    pub(crate) stepped_up_jwt: bool,
    /// A form body sent (`application/x-www-form-urlencoded`), if any.
    pub(crate) form: Option<String>,
    /// Whether any 2xx passes (rather than exactly `expected`).
    pub(crate) any_success: bool,
    /// What the answer must also hold.
    pub(crate) check: StepCheck,
    /// The expected status.
    pub(crate) expected: StatusCode,
}

impl DemoStep {
    /// A step sending `method path` (with `token` as a bearer token, if any) that must be
    /// answered `expected`, and nothing more.
    fn new(
        title: &str,
        method: Method,
        path: impl Into<String>,
        token: Option<String>,
        expected: StatusCode,
    ) -> Self {
        Self {
            title: title.to_owned(),
            method,
            path: path.into(),
            token,
            stepped_up_jwt: false,
            form: None,
            any_success: false,
            check: StepCheck::Status,
            expected,
        }
    }

    /// The step, whose answer must also hold `check`.
    fn checking(self, check: StepCheck) -> Self {
        Self { check, ..self }
    }

    /// The step, sending `form` as its body.
    fn with_form(self, form: String) -> Self {
        Self {
            form: Some(form),
            ..self
        }
    }

    /// The step, sending the JWT an earlier step's [`StepCheck::SetsSteppedUpJwt`] set.
    fn with_stepped_up_jwt(self) -> Self {
        Self {
            stepped_up_jwt: true,
            ..self
        }
    }

    /// The step, passing with any 2xx.
    fn any_success(self) -> Self {
        Self {
            any_success: true,
            ..self
        }
    }

    /// The command line that sends the step's request to the gateway at `base`.
    pub(crate) fn curl(&self, base: &str) -> String {
        let mut line = "curl -i ".to_owned();
        if let Some(form) = &self.form {
            line.push_str(&format!("-d '{form}' "));
        } else if self.method != Method::GET {
            line.push_str(&format!("-X {} ", self.method));
        }
        if let Some(token) = &self.token {
            line.push_str(&format!("-H 'Authorization: Bearer {token}' "));
        } else if self.stepped_up_jwt {
            line.push_str("-H \"Authorization: Bearer $STEPPED_UP_JWT\" ");
        }
        format!("{line}{base}{}", self.path)
    }

    /// The status expected, as printed: `2xx` or the code.
    pub(crate) fn expected_text(&self) -> String {
        if self.any_success {
            "2xx".to_owned()
        } else {
            self.expected.as_u16().to_string()
        }
    }

    /// Whether `status` is the one expected.
    pub(crate) fn passes(&self, status: StatusCode) -> bool {
        if self.any_success {
            status.is_success()
        } else {
            status == self.expected
        }
    }
}

/// What a step's answer must hold besides its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StepCheck {
    /// Nothing more.
    Status,
    /// The body contains this text.
    BodyContains(String),
    /// `Set-Cookie` sets Stytch's two session cookies.
    SetsSessionCookies,
    /// The header contains this text.
    HeaderContains(header::HeaderName, String),
    /// `Set-Cookie` sets `stytch_session_jwt`: the JWT later steps send.
    SetsSteppedUpJwt,
}

impl StepCheck {
    /// Whether an answer with `headers` and `body` holds the check.
    pub(crate) fn passes(&self, headers: &http::HeaderMap, body: &[u8]) -> bool {
        match self {
            Self::Status => true,
            Self::BodyContains(text) => String::from_utf8_lossy(body).contains(text.as_str()),
            Self::SetsSessionCookies => ["stytch_session", "stytch_session_jwt"]
                .iter()
                .all(|name| cookie(headers, name).is_some()),
            Self::HeaderContains(name, text) => headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.contains(text.as_str()))),
            Self::SetsSteppedUpJwt => cookie(headers, "stytch_session_jwt").is_some(),
        }
    }
}

/// The value `Set-Cookie` gives the cookie `name`, if it sets it.
pub(crate) fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            let (value, _) = c.strip_prefix(name)?.strip_prefix('=')?.split_once(';')?;
            (!value.is_empty()).then(|| value.to_owned())
        })
}
