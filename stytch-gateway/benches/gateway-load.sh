#!/usr/bin/env bash
# The gateway comparison of issues #14 and #28: every configuration side by side, interleaved.
#
#   upstream                    wrk -> upstream (no proxy, no auth)
#   nginx-proxy_pass            wrk -> nginx proxy_pass -> upstream (no auth)
#   nginx-auth_request-noop     wrk -> nginx auth_request -> no-op 204 server, then proxy_pass
#   nginx-auth_request-ours     wrk -> nginx auth_request -> the gateway's auth-only endpoint
#                                      (--auth-only-path), then proxy_pass
#   gateway                     wrk -> stytch-gateway (a valid session, cache hits) -> upstream
#   caddy-reverse_proxy         wrk -> Caddy reverse_proxy -> upstream (no auth)
#   caddy-forward_auth-noop     wrk -> Caddy forward_auth -> no-op 204 server, then reverse_proxy
#   caddy-forward_auth-ours     wrk -> Caddy forward_auth -> the gateway's auth-only endpoint,
#                                      then reverse_proxy
#   gateway-1-session           the gateway, wrk's Lua sending one session's opaque token and
#                                      a JWT of it in turn (half and half, as below)
#   gateway-10k-sessions        the gateway, wrk's Lua sending 10,000 sessions' credentials in
#                                      turn (half opaque tokens, half JWTs; all cached first)
#   paced-nginx-proxy_pass      nginx proxy_pass at a fixed offered load (PACED_RATE), for p99
#   paced-gateway               the gateway at the same fixed offered load
#   gateway-before              with BEFORE=BIN only: that binary as the gateway (an earlier
#                                      commit's), run right after `gateway` in each round
#
# Builds the gateway (release, package `stytch-gateway`), starts on 127.0.0.1 the Stytch
# emulator, the echo upstream (`stytch-gateway upstream`), the no-op 204 server, one gateway
# (full proxy and auth-only endpoint), one nginx and one Caddy (one server block per
# configuration), checks every configuration answers 200 to the load request, then runs REPS
# rounds of `wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency` over the configurations in
# the order above (A/B/C/..., A/B/C/..., ...) after one WARMUP run of each. Before each
# round's one- and 10k-sessions runs, the JWTs are minted again (they live 5 minutes) and every
# credential is sent once (the cache keeps an opaque token's answer 60 s). The paced runs
# use `wrk -c$PACED_CONNECTIONS` with each connection waiting PACED_DELAY_MS after each
# response (paced.lua): a closed loop at about PACED_RATE requests/s, below both saturation
# points; the script prints the rate each run achieved. It prints requests/s, p50 and p99
# per configuration (medians across rounds) and, last, the ratios: the median across rounds
# of each round's ratio (the two runs of a ratio are made side by side), and the p99 added
# by the gateway over nginx at the paced load (median across rounds of the difference).
# Every process it starts is stopped on exit. Needs bash, curl, python3, nginx, caddy and wrk
# (installed with apt-get when missing, which needs root).
#
# Fairness: every configuration gets the same wrk command, the same request (GET /whoami with
# the session's bearer token) and the same upstream process. nginx runs worker_processes =
# nproc, the gateway its default (one worker per core: a thread with a single-threaded
# runtime each), Caddy its default (GOMAXPROCS = nproc); the upstream and the no-op server are
# the same binary, so they run the same way for everyone. nginx and Caddy keep their upstream
# connections alive (nginx: `keepalive 128`, `proxy_http_version 1.1`, `Connection ""`; Caddy:
# its default HTTP/1.1 keep-alive with 128 idle connections per host) towards the upstream and
# towards the auth endpoint alike, as the gateway pools its own. No access log anywhere
# (nginx `access_log off`, Caddy's default, the gateway `--access-log off`). The no-op 204
# server (NOOP=hyper, the default) is a separate process on the same hyper server code as the
# gateway, answering 204 without reading the request: the same process hop an auth service
# has, doing no work. NOOP=nginx points auth_request and forward_auth at an nginx `return
# 204` server block instead (a lower bar than any real auth service).
#
# Environment: REPS (5), DURATION (10s), WARMUP (3s), CONNECTIONS (64), THREADS (2),
# NOOP (hyper | nginx), SESSIONS (10000), PACED_RATE (requests/s; default 40 % of the lower
# warm-up figure of nginx-proxy_pass and gateway), PACED_DELAY_MS (10), BASE_PORT (18000),
# CARGO_TARGET_DIR (default ./target), BIN (a stytch-gateway binary to run instead of building
# this tree's), BEFORE (a second stytch-gateway binary, e.g. an earlier commit's: adds the
# `gateway-before` configuration and the `gateway/gateway-before` ratio, an interleaved
# before/after), GATEWAY_ARGS (extra `serve` flags), KEEP_RUNNING=1
# (print the addresses and wait for ctrl-c instead of measuring: for profiling).
set -euo pipefail

cd "$(dirname "$0")/../.."  # the workspace root
BENCHES=stytch-gateway/benches
REPS=${REPS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
NOOP=${NOOP:-hyper}
SESSIONS=${SESSIONS:-10000}
PACED_DELAY_MS=${PACED_DELAY_MS:-10}
BASE_PORT=${BASE_PORT:-18000}
EMU_PORT=$((BASE_PORT + 10))
UP_PORT=$((BASE_PORT + 11))
NOOP_PORT=$((BASE_PORT + 12))
GW_PORT=$((BASE_PORT + 13))
NGX_PROXY_PORT=$((BASE_PORT + 14))
NGX_AR_NOOP_PORT=$((BASE_PORT + 15))
NGX_AR_OURS_PORT=$((BASE_PORT + 16))
NGX_204_PORT=$((BASE_PORT + 17))
CADDY_PROXY_PORT=$((BASE_PORT + 18))
CADDY_FA_NOOP_PORT=$((BASE_PORT + 19))
CADDY_FA_OURS_PORT=$((BASE_PORT + 20))
GW_BEFORE_PORT=$((BASE_PORT + 21))
PROJECT_ID=project-test-10ad0000-0000-4000-8000-000000000000
SECRET=secret-test-load-run-000000000000000000000000
TARGET_DIR=${CARGO_TARGET_DIR:-target}
AUTH_PATH=/_stytch_auth
CONFIGS=(upstream nginx-proxy_pass nginx-auth_request-noop nginx-auth_request-ours gateway
    caddy-reverse_proxy caddy-forward_auth-noop caddy-forward_auth-ours
    gateway-1-session gateway-10k-sessions paced-nginx-proxy_pass paced-gateway)
if [[ -n ${BEFORE:-} ]]; then
    CONFIGS=("${CONFIGS[@]:0:5}" gateway-before "${CONFIGS[@]:5}")
fi
[[ $NOOP == hyper || $NOOP == nginx ]] || { echo "NOOP must be hyper or nginx" >&2; exit 2; }

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
for tool in nginx caddy wrk python3 curl; do need "$tool" || missing+=("$tool"); done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "installing ${missing[*]}" >&2
    (apt-get install -y "${missing[@]}" || (apt-get update && apt-get install -y "${missing[@]}")) >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [[ -z ${BIN:-} ]]; then
    echo "building stytch-gateway (release)" >&2
    timeout 1800 cargo build --release -p stytch-gateway >&2
    BIN="$TARGET_DIR/release/stytch-gateway"
fi

TMP=$(mktemp -d /tmp/gateway-load.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ -f "$TMP/nginx.pid" ]]; then kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

wait_http() { # url [expected status]
    local url=$1 want=${2:-200} i
    for i in $(seq 1 100); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" || true) == "$want" ]]; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $url" >&2
    return 1
}

"$BIN" emulator --listen "127.0.0.1:$EMU_PORT" --project-id "$PROJECT_ID" --secret "$SECRET" \
    >"$TMP/emulator.out" 2>"$TMP/emulator.err" &
PIDS+=($!)
# nginx, Caddy and the gateways each keep a pool of idle upstream connections: the upstream's
# cap (400 by default, as the gateway's) would close the newest of them.
RUST_LOG=warn "$BIN" upstream --listen "127.0.0.1:$UP_PORT" --max-connections 4096 \
    >"$TMP/upstream.out" 2>&1 &
PIDS+=($!)
RUST_LOG=warn "$BIN" upstream --no-content --listen "127.0.0.1:$NOOP_PORT" --max-connections 4096 \
    >"$TMP/noop.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"
wait_http "http://127.0.0.1:$NOOP_PORT/" 204
wait_http "http://127.0.0.1:$EMU_PORT/" 404

control() { # path json
    curl -sf -u "$PROJECT_ID:$SECRET" -H 'content-type: application/json' \
        -d "$2" "http://127.0.0.1:$EMU_PORT/emulator/v1/$1"
}
field() { sed -E "s/.*\"$1\" *: *\"([^\"]+)\".*/\\1/"; }
ORG=$(control organizations '{"organization_name":"Load","organization_slug":"load"}' | field organization_id)
MEMBER=$(control members "{\"organization_id\":\"$ORG\",\"email_address\":\"load@load.test\",\"roles\":[]}" | field member_id)
TOKEN=$(control sessions "{\"member_id\":\"$MEMBER\"}" | field session_token)
# The one-session run sends that session's opaque token and a JWT of it in turn, as the
# 10k run sends half tokens, half JWTs: the two runs differ only in how many sessions.
printf '%s\n%s\n' "$TOKEN" "$TOKEN" >"$TMP/one-session"
echo "creating $SESSIONS sessions" >&2
python3 "$BENCHES/sessions.py" create "http://127.0.0.1:$EMU_PORT" "$PROJECT_ID" "$SECRET" "$ORG" \
    "$SESSIONS" "$TMP/sessions"

# shellcheck disable=SC2086 # GATEWAY_ARGS is a list of flags
STYTCH_PROJECT_ID=$PROJECT_ID STYTCH_SECRET=$SECRET STYTCH_BASE_URL="http://127.0.0.1:$EMU_PORT/" \
    RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$GW_PORT" --upstream "http://127.0.0.1:$UP_PORT" \
    --auth-only-path "$AUTH_PATH" --access-log off ${GATEWAY_ARGS:-} \
    >"$TMP/gateway.out" 2>"$TMP/gateway.err" &
PIDS+=($!)
wait_http "http://127.0.0.1:$GW_PORT/readyz"
if [[ -n ${BEFORE:-} ]]; then
    # shellcheck disable=SC2086 # GATEWAY_ARGS is a list of flags
    STYTCH_PROJECT_ID=$PROJECT_ID STYTCH_SECRET=$SECRET STYTCH_BASE_URL="http://127.0.0.1:$EMU_PORT/" \
        RUST_LOG=warn "$BEFORE" serve --listen "127.0.0.1:$GW_BEFORE_PORT" \
        --upstream "http://127.0.0.1:$UP_PORT" --access-log off ${GATEWAY_ARGS:-} \
        >"$TMP/gateway-before.out" 2>"$TMP/gateway-before.err" &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$GW_BEFORE_PORT/readyz"
fi

if [[ $NOOP == hyper ]]; then NOOP_UPSTREAM="127.0.0.1:$NOOP_PORT"; else NOOP_UPSTREAM="127.0.0.1:$NGX_204_PORT"; fi
. "$BENCHES/load-configs.sh"
mkdir -p "$TMP/nginx" "$TMP/caddy"
nginx_conf >"$TMP/nginx.conf"
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.out" 2>&1 &
PIDS+=($!)
caddy_conf >"$TMP/Caddyfile"
XDG_DATA_HOME="$TMP/caddy" XDG_CONFIG_HOME="$TMP/caddy" HOME="$TMP/caddy" \
    caddy run --adapter caddyfile --config "$TMP/Caddyfile" >"$TMP/caddy.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGX_PROXY_PORT/"
wait_http "http://127.0.0.1:$CADDY_PROXY_PORT/"

declare -A URL=(
    [upstream]="http://127.0.0.1:$UP_PORT/whoami"
    [nginx-proxy_pass]="http://127.0.0.1:$NGX_PROXY_PORT/whoami"
    [nginx-auth_request-noop]="http://127.0.0.1:$NGX_AR_NOOP_PORT/whoami"
    [nginx-auth_request-ours]="http://127.0.0.1:$NGX_AR_OURS_PORT/whoami"
    [gateway]="http://127.0.0.1:$GW_PORT/whoami"
    [caddy-reverse_proxy]="http://127.0.0.1:$CADDY_PROXY_PORT/whoami"
    [caddy-forward_auth-noop]="http://127.0.0.1:$CADDY_FA_NOOP_PORT/whoami"
    [caddy-forward_auth-ours]="http://127.0.0.1:$CADDY_FA_OURS_PORT/whoami"
    [gateway-1-session]="http://127.0.0.1:$GW_PORT/whoami"
    [gateway-10k-sessions]="http://127.0.0.1:$GW_PORT/whoami"
    [paced-nginx-proxy_pass]="http://127.0.0.1:$NGX_PROXY_PORT/whoami"
    [paced-gateway]="http://127.0.0.1:$GW_PORT/whoami"
    [gateway-before]="http://127.0.0.1:$GW_BEFORE_PORT/whoami"
)
for name in "${CONFIGS[@]}"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "${URL[$name]}")
    [[ $status == 200 ]] || { echo "$name answered $status to the load request" >&2; exit 1; }
done
# Our endpoint must refuse what the no-op lets through, or the comparison means nothing.
for name in nginx-auth_request-ours caddy-forward_auth-ours; do
    status=$(curl -s -o /dev/null -w '%{http_code}' "${URL[$name]}")
    [[ $status == 401 ]] || { echo "$name answered $status without a token" >&2; exit 1; }
done

if [[ ${KEEP_RUNNING:-} == 1 ]]; then
    for name in "${CONFIGS[@]}"; do echo "$name ${URL[$name]}"; done
    echo "token: $TOKEN"
    echo "running; ctrl-c stops everything" >&2
    wait
fi

. "$BENCHES/load-measure.sh"

CMD="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -H 'Authorization: Bearer <token>' <url>/whoami"
echo "$CMD; $REPS rounds of ${CONFIGS[*]} after a $WARMUP warm-up each" >&2
fresh_sessions
declare -A WARM
for name in "${CONFIGS[@]}"; do
    [[ $name == paced-* ]] && continue
    read -r WARM[$name] _ _ <<<"$(measure "$name" "$WARMUP")"
    [[ -n ${WARM[$name]} ]] || exit 1  # measure said why
done
if [[ -z ${PACED_RATE:-} ]]; then
    lower=$(printf '%s\n' "${WARM[nginx-proxy_pass]}" "${WARM[gateway]}" | sort -g | head -1)
    PACED_RATE=$(awk -v r="$lower" 'BEGIN { printf "%d", r * 0.4 / 100 * 100 }')
fi
PACED_CONNECTIONS=$(( (PACED_RATE * PACED_DELAY_MS + 999) / 1000 ))
echo "paced runs: $PACED_CONNECTIONS connections, ${PACED_DELAY_MS} ms between a connection's requests (~$PACED_RATE requests/s)" >&2
for round in $(seq 1 "$REPS"); do
    for name in "${CONFIGS[@]}"; do
        [[ $name == gateway-1-session ]] && fresh_sessions
        read -r rps p50 p99 <<<"$(measure "$name" "$DURATION")"
        [[ -n $rps ]] || exit 1  # measure said why
        RPS[$name]+="$rps "
        P50[$name]+="$p50 "
        P99[$name]+="$p99 "
        printf 'round %d  %-26s %10s rps  p50 %7s ms  p99 %7s ms\n' "$round" "$name" "$rps" "$p50" "$p99" >&2
    done
done
report
