#!/usr/bin/env bash
# Soak: two stytch-gateway instances sharing a password-protected Redis behind three Sentinels
# (a primary and one replica), against the Stytch emulator, under SOAK_REQUESTS requests
# (1,000,000) on SOAK_CONNECTIONS keep-alive connections (1,000), with ~1 % logouts and admin
# revocations, 1 % of Stytch's authenticate and revoke calls failing (the emulator's fault
# rate), a failover at 40 % (the replica cut off for SOAK_REPLICA_LAG_MS, then the primary
# SIGKILLed and the replica promoted by the Sentinels, lacking the primary's last writes), and
# the second gateway sent SIGTERM at 60 % (its traffic moves to the first). SOAK_REDIS=node:
# one Redis instead, killed and restarted empty on the same port at 40 %. Every answer is
# checked against what its session's state allows (RELIABILITY.md, "Soak"); at the end every
# revocation answered 2xx must have reached Stytch.
#
# The driver is `cargo run --release -p stytch-gateway --example soak`; it prints, last:
#   shutdown: revocations_answered_2xx=N reached_stytch=N lost=N
#   soak: requests=N unexpected=N revoked_accepted=N peak_rss_mb=N rss_growth_after_warmup_mb=N
# and this script exits nonzero when anything was unexpected or lost.
#
# SOAK_TRACE=1: the gateways and the emulator log at RUST_LOG=trace, and their logs (and
# redis-server's) are scanned for every session token, JWT signature, the project secret, the
# webhook secret and the Redis password; prints `secrets: scanned_bytes=N leaks=N` and fails
# on a leak. Use a shorter run with it (e.g. SOAK_REQUESTS=20000 SOAK_SESSIONS=2000).
#
# Environment: SOAK_REQUESTS, SOAK_CONNECTIONS, SOAK_SESSIONS (20000), SOAK_TRACE,
# SOAK_PROPAGATION_MS (1000), SOAK_RECONNECT_MS (3000), SOAK_REDIS (sentinel | node),
# SOAK_REPLICA_LAG_MS (500), SOAK_REDIS_OUTAGE_MS (2000, node only), BASE_PORT (18100),
# CARGO_TARGET_DIR (default ./target), KEEP_LOGS=1 keeps the temp dir.
# Needs bash, curl, redis-server and redis-cli (apt-get install redis-server, which brings
# redis-tools; installed when missing, which needs root). Sentinels run as
# `redis-server <conf> --sentinel`.
set -euo pipefail

cd "$(dirname "$0")/../.."  # the workspace root
BASE_PORT=${BASE_PORT:-18100}
EMU_PORT=$((BASE_PORT + 0))
UP_PORT=$((BASE_PORT + 1))
GW0_PORT=$((BASE_PORT + 2))
GW1_PORT=$((BASE_PORT + 3))
REDIS_PORT=$((BASE_PORT + 4))
REPLICA_PORT=$((BASE_PORT + 5))
SENTINEL_PORTS=($((BASE_PORT + 6)) $((BASE_PORT + 7)) $((BASE_PORT + 8)))
SENTINEL_MASTER=soak
SOAK_REDIS=${SOAK_REDIS:-sentinel}
PROJECT_ID=project-test-50a40000-0000-4000-8000-000000000000
SECRET=secret-test-soak-run-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
REDIS_PASSWORD=redis-soak-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
WEBHOOK_SECRET=whsec_$(head -c 24 /dev/urandom | base64)
TARGET_DIR=${CARGO_TARGET_DIR:-target}
SOAK_TRACE=${SOAK_TRACE:-0}
if [[ $SOAK_TRACE == 1 ]]; then LOG=trace; else LOG=warn; fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need redis-server || ! need redis-cli; then
    echo "installing redis-server" >&2
    (apt-get install -y redis-server || (apt-get update && apt-get install -y redis-server)) >/dev/null
fi

echo "building stytch-gateway and the soak driver (release)" >&2
timeout 1800 cargo build --release -p stytch-gateway --bin stytch-gateway --example soak >&2
BIN="$TARGET_DIR/release/stytch-gateway"
DRIVER="$TARGET_DIR/release/examples/soak"

TMP=$(mktemp -d /tmp/gateway-soak.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pidfile in "$TMP"/*.pid; do
        [[ -f $pidfile ]] || continue
        kill -CONT "$(cat "$pidfile")" 2>/dev/null || true
        kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

wait_http() { # url [expected status]
    local url=$1 want=${2:-200} i
    for i in $(seq 1 200); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "$url" || true) == "$want" ]]; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $url" >&2
    return 1
}

# redis-server, daemonized with a pid file so the driver can kill it (and, with SOAK_REDIS=node,
# start it again on the same port). No persistence: a restarted node comes back empty, the
# harder case for the bus. With Sentinels: a replica and three Sentinels beside it.
redis_conf() { # name port [extra config lines]
    cat >"$TMP/$1.conf" <<REDIS
port $2
bind 127.0.0.1
requirepass $REDIS_PASSWORD
masterauth $REDIS_PASSWORD
daemonize yes
pidfile $TMP/$1.pid
logfile $TMP/$1.log
dir $TMP
save ""
appendonly no
maxclients 10000
${3:-}
REDIS
    chmod 600 "$TMP/$1.conf"
    redis-server "$TMP/$1.conf"
}
redis_up() { # port
    for _ in $(seq 1 100); do
        REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.1
    done
    echo "redis on port $1 never answered" >&2
    return 1
}
redis_conf redis "$REDIS_PORT"
redis_up "$REDIS_PORT"
if [[ $SOAK_REDIS == sentinel ]]; then
    redis_conf replica "$REPLICA_PORT" "replicaof 127.0.0.1 $REDIS_PORT"
    redis_up "$REPLICA_PORT"
    for i in 0 1 2; do
        cat >"$TMP/sentinel$i.conf" <<SENTINEL
port ${SENTINEL_PORTS[$i]}
bind 127.0.0.1
daemonize yes
pidfile $TMP/sentinel$i.pid
logfile $TMP/sentinel$i.log
dir $TMP
sentinel monitor $SENTINEL_MASTER 127.0.0.1 $REDIS_PORT 2
sentinel auth-pass $SENTINEL_MASTER $REDIS_PASSWORD
sentinel down-after-milliseconds $SENTINEL_MASTER 1000
sentinel failover-timeout $SENTINEL_MASTER 5000
sentinel parallel-syncs $SENTINEL_MASTER 1
SENTINEL
        chmod 600 "$TMP/sentinel$i.conf"
        redis-server "$TMP/sentinel$i.conf" --sentinel
    done
    # A failover needs every Sentinel to know the two others and the replica in sync.
    sentinels_ready() {
        local port
        for port in "${SENTINEL_PORTS[@]}"; do
            [[ $(redis-cli -p "$port" SENTINEL sentinels "$SENTINEL_MASTER" 2>/dev/null | grep -c '^name$') == 2 ]] || return 1
            redis-cli -p "$port" SENTINEL replicas "$SENTINEL_MASTER" 2>/dev/null | grep -qx slave || return 1
        done
        REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -p "$REPLICA_PORT" INFO replication | grep -q 'master_link_status:up'
    }
    for _ in $(seq 1 300); do sentinels_ready && break; sleep 0.1; done
    sentinels_ready || { echo "the Sentinels never found each other and the replica" >&2; exit 1; }
    SENTINEL_FLAGS=()
    for port in "${SENTINEL_PORTS[@]}"; do SENTINEL_FLAGS+=(--redis-sentinel "127.0.0.1:$port"); done
    SENTINEL_FLAGS+=(--redis-sentinel-master "$SENTINEL_MASTER")
    REDIS_ENV=(GATEWAY_REDIS_PASSWORD="$REDIS_PASSWORD")
else
    SENTINEL_FLAGS=()
    REDIS_ENV=(GATEWAY_REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT")
fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
STYTCH_EMULATOR_WEBHOOK_SECRET=$WEBHOOK_SECRET RUST_LOG=$LOG "$BIN" emulator \
    --listen "127.0.0.1:$EMU_PORT" --project-id "$PROJECT_ID" --secret "$SECRET" \
    --webhook-url "http://127.0.0.1:$GW0_PORT/stytch/webhooks" \
    --webhook-url "http://127.0.0.1:$GW1_PORT/stytch/webhooks" \
    >"$TMP/emulator.out" 2>"$TMP/emulator.err" &
PIDS+=($!)
# Two gateways in front, each may open as many upstream connections as it has clients.
RUST_LOG=warn "$BIN" upstream --listen "127.0.0.1:$UP_PORT" \
    --max-connections $((2 * ${SOAK_CONNECTIONS:-1000} + 200)) >"$TMP/upstream.out" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/"
wait_http "http://127.0.0.1:$EMU_PORT/" 404

# Each gateway's cap holds every client: when gateway 1 is sent SIGTERM its clients move to
# gateway 0 while gateway 0 still closes connections the driver dropped (the cap is tested in
# tests/e2e, not here).
gateway() { # index port
    env "${REDIS_ENV[@]}" \
        STYTCH_PROJECT_ID=$PROJECT_ID STYTCH_SECRET=$SECRET STYTCH_BASE_URL="http://127.0.0.1:$EMU_PORT/" \
        STYTCH_WEBHOOK_SECRET=$WEBHOOK_SECRET RUST_LOG=$LOG \
        "$BIN" serve --listen "127.0.0.1:$2" --upstream "http://127.0.0.1:$UP_PORT" \
        --webhook-path /stytch/webhooks --redis-lease 5s "${SENTINEL_FLAGS[@]}" \
        --max-connections $((2 * ${SOAK_CONNECTIONS:-1000} + 100)) \
        --metrics-listen "127.0.0.1:$((BASE_PORT + 20 + $1))" \
        >"$TMP/gateway$1.out" 2>"$TMP/gateway$1.err" &
    PIDS+=($!)
    GW_PIDS+=($!)
}
GW_PIDS=()
gateway 0 "$GW0_PORT"
gateway 1 "$GW1_PORT"
wait_http "http://127.0.0.1:$GW0_PORT/readyz"
wait_http "http://127.0.0.1:$GW1_PORT/readyz"
for port in "$GW0_PORT" "$GW1_PORT"; do
    curl -s "http://127.0.0.1:$port/readyz" | grep -q 'revocation bus: live' ||
        { echo "gateway on $port: the revocation bus is not live" >&2; exit 1; }
done

echo "soak: ${SOAK_REQUESTS:-1000000} requests, ${SOAK_CONNECTIONS:-1000} connections, RUST_LOG=$LOG, nproc $(nproc)" >&2
status=0
STYTCH_PROJECT_ID=$PROJECT_ID STYTCH_SECRET=$SECRET SOAK_EMULATOR="http://127.0.0.1:$EMU_PORT" \
    SOAK_GATEWAYS="127.0.0.1:$GW0_PORT,127.0.0.1:$GW1_PORT" \
    SOAK_GATEWAY_PIDS="${GW_PIDS[0]},${GW_PIDS[1]}" \
    SOAK_REDIS=$SOAK_REDIS SOAK_REDIS_PORT=$REDIS_PORT SOAK_REDIS_PIDFILE="$TMP/redis.pid" \
    SOAK_REDIS_START="redis-server '$TMP/redis.conf'" \
    SOAK_REPLICA_PORT=$REPLICA_PORT SOAK_REPLICA_PIDFILE="$TMP/replica.pid" \
    SOAK_SENTINEL_PORT=${SENTINEL_PORTS[0]} SOAK_SENTINEL_MASTER=$SENTINEL_MASTER \
    SOAK_METRICS0="127.0.0.1:$((BASE_PORT + 20))" REDISCLI_AUTH=$REDIS_PASSWORD \
    SOAK_SECRETS_OUT="$TMP/credentials.txt" \
    "$DRIVER" >"$TMP/driver.out" || status=$?

# How long peers' revocations took to reach gateway 0 over the bus (from the writer's clock
# to applied here), as its histogram counts them: the soak's propagation bound is checked
# against this.
echo "bus propagation to gateway 0 (cumulative counts per bucket, seconds):" >&2
curl -s "http://127.0.0.1:$((BASE_PORT + 20))/metrics" |
    grep -E '^stytch_bus_propagation_seconds_(bucket|count)' >&2 || true
# What gateway 0 wrote again after Redis lost data (the window it knew), and its switches of
# primary (the failover), as its metrics and /readyz tell.
echo "bus messages gateway 0 restored after Redis lost its data or the primary changed:" >&2
curl -s "http://127.0.0.1:$((BASE_PORT + 20))/metrics" |
    grep -E '^stytch_bus_(restored|primary_changes)_total' >&2 || echo "stytch_bus_restored_total 0" >&2
curl -s "http://127.0.0.1:$GW0_PORT/readyz" | grep 'revocation bus' >&2 || true

# The SIGTERMed gateway's exit code: 0 only when none of its revocations was left pending.
gw1_status=0
wait "${GW_PIDS[1]}" || gw1_status=$?

if [[ $SOAK_TRACE == 1 ]]; then
    printf '%s\n' "$SECRET" "$WEBHOOK_SECRET" "$REDIS_PASSWORD" "${WEBHOOK_SECRET#whsec_}" >>"$TMP/credentials.txt"
    # Stop everything so the logs are complete, then scan them.
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for pidfile in "$TMP"/*.pid; do kill "$(cat "$pidfile")" 2>/dev/null || true; done
    # Not the emulator's stdout: its start-up banner prints, by design, the project secret and
    # webhook secret it was given, for a developer to point a gateway at it.
    logs=("$TMP"/gateway*.err "$TMP"/gateway*.out "$TMP"/emulator.err "$TMP"/redis.log)
    for log in "$TMP"/replica.log "$TMP"/sentinel*.log; do [[ -f $log ]] && logs+=("$log"); done
    scanned=$(cat "${logs[@]}" | wc -c)
    leaks=$(cat "${logs[@]}" | grep -F -o -f "$TMP/credentials.txt" | wc -l || true)
    grep -v '^soak: requests=' "$TMP/driver.out" || true
    echo "secrets: scanned_bytes=$scanned leaks=$leaks"
    grep '^soak: requests=' "$TMP/driver.out" || true
    [[ $leaks == 0 ]] || status=1
else
    cat "$TMP/driver.out"
fi
echo "gateway1 (SIGTERM) exit code: $gw1_status" >&2
exit "$status"
