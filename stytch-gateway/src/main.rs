//! `stytch-gateway`: the authenticating reverse proxy for Stytch B2B sessions, the Stytch
//! emulator, and a self-contained demo. See `stytch-gateway --help`.
#![forbid(unsafe_code)]

/// mimalloc instead of the system allocator: a proxied request makes a few dozen small
/// allocations across two tasks and threads, where glibc's malloc spent ~15 % of the
/// gateway's instructions (callgrind, see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stytch_gateway::main()
}
