#!/usr/bin/env bash
# deploy.socket_activation (unit): ringd started the way ringd.socket starts it, on the host, with
# systemd-socket-activate (the listening socket passed as fd 3, LISTEN_FDS=1; blocking, as systemd
# passes it). Two clients in a row must be served, and SIGTERM must stop ringd cleanly. The full
# systemd path (ringd.socket, activation on connect, in a guest) is deploy.systemd_e2e step 8.
#
#   socket_activation_test.sh RINGD RINGCTL
set -uo pipefail
RINGD=$1 RINGCTL=$2
command -v systemd-socket-activate >/dev/null || { echo "SKIP: systemd-socket-activate not installed"; exit 77; }
DIR=$(mktemp -d /tmp/pinring-sockact-XXXXXX)
SOCK=$DIR/ringd.sock
LOG=$DIR/ringd.log
cleanup() { [[ -n ${PID:-} ]] && kill -KILL "$PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; sed 's/^/    ringd: /' "$LOG"; exit 1; }

# --socket names another path on purpose: an activated ringd must ignore it and use fd 3.
systemd-socket-activate --seqpacket -l "$SOCK" "$RINGD" --backend=cpu --socket="$DIR/unused.sock" \
	>"$LOG" 2>&1 &
PID=$!
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.1; done
[[ -S $SOCK ]] || fail "systemd-socket-activate did not create $SOCK"

for n in 1 2; do
	out=$(timeout 30 "$RINGCTL" --socket="$SOCK" status 2>&1) || fail "client $n got no answer from the activated ringd: $out"
	grep -q "clients_accepted:[[:space:]]*$n" <<<"$out" || fail "client $n: unexpected status: $out"
	echo "PASS: client $n served over the passed socket"
done
grep -q "using the socket passed by systemd" "$LOG" || fail "ringd did not say it took the passed socket"
[[ ! -e $DIR/unused.sock ]] || fail "ringd bound --socket although systemd passed one"

kill -TERM "$PID"
rc=124
for _ in $(seq 100); do
	if ! kill -0 "$PID" 2>/dev/null; then
		wait "$PID"
		rc=$?
		break
	fi
	sleep 0.1
done
((rc == 0)) || fail "SIGTERM: ringd exit status $rc (124: still running after 10 s)"
PID=
echo "PASS: SIGTERM stopped the activated ringd cleanly"
