//! `stytch-gateway`: the authenticating reverse proxy for Stytch B2B sessions, the Stytch
//! emulator, and a self-contained demo. See `stytch-gateway --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    stytch_gateway::main()
}
