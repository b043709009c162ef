#!/usr/bin/env bash
# Builds the release library and installs it for C, C++ and Swift users under PREFIX (default
# /usr/local):
#   lib/libmoqt.so (+ its SONAME link), lib/libmoqt.a
#   include/moqt/moqt.h, include/moqt/module.modulemap (Swift: `import moqt`)
#   lib/pkgconfig/moqt.pc                      (pkg-config --cflags --libs moqt)
#   lib/cmake/moqt/moqtConfig.cmake + Version  (find_package(moqt) -> target moqt::moqt)
# Usage: scripts/install.sh [PREFIX]   (MOQT_PROFILE=debug installs the debug build, for tests)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(realpath -m "${1:-/usr/local}")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
minor=$(echo "$version" | cut -d. -f2)
soname="libmoqt.so.0.$minor"

profile=${MOQT_PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
if [ "$profile" = release ]; then cargo build --release --quiet --lib; else cargo build --quiet --lib; fi
install -d "$prefix/lib/pkgconfig" "$prefix/lib/cmake/moqt" "$prefix/include/moqt"
install -m 0755 $target/$profile/libmoqt.so "$prefix/lib/libmoqt.so.$version"
ln -sf "libmoqt.so.$version" "$prefix/lib/$soname"
ln -sf "$soname" "$prefix/lib/libmoqt.so"
install -m 0644 $target/$profile/libmoqt.a "$prefix/lib/libmoqt.a"
install -m 0644 include/moqt.h include/module.modulemap "$prefix/include/moqt/"
fill() { sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@SONAME@|$soname|g" -e "s|@MINOR@|$minor|g" "$1"; }
fill packaging/moqt.pc.in >"$prefix/lib/pkgconfig/moqt.pc"
fill packaging/moqtConfig.cmake.in >"$prefix/lib/cmake/moqt/moqtConfig.cmake"
fill packaging/moqtConfigVersion.cmake.in >"$prefix/lib/cmake/moqt/moqtConfigVersion.cmake"
echo "installed moqt $version into $prefix (pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig;" \
  "CMake: CMAKE_PREFIX_PATH=$prefix)"
