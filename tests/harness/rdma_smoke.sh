#!/usr/bin/env bash
# rdma_smoke: the rxe (or real) device is up, and a perftest ib_write_lat loopback run completes on it.
# Without a device: SKIP (77), or FAIL when PINRING_REQUIRE_DEVICE=1 (the harness sets it in guests).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

no_device() {
	if [[ ${PINRING_REQUIRE_DEVICE:-0} == 1 ]]; then fail "$1 (PINRING_REQUIRE_DEVICE=1)"; fi
	skip "$1; run under deploy/softroce/pinring-rxe to get a soft-RoCE device"
}

command -v ibv_devinfo >/dev/null || no_device "ibv_devinfo not installed (apt-get install ibverbs-utils)"
dev=${PINRING_RXE_DEVICE:-}
if [[ -z $dev ]]; then
	# ibv_devinfo exits non-zero when the kernel has no RDMA support at all: that, too, is "no device".
	dev=$(ibv_devinfo -l 2>/dev/null | awk 'NR > 1 && NF { print $1; exit }') || true
fi
[[ -n $dev ]] || no_device "no RDMA device found"
info=$(ibv_devinfo -d "$dev" 2>&1) || no_device "ibv_devinfo -d $dev failed: $info"
printf '%s\n' "$info"
grep -q 'state:[[:space:]]*PORT_ACTIVE' <<<"$info" || fail "$dev port is not PORT_ACTIVE"
log "$dev is PORT_ACTIVE"

command -v ib_write_lat >/dev/null || no_device "perftest not installed (apt-get install perftest)"
gid_index=${PINRING_RXE_GID_INDEX:-1}
# The loopback peer address is the device's own IPv4, read back from its IPv4-mapped GID (::ffff:a.b.c.d).
gid=$(cat "/sys/class/infiniband/$dev/ports/1/gids/$gid_index" 2>/dev/null) || fail "no GID $gid_index on $dev"
[[ $gid == 0000:0000:0000:0000:0000:ffff:* ]] || fail "GID $gid_index of $dev is not IPv4-mapped: $gid"
hex=${gid//:/}
hex=${hex: -8}
addr=$((16#${hex:0:2})).$((16#${hex:2:2})).$((16#${hex:4:2})).$((16#${hex:6:2}))
# A random TCP port for perftest's out-of-band exchange so concurrent runs on one host do not collide.
port=$((20000 + RANDOM % 10000))
iters=300
args=(-d "$dev" -x "$gid_index" -n "$iters" -p "$port")
log "ib_write_lat loopback on $dev via $addr, port $port, $iters iterations"

srv_log=$(mktemp)
timeout 90 ib_write_lat "${args[@]}" >"$srv_log" 2>&1 &
srv=$!
trap 'kill "$srv" 2>/dev/null || true; rm -f "$srv_log"' EXIT
ok=0
for _ in $(seq 20); do
	sleep 0.5
	# The server needs a moment to listen; perftest's client fails fast until it does.
	if timeout 90 ib_write_lat "${args[@]}" "$addr"; then
		ok=1
		break
	fi
	kill -0 "$srv" 2>/dev/null || break
done
srv_rc=0
wait "$srv" || srv_rc=$?
log "server side:"
cat "$srv_log"
[[ $ok == 1 ]] || fail "ib_write_lat client did not complete"
[[ $srv_rc == 0 ]] || fail "ib_write_lat server exited $srv_rc"
log "PASS"
