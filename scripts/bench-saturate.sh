#!/usr/bin/env bash
# Saturation per core: the relay pinned to CPU 0, the load generator (`moqt bench`) to CPU 1. The
# offered load (subscribers x frame rate x frame size) rises step by step until delivery fails:
# a frame lost, or p99 latency above P99_BOUND_MS. Then PAST_FAILURE more steps show the overload
# behaviour (memory, what is lost and whether each subscriber was told). For moqt's relay and
# moq-relay at each frame size, plus the physical reference on the same two cores: quinn's own bulk
# transfer, one stream, no moq (examples/quinn_bulk.rs), its sender under the same CPU share. The
# generator runs 10 sessions per UDP socket (each still its own QUIC connection to the relay).
#
# Usage: scripts/bench-saturate.sh [FRAME_SIZE...]   (default: 4096 33334)
# Environment:
#   SECONDS_TO_RUN  length of each step (default 8)
#   FPS_STEPS       frame rates tried, in order, each about 19 % above the last (default: from
#                   30 fps up)
#   SUBSCRIBERS     subscribers per step; default 100 for frames under 16 KB, else 50
#   RELAY_CPU_SHARE the fraction of CPU 0 the relay may use (default 1). Receiving costs the
#                   generator more CPU than forwarding costs moqt's relay, so with a whole core
#                   each the generator gives out first; at 0.5 (a cgroup CPU quota, 5 ms per
#                   10 ms) the relay does, and its per-core figure is the delivered rate / 0.5.
#   PAST_FAILURE    steps run after the first failing one (default 1)
#   P99_BOUND_MS    the latency bound (default 200)
#   RELAYS          which relays (default: moqt moq-relay)
#   PROFILE         cargo profile of moqt and the example (default release; CI's smoke test: dev)
# Results in target/bench-saturate/: one JSON per step, steps.csv, summary.txt, and
# saturation.svg (scripts/plot-bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${SECONDS_TO_RUN:-8}
share=${RELAY_CPU_SHARE:-1}
past_failure=${PAST_FAILURE:-1}
bound=${P99_BOUND_MS:-200}
read -r -a relays <<<"${RELAYS:-moqt moq-relay}"
profile=${PROFILE:-release}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(4096 33334)
[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (relay and load generator pinned apart)" >&2; exit 2; }

# shellcheck source=scripts/bench-common.sh
. scripts/bench-common.sh
build quinn_bulk
bulk=$target_dir/examples/quinn_bulk
need_moq_relay "${relays[@]}"
out=target/bench-saturate
mkdir -p "$out"

# The relay's CPU quota: a cgroup (v1 cpu controller or v2 cpu.max) the relay is started in.
cgroup=""
if awk -v s="$share" 'BEGIN { exit !(s < 1) }'; then
  quota=$(awk -v s="$share" 'BEGIN { printf "%d", s * 10000 }')
  if [ -w /sys/fs/cgroup/cpu ]; then
    cgroup=/sys/fs/cgroup/cpu/moqt-bench-relay
    mkdir -p "$cgroup"
    echo 10000 >"$cgroup/cpu.cfs_period_us"
    echo "$quota" >"$cgroup/cpu.cfs_quota_us"
  elif [ -w /sys/fs/cgroup/cgroup.subtree_control ]; then
    cgroup=/sys/fs/cgroup/moqt-bench-relay
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
    mkdir -p "$cgroup"
    echo "$quota 10000" >"$cgroup/cpu.max"
  else
    echo "RELAY_CPU_SHARE needs a writable cgroup (v1 cpu or v2) to set a CPU quota" >&2
    exit 2
  fi
fi


start_relay() { # NAME PORT: starts the relay pinned to CPU 0 (in the quota's cgroup), prints its PID
  relay_command "$1" "$2"
  (
    [ -z "$cgroup" ] || echo "$BASHPID" >"$cgroup/cgroup.procs"
    exec taskset -c 0 "${relay_cmd[@]}"
  ) >"$out/relay-$1.log" 2>&1 &
  echo $!
}

echo "relay,relay_cpu_share,frame_size,subscribers,fps,offered_gbps,delivered_gbps,frames_lost,frames_lost_unreported,groups_lost,p50_ms,p99_ms,relay_cpu_percent,bench_cpu_percent,relay_peak_rss_kib,pass" >"$out/steps.csv"
: >"$out/summary.txt"
for size in "${sizes[@]}"; do
  subscribers=${SUBSCRIBERS:-$([ "$size" -lt 16384 ] && echo 100 || echo 50)}
  if [ "$size" -lt 16384 ]; then default_steps="30 36 42 50 60 71 85 101 120 143 170 202 240 285 339 404 480 571 679 807 960"
  else default_steps="30 36 42 50 60 71 85 101 120 143 170 202 240 285"; fi
  read -r -a fps_steps <<<"${FPS_STEPS:-$default_steps}"
  # The physical reference: one quinn stream from CPU 0 to CPU 1.
  port=$(free_port)
  rm -f "$out/bulk.der"
  (
    [ -z "$cgroup" ] || echo "$BASHPID" >"$cgroup/cgroup.procs"
    exec taskset -c 0 "$bulk" send "127.0.0.1:$port" "$out/bulk.der" "$size" "$seconds"
  ) &
  sender=$!
  for _ in $(seq 100); do [ -s "$out/bulk.der" ] && break; sleep 0.1; done
  taskset -c 1 "$bulk" recv "127.0.0.1:$port" "$out/bulk.der" >"$out/bulk-$size.json"
  wait "$sender"
  bulk_gbps=$(awk -v g="$(field "$out/bulk-$size.json" gbit_per_sec)" -v s="$share" 'BEGIN { printf "%.3f", g / s }')
  echo "quinn bulk, $size-byte frames, one stream CPU 0 -> CPU 1, CPU share $share:" \
    "$(field "$out/bulk-$size.json" gbit_per_sec) Gbit/s, per core $bulk_gbps" | tee -a "$out/summary.txt"
  for relay in "${relays[@]}"; do
    best=0 best_line="none passed" failed=0
    for fps in "${fps_steps[@]}"; do
      port=$(free_port)
      pid=$(start_relay "$relay" "$port")
      wait_tcp "$port" || { echo "$relay did not start; see $out/relay-$relay.log" >&2; exit 1; }
      json="$out/$relay-$size-$fps.json"
      status=0
      taskset -c 1 "$moqt" bench "http://localhost:$port/anon" --json --relay-pid "$pid" \
        --subscribers "$subscribers" --frame-size "$size" --fps "$fps" --group-frames "$fps" --sessions-per-socket 10 \
        --seconds "$seconds" >"$json" 2>"$out/$relay-$size-$fps.log" || status=$?
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      offered=$(awk -v s="$subscribers" -v b="$size" -v f="$fps" 'BEGIN { printf "%.4f", s * b * f * 8 / 1e9 }')
      if [ "$status" != 0 ] || [ ! -s "$json" ]; then
        echo "$relay,$share,$size,$subscribers,$fps,$offered,0,,,,,,,,,no" >>"$out/steps.csv"
        echo "  $relay at $fps fps: the bench failed (see $out/$relay-$size-$fps.log)"
        pass=no
      else
        lost=$(field "$json" frames_lost); p99=$(field "$json" latency_p99_ms); gbps=$(field "$json" gbit_per_sec)
        pass=$(awk -v l="$lost" -v p="$p99" -v b="$bound" 'BEGIN { print (l == 0 && p <= b) ? "yes" : "no" }')
        echo "$relay,$share,$size,$subscribers,$fps,$offered,$gbps,$lost,$(field "$json" frames_lost_unreported),$(field "$json" groups_lost),$(field "$json" latency_p50_ms),$p99,$(field "$json" relay_cpu_percent),$(field "$json" bench_cpu_percent),$(field "$json" relay_peak_rss_kib),$pass" >>"$out/steps.csv"
        echo "  $relay at $fps fps ($offered Gbit/s offered): $gbps delivered, lost $lost, p99 $p99 ms," \
          "relay CPU $(field "$json" relay_cpu_percent) %, bench CPU $(field "$json" bench_cpu_percent) %"
        if [ "$pass" = yes ] && [ "$failed" = 0 ]; then best=$gbps best_line="$gbps Gbit/s at $fps fps"; fi
      fi
      if [ "$pass" = no ]; then
        failed=$((failed + 1))
        [ "$failed" -gt "$past_failure" ] && break
      fi
    done
    per_core=$(awk -v a="$best" -v s="$share" 'BEGIN { printf "%.3f", a / s }')
    echo "$relay, $size-byte frames, $subscribers subscribers, CPU share $share: highest passing $best_line;" \
      "per core $per_core Gbit/s ($(awk -v a="$per_core" -v b="$bulk_gbps" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }') % of quinn bulk)" |
      tee -a "$out/summary.txt"
  done
done
if command -v python3 >/dev/null; then python3 scripts/plot-bench.py saturate "$out/steps.csv" "$out/saturation.svg"; fi
echo "(steps in $out/steps.csv, this summary in $out/summary.txt)"
