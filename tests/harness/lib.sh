# shellcheck shell=bash
# Shared helpers for the harness tests. ctest treats exit 77 as SKIP (SKIP_RETURN_CODE 77).
readonly SKIP=77
t_name=${0##*/}
t_name=${t_name%.sh}
log() { printf '%s: %s\n' "$t_name" "$*"; }
fail() {
	log "FAIL: $*"
	exit 1
}
skip() {
	log "SKIP: $*"
	exit "$SKIP"
}

# vm tests boot guests through the harness. They skip (not fail) when the machine lacks the guest
# prerequisites, unless PINRING_REQUIRE_VM=1; and they never nest a TCG guest inside a guest.
vm_preflight() { # HARNESS
	local harness=$1 out
	[[ ${PINRING_IN_GUEST:-0} != 1 ]] || skip "already inside a pinring-rxe guest; vm tests run on the host"
	[[ -x $harness ]] || fail "harness $harness is not executable"
	if ! out=$("$harness" check 2>&1); then
		printf '%s\n' "$out"
		[[ ${PINRING_REQUIRE_VM:-0} == 1 ]] && fail "guest prerequisites missing (PINRING_REQUIRE_VM=1)"
		skip "guest prerequisites missing: ${out##*error: }"
	fi
	# A private TMPDIR for the harness: its run dirs (and so its QEMU command lines) carry this path, which
	# lets the test prove that none of *its* QEMU processes outlived the run even when others run QEMU too.
	T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pinring-vmtest.XXXXXX")
	trap 'rm -rf "$T_TMP"' EXIT
}

assert_no_leftover_qemu() {
	sleep 0.5
	if pgrep -f -- "qemu.*$T_TMP" >/dev/null; then
		pgrep -a -f -- "qemu.*$T_TMP"
		fail "QEMU processes left behind"
	fi
}
