//! The emulator's tests, in one test binary (one link): its API over real loopback sockets
//! (`api`), and Stytch's official Rust SDK against it (`official_sdk`).
//!
//! If these fail, the emulator no longer answers as Stytch does, and every test of
//! `tower-stytch` and `stytch-gateway` built on it proves less than it claims. Each module
//! says more.

mod api;
mod official_sdk;
