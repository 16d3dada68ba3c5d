# Sourced by gateway-load.sh: one wrk run of a configuration, the sessions of the 10k run,
# and the report.
# shellcheck shell=bash disable=SC2154 # the variables are gateway-load.sh's

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

# The one- and 10k-session runs' credentials: JWTs minted now, then every credential sent
# once (cached).
fresh_sessions() {
    python3 "$BENCHES/sessions.py" tokens "http://127.0.0.1:$EMU_PORT" "$PROJECT_ID" "$SECRET" \
        "$TMP/sessions" "$TMP/many-tokens"
    python3 "$BENCHES/sessions.py" tokens "http://127.0.0.1:$EMU_PORT" "$PROJECT_ID" "$SECRET" \
        "$TMP/one-session" "$TMP/one-token"
    python3 "$BENCHES/sessions.py" prime "http://127.0.0.1:$GW_PORT" "$TMP/many-tokens"
    python3 "$BENCHES/sessions.py" prime "http://127.0.0.1:$GW_PORT" "$TMP/one-token"
}

declare -A RPS P50 P99  # name -> space-separated values, one per round
measure() { # name duration -> "rps p50 p99"
    local out name=$1
    local -a args=(-t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency)
    case $name in
        gateway-1-session) args+=(-s "$BENCHES/rotate.lua") ; export TOKENS="$TMP/one-token" ;;
        gateway-10k-sessions) args+=(-s "$BENCHES/rotate.lua") ; export TOKENS="$TMP/many-tokens" ;;
        paced-*)
            args=(-t"$THREADS" -c"$PACED_CONNECTIONS" -d"$2" --latency -s "$BENCHES/paced.lua"
                -H "Authorization: Bearer $TOKEN")
            export DELAY_MS=$PACED_DELAY_MS ;;
        *) args+=(-H "Authorization: Bearer $TOKEN") ;;
    esac
    out=$(timeout 120 wrk "${args[@]}" "${URL[$name]}")
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
        echo "$name: errors or non-2xx answers:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")" \
        "$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")" \
        "$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
}

ratio() { # numerator denominator -> median over rounds of numerator/denominator (requests/s)
    local -a num den r
    read -ra num <<<"${RPS[$1]}"
    read -ra den <<<"${RPS[$2]}"
    for i in "${!num[@]}"; do r+=("$(awk -v a="${num[$i]}" -v b="${den[$i]}" 'BEGIN { printf "%.4f", a / b }')"); done
    printf '%.2f' "$(median "${r[@]}")"
}

p99_added() { # median over rounds of p99(paced-gateway) - p99(paced-nginx-proxy_pass), ms
    local -a gw ngx d
    read -ra gw <<<"${P99[paced-gateway]}"
    read -ra ngx <<<"${P99[paced-nginx-proxy_pass]}"
    for i in "${!gw[@]}"; do d+=("$(awk -v a="${gw[$i]}" -v b="${ngx[$i]}" 'BEGIN { printf "%.4f", a - b }')"); done
    printf '%.3f' "$(median "${d[@]}")"
}

report() {
    echo
    echo "machine: $(nproc) CPUs, $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo); $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "$CMD; GET /whoami on loopback; $REPS interleaved rounds; medians; no-op 204 server: $NOOP"
    echo "paced: wrk -t$THREADS -c$PACED_CONNECTIONS, each connection ${PACED_DELAY_MS} ms between requests (~$PACED_RATE requests/s offered)"
    printf '%-26s %12s %10s %10s\n' configuration 'requests/s' 'p50 ms' 'p99 ms'
    for name in "${CONFIGS[@]}"; do
        # shellcheck disable=SC2086 # the values are space-separated numbers
        printf '%-26s %12.0f %10.3f %10.3f\n' "$name" "$(median ${RPS[$name]})" \
            "$(median ${P50[$name]})" "$(median ${P99[$name]})"
    done
    echo "gateway/nginx-proxy_pass: $(ratio gateway nginx-proxy_pass)"
    echo "gateway/nginx-auth_request: $(ratio gateway nginx-auth_request-noop)"
    echo "nginx-auth_request-ours/nginx-auth_request-noop: $(ratio nginx-auth_request-ours nginx-auth_request-noop)"
    echo "gateway/caddy-reverse_proxy: $(ratio gateway caddy-reverse_proxy)"
    echo "caddy-forward_auth-ours/caddy-forward_auth-noop: $(ratio caddy-forward_auth-ours caddy-forward_auth-noop)"
    echo "gateway-10k-sessions/gateway-1-session: $(ratio gateway-10k-sessions gateway-1-session)"
    echo "p99-added-over-nginx-proxy_pass-ms: $(p99_added)"
    if [[ -n ${BEFORE:-} ]]; then
        echo "gateway/gateway-before: $(ratio gateway gateway-before)"
        echo "gateway-before/nginx-proxy_pass: $(ratio gateway-before nginx-proxy_pass)"
    fi
}
