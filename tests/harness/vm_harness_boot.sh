#!/usr/bin/env bash
# vm_harness_boot: one forced guest boot checks the harness contract end to end: the rw share, CMD's exit
# status (7 must come back as 7), the preserved cwd and environment, stdout/stderr separation; then a
# second boot checks that --timeout kills the guest and returns 124. Prints the boot time.
# Usage: vm_harness_boot.sh HARNESS WORKDIR
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
harness=$1 work=$2
vm_preflight "$harness"

rm -rf "$work"
mkdir -p "$work/cwd" "$work/share"
cd "$work/cwd"
out=$T_TMP/stdout err=$T_TMP/stderr
# shellcheck disable=SC2016 # a literal $x: the value must reach the guest unexpanded
export PINRING_VMTEST_VALUE='two words $x ;' GTEST_COLOR=no
export NOT_PINRING_VMTEST_NOT_CARRIED=1
rc=0
start=$(date +%s.%N)
TMPDIR=$T_TMP "$harness" run --guest --timeout 300 --rw "$work/share" -- \
	"$(dirname "$(readlink -f "$0")")/guest_checks.sh" "$work/share" "$work/cwd" >"$out" 2>"$err" || rc=$?
end=$(date +%s.%N)
log "harness stderr:"
sed 's/^/    /' "$err"
log "guest checks:"
sed 's/^/    /' "$work/share/result" 2>/dev/null || fail "no result file in the rw share"
log "boot+run took $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s; $(grep -o 'boot to CMD [0-9.]* s' "$err" || echo 'boot time not reported')"
[[ $rc == 7 ]] || fail "expected exit status 7 from the guest CMD, got $rc"
[[ $(<"$out") == to-stdout ]] || fail "stdout was '$(<"$out")'"
grep -qx to-stderr "$err" || fail "to-stderr missing from stderr"
! grep -q to-stderr "$out" || fail "stderr leaked into stdout"
! grep -q FAIL "$work/share/result" || fail "guest-side checks failed"
[[ $(grep -c '^ok' "$work/share/result") == 8 ]] || fail "not all guest checks ran"
[[ ! -e /etc/pinring-overlay-is-writable ]] || fail "a guest write reached the host root"
assert_no_leftover_qemu

log "timeout path: --timeout 5 around 'sleep 600'"
rc=0
TMPDIR=$T_TMP "$harness" run --guest --timeout 5 -- sleep 600 >"$out" 2>"$err" || rc=$?
sed 's/^/    /' "$err"
[[ $rc == 124 ]] || fail "expected 124 on timeout, got $rc"
grep -q TIMEOUT "$err" || fail "no TIMEOUT message"
assert_no_leftover_qemu
log "PASS"
