#!/usr/bin/env bash
# C API delivery cost per frame, measured from C through the release library: benches/c/delivery.c
# (callback and pull mode) against a release `moqt relay` on loopback. FRAMES (default 100000).
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${FRAMES:-100000}
cargo build --release --quiet --lib --bin moqt
# The program loads the library by its SONAME, as an installed one would be.
soname=$(readelf -d target/release/libmoqt.so | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
ln -sf libmoqt.so "target/release/$soname"
out=target/bench-ffi
mkdir -p "$out"
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -I include benches/c/delivery.c -L target/release -lmoqt \
  -Wl,-rpath,"$PWD/target/release" -o "$out/delivery"
port=$((20000 + RANDOM % 20000))
target/release/moqt relay --listen "127.0.0.1:$port" --tls-generate localhost --http-listen "127.0.0.1:$port" \
  2>"$out/relay.log" &
relay=$!
trap 'kill $relay 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
fp=$(curl -s "http://127.0.0.1:$port/certificate.sha256")
for mode in callback pull; do
  "$out/delivery" "moql://localhost:$port/bench" "$fp" "$mode" "$frames"
done | tee "$out/summary.txt"
