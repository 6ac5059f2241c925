#!/usr/bin/env bash
# Installs every Debian 12 package that pinring's build, tests, soft-RoCE harness, examples and
# benchmarks need. Idempotent: when everything is present it only runs `dpkg-query` and exits (< 1 s).
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config ninja-build git
  # RDMA userspace
  rdma-core libibverbs-dev librdmacm-dev ibverbs-providers ibverbs-utils rdmacm-utils perftest
  # libraries
  liburing-dev libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev libsystemd-dev nlohmann-json3-dev
  # soft-RoCE guest harness
  qemu-system-x86 linux-image-amd64 busybox-static iproute2 kmod
  # tools used by tests, deploy and reports
  systemd python3 gnuplot-nox procps util-linux dpkg-dev file shellcheck
  # the Debian packages (debian/, scripts/build-debs.sh)
  debhelper lintian pkgconf
  # clang for -Wthread-safety, TSan and libFuzzer (scripts/fuzz.sh); llvm for llvm-cov
  clang libfuzzer-14-dev llvm
)

missing=()
for p in "${PACKAGES[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
