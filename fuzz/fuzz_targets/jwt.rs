//! Session JWTs mutated from a genuine one (bytes replaced, inserted, removed; segments
//! swapped; `alg` and `kid` edited by the fuzzer's choice of bytes), and arbitrary strings,
//! through `JwtVerifier` with Stytch's real keys loaded from the emulator.
//!
//! Checked: no panic; a JWT is accepted only if its header and payload are the genuine ones
//! (the signature covers both), and then it carries the genuine session.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tower_stytch::credential::SessionJwt;
use tower_stytch::jwt::{JwtConfig, JwtVerifier};

#[derive(Debug, Arbitrary)]
enum Edit {
    Replace(u16, u8),
    Insert(u16, u8),
    Remove(u16),
    Truncate(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    raw: Option<String>,
    edits: Vec<Edit>,
}

fn verifier() -> &'static JwtVerifier {
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let w = common::world();
        let v = JwtVerifier::new(common::client(&w.emulator), JwtConfig::default());
        w.runtime.block_on(v.refresh_jwks()).unwrap();
        v
    })
}

fuzz_target!(|input: Input| {
    let w = common::world();
    let genuine = w.member.session_jwt.expose_secret();
    let mut jwt: Vec<u8> = match &input.raw {
        Some(raw) => raw.as_bytes().to_vec(),
        None => genuine.as_bytes().to_vec(),
    };
    for edit in input.edits.iter().take(8) {
        let at = |i: u16, len: usize| usize::from(i) % len.max(1);
        match *edit {
            Edit::Replace(i, b) if !jwt.is_empty() => {
                let i = at(i, jwt.len());
                jwt[i] = b;
            }
            Edit::Insert(i, b) => {
                let i = at(i, jwt.len() + 1);
                jwt.insert(i.min(jwt.len()), b);
            }
            Edit::Remove(i) if !jwt.is_empty() => {
                let i = at(i, jwt.len());
                jwt.remove(i);
            }
            Edit::Truncate(i) => jwt.truncate(at(i, jwt.len() + 1)),
            _ => {}
        }
    }
    let Ok(text) = String::from_utf8(jwt) else {
        return;
    };
    let result = w
        .runtime
        .block_on(verifier().verify(&SessionJwt::new(text.clone())));
    if let Ok(verified) = result {
        let signed = |s: &str| s.rsplit_once('.').map(|(head, _)| head.to_owned());
        assert_eq!(signed(&text), signed(genuine), "a forged JWT verified");
        assert_eq!(verified.session.member_id, w.member.member_id);
    }
});
