#!/usr/bin/env bash
# The gateway comparison of issue #14: five configurations side by side, interleaved.
#
#   upstream                    wrk -> upstream (no proxy, no auth)
#   nginx-proxy_pass            wrk -> nginx proxy_pass -> upstream (no auth)
#   nginx-auth_request-noop     wrk -> nginx auth_request -> no-op 204 server, then proxy_pass
#   nginx-auth_request-ours     wrk -> nginx auth_request -> the gateway's auth-only endpoint
#                                      (--auth-only-path), then proxy_pass
#   gateway                     wrk -> stytch-gateway (a valid session, cache hits) -> upstream
#
# Builds the gateway (release, package `stytch-gateway`), starts on 127.0.0.1 the Stytch
# emulator, the echo upstream (`stytch-gateway upstream`), the no-op 204 server, one gateway
# (full proxy and auth-only endpoint) and one nginx (one server block per nginx configuration),
# checks every configuration answers 200 to the load request, then runs REPS rounds of
# `wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency` over the five in the order above
# (A/B/C/D/E, A/B/C/D/E, ...) after one WARMUP run of each. It prints requests/s, p50 and p99
# per configuration (medians across rounds) and, as its last three lines, the ratios: the
# median across rounds of each round's ratio (the two runs of a ratio are made side by side).
# Every process it starts is stopped on exit. Needs bash, curl, nginx and wrk (installed with
# apt-get when missing, which needs root).
#
# Fairness: every configuration gets the same wrk command, the same request (GET /whoami with
# the session's bearer token) and the same upstream process. nginx runs
# worker_processes = nproc, the gateway its default (one runtime worker thread per core); the
# upstream and the no-op server are the same binary, so they run the same way for everyone.
# nginx keeps its upstream connections alive (`keepalive`, `proxy_http_version 1.1`,
# `Connection ""`) towards the upstream and towards the auth endpoint alike, as the gateway
# pools its own. The no-op 204 server (NOOP=hyper, the default) is a separate process on the
# same hyper server code as the gateway, answering 204 without reading the request: the same
# process hop an auth service has, doing no work. NOOP=nginx points auth_request at an nginx
# `return 204` server block instead (no process hop: a lower bar than any real auth service).
#
# Environment: REPS (5), DURATION (10s), WARMUP (3s), CONNECTIONS (64), THREADS (2),
# NOOP (hyper | nginx), BASE_PORT (18000), CARGO_TARGET_DIR (default ./target),
# GATEWAY_ARGS (extra `serve` flags), KEEP_RUNNING=1 (print the addresses and wait for ctrl-c
# instead of measuring: for profiling).
set -euo pipefail

cd "$(dirname "$0")/../.."  # the workspace root
REPS=${REPS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
NOOP=${NOOP:-hyper}
BASE_PORT=${BASE_PORT:-18000}
EMU_PORT=$((BASE_PORT + 10))
UP_PORT=$((BASE_PORT + 11))
NOOP_PORT=$((BASE_PORT + 12))
GW_PORT=$((BASE_PORT + 13))
NGX_PROXY_PORT=$((BASE_PORT + 14))
NGX_AR_NOOP_PORT=$((BASE_PORT + 15))
NGX_AR_OURS_PORT=$((BASE_PORT + 16))
NGX_204_PORT=$((BASE_PORT + 17))
PROJECT_ID=project-test-10ad0000-0000-4000-8000-000000000000
SECRET=secret-test-load-run-000000000000000000000000
TARGET_DIR=${CARGO_TARGET_DIR:-target}
AUTH_PATH=/_stytch_auth
CONFIGS=(upstream nginx-proxy_pass nginx-auth_request-noop nginx-auth_request-ours gateway)
[[ $NOOP == hyper || $NOOP == nginx ]] || { echo "NOOP must be hyper or nginx" >&2; exit 2; }

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
    echo "installing nginx and wrk" >&2
    (apt-get install -y nginx wrk || (apt-get update && apt-get install -y nginx wrk)) >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building stytch-gateway (release)" >&2
timeout 1800 cargo build --release -p stytch-gateway >&2
BIN="$TARGET_DIR/release/stytch-gateway"

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
RUST_LOG=warn "$BIN" upstream --listen "127.0.0.1:$UP_PORT" >"$TMP/upstream.out" 2>&1 &
PIDS+=($!)
RUST_LOG=warn "$BIN" upstream --no-content --listen "127.0.0.1:$NOOP_PORT" >"$TMP/noop.out" 2>&1 &
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

# shellcheck disable=SC2086 # GATEWAY_ARGS is a list of flags
STYTCH_PROJECT_ID=$PROJECT_ID STYTCH_SECRET=$SECRET STYTCH_BASE_URL="http://127.0.0.1:$EMU_PORT/" \
    RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$GW_PORT" --upstream "http://127.0.0.1:$UP_PORT" \
    --auth-only-path "$AUTH_PATH" ${GATEWAY_ARGS:-} >"$TMP/gateway.out" 2>"$TMP/gateway.err" &
PIDS+=($!)
wait_http "http://127.0.0.1:$GW_PORT/readyz"

if [[ $NOOP == hyper ]]; then NOOP_UPSTREAM="127.0.0.1:$NOOP_PORT"; else NOOP_UPSTREAM="127.0.0.1:$NGX_204_PORT"; fi
# The auth_request server blocks differ only in the auth upstream.
auth_server() { # port upstream-name
    cat <<BLOCK
    server {
        listen 127.0.0.1:$1;
        location / {
            auth_request $AUTH_PATH;
            auth_request_set \$member_id \$upstream_http_x_stytch_member_id;
            auth_request_set \$organization_id \$upstream_http_x_stytch_organization_id;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Stytch-Member-Id \$member_id;
            proxy_set_header X-Stytch-Organization-Id \$organization_id;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
        location = $AUTH_PATH {
            internal;
            proxy_pass http://$2;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI \$request_uri;
        }
    }
BLOCK
}
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx.conf" <<NGINX
worker_processes $(nproc);
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream app { server 127.0.0.1:$UP_PORT; keepalive 128; }
    upstream noop_auth { server $NOOP_UPSTREAM; keepalive 128; }
    upstream our_auth { server 127.0.0.1:$GW_PORT; keepalive 128; }
    server {
        listen 127.0.0.1:$NGX_PROXY_PORT;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
$(auth_server "$NGX_AR_NOOP_PORT" noop_auth)
$(auth_server "$NGX_AR_OURS_PORT" our_auth)
    server {
        listen 127.0.0.1:$NGX_204_PORT;
        location / { return 204; }
    }
}
NGINX
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGX_PROXY_PORT/"

declare -A URL=(
    [upstream]="http://127.0.0.1:$UP_PORT/whoami"
    [nginx-proxy_pass]="http://127.0.0.1:$NGX_PROXY_PORT/whoami"
    [nginx-auth_request-noop]="http://127.0.0.1:$NGX_AR_NOOP_PORT/whoami"
    [nginx-auth_request-ours]="http://127.0.0.1:$NGX_AR_OURS_PORT/whoami"
    [gateway]="http://127.0.0.1:$GW_PORT/whoami"
)
for name in "${CONFIGS[@]}"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "${URL[$name]}")
    [[ $status == 200 ]] || { echo "$name answered $status to the load request" >&2; exit 1; }
done
# Our endpoint must refuse what the no-op lets through, or the comparison means nothing.
status=$(curl -s -o /dev/null -w '%{http_code}' "${URL[nginx-auth_request-ours]}")
[[ $status == 401 ]] || { echo "nginx-auth_request-ours answered $status without a token" >&2; exit 1; }

if [[ ${KEEP_RUNNING:-} == 1 ]]; then
    for name in "${CONFIGS[@]}"; do echo "$name ${URL[$name]}"; done
    echo "token: $TOKEN"
    echo "running; ctrl-c stops everything" >&2
    wait
fi

to_ms() { # wrk duration (e.g. 812.00us, 1.23ms, 1.01s) -> ms
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.3f", n }'
}
median() { # numbers... -> their median
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A RPS P50 P99  # name -> space-separated values, one per round
measure() { # name duration -> "rps p50 p99"
    local out
    out=$(timeout 120 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency \
        -H "Authorization: Bearer $TOKEN" "${URL[$1]}")
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
        echo "$1: errors or non-2xx answers:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")" \
        "$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")" \
        "$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
}

CMD="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -H 'Authorization: Bearer <token>' <url>/whoami"
echo "$CMD; $REPS rounds of ${CONFIGS[*]} after a $WARMUP warm-up each" >&2
for name in "${CONFIGS[@]}"; do measure "$name" "$WARMUP" >/dev/null; done
for round in $(seq 1 "$REPS"); do
    for name in "${CONFIGS[@]}"; do
        read -r rps p50 p99 <<<"$(measure "$name" "$DURATION")"
        RPS[$name]+="$rps "
        P50[$name]+="$p50 "
        P99[$name]+="$p99 "
        printf 'round %d  %-26s %10s rps  p50 %7s ms  p99 %7s ms\n' "$round" "$name" "$rps" "$p50" "$p99" >&2
    done
done

ratio() { # numerator denominator -> median over rounds of numerator/denominator
    local -a num den r
    read -ra num <<<"${RPS[$1]}"
    read -ra den <<<"${RPS[$2]}"
    for i in "${!num[@]}"; do r+=("$(awk -v a="${num[$i]}" -v b="${den[$i]}" 'BEGIN { printf "%.4f", a / b }')"); done
    printf '%.2f' "$(median "${r[@]}")"
}

echo
echo "machine: $(nproc) CPUs, $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo); $(uname -sr)"
echo "$CMD; GET /whoami on loopback; $REPS interleaved rounds; medians; no-op 204 server: $NOOP"
printf '%-26s %12s %10s %10s\n' configuration 'requests/s' 'p50 ms' 'p99 ms'
for name in "${CONFIGS[@]}"; do
    # shellcheck disable=SC2086 # the values are space-separated numbers
    printf '%-26s %12.0f %10.3f %10.3f\n' "$name" "$(median ${RPS[$name]})" \
        "$(median ${P50[$name]})" "$(median ${P99[$name]})"
done
echo "gateway/nginx-proxy_pass: $(ratio gateway nginx-proxy_pass)"
echo "gateway/nginx-auth_request: $(ratio gateway nginx-auth_request-noop)"
echo "nginx-auth_request-ours/nginx-auth_request-noop: $(ratio nginx-auth_request-ours nginx-auth_request-noop)"
