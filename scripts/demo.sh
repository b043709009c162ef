#!/usr/bin/env bash
# The end-to-end demo: moqt's relay on loopback, a C publisher and a C subscriber (examples-c/)
# exchanging frames over QUIC through it; then real encoded media (scripts/demo-media.sh: an
# ffmpeg clip published with `moqt publish --media fmp4`, received with `moqt subscribe`, checked
# with ffprobe). The subscriber prints every frame with its group, its
# index in the group and its latency. Builds everything it needs (the library installed into a
# scratch prefix, every C example through its Makefile and pkg-config); installs gcc, make and
# pkg-config if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null || need_apt+=(gcc)
command -v make >/dev/null || need_apt+=(make)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# MOQT_PROFILE=debug reuses the test suite's debug build (tests/programs/demo.rs runs this script so).
profile=${MOQT_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
echo "== building libmoqt and the moqt command ($profile), installing into $target/demo/prefix"
if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
rm -rf $target/demo && mkdir -p $target/demo/examples
MOQT_PROFILE=$profile scripts/install.sh $target/demo/prefix >/dev/null

echo "== building the C examples through pkg-config (examples-c/Makefile)"
cp examples-c/*.c examples-c/Makefile $target/demo/examples/
PKG_CONFIG_PATH="$(realpath "$target")/demo/prefix/lib/pkgconfig" make -s -C "$target/demo/examples"
for program in publisher subscriber subscriber_poll relay; do
  [ -x "$target/demo/examples/$program" ] || { echo "$program was not built"; exit 1; }
done
echo "   built: publisher subscriber subscriber_poll relay"

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
quic=$(free_port)
http=$(free_port)

echo "== starting the relay on 127.0.0.1:$quic"
$target/$profile/moqt relay --listen "127.0.0.1:$quic" --tls-generate localhost --http-listen "127.0.0.1:$http" \
  2> $target/demo/relay.log &
relay=$!
trap 'kill $relay 2>/dev/null || true; wait $relay 2>/dev/null || true' EXIT

# The relay's certificate fingerprint, over plain HTTP (bash's /dev/tcp: no curl needed).
fingerprint=""
for _ in $(seq 1 100); do
  if exec 3<>"/dev/tcp/127.0.0.1/$http" 2>/dev/null; then
    printf 'GET /certificate.sha256 HTTP/1.0\r\n\r\n' >&3
    fingerprint=$(tail -n 1 <&3 | tr -d '\r\n')
    exec 3<&-
    [ ${#fingerprint} -eq 64 ] && break
  fi
  sleep 0.1
done
[ ${#fingerprint} -eq 64 ] || { echo "the relay did not come up"; cat $target/demo/relay.log; exit 1; }
echo "   certificate sha256 $fingerprint"

url="moql://localhost:$quic/demo-room"
echo "== subscriber (C) and publisher (C) on $url"
$target/demo/examples/subscriber "$url" "$fingerprint" 90 &
subscriber=$!
sleep 0.5
$target/demo/examples/publisher "$url" "$fingerprint" 90
wait $subscriber
echo "== done: 90 frames went C publisher -> moqt relay -> C subscriber over QUIC, then a clean end"

echo
echo "== and real media: an ffmpeg clip through moqt's relay as a hang broadcast (scripts/demo-media.sh)"
trap - EXIT
kill $relay 2>/dev/null || true; wait $relay 2>/dev/null || true
MOQT_PROFILE=$profile scripts/demo-media.sh
