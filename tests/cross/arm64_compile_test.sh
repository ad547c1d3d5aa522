#!/bin/sh
# Compiles every userspace source for arm64 (aarch64-linux-gnu-g++, the project's warnings as
# errors): the paths x86 never builds (the scalar first-least-loaded scan, cpu_relax's yield,
# the prefetch builtin) must at least compile and assemble. Nothing here runs arm64 code.
# Usage: arm64_compile_test.sh SOURCE_DIR SKELETON_DIR
src=$1 skel=$2
cxx=aarch64-linux-gnu-g++
command -v $cxx >/dev/null || { echo "FAIL: $cxx not found; fix: apt-get install g++-aarch64-linux-gnu (tools/install-deps.sh)"; exit 1; }
[ -f "$skel/zernel.skel.h" ] || { echo "FAIL: $skel/zernel.skel.h missing; fix: build first (tools/build.sh)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Host headers of the libraries (toml++, CLI11, libbpf) after the cross toolchain's own: they
# are the same on every architecture.
cd "$src" && ls scheduler/*.cpp topology/*.cpp telemetry/*.cpp tools/*.cpp |
  xargs -P "$(nproc)" -I{} sh -c "$cxx -std=c++20 -O2 -Wall -Wextra -Werror -Wimplicit-fallthrough \
    -I'$src' -I'$skel' -idirafter /usr/include -c {} -o '$out'/\$(echo {} | tr / _).o 2>'$out'/\$(echo {} | tr / _).err ||
    { echo 'FAIL: {}'; head -n 5 '$out'/\$(echo {} | tr / _).err; }" >"$out/log"
n=$(ls "$out"/*.o 2>/dev/null | wc -l)
total=$(ls scheduler/*.cpp topology/*.cpp telemetry/*.cpp tools/*.cpp | wc -l)
cat "$out/log"
# Each object must be arm64 code.
for o in "$out"/*.o; do
  head -c 20 "$o" | od -An -tx1 | tr -d ' \n' | grep -q '^7f454c46020101.\{22\}b700' ||
    { echo "FAIL: $o is not an aarch64 object"; exit 1; }
done
[ "$n" = "$total" ] || { echo "FAIL: $n of $total sources compiled for arm64"; exit 1; }
echo "PASS: $n of $total sources compiled for arm64"
