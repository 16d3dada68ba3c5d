//! The emulator's tests, in one test binary (one link): its API over real loopback sockets
//! (`api`), every injectable fault as a real client sees it (`faults`), its Svix-signed
//! webhooks checked by an independent receiver (`webhooks`), and Stytch's official Rust SDK
//! against it (`official_sdk`).
//!
//! If these fail, the emulator no longer answers as Stytch does, and every test of
//! `tower-stytch` and `stytch-gateway` built on it proves less than it claims. Each module
//! says more.

mod api;
mod cli;
mod faults;
mod official_sdk;
mod webhooks;
