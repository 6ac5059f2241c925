#!/usr/bin/env bash
# shellcheck disable=SC2016 # the single-quoted commands expand their variables inside the guest
# vm_rdma_remote: remote data movement between two hosts. Two soft-RoCE guests (pinring-rxe run2),
# each with its own ringd (rdma transport). A client on guest b (10.0.0.2) exports a region; a
# client on guest a (10.0.0.1) REMOTE_WRITEs a known pattern into it through a's ringd, which
# forwards it to b's ringd over a ringd-to-ringd RC connection; the client on b verifies the bytes
# (its own view and ringd's CHECKSUM); a reads it back (REMOTE_READ); b revokes the grant and a's
# next REMOTE_WRITE completes unknown-region. Rendezvous: files in a shared --rw directory.
# Usage: vm_rdma_remote.sh HARNESS RINGD PEER_HELPER WORKDIR BUILDDIR (shared with the guests)
# SKIP (77) when the guest prerequisites are missing, unless PINRING_REQUIRE_VM=1 (then FAIL).
set -euo pipefail
# shellcheck source=../harness/lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/../harness/lib.sh"
harness=$1
ringd=$2
helper=$3
work=$4
build=$5
vm_preflight "$harness"
[[ -x $ringd && -x $helper ]] || fail "missing binaries $ringd $helper"
rm -rf "$work"
mkdir -p "$work"
cd "$work"

# Per guest: start ringd on the default rdma port, wait for its listener, run one side.
side='role=$1
run=$(mktemp -d)
"'"$ringd"'" --socket="$run/ringd.sock" --socket_group= --backend=cpu --rdma_port=18515 \
	>"$run/ringd.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
	grep -q "rdma transport listening" "$run/ringd.log" && break
	grep -q "rdma transport disabled" "$run/ringd.log" && break
	sleep 0.2
done
rc=0
timeout 450 "'"$helper"'" "$role" "$PINRING_SELF_ADDR" 18515 "'"$work"'" || rc=$?
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
sed "s/^/ringd($role): /" "$run/ringd.log"
exit "$rc"'
out=$T_TMP/out
rc=0
TMPDIR=$T_TMP "$harness" run2 --timeout 540 --rw "$build" \
	--a "bash -c '$side' side writer" --b "bash -c '$side' side owner" 2>&1 | tee "$out" ||
	rc=${PIPESTATUS[0]}
[[ $rc == 0 ]] || fail "run2 exited $rc"
grep -q '^\[a\] PASS writer' "$out" || fail "the writer on guest a did not pass"
grep -q '^\[b\] PASS owner' "$out" || fail "the owner on guest b did not pass"
grep -q 'peer link to 10.0.0.2:18515 up' "$out" || fail "a's ringd did not forward to b's"
assert_no_leftover_qemu
log "PASS"
