#!/usr/bin/env bash
# Builds the C library (profile dist) and installs it for C, C++ and Swift users under PREFIX (default
# /usr/local):
#   lib/libmoqt.so (+ its SONAME link), lib/libmoqt.a     (stripped: see below)
#   lib/.debug/libmoqt.so.VERSION.debug        (the .so's debug info, found by gdb through the
#                                               .so's .gnu_debuglink; delete it to save the space)
#   include/moqt/moqt.h, include/moqt/module.modulemap (Swift: `import moqt`)
#   lib/pkgconfig/moqt.pc                      (pkg-config --cflags --libs moqt)
#   lib/cmake/moqt/moqtConfig.cmake + Version  (find_package(moqt) -> target moqt::moqt)
# Usage: scripts/install.sh [PREFIX]   (MOQT_PROFILE=release or debug installs that build instead)
# The build keeps debug info (Cargo.toml's [profile.release] debug = 1), which is most of its
# size: the installed .so is stripped to its dynamic symbols with its debug info split out beside
# it, and the .a loses its debug sections (not its symbols, which linking needs). MOQT_STRIP=0
# installs both as built.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(realpath -m "${1:-/usr/local}")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
minor=$(echo "$version" | cut -d. -f2)
soname="libmoqt.so.0.$minor"

# The dist profile (Cargo.toml): release with fat LTO and one codegen unit, for the C library
# alone (cargo runs LTO only when every crate type of the target takes it, and the rlib does not).
profile=${MOQT_PROFILE:-dist}
target=${CARGO_TARGET_DIR:-target}
if [ "$profile" = debug ]; then
  cargo build --quiet --lib
else
  cargo rustc --profile "$profile" --quiet --lib --crate-type cdylib,staticlib
fi
install -d "$prefix/lib/pkgconfig" "$prefix/lib/cmake/moqt" "$prefix/include/moqt"
install -m 0755 $target/$profile/libmoqt.so "$prefix/lib/libmoqt.so.$version"
ln -sf "libmoqt.so.$version" "$prefix/lib/$soname"
ln -sf "$soname" "$prefix/lib/libmoqt.so"
install -m 0644 $target/$profile/libmoqt.a "$prefix/lib/libmoqt.a"
if [ "${MOQT_STRIP:-1}" != 0 ]; then
  so="$prefix/lib/libmoqt.so.$version"
  debug="$prefix/lib/.debug/libmoqt.so.$version.debug"
  install -d "$prefix/lib/.debug"
  objcopy --only-keep-debug --compress-debug-sections=zlib "$so" "$debug"
  chmod 0644 "$debug"
  strip --strip-unneeded "$so"
  objcopy --add-gnu-debuglink="$debug" "$so"
  strip --strip-debug "$prefix/lib/libmoqt.a"
fi
install -m 0644 include/moqt.h include/module.modulemap "$prefix/include/moqt/"
fill() { sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@SONAME@|$soname|g" -e "s|@MINOR@|$minor|g" "$1"; }
fill packaging/moqt.pc.in >"$prefix/lib/pkgconfig/moqt.pc"
fill packaging/moqtConfig.cmake.in >"$prefix/lib/cmake/moqt/moqtConfig.cmake"
fill packaging/moqtConfigVersion.cmake.in >"$prefix/lib/cmake/moqt/moqtConfigVersion.cmake"
echo "installed moqt $version into $prefix (pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig;" \
  "CMake: CMAKE_PREFIX_PATH=$prefix)"
