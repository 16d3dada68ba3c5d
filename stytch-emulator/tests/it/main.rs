//! The emulator's tests, in one test binary (one link): its API over real loopback sockets
//! (`api`), every injectable fault as a real client sees it (`faults`), its Svix-signed
//! webhooks checked by an independent receiver (`webhooks`), RBAC (`rbac`), factors
//! (`factors`), M2M (`m2m`), the binary's command line (`cli`), and Stytch's official Rust
//! SDK (`official_sdk`) and Python SDK (`python_sdk`, through `tests/sdk/verdict.py`) against
//! it.
//!
//! If these fail, the emulator no longer answers as Stytch does, and every test of
//! `tower-stytch` and `stytch-gateway` built on it proves less than it claims. Each module
//! says more.

mod api;
mod cli;
mod factors;
mod faults;
mod m2m;
mod official_sdk;
mod python_sdk;
mod rbac;
mod webhooks;

/// The claims of a JWT, not verified (the tests that need verification do it themselves).
pub(crate) fn decode_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let claims = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .expect("base64url claims"),
    )
    .expect("JSON claims")
}
