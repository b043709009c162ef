#!/usr/bin/env bash
# Many sessions on one relay: SESSIONS idle subscribers (one 16-byte frame per second each) connect
# to a relay pinned to CPU 0, from a load generator on CPU 1, while one active subscriber (4 KB
# at 60 fps, a second `moqt bench`) measures whether latency holds. Reports the relay's memory per
# session above its start, how long accepting them took, and the active subscriber's p99 alone and
# while the sessions connect; moqt's relay and moq-relay side by side. Raises the file-descriptor
# limit here, for the relay and the generator (the library never touches it).
#
# Usage: scripts/bench-sessions.sh
# Environment: SESSIONS (default 10000), PER_SOCKET (sessions per generator UDP socket, 50),
#   TRANSPORT (webtransport, or quic: raw QUIC, moql://), CONCURRENCY (sessions set up at once, 32), ACTIVE_SECONDS (how long the active subscriber
#   runs beside them, from 2 s before they start: 60; it should cover the connecting), RELAYS (moqt moq-relay), PROFILE (release; CI: dev).
# Results in target/bench-sessions/: JSON per run, rss.csv (RSS against sessions), summary.txt,
# sessions.svg.
set -euo pipefail
cd "$(dirname "$0")/.."

sessions=${SESSIONS:-10000}
per_socket=${PER_SOCKET:-50}
concurrency=${CONCURRENCY:-32}
active_seconds=${ACTIVE_SECONDS:-60}
transport=${TRANSPORT:-webtransport}
read -r -a relays <<<"${RELAYS:-moqt moq-relay}"
profile=${PROFILE:-release}
[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (relay and load generator pinned apart)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((sessions / per_socket + 1000)) ] ||
  echo "warning: only $(ulimit -n) file descriptors" >&2

# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
build
need_moq_relay "${relays[@]}"
out=target/bench-sessions
mkdir -p "$out"

rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }
active() { # URL SECONDS OUT: one publisher, one subscriber, 4 KB at 60 fps
  # shellcheck disable=SC2086 # the URL may carry --tls-fingerprint
  taskset -c 1 "$moqt" bench $1 --json --prefix active --subscribers 1 --frame-size 4096 --fps 60 \
    --group-frames 60 --seconds "$2" >"$3" 2>"$3.log"
}
relay_pid=""
trap '[ -z "$relay_pid" ] || kill "$relay_pid" 2>/dev/null || true' EXIT

echo "relay,sessions,rss_kib" >"$out/rss.csv"
: >"$out/summary.txt"
for relay in "${relays[@]}"; do
  port=$(free_port)
  relay_command "$relay" "$port"
  taskset -c 0 "${relay_cmd[@]}" >"$out/relay-$relay.log" 2>&1 &
  relay_pid=$!
  wait_tcp "$port" || { echo "$relay did not start; see $out/relay-$relay.log" >&2; exit 1; }
  url="http://localhost:$port/anon"
  # Raw QUIC: the fingerprint over plain HTTP, the sessions over moql://.
  [ "$transport" != quic ] || url="moql://localhost:$port/anon --tls-fingerprint $(curl -s "http://127.0.0.1:$port/certificate.sha256")"
  start_kib=$(rss "$relay_pid")
  # The active subscriber alone, then again while the idle sessions connect.
  active "$url" 10 "$out/$relay-active-alone.json"
  active "$url" "$active_seconds" "$out/$relay-active-during.json" &
  active_pid=$!
  sleep 2
  status=0
  # Niced: the active subscriber shares CPU 1 with it and must not wait for it.
  # shellcheck disable=SC2086 # the URL may carry --tls-fingerprint
  taskset -c 1 nice -n 10 "$moqt" bench $url --json --relay-pid "$relay_pid" --prefix idle --subscribers "$sessions" \
    --frame-size 16 --fps 1 --group-frames 1 --seconds 10 --sessions-per-socket "$per_socket" \
    --connect-concurrency "$concurrency" >"$out/$relay-idle.json" 2>"$out/$relay-idle.log" || status=$?
  wait "$active_pid" || { echo "the active bench through $relay failed; see $out/$relay-active-during.json.log" >&2; exit 1; }
  kill "$relay_pid" 2>/dev/null || true
  wait "$relay_pid" 2>/dev/null || true
  relay_pid=""
  [ "$status" = 0 ] || { echo "the idle bench through $relay failed; see $out/$relay-idle.log" >&2; exit 1; }
  json="$out/$relay-idle.json"
  grep -o '\[[0-9]*,[0-9]*\]' "$json" | tr -d '[]' | sed "s/^/$relay,/" >>"$out/rss.csv"
  peak=$(field "$json" relay_peak_rss_kib)
  printf '%s, %s: %d sessions in %s s; RSS %d KiB at start, peak %d KiB: %.1f KiB per session; lost %s frames;' \
    "$relay" "$transport" "$sessions" "$(field "$json" connect_sec)" "$start_kib" "$peak" \
    "$(awk -v p="$peak" -v s="$start_kib" -v n="$sessions" 'BEGIN { print (p - s) / n }')" \
    "$(field "$json" frames_lost)" | tee -a "$out/summary.txt"
  printf ' active subscriber p99 %s ms alone, %s ms beside them (max %s ms, lost %s)\n' \
    "$(field "$out/$relay-active-alone.json" latency_p99_ms)" "$(field "$out/$relay-active-during.json" latency_p99_ms)" \
    "$(field "$out/$relay-active-during.json" latency_max_ms)" "$(field "$out/$relay-active-during.json" frames_lost)" |
    tee -a "$out/summary.txt"
done
if command -v python3 >/dev/null; then python3 scripts/plot-bench.py sessions "$out/rss.csv" "$out/sessions.svg"; fi
echo "(runs in $out/, this summary in $out/summary.txt)"
