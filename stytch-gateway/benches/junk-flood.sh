#!/usr/bin/env bash
# A flood of junk credentials through nginx `auth_request` to the gateway's auth-only
# endpoint: requests/s, p50 / p99, and the TCP connections nginx left in TIME_WAIT towards
# the gateway (one per refused check when nginx cannot keep its connection).
#
#   stytch-gateway/benches/junk-flood.sh                 # this workspace's release build
#   stytch-gateway/benches/junk-flood.sh OLD_BIN NEW_BIN # two builds side by side, A/B/A/B
#
# Starts on 127.0.0.1 the emulator and the echo upstream (from the last binary given), one
# gateway per binary (`serve --auth-only-path /_auth`), and one nginx (worker_processes 2)
# with one `auth_request` server block per gateway, kept-alive upstreams as in
# gateway-load.sh; then REPS rounds of `wrk -t2 -c64 -d$DURATION` with one junk bearer token,
# the gateways in turn. TIME_WAIT is counted right after the first round only (a socket
# stays there 60 s, so later rounds would count earlier ones). Needs nginx, wrk, curl, ss.
# Environment: REPS (3), DURATION (5s), BASE_PORT (19000).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=common.sh
. stytch-gateway/benches/common.sh
REPS=${REPS:-3}
DURATION=${DURATION:-5s}
P=${BASE_PORT:-19000}
JUNK=junk-credential-0000000000000000000000000000
if [[ $# -eq 0 ]]; then set -- "$(release_bin)"; fi
BINS=("$@")
LAST=${BINS[$((${#BINS[@]} - 1))]}

bench_tmp junk-flood
start_emulator_and_upstream "$LAST" "$P" "$((P + 1))"
blocks=""
upstreams=""
for i in "${!BINS[@]}"; do
    gw=$((P + 10 + i))
    STYTCH_PROJECT_ID=$PROJECT_ID STYTCH_SECRET=$SECRET STYTCH_BASE_URL="http://127.0.0.1:$P/" RUST_LOG=warn \
        "${BINS[$i]}" serve --listen "127.0.0.1:$gw" --upstream "http://127.0.0.1:$((P + 1))" \
        --auth-only-path /_auth >/dev/null 2>&1 &
    PIDS+=($!)
    wait_port "$gw"
    upstreams+="    upstream gw$i { server 127.0.0.1:$gw; keepalive 128; }"$'\n'
    blocks+="    server {
        listen 127.0.0.1:$((P + 30 + i));
        location / { auth_request /_auth; proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
        location = /_auth {
            internal; proxy_pass http://gw$i; proxy_http_version 1.1; proxy_set_header Connection \"\";
            proxy_pass_request_body off; proxy_set_header Content-Length \"\";
        }
    }"$'\n'
done
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx.conf" <<NGINX
worker_processes 2;
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
    upstream app { server 127.0.0.1:$((P + 1)); keepalive 128; }
$upstreams
$blocks
}
NGINX
/usr/sbin/nginx -c "$TMP/nginx.conf" -p "$TMP/nginx" >/dev/null 2>&1 &
PIDS+=($!)
for i in "${!BINS[@]}"; do
    wait_port "$((P + 30 + i))"
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $JUNK" "http://127.0.0.1:$((P + 30 + i))/x")
    [[ $status == 401 ]] || { echo "gateway $i answered $status to a junk credential" >&2; exit 1; }
done
time_wait() { ss -tan state time-wait "( dport = :$1 )" | tail -n +2 | wc -l; }
for round in $(seq "$REPS"); do
    for i in "${!BINS[@]}"; do
        gw=$((P + 10 + i))
        before=$(time_wait "$gw")
        out=$(wrk -t2 -c64 -d"$DURATION" --latency -H "Authorization: Bearer $JUNK" "http://127.0.0.1:$((P + 30 + i))/x")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        tw=""
        [[ $round == 1 ]] && tw=" time_wait_towards_gateway=$(( $(time_wait "$gw") - before ))"
        echo "round $round ${BINS[$i]}: requests/s=$rps p50=$p50 p99=$p99$tw"
    done
done
