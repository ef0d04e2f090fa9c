#!/usr/bin/env bash
# Requests/s and latency under concurrent load, side by side, measured in one run:
#   muon (a fresh isolate per request), muon (instance reuse, with epoll and with --io-uring),
#   wasmtime serve on the same component (fresh instance, and instance reuse), and a plain hyper
#   "hello" server (the ceiling).
# Every server listens on 127.0.0.1 only; each is stopped at the end.
#
# Usage: bench/http.sh            (from the repository root, after `cargo build --release -p muon`)
# Env:   DUR=10 ROUNDS=3 CONNS=32 THREADS=2   wrk settings (interleaved rounds: A B C A B C ...)
#        WASM=path.wasm                      the component (default: guests/hello, built if needed)
#        WASMTIME=path/to/wasmtime           wasmtime 48 CLI (`cargo install wasmtime-cli --version 48.0.8`)
#        HYPER=path/to/hyper-hello           a hyper hello server taking its address as argument
#        MUON=path/to/muon                   default: target/release/muon (or $CARGO_TARGET_DIR)
#        LOADGEN=oha OHA=path/to/oha         use oha instead of wrk (its p99 is the one to trust)
# Servers whose binary is missing are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10}; ROUNDS=${ROUNDS:-3}; CONNS=${CONNS:-32}; THREADS=${THREADS:-2}
LOADGEN=${LOADGEN:-wrk}; OHA=${OHA:-oha}
if [ "$LOADGEN" = oha ]; then
  command -v "$OHA" >/dev/null || { echo "oha is needed (cargo install oha), or set OHA"; exit 2; }
else
  command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 2; }
fi
. bench/common.sh

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT


names=(); ports=()
start() { # start NAME PORT CMD...
  local name=$1 port=$2; shift 2
  "$@" > "$work/$name.log" 2>&1 &
  pids+=($!); names+=("$name"); ports+=("$port")
  for _ in $(seq 1 600); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.1
  done
  echo "$name did not start; its log:"; cat "$work/$name.log"; exit 1
}

app "$work/fresh" ""
app "$work/reuse" "instance_reuse = 1000000000"
app "$work/reuse-uring" "instance_reuse = 1000000000"
start muon-fresh 9181 "$MUON" up "$work/fresh" --quiet --listen 127.0.0.1:9181 --control 127.0.0.1:9191 --cache-dir "$work/cache"
start muon-reuse 9182 "$MUON" up "$work/reuse" --quiet --listen 127.0.0.1:9182 --control 127.0.0.1:9192 --cache-dir "$work/cache"
start muon-reuse-uring 9186 "$MUON" up "$work/reuse-uring" --io-uring --quiet --listen 127.0.0.1:9186 --control 127.0.0.1:9196 --cache-dir "$work/cache"
if [ -n "${WASMTIME:-}" ] && [ -x "$WASMTIME" ]; then
  start wasmtime-serve 9183 "$WASMTIME" serve -S cli --addr 127.0.0.1:9183 "$WASM"
  start wasmtime-reuse 9184 "$WASMTIME" serve -S cli --max-instance-reuse-count 1000000000 --addr 127.0.0.1:9184 "$WASM"
fi
if [ -n "${HYPER:-}" ] && [ -x "$HYPER" ]; then
  start hyper 9185 "$HYPER" 127.0.0.1:9185
fi

to_ms() { # wrk latency like 1.23ms / 850.00us / 1.02s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

# load PORT SECONDS -> "req/s p50_ms p99_ms non2xx"
load() {
  if [ "$LOADGEN" = oha ]; then
    "$OHA" -c "$CONNS" -z "${2}s" --no-tui --output-format json "http://127.0.0.1:$1/" | python3 -c '
import json, sys
d = json.load(sys.stdin); s = d["summary"]; p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
print(s["requestsPerSec"], p["p50"] * 1e3, p["p99"] * 1e3, sum(v for k, v in codes.items() if not k.startswith("2")))'
  else
    local out
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"${2}s" --latency "http://127.0.0.1:$1/")
    local non2xx
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")") $(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")") ${non2xx:-0}"
  fi
}

echo "warming up ..."
for i in "${!names[@]}"; do load "${ports[$i]}" 2 > /dev/null; done

results="$work/results"
for r in $(seq 1 "$ROUNDS"); do
  for i in "${!names[@]}"; do
    read -r rps p50 p99 non2xx <<<"$(load "${ports[$i]}" "$DUR")"
    echo "${names[$i]} $rps $p50 $p99 $non2xx" >> "$results"
    printf 'round %s %-15s %10.0f req/s  p50 %.3f ms  p99 %.3f ms  non-2xx %s\n' "$r" "${names[$i]}" "$rps" "$p50" "$p99" "$non2xx"
  done
done
echo
echo "medians of $ROUNDS rounds, $LOADGEN -c$CONNS for ${DUR}s, $(nproc) cores shared by servers and the load generator:"
echo "| server | req/s | vs hyper | vs wasmtime serve | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
col() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$results" | median; }
hyper=$(col hyper 2); wt=$(col wasmtime-serve 2)
for n in "${names[@]}"; do
  rps=$(col "$n" 2)
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else printf "-" }'; }
  vh=$(ratio "$rps" "${hyper:-0}"); vw=$(ratio "$rps" "${wt:-0}")
  printf '| %s | %.0f | %s | %s | %.3f | %.3f |\n' "$n" "$rps" "$vh" "$vw" "$(col "$n" 3)" "$(col "$n" 4)"
done
