//! Property tests of credential extraction.

use super::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn extraction_never_panics_on_arbitrary_headers(
        cookies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4),
        auth in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        // If this broke, a malformed header could crash a worker instead of getting a 4xx.
        let mut headers = HeaderMap::new();
        for c in &cookies {
            if let Ok(v) = HeaderValue::from_bytes(c) {
                headers.append(COOKIE, v);
            }
        }
        if let Ok(v) = HeaderValue::from_bytes(&auth) {
            headers.append(AUTHORIZATION, v);
        }
        let _ = extract(&headers, &CredentialSource::defaults());
    }

    #[test]
    fn an_unchecked_lookup_can_only_hit_what_extract_accepts(
        auth in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b'\t'), Just(0x0c), Just(0x01), Just(b'.'), Just(b'='), Just(0xe9), b'a'..=b'c'],
            0..40,
        ),
        scheme in "(Bearer|bearer|Basic|)",
        header in any::<bool>(),
        cookie in proptest::option::of("[a-c.]{1,10}"),
    ) {
        // If this broke, a bearer header `extract` refuses (400, 401) or reads otherwise
        // could be served from the cache: the unchecked lookup must find exactly the
        // credential `extract` accepts, or bytes that cannot be a checked credential
        // (never cached), or nothing.
        let sources = if header {
            vec![CredentialSource::header("x-session").unwrap(), CredentialSource::Cookie(DEFAULT_TOKEN_COOKIE.to_owned())]
        } else {
            CredentialSource::defaults()
        };
        let name = if header { "x-session" } else { "authorization" };
        let mut value = scheme.into_bytes();
        value.push(b' ');
        value.extend_from_slice(&auth);
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            headers.append(HeaderName::from_static(name), v);
        }
        if let Some(c) = cookie {
            headers.append(COOKIE, HeaderValue::from_str(&format!("stytch_session={c}")).unwrap());
        }
        let checked = extract(&headers, &sources);
        match (unchecked(&headers, &sources), checked) {
            (None, _) => {}
            (Some(raw), Ok(Some(found))) if found.credential.as_bytes() == raw => {}
            (Some(raw), other) => prop_assert!(
                Credential::parse_bytes(raw).is_err(),
                "unchecked {:?}, extract {:?}", raw, other.map(|f| f.map(|f| f.credential.as_bytes().to_vec()))
            ),
        }
    }

    #[test]
    fn nothing_the_sources_read_survives_strip(
        cookies in proptest::collection::vec("[a-z_ =;\"]{0,12}(stytch_session(_jwt)?=[A-Za-z0-9_.-]{1,60})?[a-z_ =;]{0,12}", 0..4),
        auth in "(Bearer|bearer|BEARER|Basic) ?[A-Za-z0-9_.-]{0,60}",
    ) {
        // If this broke, some cookie layout would let the member's credential through a
        // proxy that strips credentials before the upstream.
        let mut headers = HeaderMap::new();
        for c in &cookies {
            headers.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        headers.append(AUTHORIZATION, HeaderValue::from_str(&auth).unwrap());
        strip_credentials(&mut headers, &CredentialSource::defaults());
        let left = extract(&headers, &CredentialSource::defaults());
        prop_assert!(matches!(left, Ok(None)), "{:?}", left.map(|f| f.map(|f| f.cookie)));
    }

    #[test]
    fn an_accepted_credential_is_a_token_or_a_three_part_jwt(raw in "[A-Za-z0-9._=;\" -]{0,80}") {
        // If this broke, junk could be classified as a credential and sent to Stytch.
        match Credential::parse(&raw) {
            Ok(Credential::Jwt(j)) => {
                let parts: Vec<&str> = j.expose_secret().split('.').collect();
                prop_assert_eq!(parts.len(), 3);
                prop_assert!(parts.iter().all(|p| !p.is_empty()));
            }
            Ok(Credential::Token(t)) => {
                prop_assert!(t.expose_secret().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            }
            Err(_) => {}
        }
    }
}
