#!/usr/bin/env bash
# The example client against a real ringd process over the rdma transport (ringd --rdma_port).
# Usage: rdma_client_with_ringd.sh RINGD RDMA_CLIENT
# SKIP (77) without an RDMA device, unless PINRING_REQUIRE_DEVICE=1 (the harness), where it fails.
set -euo pipefail
ringd=$1
client=$2
if ! ls /sys/class/infiniband/ 2>/dev/null | grep -q .; then
	if [[ ${PINRING_REQUIRE_DEVICE:-0} == 1 ]]; then
		echo "FAIL: PINRING_REQUIRE_DEVICE=1 but no RDMA device" >&2
		exit 1
	fi
	echo "SKIP: no RDMA device; run through deploy/softroce/pinring-rxe run -- ..." >&2
	exit 77
fi
addr=${PINRING_SELF_ADDR:-}
if [[ -z $addr ]]; then
	echo "SKIP: PINRING_SELF_ADDR unset (the harness sets it to the rxe interface's address)" >&2
	exit 77
fi
dir=$(mktemp -d)
port=$((18600 + RANDOM % 200))
"$ringd" --socket="$dir/ringd.sock" --socket_group= --backend=cpu --rdma_port="$port" \
	>"$dir/ringd.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; cat "$dir/ringd.log" >&2; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
	grep -q "rdma transport listening" "$dir/ringd.log" && break
	grep -q "rdma transport disabled" "$dir/ringd.log" && { echo "FAIL: ringd could not start rdma" >&2; exit 1; }
	sleep 0.1
done
timeout 240 "$client" --address="$addr" --port="$port" --size=262144 --rounds=2 --wait=sleep
timeout 240 "$client" --address="$addr" --port="$port" --size=65536 --rounds=2 --fork_mode=readonly
