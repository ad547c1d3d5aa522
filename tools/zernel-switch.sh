#!/usr/bin/env bash
# zernel-switch.sh: move this machine from the sched_ext scheduler it runs (or EEVDF) to
# another, and say how long it ran on EEVDF in between.
#
#   zernel-switch.sh eevdf                      stop the sched_ext scheduler
#   zernel-switch.sh zernel [ARGS...]           start zernel-scheduler ARGS
#   zernel-switch.sh exec BINARY [ARGS...]      start any sched_ext scheduler (scx_lavd, ...)
#
# sched_ext attaches one scheduler at a time and the kernel runs everything on EEVDF while
# none is attached, so a switch is: stop the old one (SIGINT, the convention every
# sched_ext scheduler follows to detach), wait until the kernel reports "disabled", start
# the new one, wait for "enabled". EEVDF is the floor: if the new one does not attach,
# it is stopped and the machine stays on EEVDF; nothing here can leave a half-attached
# scheduler behind, and SysRq-S (the kernel's own "back to EEVDF") is the last resort.
#
# The old scheduler's process: the one this script started ($ZERNEL_RUN_DIR/started.pid), or
# for zernel the pidfile $ZERNEL_RUN_DIR/scheduler.pid if it
# names a live zernel-scheduler; else pgrep -x of the name in root/ops (and scx_<name>);
# else any process whose executable has that name.
#
# Environment, for tests and unusual installs:
#   ZERNEL_BIN              zernel-scheduler binary (default: from PATH, else /usr/local/bin)
#   ZERNEL_SCX_DIR          sched_ext sysfs directory (/sys/kernel/sched_ext)
#   ZERNEL_RUN_DIR          pidfile, logs and lock (/run/zernel)
#   ZERNEL_SYSRQ            the SysRq trigger (/proc/sysrq-trigger)
#   ZERNEL_STOP_TIMEOUT_MS  wait this long for each stop step (5000)
#   ZERNEL_START_TIMEOUT_MS wait this long for the new scheduler to attach (10000)
set -uo pipefail

SCX=${ZERNEL_SCX_DIR:-/sys/kernel/sched_ext}
RUN=${ZERNEL_RUN_DIR:-/run/zernel}
SYSRQ=${ZERNEL_SYSRQ:-/proc/sysrq-trigger}
STOP_MS=${ZERNEL_STOP_TIMEOUT_MS:-5000}
START_MS=${ZERNEL_START_TIMEOUT_MS:-10000}
PIDFILE=$RUN/scheduler.pid
# Any scheduler this script started: "<pid> <ops name>", so it can be found again even
# when its binary is not named after its ops (zernel-tiny loads zernel_tiny).
STARTED=$RUN/started.pid
USAGE="zernel-switch.sh eevdf | zernel [ARGS...] | exec BINARY [ARGS...]"

die() { echo "zernel-switch: $*" >&2; exit 1; }
usage() { echo "zernel-switch: $*; fix: $USAGE" >&2; exit 2; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
state() { local s=; read -r s <"$SCX/state" 2>/dev/null; echo "$s"; }
ops() { local s=; read -r s <"$SCX/root/ops" 2>/dev/null; echo "$s"; }
# A zombie has already detached (the kernel drops the scheduler when its files close).
alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(sed 's/^[0-9]* (.*) \(.\) .*/\1/' "/proc/$1/stat" 2>/dev/null)
  [ "$st" != Z ]
}

# wait_state WANT MS [PID]: poll until the kernel's state is WANT; sets $seen_ms to when
# it was first seen. With PID, also give up early when that process has exited.
seen_ms=0
wait_state() {
  local want=$1 until=$(($(now_ms) + $2)) pid=${3:-}
  while :; do
    if [ "$(state)" = "$want" ]; then seen_ms=$(now_ms); return 0; fi
    [ -n "$pid" ] && ! alive "$pid" && return 1
    [ "$(now_ms)" -ge "$until" ] && return 1
    sleep 0.01
  done
}

# Leaving "enabled" is when the machine falls back to EEVDF: record it as the gap's start.
off_ms=0
wait_disabled() {  # wait_disabled MS
  local until=$(($(now_ms) + $1)) s
  while :; do
    s=$(state)
    if [ "$s" != enabled ] && [ "$off_ms" -eq 0 ]; then off_ms=$(now_ms); fi
    [ "$s" = disabled ] && return 0
    [ "$(now_ms)" -ge "$until" ] && return 1
    sleep 0.01
  done
}

exe_name() { local e; e=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1; e=${e##*/}; echo "${e% (deleted)}"; }

# find_pid OPS: sets $pid to the process of the loaded scheduler and $found_by to how it
# was found (globals, not output: a $(...) subshell would lose $found_by).
found_by=
find_pid() {
  local name=$1 cand names d
  names=("$name" "scx_$name")
  [ "$name" = zernel ] && names=(zernel-scheduler "${names[@]}")
  if [ -r "$STARTED" ]; then
    local sname=
    read -r pid sname <"$STARTED"
    if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$sname" = "$name" ] && alive "$pid"; then
      found_by="$STARTED"; return 0
    fi
  fi
  if [ "$name" = zernel ] && [ -r "$PIDFILE" ]; then
    read -r pid <"$PIDFILE"
    if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" && [ "$(exe_name "$pid")" = zernel-scheduler ]; then
      found_by="pidfile $PIDFILE"; return 0
    fi
  fi
  for cand in "${names[@]}"; do
    # comm is 15 characters: zernel-scheduler is "zernel-schedule" to pgrep -x.
    for pid in $(pgrep -x "${cand:0:15}"); do
      alive "$pid" && { found_by="pgrep -x ${cand:0:15}"; return 0; }
    done
  done
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    for cand in "${names[@]}"; do
      [ "$(exe_name "$pid")" = "$cand" ] && alive "$pid" && { found_by="/proc/$pid/exe"; return 0; }
    done
  done
  return 1
}

# stop_pid PID NAME: SIGINT, then SIGKILL, then SysRq-S, until sched_ext is disabled.
stop_pid() {
  local pid=$1 name=$2 unit_pid
  # Under systemd, stop the unit: a SIGKILL from outside would count as a failure and
  # Restart=on-failure would bring it back on top of the new scheduler.
  unit_pid=$(systemctl show -p MainPID --value zernel-scheduler.service 2>/dev/null)
  if [ -n "$unit_pid" ] && [ "$unit_pid" = "$pid" ]; then
    systemctl stop --no-block zernel-scheduler.service
  else
    kill -INT "$pid" 2>/dev/null
  fi
  wait_disabled "$STOP_MS" && return 0
  echo "zernel-switch: $name (pid $pid) did not detach within $STOP_MS ms of SIGINT; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null
  wait_disabled "$STOP_MS" && return 0
  echo "zernel-switch: sched_ext is still $(state) after SIGKILL; SysRq-S returns every task to EEVDF" >&2
  echo S >"$SYSRQ" 2>/dev/null
  wait_disabled "$STOP_MS" && return 0
  die "sched_ext is still $(state) after SIGINT, SIGKILL and SysRq-S to $name (pid $pid); fix: check dmesg for sched_ext errors; a reboot returns the machine to EEVDF"
}

# --- Arguments, checked before anything is stopped.
[ $# -ge 1 ] || usage "no target given"
target=$1; shift
case "$target" in
  eevdf)
    [ $# -eq 0 ] || usage "eevdf takes no arguments"
    new=eevdf ;;
  zernel)
    bin=${ZERNEL_BIN:-$(command -v zernel-scheduler || echo /usr/local/bin/zernel-scheduler)}
    [ -x "$bin" ] || die "zernel-scheduler not found at $bin; fix: install it (cmake --install build) or set ZERNEL_BIN"
    new=zernel ;;
  exec)
    [ $# -ge 1 ] || usage "exec needs a scheduler binary"
    bin=$(command -v "$1") || die "scheduler binary '$1' not found; fix: give its path, e.g. /usr/bin/scx_lavd"
    [ -x "$bin" ] || die "$bin is not executable; fix: chmod +x it, or give the scheduler binary's path"
    shift
    new=${bin##*/} ;;
  -h|--help)
    echo "usage: $USAGE"; exit 0 ;;
  *)
    usage "unknown target '$target'" ;;
esac

[ "$(id -u)" -eq 0 ] || die "must run as root (it stops and starts kernel schedulers); fix: sudo $0 $target ..."
if [ ! -d "$SCX" ]; then
  [ "$new" = eevdf ] && { echo "switch: eevdf -> eevdf: this kernel has no sched_ext"; exit 0; }
  die "this kernel ($(uname -r)) has no sched_ext: $SCX is missing (needs CONFIG_SCHED_CLASS_EXT=y, Linux 6.12+); fix: boot a sched_ext kernel"
fi

mkdir -p -m 0700 "$RUN" || die "cannot create $RUN; fix: check that /run is writable"
exec 9>"$RUN/switch.lock"
flock -n 9 || die "another zernel-switch.sh is switching schedulers; fix: wait for it to finish"

# --- Stop the old one.
s=$(state)
if [ "$s" = enabling ] || [ "$s" = disabling ]; then
  wait_state enabled "$STOP_MS" || wait_state disabled "$STOP_MS"  # let a transition finish
  s=$(state)
fi
old=eevdf old_cmd=
if [ "$s" != disabled ]; then
  old=$(ops); [ -n "$old" ] || old=unknown
  find_pid "$old" ||
    die "sched_ext scheduler '$old' is loaded but its process was not found (no live $PIDFILE, no process named $old or scx_$old); fix: stop it yourself (SIGINT to it), then run zernel-switch.sh again"
  old_cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)
  stop_t0=$(now_ms)
  stop_pid "$pid" "$old"
  stopped_ms=$(($(now_ms) - stop_t0))
  echo "zernel-switch: stopped $old (pid $pid, found by $found_by)"
  if [ -r "$PIDFILE" ] && [ "$(cat "$PIDFILE" 2>/dev/null)" = "$pid" ]; then rm -f "$PIDFILE"; fi
fi

if [ "$new" = eevdf ]; then
  if [ "$old" = eevdf ]; then echo "switch: eevdf -> eevdf: no sched_ext scheduler was running"
  else echo "switch: $old -> eevdf: detached in $stopped_ms ms"; fi
  exit 0
fi

# --- Start the new one, detached from this shell (setsid, nohup) and from our lock (9>&-).
# A script's background jobs start with SIGINT ignored, and that survives exec: env puts
# it back to default, or a scheduler relying on it would never hear the next switch.
log=$RUN/$new.log
start_t0=$(now_ms)
[ "$off_ms" -ne 0 ] || off_ms=$start_t0
nohup setsid env --default-signal=INT,QUIT "$bin" "$@" </dev/null >"$log" 2>&1 9>&- &
new_pid=$!
if ! wait_state enabled "$START_MS" "$new_pid"; then
  why="did not attach within $START_MS ms"
  if ! alive "$new_pid"; then wait "$new_pid"; why="exited with status $? before attaching"; fi
  if alive "$new_pid"; then
    kill -INT "$new_pid" 2>/dev/null
    wait_state disabled "$STOP_MS" "$new_pid" || { kill -KILL "$new_pid" 2>/dev/null; wait_disabled "$STOP_MS"; }
  fi
  last=$(grep -v '^$' "$log" 2>/dev/null | tail -n1)
  back=; [ -n "$old_cmd" ] && back="; to go back: zernel-switch.sh exec ${old_cmd% }"
  die "$new $why (last log line: ${last:-none}); fix: see $log; the machine is on EEVDF (state $(state))$back"
fi
name=$(ops); [ -n "$name" ] || name=$new
echo "$new_pid $name" >"$STARTED"
echo "zernel-switch: started $name (pid $new_pid, log $log)"
if [ "$old" = eevdf ]; then
  echo "switch: eevdf -> $name: attached in $((seen_ms - start_t0)) ms"
else
  echo "switch: $old -> $name: eevdf gap $((seen_ms - off_ms)) ms"
fi
