#!/usr/bin/env bash
# shellcheck disable=SC2016 # the single-quoted commands expand their variables inside the guest
# vm_two_guests: two guests joined by a QEMU socket netdev; ib_write_lat server on guest a, client on b.
# Usage: vm_two_guests.sh HARNESS
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
harness=$1
vm_preflight "$harness"
cd /

# Under emulation the link costs milliseconds per message: few iterations, generous timeouts. Both
# commands start together (the harness's barrier), so the client only retries while the server starts.
server='echo "a: self=$PINRING_SELF_ADDR peer=$PINRING_PEER_ADDR"
timeout 200 ib_write_lat -d "$PINRING_RXE_DEVICE" -x 1 -n 100 -p 18515'
client='echo "b: self=$PINRING_SELF_ADDR peer=$PINRING_PEER_ADDR"
for i in $(seq 30); do
	timeout 200 ib_write_lat -d "$PINRING_RXE_DEVICE" -x 1 -n 100 -p 18515 "$PINRING_PEER_ADDR" && exit 0
	sleep 1
done
exit 1'
out=$T_TMP/out
rc=0
TMPDIR=$T_TMP "$harness" run2 --timeout 600 --a "$server" --b "$client" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
[[ $rc == 0 ]] || fail "run2 exited $rc"
grep -q '^\[a\] a: self=10.0.0.1 peer=10.0.0.2' "$out" || fail "guest a addresses wrong"
grep -q '^\[b\] b: self=10.0.0.2 peer=10.0.0.1' "$out" || fail "guest b addresses wrong"
# The result row: bytes, iterations, then numbers; the client must report real (finite) latencies.
grep -Eq '^\[b\] +2 +100 +[0-9.]+ ' "$out" || fail "no latency results from the client"
assert_no_leftover_qemu
log "PASS"
