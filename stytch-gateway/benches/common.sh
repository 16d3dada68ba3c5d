# Shared by junk-flood.sh and callgrind-proxy.sh (sourced, not run): the test project, a
# temporary directory and processes stopped on exit, and the emulator plus echo upstream.

PROJECT_ID=project-test-10ad0000-0000-4000-8000-000000000000
SECRET=secret-test-load-run-000000000000000000000000

# `$1` (a prefix) names the temporary directory $TMP; every pid added to PIDS is killed, and
# $TMP removed, on exit.
bench_tmp() {
    TMP=$(mktemp -d "/tmp/$1.XXXXXX")
    PIDS=()
    trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"' EXIT
}

# Waits until http://127.0.0.1:$1/$2 answers (any status), at most 60 s.
wait_port() {
    for _ in $(seq 600); do
        curl -s -o /dev/null "http://127.0.0.1:$1/${2:-}" && return
        sleep 0.1
    done
    echo "port $1 never answered" >&2
    exit 1
}

# The workspace's release build, built first, unless a binary was given.
release_bin() {
    echo "building stytch-gateway (release)" >&2
    cargo build --release -p stytch-gateway >&2
    echo "${CARGO_TARGET_DIR:-target}/release/stytch-gateway"
}

# Starts, from binary $1, the emulator on port $2 and the echo upstream on port $3.
start_emulator_and_upstream() {
    RUST_LOG=warn "$1" emulator --listen "127.0.0.1:$2" --project-id "$PROJECT_ID" --secret "$SECRET" >/dev/null 2>&1 &
    PIDS+=($!)
    RUST_LOG=warn "$1" upstream --listen "127.0.0.1:$3" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_port "$2"
    wait_port "$3"
}
