#!/usr/bin/env bash
# CPU instructions per request on the request path, counted by valgrind's callgrind: the same
# count for the same binary and load whatever else the machine is doing, so a change to the
# request path can be judged on a shared, noisy machine where req/s moves by 30% between runs.
#
# Counts user-space instructions only: the kernel's share (loopback TCP, wake-ups) is not in it.
# Counting starts after start-up (compiling, the compile cache) and covers every thread. muon runs
# one gateway worker here, so its count repeats; hyper's work-stealing workers spin and steal
# depending on timing, so its count moves between runs and is there for scale only.
#
# Usage: bench/cost.sh            (from the repository root, after `cargo build --release -p muon`)
# Env:   SECONDS_EACH=10          how long wrk loads each server (wrk -t1 -c4; valgrind is slow)
#        WASM=path.wasm           the component (default: guests/hello, built if needed)
#        MUON=path/to/muon        default: target/release/muon (or $CARGO_TARGET_DIR)
#        HYPER=path/to/hyper-hello  also count a hyper hello server, for scale
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${SECONDS_EACH:-10}
for tool in valgrind callgrind_control wrk curl; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install valgrind wrk curl)"; exit 2; }
done
. bench/common.sh

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# count NAME PORT CMD... -> prints "NAME instructions-per-request requests"
count() {
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file="$work/$name.cg" \
    "$@" > "$work/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.2
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "$name did not start:"; cat "$work/$name.log"; exit 1; }
  wrk -t1 -c4 -d2s "http://127.0.0.1:$port/" > /dev/null # warm up
  callgrind_control -z "$pid" > /dev/null 2>&1
  local requests
  requests=$(wrk -t1 -c4 -d"${SECONDS_EACH}s" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" > /dev/null 2>&1
  sleep 1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
  local total
  # The dump taken after the load (`.1`): counts since they were zeroed, all threads together.
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$work/$name.cg.1")
  echo "$name $((total / requests)) $requests"
}

app "$work/fresh" ""
app "$work/reuse" "instance_reuse = 1000000000"

results=()
for mode in reuse fresh; do
  results+=("$(count "muon-$mode" 9281 "$MUON" up "$work/$mode" --quiet --workers 1 \
    --listen 127.0.0.1:9281 --control 127.0.0.1:9291 --cache-dir "$work/cache")")
done
if [ -n "${HYPER:-}" ] && [ -x "$HYPER" ]; then
  results+=("$(count hyper 9285 "$HYPER" 127.0.0.1:9285)")
fi

echo
echo "user-space instructions per request (callgrind, wrk -t1 -c4 for ${SECONDS_EACH}s, all threads):"
echo "| server | instructions/request | requests counted |"
echo "|---|---|---|"
for r in "${results[@]}"; do
  set -- $r
  echo "| $1 | $2 | $3 |"
done
