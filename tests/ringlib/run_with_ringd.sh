#!/usr/bin/env bash
# Runs one example client against a private ringd and fails if anything fails.
#   run_with_ringd.sh RINGD EXAMPLE [--backend=cpu|verbs]
# Starts `RINGD --backend=cpu --socket=<tmp>`, waits for the socket, runs `EXAMPLE --socket=<tmp>`,
# then stops ringd (SIGTERM, then SIGKILL) on every exit path and removes the temp dir.
set -euo pipefail
RINGD=$1
EXAMPLE=$2
BACKEND=${3:---backend=cpu}

DIR=$(mktemp -d /tmp/pinring-example.XXXXXX)
SOCK=$DIR/ringd.sock
RINGD_PID=
cleanup() {
  local rc=$?
  if [[ -n $RINGD_PID ]] && kill -0 "$RINGD_PID" 2>/dev/null; then
    kill -TERM "$RINGD_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$RINGD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$RINGD_PID" 2>/dev/null || true
  fi
  [[ -n $RINGD_PID ]] && wait "$RINGD_PID" 2>/dev/null || true
  if [[ $rc -ne 0 && -s $DIR/ringd.log ]]; then
    echo "--- ringd log ---" >&2
    cat "$DIR/ringd.log" >&2
  fi
  rm -rf "$DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$RINGD" "$BACKEND" --socket="$SOCK" >"$DIR/ringd.log" 2>&1 &
RINGD_PID=$!
for _ in $(seq 200); do
  [[ -S $SOCK ]] && break
  kill -0 "$RINGD_PID" 2>/dev/null || { echo "ringd exited before listening" >&2; exit 1; }
  sleep 0.05
done
[[ -S $SOCK ]] || { echo "ringd did not create $SOCK" >&2; exit 1; }

"$EXAMPLE" --help >/dev/null
"$EXAMPLE" --socket="$SOCK"
echo "$(basename "$EXAMPLE"): ok"
