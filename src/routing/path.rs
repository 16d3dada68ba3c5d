//! How the servers behind the layer may read a request path: percent-decoding (once, or
//! again and again), `;` path parameters (Tomcat, Jetty), backslashes (IIS), empty and dot
//! segments. Route classification uses it so that no reading of a path escapes the route
//! the layer put it in.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// Characters that some servers fold into `.`, `/` or `\` (Unicode compatibility forms:
/// fullwidth, small and dot-leader forms, NFKC-normalised by IIS, some Java and Python
/// stacks).
const LOOKALIKES: &[char] = &[
    '\u{FF0E}', // FULLWIDTH FULL STOP → .
    '\u{FF0F}', // FULLWIDTH SOLIDUS → /
    '\u{FF3C}', // FULLWIDTH REVERSE SOLIDUS → \
    '\u{FE52}', // SMALL FULL STOP → .
    '\u{FE68}', // SMALL REVERSE SOLIDUS → \
    '\u{2024}', // ONE DOT LEADER → .
    '\u{2025}', // TWO DOT LEADER → ..
    '\u{2026}', // HORIZONTAL ELLIPSIS → ...
    '\u{2215}', // DIVISION SLASH, folded to / by some
    '\u{2044}', // FRACTION SLASH, folded to / by some
];

/// Whether `path` holds an encoding that only some servers decode, and so can never be
/// classified safely: IIS's `%uXXXX` escapes, a NUL, bytes that are not UTF-8 once
/// percent-decoded (overlong forms such as `%c0%af` for `/` and `%c0%ae` for `.` among them),
/// or Unicode look-alikes of `.`, `/` and `\` ([`LOOKALIKES`]), at any depth of decoding.
/// Such a request is refused (400) on every route.
pub(crate) fn is_malformed(path: &str) -> bool {
    // Fast path: nothing escaped, and hyper only lets visible ASCII into a path.
    if !path.contains('%') {
        return false;
    }
    let mut bytes = Cow::Borrowed(path.as_bytes());
    loop {
        if has_unicode_escape(&bytes) || bytes.contains(&0) {
            return true;
        }
        match std::str::from_utf8(&bytes) {
            Ok(text) if text.contains(LOOKALIKES) => return true,
            Ok(_) => {}
            Err(_) => return true,
        }
        let next: Cow<'_, [u8]> = percent_decode(&bytes).into();
        if next == bytes {
            return false;
        }
        bytes = Cow::Owned(next.into_owned());
    }
}

/// Whether `bytes` holds `%u` followed by four hex digits (IIS's non-standard escape).
fn has_unicode_escape(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| {
        w[0] == b'%' && matches!(w[1], b'u' | b'U') && w[2..].iter().all(u8::is_ascii_hexdigit)
    })
}

/// Whether another server could read `path` as a different path: a segment with `;` (a path
/// parameter), a backslash, an encoded `/`, `\` or `;`, a `%25` escape of a dot, slash or
/// backslash (`%252e`, `%252f`, `%255c`, any case), or a segment that decodes, once or
/// repeatedly, to `.` or `..`.
pub(crate) fn is_ambiguous(path: &str) -> bool {
    // Fast path for the common case, without allocating.
    if !path
        .bytes()
        .any(|b| matches!(b, b'%' | b'\\' | b'.' | b';'))
    {
        return false;
    }
    path.split('/')
        .any(|segment| is_ambiguous_segment(segment.as_bytes()))
}

fn is_ambiguous_segment(raw: &[u8]) -> bool {
    let mut segment = Cow::Borrowed(raw);
    let mut decoded_once = false;
    loop {
        if matches!(&*segment, b"." | b"..") || segment.iter().any(|b| b"/\\;".contains(b)) {
            return true;
        }
        if decoded_once && has_escaped_separator(&segment) {
            // The raw segment held `%252e`, `%252f` or `%255c`: a double-decoding server sees
            // a dot, a slash or a backslash.
            return true;
        }
        let next: Cow<'_, [u8]> = percent_decode(&segment).into();
        if next == segment {
            return false;
        }
        segment = Cow::Owned(next.into_owned());
        decoded_once = true;
    }
}

/// Whether `bytes` holds `%2e`, `%2f` or `%5c` (any case).
fn has_escaped_separator(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                [w[1], w[2].to_ascii_lowercase()],
                [b'2', b'e'] | [b'2', b'f'] | [b'5', b'c']
            )
    })
}

/// The path's segments the way an app's router sees them (axum's captures, and routers that
/// ignore empty segments and a trailing slash): split on `/`, empty segments dropped, each
/// percent-decoded once (invalid UTF-8 replaced, so it matches no Stytch id).
pub(crate) fn router_segments(path: &str) -> Vec<Cow<'_, str>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s.as_bytes()).decode_utf8_lossy())
        .collect()
}

/// Every reading of an [ambiguous](is_ambiguous) `path` a server might make: the router's
/// ([`router_segments`]), and the path decoded zero times, once, and until nothing changes,
/// each with backslashes as slashes, `;` parameters cut, empty and `.` segments dropped and
/// `..` resolved.
pub(crate) fn readings(path: &str) -> Vec<Vec<String>> {
    let mut readings = vec![
        router_segments(path)
            .into_iter()
            .map(Cow::into_owned)
            .collect(),
    ];
    let mut bytes = Cow::Borrowed(path.as_bytes());
    loop {
        readings.push(resolve(&String::from_utf8_lossy(&bytes)));
        let next: Cow<'_, [u8]> = percent_decode(&bytes).into();
        if next == bytes {
            return readings;
        }
        bytes = Cow::Owned(next.into_owned());
    }
}

/// `path` with `\` as `/`, `;` parameters cut, empty and `.` segments dropped, `..` resolved.
fn resolve(path: &str) -> Vec<String> {
    let mut segments: Vec<String> = Vec::new();
    for segment in path.split(['/', '\\']) {
        let segment = segment.split(';').next().unwrap_or_default();
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other.to_owned()),
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_only_some_servers_decode_are_malformed() {
        // If this broke, `/assets/%u002e%u002e/admin` (IIS), `/assets/%c0%ae%c0%ae/admin`
        // (overlong UTF-8), `/assets/%ef%bc%8e%ef%bc%8e/admin` (fullwidth dots) or a NUL would
        // be classified like an ordinary path, and inherit a public prefix's status on a
        // server that decodes them into `..`.
        for odd in [
            "/assets/%u002e%u002e/admin",
            "/assets/%U002F/admin",
            "/assets/%25u002e%25u002e/admin",
            "/assets/%c0%ae%c0%ae/admin",
            "/assets/%c0%af../admin",
            "/assets/%e0%80%af/admin",
            "/assets/%ef%bc%8e%ef%bc%8e/admin",
            "/assets/%EF%BC%8F/admin",
            "/assets/x%00.css",
            "/assets/%2500.css",
            "/assets/%e2%80%a5/admin",
            "/assets/%ff",
        ] {
            assert!(is_malformed(odd), "{odd}");
        }
        for plain in [
            "/assets/app.css",
            "/assets/caf%C3%A9.png",
            "/assets/%20space",
            "/api/members/member-test-1",
            "/search/%2525",
            "/u/%75ser",
        ] {
            assert!(!is_malformed(plain), "{plain}");
        }
    }

    #[test]
    fn ambiguous_paths() {
        // If this broke, `/assets/..;/admin` or a double-encoded `..` would count as an
        // ordinary path and inherit a public prefix's status.
        for odd in [
            "/assets/../secret",
            "/assets/./x",
            "/assets/%2e%2e/secret",
            "/assets/%2E./secret",
            "/assets/.%2e/secret",
            "/assets/%252e%252e/secret",
            "/assets/%252E%252E/secret",
            "/assets/%25252e%25252e/secret",
            "/assets/..;/admin",
            "/assets/x;jsessionid=1/y",
            "/assets/a%3bb",
            "/assets/a%2fb",
            "/assets/a%2Fb",
            "/assets/a%252fb",
            "/assets/a%255cb",
            "/assets/a%5Cb",
            "/assets/a\\b",
            "/assets/app%252ejs",
        ] {
            assert!(is_ambiguous(odd), "{odd}");
        }
        for plain in [
            "/",
            "/assets/app.js",
            "/assets/.well-known",
            "/assets/v1..2.js",
            "/assets/v1%2e2.js",
            "/assets/a%20b",
            "/assets/100%25",
            "/assets/%zz",
            "//assets/x/",
        ] {
            assert!(!is_ambiguous(plain), "{plain}");
        }
    }

    #[test]
    fn router_segments_decode_once_and_drop_empty_segments() {
        // If this broke, a hooked route would be missed when the client percent-encodes the id,
        // adds a trailing slash or doubles a slash, while the app's router acts on it.
        assert_eq!(
            router_segments("//api/members/member%2Dtest%2D1/"),
            ["api", "members", "member-test-1"]
        );
        assert_eq!(router_segments("/a/%2541"), ["a", "%41"]);
        assert_eq!(router_segments("/a/%ff"), ["a", "\u{fffd}"]);
    }

    #[test]
    fn readings_resolve_every_decoding_depth() {
        // If this broke, an ambiguous path that some server resolves to a hooked route would
        // not be recognised as one.
        let r = readings("/api/x/..;/members/%252e%252e/members/m1");
        assert!(r.contains(&vec!["api".into(), "members".into(), "m1".into()]));
        let r = readings("/api/members/m1/%2e");
        assert!(r.contains(&vec!["api".into(), "members".into(), "m1".into()]));
        let r = readings("/api\\members\\m1");
        assert!(r.contains(&vec!["api".into(), "members".into(), "m1".into()]));
    }
}
