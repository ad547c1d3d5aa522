#!/usr/bin/env bash
# Boots the sched_ext-capable Debian kernel (fetch-kernel.sh) under QEMU/TCG with a throwaway
# initramfs (mkinitramfs.sh), runs one guest shell script as the only workload, and turns the
# outcome into an exit code. The console is streamed live to stdout and saved to a log.
#
# Usage: run-vm.sh [options] -- GUEST_SCRIPT
#   --cpus N            vCPUs (default 2)
#   --mem MB            guest RAM (default 2048)
#   --numa-nodes N      NUMA nodes (default 1); CPUs and memory are split evenly, one socket
#                       per node, so --cpus must be a multiple of N
#   --timeout SECONDS   wall-clock limit from QEMU start to the exit marker (default 600)
#   --boot-timeout S    limit from QEMU start to the guest's init (default 120); a boot that
#                       misses it is retried once, since none of the guest script has run
#   --tcg single|multi  TCG threading (default single; multi = one host thread per vCPU)
#   --bin PATH[:DEST]   extra host binary (with its libraries) for the guest, at the same
#                       path or at DEST (repeatable)
#   --file SRC:DEST     extra host file/dir for the guest (repeatable)
#   --module NAME       kernel module loaded before the script (repeatable)
#   --log FILE          console log (default: a new /tmp/zernel-vm-*.log, kept and printed)
#   --kernel-dir DIR    kernel from fetch-kernel.sh (default: run fetch-kernel.sh)
#   --append "ARGS"     extra kernel command line
#   --share DIR         host directory the guest can mount read-write over virtio 9p:
#                       mount -t 9p -o trans=virtio,version=9p2000.L share /mnt
#                       (loads the 9p modules), for files too large for the console
#
# Exit codes:
#   0  guest script exited 0
#   1  guest script exited non-zero (its rc is printed)
#   2  guest died: kernel panic, Oops or BUG: on the console, no ZERNEL-VM-EXIT marker before
#      QEMU exited or the timeout hit, or two boots in a row without init; prints
#      "VM DIED: <reason>" with the console line
#   3  harness error (missing kernel/tools, bad options, QEMU refused to start, interrupted);
#      prints a one-line fix
#
# A kernel problem wins over the script's rc: a script that "passes" on a kernel that logged
# BUG: has not shown that the scheduler is sound.
set -euo pipefail
shopt -s extglob

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

harness_error() { echo "run-vm: $*" >&2; exit 3; }
# Any unexpected command failure is the harness's fault, never the guest's; without this,
# set -e would exit 1 and read as "guest script failed".
trap 'echo "run-vm: internal error at line $LINENO: $BASH_COMMAND" >&2; exit 3' ERR

usage="usage: $0 [--cpus N] [--mem MB] [--numa-nodes N] [--timeout S] [--boot-timeout S] [--tcg single|multi] [--bin PATH]... [--file SRC:DEST]... [--module NAME]... [--log FILE] [--kernel-dir DIR] [--append ARGS] [--share DIR] -- GUEST_SCRIPT"

cpus=2 mem=2048 numa=1 timeout=600 boot_timeout=120 tcg=single log='' kdir='' append='' guest='' share=''
mkargs=()
need() { [ "$2" -ge 2 ] || harness_error "$1 needs a value; $usage"; }
int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || harness_error "$1 '$2' is not a positive integer; fix: pass e.g. $1 2"; }
while [ $# -gt 0 ]; do
  case $1 in
    --cpus) need "$1" $#; int "$1" "$2"; cpus=$2; shift 2 ;;
    --mem) need "$1" $#; int "$1" "$2"; mem=$2; shift 2 ;;
    --numa-nodes) need "$1" $#; int "$1" "$2"; numa=$2; shift 2 ;;
    --timeout) need "$1" $#; int "$1" "$2"; timeout=$2; shift 2 ;;
    --boot-timeout) need "$1" $#; int "$1" "$2"; boot_timeout=$2; shift 2 ;;
    --tcg) need "$1" $#; tcg=$2; shift 2
           [[ $tcg = single || $tcg = multi ]] || harness_error "--tcg '$tcg' unknown; fix: use --tcg single or --tcg multi" ;;
    --bin|--file|--module) need "$1" $#; mkargs+=("$1" "$2"); shift 2 ;;
    --log) need "$1" $#; log=$2; shift 2 ;;
    --kernel-dir) need "$1" $#; kdir=$2; shift 2 ;;
    --append) need "$1" $#; append=$2; shift 2 ;;
    --share) need "$1" $#; share=$2; shift 2
             [ -d "$share" ] || harness_error "--share '$share' is not a directory; fix: mkdir it first"
             mkargs+=(--module 9pnet_virtio --module 9p) ;;
    --) shift; [ $# -eq 1 ] || harness_error "expected exactly one GUEST_SCRIPT after --; $usage"; guest=$1; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) harness_error "unknown option '$1'; $usage" ;;
    *) [ -z "$guest" ] && [ $# -eq 1 ] || harness_error "unexpected argument '$1'; $usage"; guest=$1; shift ;;
  esac
done
[ -n "$guest" ] || harness_error "no GUEST_SCRIPT given; $usage"
[ -f "$guest" ] || harness_error "guest script '$guest' not found; fix: pass the path of an existing shell script"
if [ "$numa" -gt 1 ]; then
  [ $((cpus % numa)) -eq 0 ] || harness_error "--cpus $cpus does not split evenly over --numa-nodes $numa; fix: use a multiple of $numa"
  [ $((mem % numa)) -eq 0 ] || harness_error "--mem $mem does not split evenly over --numa-nodes $numa; fix: use a multiple of $numa"
fi
command -v qemu-system-x86_64 >/dev/null || harness_error "qemu-system-x86_64 not found; fix: apt-get install qemu-system-x86"

if [ -z "$kdir" ]; then
  kdir=$("$here/fetch-kernel.sh") || harness_error "fetch-kernel.sh failed; fix: run tests/vm/fetch-kernel.sh and read its message, or pass --kernel-dir"
fi
[ -f "$kdir/vmlinuz" ] || harness_error "no vmlinuz in '$kdir'; fix: run tests/vm/fetch-kernel.sh or pass --kernel-dir DIR holding vmlinuz"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/zernel-vm.XXXXXX")
qpid=
cleanup() {
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill -KILL "$qpid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "run-vm: interrupted" >&2; exit 3' INT TERM HUP

if [ -z "$log" ]; then
  log=$(mktemp "${TMPDIR:-/tmp}/zernel-vm-XXXXXX.log")
fi
: >"$log" 2>/dev/null || harness_error "cannot write log '$log'; fix: pass a writable --log FILE"

if ! "$here/mkinitramfs.sh" "$tmp/initramfs.cpio.gz" "$guest" --kernel-dir "$kdir" \
     ${mkargs[@]+"${mkargs[@]}"} 2>"$tmp/mkinitramfs.err"; then
  harness_error "initramfs build failed: $(tail -n1 "$tmp/mkinitramfs.err")"
fi
cat "$tmp/mkinitramfs.err" >&2

# printk.time=1 is what tells kernel lines apart from guest output that happens to say "BUG:".
cmdline="console=ttyS0 panic=-1 oops=panic quiet loglevel=4 printk.time=1${append:+ $append}"
qargs=(-accel "tcg,thread=$tcg" -cpu max -m "$mem" -nographic -no-reboot -nic none
       -kernel "$kdir/vmlinuz" -initrd "$tmp/initramfs.cpio.gz" -append "$cmdline")
if [ -n "$share" ]; then
  qargs+=(-virtfs "local,path=$share,mount_tag=share,security_model=none,multidevs=remap")
fi
if [ "$numa" -gt 1 ]; then
  # One socket per node: a node boundary inside a socket makes the kernel warn about
  # LLC siblings on different nodes and build odd sched domains.
  per_cpu=$((cpus / numa)) per_mem=$((mem / numa))
  qargs+=(-smp "$cpus,sockets=$numa,cores=$per_cpu,threads=1")
  for ((n = 0; n < numa; n++)); do
    qargs+=(-object "memory-backend-ram,id=mem$n,size=${per_mem}M"
            -numa "node,nodeid=$n,cpus=$((n * per_cpu))-$(((n + 1) * per_cpu - 1)),memdev=mem$n")
  done
else
  qargs+=(-smp "$cpus")
fi

echo "run-vm: kernel $(cat "$kdir/version" 2>/dev/null || echo "$kdir"), $cpus vCPU, ${mem} MiB, $numa node(s), tcg $tcg, timeout ${timeout}s, log $log" >&2

# One boot: start QEMU and watch its console until the exit marker, a kernel death, the
# timeout, EOF, or (boot_hung) no init within boot_timeout. Sets the globals read below.
boot() {
  rm -f "$tmp/console"; mkfifo "$tmp/console"
  t0=$EPOCHREALTIME
  # stdin from /dev/null: -nographic would otherwise put the caller's terminal in raw mode.
  qemu-system-x86_64 "${qargs[@]}" </dev/null >"$tmp/console" 2>&1 &
  qpid=$!
  deadline=$((SECONDS + timeout)) boot_deadline=$((SECONDS + boot_timeout))
  marker_rc='' fatal='' timed_out='' init_at='' marker_at='' last_line='' saw_kernel='' eof='' boot_hung=''
  exec 4>>"$log"
  while :; do
    left=$((deadline - SECONDS))
    if [ -z "$init_at$fatal" ] && [ $((boot_deadline - SECONDS)) -lt "$left" ]; then
      left=$((boot_deadline - SECONDS))
      if [ "$left" -le 0 ]; then boot_hung=1; break; fi
    fi
    if [ "$left" -le 0 ]; then
      [ -n "$marker_rc$fatal" ] || timed_out=1
      break
    fi
    if IFS= read -r -t "$left" line; then :; else
      st=$?
      # >128: read timed out (loop re-checks the deadlines); otherwise EOF, QEMU is gone.
      if [ "$st" -gt 128 ]; then continue; fi
      [ -n "$line" ] || break
      eof=1
    fi
    line=${line%$'\r'}
    # SeaBIOS sends terminal resets and clear-screen; do not wipe the watcher's terminal.
    if [[ $line == *$'\e'* ]]; then line=${line//$'\e'\[*([0-9;?])[A-Za-z]/}; line=${line//$'\e'c/}; fi
    printf '%s\n' "$line"
    printf '%s\n' "$line" >&4
    if [ -n "$line" ]; then last_line=$line; fi
    if [[ $line =~ $kernel_re ]]; then saw_kernel=1; fi
    if [ -z "$fatal" ] && [[ $line =~ $fatal_re ]]; then
      fatal=$line
      # Keep reading a little for the backtrace; a BUG: that does not panic may leave the
      # guest wedged, so do not wait for the full timeout.
      if ((SECONDS + 15 < deadline)); then deadline=$((SECONDS + 15)); fi
    fi
    if [ -z "$init_at" ] && [[ $line == "zernel-vm: init up at "* ]]; then init_at=$(elapsed "$t0"); fi
    if [ -z "$marker_rc" ] && [[ $line =~ ^ZERNEL-VM-EXIT\ rc=([0-9]+)$ ]]; then
      marker_rc=${BASH_REMATCH[1]}
      marker_at=$(elapsed "$t0")
      # Power-off should follow at once; do not let a stuck shutdown eat the timeout.
      if ((SECONDS + 20 < deadline)); then deadline=$((SECONDS + 20)); fi
    fi
    [ -z "$eof" ] || break
  done <"$tmp/console"
  exec 4>&-

  # A kill that fails found QEMU gone already (it exited after the check): nothing to stop.
  # Its exit status is not lost: wait reads it into qemu_rc.
  if kill -0 "$qpid" 2>/dev/null; then
    kill -TERM "$qpid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$qpid" 2>/dev/null || true
  fi
  qemu_rc=0
  wait "$qpid" || qemu_rc=$?
  qpid=
}

elapsed() { local now=$EPOCHREALTIME; awk -v a="$1" -v b="$now" 'BEGIN { printf "%.1f", b - a }'; }
kernel_re='\[ *[0-9]+\.[0-9]+\] '
fatal_re="${kernel_re}.*(Kernel panic - not syncing|BUG:|Oops:)"
# A boot that never reaches init (seen: QEMU silent after "Booting from ROM..." for the
# whole timeout, a few times in hundreds of boots) ran nothing of the guest's, so it
# proves nothing either way: boot once more instead of failing, and only once.
for attempt in 1 2; do
  boot
  [ -n "$boot_hung" ] && [ "$attempt" = 1 ] || break
  echo "run-vm: no init after ${boot_timeout}s (last console line: ${last_line:-<none>}); the guest script never ran, booting again" >&2
done
total=$(elapsed "$t0")

echo "run-vm: timings: QEMU start -> init ${init_at:-?}s, -> exit marker ${marker_at:-?}s, total ${total}s (log $log)" >&2

if [ -n "$fatal" ]; then
  case $fatal in
    *"Kernel panic"*) why="kernel panic" ;;
    *BUG:*) why="kernel BUG" ;;
    *) why="kernel Oops" ;;
  esac
  echo "VM DIED: $why: $fatal" >&2
  exit 2
fi
if [ -n "$marker_rc" ]; then
  if [ "$marker_rc" -eq 0 ]; then echo "run-vm: guest script passed (rc=0)" >&2; exit 0; fi
  echo "run-vm: guest script failed (rc=$marker_rc)" >&2
  exit 1
fi
if [ -n "$boot_hung" ]; then
  echo "VM DIED: no init after ${boot_timeout}s, twice; last console line: ${last_line:-<none>}" >&2
  exit 2
fi
if [ -n "$timed_out" ]; then
  echo "VM DIED: timeout after ${timeout}s without ZERNEL-VM-EXIT marker; last console line: ${last_line:-<none>}" >&2
  exit 2
fi
if [ "$qemu_rc" -ne 0 ] && [ -z "$saw_kernel" ]; then
  harness_error "QEMU failed to start (status $qemu_rc): ${last_line:-no output}; fix: check the QEMU options above (--cpus/--mem/--numa-nodes/--append)"
fi
echo "VM DIED: QEMU exited (status $qemu_rc) without ZERNEL-VM-EXIT marker; last console line: ${last_line:-<none>}" >&2
exit 2
