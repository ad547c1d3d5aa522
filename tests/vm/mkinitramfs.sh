#!/usr/bin/env bash
# Builds the test VM's initramfs: a gzip'ed newc cpio holding static busybox, the benchmark
# tools with their shared libraries, optional extra binaries/files, optional kernel modules,
# and an /init that runs one guest script and reports its exit code on the console.
#
# Usage: mkinitramfs.sh OUT.cpio.gz GUEST_SCRIPT [--bin PATH]... [--file SRC:DEST]...
#                       [--module NAME]... [--kernel-dir DIR]
#
#   --bin PATH[:DEST] host executable, placed at the same absolute path in the guest (or at
#                     DEST); its shared libraries (per ldd) come along at their host paths.
#   --file SRC:DEST   host file or directory SRC copied to absolute guest path DEST.
#   --module NAME     kernel module (by name, '-' and '_' equivalent) loaded by /init before the
#                     guest script, dependencies first. Needs the kernel's modules/ tree.
#   --kernel-dir DIR  directory printed by fetch-kernel.sh (only read with --module; default:
#                     run fetch-kernel.sh).
#
# Guest contract (what run-vm.sh parses): /init prints exactly one line
#   ZERNEL-VM-EXIT rc=<N>
# after `sh /guest.sh` returns N, then powers off. The guest script gets stdin from /dev/null
# (the serial console never delivers input, so a read would hang until the timeout) and runs
# in / with PATH=/usr/sbin:/usr/bin:/sbin:/bin.
#
# Nothing is cached: the image is rebuilt from the host's current binaries on every call, so a
# freshly built scheduler binary can never be shadowed by an old image.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "mkinitramfs: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 OUT.cpio.gz GUEST_SCRIPT [--bin PATH]... [--file SRC:DEST]... [--module NAME]... [--kernel-dir DIR]"
out=$1 guest=$2
shift 2
[ -f "$guest" ] || die "guest script '$guest' not found; fix: pass an existing shell script"

bins=(/usr/bin/stress-ng /usr/bin/hackbench /usr/bin/perf /usr/bin/cyclictest)
files=() modules=() kdir=''
while [ $# -gt 0 ]; do
  case $1 in
    --bin) [ $# -ge 2 ] || die "--bin needs a PATH"; bins+=("$2"); shift 2 ;;
    --file) [ $# -ge 2 ] || die "--file needs SRC:DEST"; files+=("$2"); shift 2 ;;
    --module) [ $# -ge 2 ] || die "--module needs a NAME"; modules+=("$2"); shift 2 ;;
    --kernel-dir) [ $# -ge 2 ] || die "--kernel-dir needs a DIR"; kdir=$2; shift 2 ;;
    *) die "unknown option '$1'" ;;
  esac
done

start_ns=$(date +%s%N)
stage=$(mktemp -d "${TMPDIR:-/tmp}/zernel-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Merged-/usr layout regardless of the host: ldd reports /lib/... on merged hosts and
# /usr/lib/... for RUNPATH'd binaries, and both must resolve to the same copy in the guest.
mkdir -p "$stage"/usr/{bin,sbin,lib,lib64} "$stage"/{dev,proc,sys,tmp,run,root,etc,mnt}
ln -s usr/bin "$stage/bin"; ln -s usr/sbin "$stage/sbin"
ln -s usr/lib "$stage/lib"; ln -s usr/lib64 "$stage/lib64"
chmod 1777 "$stage/tmp"

# /init mounts over these, so anything packed there would be invisible to the guest script.
shadowed() {
  case $1 in
    /tmp|/tmp/*|/run|/run/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*)
      die "guest path '$1' is hidden by a mount /init makes; fix: install it elsewhere, e.g. --file SRC:/opt/${1##*/} (or copy the binary out of ${1%/*} before --bin)" ;;
  esac
}

# Places one host file at a guest path. rm first: cp onto an existing busybox applet symlink
# would follow it and overwrite busybox itself.
put() {
  local src=$1 dst=$2
  shadowed "$dst"
  mkdir -p "$stage$(dirname "$dst")"
  rm -f "$stage$dst"
  cp -L --preserve=mode "$src" "$stage$dst"
}

bb=$(command -v busybox || true)
[ -n "$bb" ] || die "busybox not found; fix: apt-get install busybox-static"
# A dynamic busybox would need libs before /init can even start; insist on the static one.
if ldd "$bb" >/dev/null 2>&1; then
  die "$bb is dynamically linked; fix: apt-get install busybox-static"
fi
put "$bb" /usr/bin/busybox
# --list-full gives each applet's canonical directory (sbin/insmod, usr/bin/nproc, ...).
applets=$("$bb" --list-full)
printf '%s\n' "$applets" | sed -n 's,/[^/]*$,,p' | sort -u | (cd "$stage" && xargs mkdir -p)
while read -r applet; do
  # bin/busybox itself is in the list and, via the merged /bin, would replace the binary.
  [ -n "$applet" ] && [ "${applet##*/}" != busybox ] || continue
  ln -sf /usr/bin/busybox "$stage/$applet"
done <<<"$applets"

declare -A have_lib=()
add_libs() {
  local bin=$1 line lib
  # ldd fails on static binaries and scripts; those need no libraries.
  local deps
  deps=$(ldd "$bin" 2>/dev/null) || return 0
  while read -r line; do
    case $line in
      *"=> not found"*) die "$bin needs ${line%% *}, which the host lacks" ;;
      *"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
      /*) lib=${line%% (*} ;;          # the dynamic loader, e.g. /lib64/ld-linux-x86-64.so.2
      *) continue ;;                   # linux-vdso.so.1 lives in the kernel
    esac
    [ -n "${have_lib[$lib]:-}" ] && continue
    have_lib[$lib]=1
    put "$lib" "$lib"
  done <<<"$deps"
}

add_bin() {
  local bin=${1%%:*} dest='' real
  # SRC:DEST installs at DEST, e.g. a build tree under /tmp, which /init would hide.
  case $1 in *:*) dest=${1#*:} ;; esac
  [ -e "$bin" ] || die "binary '$bin' not found; fix: install it or drop --bin $bin"
  case $bin in /*) ;; *) bin=$(realpath "$bin") ;; esac
  real=$bin
  # Debian's linux-base ships /usr/bin/perf as a shell wrapper that execs perf_<kver> matching
  # the running kernel; that version never matches the guest kernel, so install the newest
  # real perf_* binary as /usr/bin/perf directly.
  if [ "$(basename "$bin")" = perf ] && [ "$(head -c2 "$bin")" = '#!' ]; then
    real=$(ls -1 "$(dirname "$bin")"/perf_* 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$real" ] || die "$bin is a wrapper script and no perf_<version> binary exists; fix: apt-get install linux-perf"
    put "$real" "$real"
  fi
  put "$real" "${dest:-$bin}"
  add_libs "$real"
}

for b in "${bins[@]}"; do add_bin "$b"; done
# glibc dlopen()s libgcc_s for thread cancellation/pthread_exit unwinding; ldd cannot see it.
for l in /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
  if [ -e "$l" ] && [ -z "${have_lib[$l]:-}" ]; then put "$l" /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; break; fi
done

for f in "${files[@]}"; do
  src=${f%%:*} dst=${f#*:}
  [ "$src" != "$f" ] && [ -n "$src" ] || die "--file '$f' is not SRC:DEST"
  case $dst in /*) ;; *) die "--file '$f': DEST must be an absolute guest path" ;; esac
  [ -e "$src" ] || die "--file source '$src' not found"
  shadowed "$dst"
  mkdir -p "$stage$(dirname "$dst")"
  rm -rf "${stage:?}$dst"
  cp -rL --preserve=mode "$src" "$stage$dst"
done

# Tools that look up uid 0 (ls -l, perf, stress-ng's user checks) want a passwd entry.
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\n' >"$stage/etc/group"
: >"$stage/etc/modules.list"

if [ ${#modules[@]} -gt 0 ]; then
  if [ -z "$kdir" ]; then
    kdir=$("$here/fetch-kernel.sh") || die "fetch-kernel.sh failed; fix: pass --kernel-dir"
  fi
  mdir=$kdir/modules
  [ -d "$mdir/kernel" ] || die "no modules tree at $mdir; fix: re-run fetch-kernel.sh"
  kver=$(cat "$kdir/version" 2>/dev/null || basename "$kdir")

  declare -A mod_path=() mod_deps=() mod_done=()
  # Names in depends= and on the command line use '_'; file names may use '-'. Sets REPLY
  # rather than printing, since a subshell per module (thousands) costs seconds.
  norm() { REPLY=${1##*/}; REPLY=${REPLY%%.ko*}; REPLY=${REPLY//-/_}; }
  while read -r p; do norm "$p"; mod_path[$REPLY]=$p; done < <(cd "$mdir" && find -L kernel -name '*.ko*')
  if [ -f "$mdir/modules.dep" ]; then
    while IFS=: read -r m deps; do
      list=
      for d in $deps; do norm "$d"; list+="$REPLY "; done
      norm "$m"; mod_deps[$REPLY]=$list
    done <"$mdir/modules.dep"
  fi

  builtin_mod() { [ -f "$mdir/modules.builtin" ] && grep -q "/$1\.ko\$" <(sed 's/-/_/g' "$mdir/modules.builtin"); }

  # Depth-first, dependencies before dependents, so insmod never hits an unknown symbol.
  # Without modules.dep the .modinfo "depends=" field of the decompressed module is used.
  load_order=()
  resolve() {
    local name; norm "$1"; name=$REPLY
    [ -n "${mod_done[$name]:-}" ] && return 0
    mod_done[$name]=1
    local rel=${mod_path[$name]:-}
    if [ -z "$rel" ]; then
      if builtin_mod "$name"; then
        echo "mkinitramfs: module $name is built into the kernel; nothing to load" >&2; return 0
      fi
      die "module '$1' not found under $mdir; fix: check the name (modules are named like kernel/.../<name>.ko.xz)"
    fi
    local dst=/usr/lib/modules/$kver/${rel%.xz} deps d
    dst=${dst%.zst}; dst=${dst%.gz}
    mkdir -p "$stage$(dirname "$dst")"
    # busybox insmod cannot read compressed modules.
    case $rel in
      *.xz) xz -dc "$mdir/$rel" >"$stage$dst" ;;
      *.zst) zstd -qdc "$mdir/$rel" >"$stage$dst" ;;
      *.gz) gzip -dc "$mdir/$rel" >"$stage$dst" ;;
      *) cp "$mdir/$rel" "$stage$dst" ;;
    esac
    if [ -n "${mod_deps[$name]+x}" ]; then
      deps=${mod_deps[$name]}
    else
      deps=$(tr '\0' '\n' <"$stage$dst" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' ')
    fi
    for d in $deps; do resolve "$d"; done
    load_order+=("$dst")
  }
  for m in "${modules[@]}"; do resolve "$m"; done
  printf '%s\n' "${load_order[@]}" >"$stage/etc/modules.list"
fi

cp "$guest" "$stage/guest.sh"
chmod 755 "$stage/guest.sh"

cat >"$stage/init" <<'INIT'
#!/bin/busybox sh
# PID 1 must never exit (the kernel panics), so no `set -e` here and every step tolerates failure.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=linux
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The kernel opened the console before /dev existed in this cpio; reopen it via devtmpfs.
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
# Optional kernel features: a missing one only matters to scripts that need it.
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null
hostname zernel-vm

while read -r mod; do
  [ -n "$mod" ] || continue
  insmod "$mod" || echo "init: insmod $mod failed"
done </etc/modules.list

read -r up _ </proc/uptime
echo "zernel-vm: init up at ${up}s, running /guest.sh"
cd /
sh /guest.sh </dev/null
rc=$?
# Leading newline: the marker must start a line even if the script left a partial one.
printf '\nZERNEL-VM-EXIT rc=%d\n' "$rc"
poweroff -f
# Only reached if poweroff failed; sysrq 'o' is the kernel's own power-off.
echo o >/proc/sysrq-trigger
while :; do sleep 3600; done
INIT
chmod 755 "$stage/init"

mkdir -p "$(dirname "$out")"
# Sorted names and root ownership keep the archive independent of the build user. gzip -1:
# the guest inflates any level at the same speed, and -6 costs ~2 s more per build for ~15%.
( cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) \
  | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"

end_ns=$(date +%s%N)
size=$(stat -c %s "$out")
printf 'mkinitramfs: %s: %d KiB (%d KiB unpacked), built in %d.%01d s\n' "$out" \
  $((size / 1024)) "$(du -sk "$stage" | cut -f1)" \
  $(((end_ns - start_ns) / 1000000000)) $(((end_ns - start_ns) / 100000000 % 10)) >&2
