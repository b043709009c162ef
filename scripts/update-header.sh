#!/usr/bin/env bash
# Regenerates include/moqt.h: build.rs writes the header into OUT_DIR on every build; this copies
# the one the last debug build made over the committed copy (tests/programs/header.rs checks they match).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
generated=$(ls -t target/debug/build/moqt-*/out/moqt.h | head -1)
cp "$generated" include/moqt.h
echo "include/moqt.h updated from $generated"
