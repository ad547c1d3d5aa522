#!/usr/bin/env bash
# Fetches Debian's sched_ext-capable kernel (trixie-backports) into a cache and prints the
# directory that holds it: vmlinuz, vmlinux (uncompressed ELF with .BTF), config, modules/.
#
# Why a private apt state: the system keeps only bookworm + bookworm-backports in its sources;
# trixie-backports is read here under $cache/apt and nothing is installed (apt-get download +
# dpkg-deb -x). The version is resolved from the mirror every run, since backports move; an
# already-extracted version is reused.
#
# Usage: fetch-kernel.sh [CACHE_DIR]   (default: $ZERNEL_CACHE or ~/.cache/zernel)
set -euo pipefail

cache=${1:-${ZERNEL_CACHE:-$HOME/.cache/zernel}}
suite=${ZERNEL_KERNEL_SUITE:-trixie-backports}
mirror=${ZERNEL_MIRROR:-http://deb.debian.org/debian}
apt_dir=$cache/apt-$suite
mkdir -p "$apt_dir"/{state/lists/partial,cache/archives/partial,etc/preferences.d}
echo "deb $mirror $suite main" > "$apt_dir/etc/sources.list"
: > "$apt_dir/state/status"

aptopts=(-o "Dir::State=$apt_dir/state" -o "Dir::State::status=$apt_dir/state/status"
         -o "Dir::Cache=$apt_dir/cache" -o "Dir::Etc::SourceList=$apt_dir/etc/sources.list"
         -o "Dir::Etc::SourceParts=/dev/null"
         -o "Dir::Etc::PreferencesParts=$apt_dir/etc/preferences.d"
         -o "APT::Architecture=amd64" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")

log=$apt_dir/fetch.log
if ! apt-get "${aptopts[@]}" -qq update >"$log" 2>&1; then
  # Offline: fall back to the newest kernel already in the cache.
  dir=$(ls -d "$cache"/kernel-*/ 2>/dev/null | sort -V | tail -n1 || true)
  if [ -n "$dir" ] && [ -f "$dir/vmlinux" ]; then echo "${dir%/}"; exit 0; fi
  echo "fetch-kernel: cannot read $suite from $mirror (see $log); fix: check network access to the Debian mirror" >&2
  exit 1
fi

# linux-image-amd64 (the metapackage) depends on linux-image-<ver>-amd64; the unsigned binary
# package carries the same <ver>.
ver=$(apt-cache "${aptopts[@]}" depends linux-image-amd64 2>/dev/null \
      | sed -n 's/.*Depends: linux-image-\([0-9][^ ]*\)-amd64.*/\1/p' | head -n1)
if [ -z "$ver" ]; then
  echo "fetch-kernel: could not resolve the kernel version in $suite; fix: check $log" >&2
  exit 1
fi
dir=$cache/kernel-$ver
if [ -f "$dir/vmlinux" ] && [ -f "$dir/vmlinuz" ] && [ -d "$dir/modules" ]; then
  echo "$dir"; exit 0
fi

tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && apt-get "${aptopts[@]}" -qq download \
    "linux-binary-unsigned-$ver-amd64" "linux-modules-$ver-amd64" "linux-base-$ver-amd64" \
    >>"$log" 2>&1 ) || {
  echo "fetch-kernel: download of linux-binary-unsigned-$ver-amd64 failed; fix: see $log" >&2; exit 1; }
mkdir -p "$tmp/root"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done

mkdir -p "$tmp/out"
img=$(find "$tmp/root" -name 'vmlinuz*' -type f | head -n1)
cp "$img" "$tmp/out/vmlinuz"
# The bzImage carries a zstd-compressed ELF; its .BTF is what bpftool reads for vmlinux.h.
python3 - "$img" "$tmp/out/vmlinux.zst" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
off = data.find(b'\x28\xb5\x2f\xfd')
if off < 0:
    sys.exit("no zstd payload in kernel image")
open(sys.argv[2], 'wb').write(data[off:])
PY
# Trailing bytes after the zstd frame are expected; zstd still writes the ELF.
zstd -q -d -c "$tmp/out/vmlinux.zst" >"$tmp/out/vmlinux" 2>/dev/null || true
rm -f "$tmp/out/vmlinux.zst"
if ! head -c4 "$tmp/out/vmlinux" | grep -q ELF; then
  echo "fetch-kernel: could not extract vmlinux from $img" >&2; exit 1
fi
mv "$(dirname "$img")" "$tmp/out/modules"
rm -f "$tmp/out/modules/$(basename "$img")"
cp "$tmp/out/modules/config" "$tmp/out/config"   # from linux-base-<ver>-amd64
echo "$ver" > "$tmp/out/version"
rm -rf "$dir"; mv "$tmp/out" "$dir"
echo "$dir"
