#!/usr/bin/env bash
# User-space instructions per proxied cache-hit request through the gateway, with callgrind:
# the gateway (`--worker-threads 1`) under valgrind, the emulator and the echo upstream
# native, one keep-alive connection from a Python loop. Counters are zeroed after WARM
# requests, then N requests are counted. Deterministic (instructions, not time), so it
# resolves changes the shared machine's noise hides in wrk runs.
#
#   stytch-gateway/benches/callgrind-proxy.sh [BIN]   # default: this workspace's release build
#
# valgrind hides SHA-NI, so the credential's SHA-256 runs sha2's software rounds here
# (~3,300 instructions for a 44-character token; natively a few hundred). Prints the total
# and per-request figure, and the top self-cost functions to $OUT (callgrind-proxy.txt).
# The gateway runs with `--access-log off` (as nginx runs with `access_log off` in the load
# script); GATEWAY_ARGS replaces those extra `serve` flags. DUMP=FILE keeps callgrind's raw
# output (for `callgrind_annotate --inclusive=yes FILE`).
# REQ_PATH (default /whoami) is the path requested: with GATEWAY_ARGS="--access-log off
# --auth-only-path /_auth" and REQ_PATH=/_auth it profiles the auth-only endpoint (nginx
# auth_request's, Caddy forward_auth's).
# Environment: N (3000), WARM (500), BASE_PORT (19500), OUT, GATEWAY_ARGS, DUMP, REQ_PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=common.sh
. stytch-gateway/benches/common.sh
N=${N:-3000}
WARM=${WARM:-500}
P=${BASE_PORT:-19500}
OUT=${OUT:-callgrind-proxy.txt}
GATEWAY_ARGS=${GATEWAY_ARGS:---access-log off}
if [[ $# -eq 0 ]]; then set -- "$(release_bin)"; fi
BIN=$1
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
bench_tmp callgrind-proxy
start_emulator_and_upstream "$BIN" "$P" "$((P + 1))"
control() { curl -sf -u "$PROJECT_ID:$SECRET" -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$P/emulator/v1/$1"; }
field() { sed -E "s/.*\"$1\" *: *\"([^\"]+)\".*/\\1/"; }
ORG=$(control organizations '{"organization_name":"Cg","organization_slug":"cg"}' | field organization_id)
MEMBER=$(control members "{\"organization_id\":\"$ORG\",\"email_address\":\"cg@cg.test\",\"roles\":[]}" | field member_id)
TOKEN=$(control sessions "{\"member_id\":\"$MEMBER\"}" | field session_token)

# shellcheck disable=SC2086 # GATEWAY_ARGS is a list of flags
STYTCH_PROJECT_ID=$PROJECT_ID STYTCH_SECRET=$SECRET STYTCH_BASE_URL="http://127.0.0.1:$P/" RUST_LOG=warn \
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
    "$BIN" --worker-threads 1 serve --listen "127.0.0.1:$((P + 2))" --upstream "http://127.0.0.1:$((P + 1))" \
    $GATEWAY_ARGS >/dev/null 2>"$TMP/valgrind.err" &
PIDS+=($!)
wait_port "$((P + 2))" healthz
requests() {
    python3 - "$((P + 2))" "$1" "$TOKEN" "${REQ_PATH:-/whoami}" <<'PY'
import http.client, sys
port, n, token, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
}
requests "$WARM"
callgrind_control -z >/dev/null
requests "$N"
callgrind_control -d >/dev/null
sleep 1
dump=$(ls -t "$TMP"/cg.out.* | head -1)
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
callgrind_annotate --threshold=100 --inclusive=no "$dump" >"$TMP/annotate.txt" 2>/dev/null
head -80 "$TMP/annotate.txt" >"$OUT"
if [[ -n ${DUMP:-} ]]; then cp "$dump" "$DUMP"; fi
echo "requests=$N instructions=$total per_request=$((total / N)) (top self costs in $OUT)"
