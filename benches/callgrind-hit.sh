#!/usr/bin/env bash
# Instructions per request through the layer, by callgrind (exact and repeatable on a shared
# machine), counted inside the measured loop only: `hit_instructions SCENARIO N` minus
# `hit_instructions SCENARIO 0`, over N.
#
#   benches/callgrind-hit.sh [BINARY] [N]       # BINARY: a built hit_instructions bench
#
# Prints one line per scenario: `SCENARIO: <instructions per request>`.
set -euo pipefail
bin=${1:-$(ls -t target/release/deps/hit_instructions-* | grep -v '\.d$' | head -1)}
n=${2:-2000}
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }
count() {
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --toggle-collect='*measured_requests*' --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
  # The total of events, summed over the threads' files.
  cat "$out"* | awk '/^summary:/ {s += $2} END {print s}'
  rm -f "$out"*
}
for scenario in ${SCENARIOS:-bare bare-jwt moka sha-token sha-jwt token jwt token-rule}; do
  base=$(count "$scenario" 0)
  full=$(count "$scenario" "$n")
  echo "$scenario: $(( (full - base) / n ))"
done
