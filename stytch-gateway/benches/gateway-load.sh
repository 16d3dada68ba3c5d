#!/usr/bin/env bash
# Load run: upstream alone vs nginx -> upstream vs stytch-gateway -> upstream.
#
# Builds the gateway (release, package `stytch-gateway`), starts the Stytch emulator, the echo
# upstream (`stytch-gateway upstream`), the gateway and nginx, all on 127.0.0.1, then runs
# `wrk -t2 -c64 -d10s` against each and prints requests/s, latency p50/p99 and the ratios.
# Every process it starts is stopped on exit. Needs bash, curl, and nginx + wrk (installed
# with apt-get when missing, which needs root).
#
# Environment: DURATION (default 10s), CONNECTIONS (64), THREADS (2), BASE_PORT (18000),
# CARGO_TARGET_DIR (default ./target).
set -euo pipefail

cd "$(dirname "$0")/../.."  # the workspace root
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BASE_PORT=${BASE_PORT:-18000}
EMU_PORT=$((BASE_PORT + 10))
UP_PORT=$((BASE_PORT + 11))
NGINX_PORT=$((BASE_PORT + 12))
GW_PORT=$((BASE_PORT + 13))
PROJECT_ID=project-test-10ad0000-0000-4000-8000-000000000000
SECRET=secret-test-load-run-000000000000000000000000
TARGET_DIR=${CARGO_TARGET_DIR:-target}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
    echo "installing nginx and wrk" >&2
    (apt-get install -y nginx wrk || (apt-get update && apt-get install -y nginx wrk)) >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building stytch-gateway (release)" >&2
timeout 900 cargo build --release -p stytch-gateway >&2
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
wait_http "http://127.0.0.1:$UP_PORT/"
wait_http "http://127.0.0.1:$EMU_PORT/" 404

control() { # path json
    curl -sf -u "$PROJECT_ID:$SECRET" -H 'content-type: application/json' \
        -d "$2" "http://127.0.0.1:$EMU_PORT/emulator/v1/$1"
}
field() { sed -E "s/.*\"$1\" *: *\"([^\"]+)\".*/\\1/"; }
ORG=$(control organizations '{"organization_name":"Load","organization_slug":"load"}' | field organization_id)
MEMBER=$(control members "{\"organization_id\":\"$ORG\",\"email_address\":\"load@load.test\",\"roles\":[]}" | field member_id)
TOKEN=$(control sessions "{\"member_id\":\"$MEMBER\"}" | field session_token)

STYTCH_PROJECT_ID=$PROJECT_ID STYTCH_SECRET=$SECRET STYTCH_BASE_URL="http://127.0.0.1:$EMU_PORT/" \
    RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$GW_PORT" --upstream "http://127.0.0.1:$UP_PORT" \
    >"$TMP/gateway.out" 2>"$TMP/gateway.err" &
PIDS+=($!)
wait_http "http://127.0.0.1:$GW_PORT/readyz"

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx.conf" <<NGINX
worker_processes auto;
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
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
}
NGINX
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP/nginx" >"$TMP/nginx.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/"

status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GW_PORT/whoami")
[[ $status == 200 ]] || { echo "gateway answered $status to the load token" >&2; exit 1; }

to_ms() { # wrk duration (e.g. 812.00us, 1.23ms, 1.01s) -> ms
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.2f", n }'
}

declare -A RPS P50 P99
run() { # name url [header]
    local name=$1 url=$2 out
    shift 2
    echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency ${1:+-H 'Authorization: Bearer <token>' }$url   ($name)" >&2
    out=$(timeout 60 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")
    if grep -q 'Non-2xx' <<<"$out"; then echo "$name: non-2xx answers:" >&2; echo "$out" >&2; exit 1; fi
    RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    P50[$name]=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    P99[$name]=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
}

run upstream "http://127.0.0.1:$UP_PORT/whoami"
run nginx "http://127.0.0.1:$NGINX_PORT/whoami"
run gateway "http://127.0.0.1:$GW_PORT/whoami" -H "Authorization: Bearer $TOKEN"

echo
echo "nproc: $(nproc)   wrk -t$THREADS -c$CONNECTIONS -d$DURATION, GET /whoami, loopback"
printf '%-26s %12s %10s %10s\n' target 'requests/s' 'p50 ms' 'p99 ms'
for name in upstream nginx gateway; do
    label=$name
    [[ $name == nginx ]] && label="nginx -> upstream"
    [[ $name == gateway ]] && label="gateway -> upstream"
    printf '%-26s %12s %10s %10s\n' "$label" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}"
done
awk -v g="${RPS[gateway]}" -v u="${RPS[upstream]}" -v n="${RPS[nginx]}" 'BEGIN {
    printf "gateway/upstream requests/s: %.2f\ngateway/nginx requests/s:    %.2f\n", g / u, g / n }'
