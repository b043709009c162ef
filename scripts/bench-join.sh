#!/usr/bin/env bash
# Join time: how long a new viewer waits from its session's first packet to its first frame of a
# live track, `moqt bench --joins` (src/bin/moqt/join.rs), for moqt's relay and moq-relay side by
# side: on loopback and behind the test suite's network simulator at RTT_MS of round trip
# (examples/netsim.rs), over WebTransport and raw QUIC, each with a new client per join (a new
# viewer: a full TLS handshake) and with one client reused (TLS session resumption).
#
# Usage: scripts/bench-join.sh
# Environment: JOINS (default 200), RTT_MS (40), RELAYS (moqt moq-relay), TRANSPORTS
#   (webtransport quic), PROFILE (release; CI's smoke test: dev).
# Results in target/bench-join/: JSON per run, joins.csv (every join), summary.txt, join.svg.
set -euo pipefail
cd "$(dirname "$0")/.."

joins=${JOINS:-200}
rtt=${RTT_MS:-40}
read -r -a relays <<<"${RELAYS:-moqt moq-relay}"
read -r -a transports <<<"${TRANSPORTS:-webtransport quic}"
profile=${PROFILE:-release}

# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
build netsim
netsim=$target_dir/examples/netsim
need_moq_relay "${relays[@]}"
out=target/bench-join
mkdir -p "$out"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

echo "relay,path,transport,resumption,join_ms" >"$out/joins.csv"
: >"$out/summary.txt"
for relay in "${relays[@]}"; do
  port=$(free_port)
  relay_command "$relay" "$port"
  "${relay_cmd[@]}" >"$out/relay-$relay.log" 2>&1 &
  relay_pid=$!
  pids+=("$relay_pid")
  wait_tcp "$port" || { echo "$relay did not start; see $out/relay-$relay.log" >&2; exit 1; }
  fingerprint=$(curl -s "http://127.0.0.1:$port/certificate.sha256")
  # The simulated path: a proxy with RTT_MS/2 of delay each way in front of the relay's UDP port.
  coproc proxy { exec "$netsim" "127.0.0.1:$port" "$rtt"; }
  pids+=("$proxy_PID")
  read -r proxy_port <&"${proxy[0]}"
  for path in loopback "${rtt}ms"; do
    quic_port=$([ "$path" = loopback ] && echo "$port" || echo "$proxy_port")
    for transport in "${transports[@]}"; do
      scheme=$([ "$transport" = quic ] && echo moql || echo https)
      for resumption in none resumed; do
        json="$out/$relay-$path-$transport-$resumption.json"
        resume=()
        [ "$resumption" = resumed ] && resume=(--resume)
        "$moqt" bench "$scheme://localhost:$quic_port/anon" --tls-fingerprint "$fingerprint" --json \
          --joins "$joins" "${resume[@]}" --fps 30 --group-frames 30 --frame-size 4096 \
          >"$json" 2>"$out/$relay-$path-$transport-$resumption.log" ||
          { echo "the join bench failed: $out/$relay-$path-$transport-$resumption.log" >&2; exit 1; }
        sed -n 's/.*"join_ms":\[\([^]]*\)\].*/\1/p' "$json" | tr ',' '\n' |
          sed "s/^/$relay,$path,$transport,$resumption,/" >>"$out/joins.csv"
        printf '%-9s %-9s %-12s %-8s first frame p50 %8s ms, p99 %8s ms (session up p50 %s, announced p50 %s)\n' \
          "$relay" "$path" "$transport" "$resumption" "$(field "$json" first_frame_p50_ms)" \
          "$(field "$json" first_frame_p99_ms)" "$(field "$json" connected_p50_ms)" "$(field "$json" announced_p50_ms)" |
          tee -a "$out/summary.txt"
      done
    done
  done
  kill "$proxy_PID" "$relay_pid" 2>/dev/null || true
  wait "$relay_pid" 2>/dev/null || true
done
if command -v python3 >/dev/null; then python3 scripts/plot-bench.py join "$out/joins.csv" "$out/join.svg"; fi
echo "(every join in $out/joins.csv, this summary in $out/summary.txt)"
