#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install, build, start ringd on the backend that
# fits this machine (verbs when an RDMA device exists, else the embedded cpu backend), run the
# example clients and a quick fork evaluation against it, print the results, and leave nothing
# running. Results land in ./out/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${PINRING_BUILD_DIR:-$ROOT/build}
OUT=$ROOT/out
mkdir -p "$OUT"

step() { printf '\n=== %s ===\n' "$*"; }

step "install dependencies"
scripts/install-deps.sh

step "build ($BUILD)"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target pinring_ringd pinring-hello pinring-ring-to-device \
  pinring-c-hello pinring-forkcheck pinring_ringctl

if [[ -n "$(ibv_devinfo -l 2>/dev/null | sed -n '2,$p' | tr -d '[:space:]')" ]]; then
  BACKEND=verbs
else
  BACKEND=cpu
fi

RUNDIR=$(mktemp -d /tmp/pinring-main.XXXXXX)
SOCK=$RUNDIR/ringd.sock
RINGD_PID=
cleanup() {
  # Leave nothing running: stop ringd (SIGTERM = clean shutdown, every MR released) and wait.
  if [[ -n $RINGD_PID ]] && kill -0 "$RINGD_PID" 2>/dev/null; then
    kill -TERM "$RINGD_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$RINGD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$RINGD_PID" 2>/dev/null || true
    wait "$RINGD_PID" 2>/dev/null || true
  fi
  rm -rf "$RUNDIR"
}
trap cleanup EXIT INT TERM

step "start ringd (backend: $BACKEND)"
"$BUILD/service/ringd" --backend="$BACKEND" --socket="$SOCK" >"$OUT/ringd.log" 2>&1 &
RINGD_PID=$!
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.1; done
if [[ ! -S $SOCK ]]; then
  echo "main-job: ringd did not start; its log:" >&2
  cat "$OUT/ringd.log" >&2
  exit 1
fi
echo "ringd pid $RINGD_PID listening on $SOCK"

step "example: hello (NOP, FILL, COPY, CHECKSUM)"
"$BUILD/examples/pinring-hello" --socket="$SOCK"

step "example: ring_to_device (map, register, write slot 0, trigger, device reads)"
"$BUILD/examples/pinring-ring-to-device" --socket="$SOCK"

step "example: C API"
"$BUILD/examples/pinring-c-hello" --socket "$SOCK"

step "ringctl status"
"$BUILD/tools/ringctl/ringctl" --socket="$SOCK" status

step "fork evaluation (quick, this kernel: $(uname -r))"
FORK_BACKENDS=iouring
[[ $BACKEND == verbs ]] && FORK_BACKENDS=iouring,verbs
"$BUILD/tools/forkcheck/pinring-forkcheck" --quick --backends="$FORK_BACKENDS" \
  --json="$OUT/forkcheck-host.json"

step "stop ringd"
kill -TERM "$RINGD_PID"
wait "$RINGD_PID"
echo "ringd exited with status $?"
RINGD_PID=
echo
echo "main-job: done. Outputs in $OUT (ringd.log, forkcheck-host.json)"
