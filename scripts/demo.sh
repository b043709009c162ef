#!/usr/bin/env bash
# The end-to-end demo: moqt's relay on loopback, a C publisher and a C subscriber (examples-c/)
# exchanging frames over QUIC through it. The subscriber prints every frame with its group, its
# index in the group and its latency. Builds everything it needs; installs a C compiler if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cc >/dev/null; then
  echo "== installing gcc"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc
fi

echo "== building libmoqt and the moqt command (release)"
cargo build --release --quiet
mkdir -p target/demo
# Programs load libmoqt by its SONAME (libmoqt.so.0.MINOR), as an installed library would be.
soname=$(readelf -d target/release/libmoqt.so | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
ln -sf libmoqt.so "target/release/$soname"
for program in publisher subscriber; do
  cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude "examples-c/$program.c" \
     -Ltarget/release -lmoqt -Wl,-rpath,"$PWD/target/release" -o "target/demo/$program"
done

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
quic=$(free_port)
http=$(free_port)

echo "== starting the relay on 127.0.0.1:$quic"
target/release/moqt relay --listen "127.0.0.1:$quic" --tls-generate localhost --http-listen "127.0.0.1:$http" \
  2> target/demo/relay.log &
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
[ ${#fingerprint} -eq 64 ] || { echo "the relay did not come up"; cat target/demo/relay.log; exit 1; }
echo "   certificate sha256 $fingerprint"

url="moql://localhost:$quic/demo-room"
echo "== subscriber (C) and publisher (C) on $url"
target/demo/subscriber "$url" "$fingerprint" 60 &
subscriber=$!
sleep 0.5
target/demo/publisher "$url" "$fingerprint" 90
wait $subscriber
echo "== done: 60 frames went C publisher -> moqt relay -> C subscriber over QUIC"
