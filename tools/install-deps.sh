#!/usr/bin/env bash
# Installs what zernel-scheduler needs to build, test and run on Debian 12 (bookworm).
# Everything comes from bookworm or bookworm-backports: the trixie-backports builds of
# libelf, linux-perf and friends need trixie's glibc. The test kernel itself is fetched
# separately by tests/vm/fetch-kernel.sh with a private apt state, so the system's apt
# sources gain only bookworm-backports.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: must run as root (apt-get install); fix: sudo $0" >&2
  exit 1
fi

list=/etc/apt/sources.list.d/zernel-bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$list"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates zstd xz-utils cpio procps util-linux \
  clang-19 llvm-19 g++-aarch64-linux-gnu \
  libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev liburing-dev libcli11-dev zlib1g-dev \
  qemu-system-x86 busybox-static stress-ng rt-tests libbpf-tools gnuplot-nox \
  python3 python3-prometheus-client
apt-get install -y -qq --no-install-recommends -t bookworm-backports \
  libbpf-dev bpftool libelf-dev linux-perf
