//! Unit tests of credential extraction.

use super::*;

#[test]
fn visible_ascii_accepts_what_to_str_accepts() {
    // If this broke, a header `HeaderValue::to_str` refuses would be read as a credential
    // (or a good one refused as a bad request): every byte, alone and among 40 others so
    // that the vectorised chunks see it too.
    for b in 0..=255u8 {
        for len in [1, 40, 70] {
            let mut bytes = vec![b'a'; len];
            bytes[len / 2] = b;
            let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                continue;
            };
            assert_eq!(
                visible_ascii_str(value.as_bytes()),
                value.to_str().ok(),
                "byte {b:#04x}, length {len}"
            );
        }
    }
}

const TOKEN: &str = "mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q";
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    h
}

fn found(h: &HeaderMap) -> Option<(String, Option<String>)> {
    extract(h, &CredentialSource::defaults()).unwrap().map(|f| {
        let cookie = f
            .cookie_name(&CredentialSource::defaults())
            .map(str::to_owned);
        (f.credential.expose_secret().to_owned(), cookie)
    })
}

#[test]
fn default_order_is_bearer_then_jwt_cookie_then_token_cookie() {
    // If this broke, a stale cookie could win over an explicit Authorization header.
    let both = format!("stytch_session={TOKEN}; stytch_session_jwt={JWT}");
    let h = headers(&[
        ("cookie", both.as_bytes()),
        ("authorization", format!("Bearer {TOKEN}").as_bytes()),
    ]);
    assert_eq!(found(&h), Some((TOKEN.into(), None)));
    let h = headers(&[("cookie", both.as_bytes())]);
    assert_eq!(
        found(&h),
        Some((JWT.into(), Some("stytch_session_jwt".into())))
    );
    let h = headers(&[("cookie", format!("stytch_session={TOKEN}").as_bytes())]);
    assert_eq!(
        found(&h),
        Some((TOKEN.into(), Some("stytch_session".into())))
    );
    assert_eq!(found(&headers(&[])), None);
}

#[test]
fn cookie_layouts() {
    // If this broke, real browsers' cookie headers (split, quoted, junk) would not authenticate.
    let h = headers(&[
        ("cookie", b"a=1; junk; =x; theme=dark"),
        ("cookie", format!("stytch_session=\"{TOKEN}\"").as_bytes()),
    ]);
    assert_eq!(
        found(&h),
        Some((TOKEN.into(), Some("stytch_session".into())))
    );
    let h = headers(&[
        ("cookie", b"\xff\xfe=bad"),
        ("cookie", format!("stytch_session={TOKEN}").as_bytes()),
    ]);
    assert_eq!(found(&h).map(|f| f.0), Some(TOKEN.into()));
    // An empty value is no value; the same value twice is one.
    let h = headers(&[(
        "cookie",
        format!("stytch_session=; stytch_session={TOKEN}; stytch_session=\"{TOKEN}\"").as_bytes(),
    )]);
    assert_eq!(found(&h).map(|f| f.0), Some(TOKEN.into()));
    let h = headers(&[("cookie", format!("xstytch_session={TOKEN}").as_bytes())]);
    assert_eq!(found(&h), None);
}

#[test]
fn a_session_cookie_tossed_by_a_sibling_domain_is_refused_not_chosen() {
    // If this broke, a sibling subdomain that plants `stytch_session` for a longer path
    // (sent first by the browser) would sign the member into the planter's session, or a
    // junk copy would decide which credential counts.
    let planted = "Xq8aY2bLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q";
    for layout in [
        vec![format!("stytch_session={planted}; stytch_session={TOKEN}")],
        vec![
            format!("stytch_session={planted}"),
            format!("stytch_session={TOKEN}"),
        ],
        vec![format!("stytch_session=bad value; stytch_session={TOKEN}")],
    ] {
        let pairs: Vec<(&str, &[u8])> = layout.iter().map(|v| ("cookie", v.as_bytes())).collect();
        assert_eq!(
            extract(&headers(&pairs), &CredentialSource::defaults()).unwrap_err(),
            ExtractError::Ambiguous,
            "{layout:?}"
        );
    }
    // A token and a JWT are different cookies: no ambiguity (the JWT cookie is read first).
    let h = headers(&[(
        "cookie",
        format!("stytch_session={TOKEN}; stytch_session_jwt={JWT}").as_bytes(),
    )]);
    assert_eq!(found(&h).map(|f| f.0), Some(JWT.into()));
}

#[test]
fn other_schemes_fall_through_and_malformed_is_refused() {
    // If this broke, Basic auth for another app would be sent to Stytch, or junk accepted.
    let h = headers(&[
        ("authorization", b"Basic dXNlcjpwYXNz"),
        ("cookie", format!("stytch_session={TOKEN}").as_bytes()),
    ]);
    assert_eq!(found(&h).map(|f| f.0), Some(TOKEN.into()));
    let h = headers(&[("authorization", b"Bearer a.b")]);
    assert!(matches!(
        extract(&h, &CredentialSource::defaults()),
        Err(ExtractError::Invalid(CredentialError::MalformedJwt))
    ));
    let h = headers(&[
        ("authorization", b"Bearer x"),
        ("authorization", b"Bearer y"),
    ]);
    assert_eq!(
        extract(&h, &CredentialSource::defaults()).unwrap_err(),
        ExtractError::BadRequest
    );
    let h = headers(&[("authorization", b"Bearer \xe9t\xe9")]);
    assert_eq!(
        extract(&h, &CredentialSource::defaults()).unwrap_err(),
        ExtractError::BadRequest
    );
    let long = format!("Bearer {}", "a".repeat(5000));
    let h = headers(&[("authorization", long.as_bytes())]);
    assert!(matches!(
        extract(&h, &CredentialSource::defaults()),
        Err(ExtractError::Invalid(CredentialError::TooLong))
    ));
    let h = headers(&[("cookie", b"stytch_session=bad value")]);
    assert!(matches!(
        extract(&h, &CredentialSource::defaults()),
        Err(ExtractError::Invalid(_))
    ));
}

#[test]
fn configurable_sources() {
    // If this broke, apps using their own header or cookie names could not authenticate.
    let sources = vec![
        CredentialSource::header("x-session").unwrap(),
        CredentialSource::cookie("sess").unwrap(),
    ];
    let h = headers(&[("x-session", TOKEN.as_bytes())]);
    assert!(extract(&h, &sources).unwrap().is_some());
    let h = headers(&[("cookie", format!("sess={JWT}").as_bytes())]);
    let found = extract(&h, &sources).unwrap().unwrap();
    assert!(found.credential.is_jwt());
    // The cookie it came from is named (a refreshed JWT is set back in it).
    assert_eq!(found.cookie_name(&sources), Some("sess"));
    assert!(CredentialSource::cookie("a;b").is_err());
    assert!(CredentialSource::header("a b").is_err());
}

#[test]
fn strip_removes_what_the_sources_read_and_keeps_the_rest() {
    // If this broke, a proxy would hand the member's Stytch credential to its upstream, or
    // drop the app's own cookies and Basic credentials.
    let mut h = headers(&[
        ("authorization", format!("Bearer {TOKEN}").as_bytes()),
        (
            "cookie",
            format!("theme=dark; stytch_session={TOKEN};lang=en").as_bytes(),
        ),
        ("cookie", format!("stytch_session_jwt={JWT}").as_bytes()),
        ("cookie", b"junk; =x; \xffid=1; stytch_session=\"quoted\""),
        ("x-other", b"1"),
    ]);
    strip_credentials(&mut h, &CredentialSource::defaults());
    assert!(!h.contains_key(AUTHORIZATION));
    let cookies: Vec<&[u8]> = h.get_all(COOKIE).iter().map(|v| v.as_bytes()).collect();
    assert_eq!(
        cookies,
        [&b"theme=dark; lang=en"[..], &b"junk; =x; \xffid=1"[..]]
    );
    assert!(h.contains_key("x-other"));
    assert!(
        extract(&h, &CredentialSource::defaults())
            .unwrap()
            .is_none()
    );

    let mut h = headers(&[
        ("authorization", b"Basic dXNlcjpwYXNz"),
        ("cookie", b"xstytch_session=1; stytch_session"),
    ]);
    strip_credentials(&mut h, &CredentialSource::defaults());
    assert_eq!(h[AUTHORIZATION], "Basic dXNlcjpwYXNz");
    assert_eq!(h[COOKIE], "xstytch_session=1");

    let sources = vec![
        CredentialSource::header("x-session").unwrap(),
        CredentialSource::bearer("x-auth").unwrap(),
    ];
    let mut h = headers(&[
        ("x-session", TOKEN.as_bytes()),
        ("x-session", b"again"),
        ("x-auth", b"bearer x"),
        ("x-auth", b"Token y"),
        ("cookie", format!("stytch_session={TOKEN}").as_bytes()),
    ]);
    strip_credentials(&mut h, &sources);
    assert!(!h.contains_key("x-session"));
    assert_eq!(h.get_all("x-auth").iter().count(), 1);
    assert_eq!(h["x-auth"], "Token y");
    assert!(h.contains_key(COOKIE), "not a configured source");
}
