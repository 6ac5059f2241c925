#!/usr/bin/env bash
# Runs INSIDE a pinring-rxe guest for vm_harness_boot. Records one line per check in SHARE/result (an
# rw share, so the host reads it afterwards), writes one line to each of stdout and stderr, and exits 7
# so the host can check exit-status propagation.
# Usage: guest_checks.sh SHARE EXPECTED_CWD
set -uo pipefail
r=$1/result
: >"$r"
check() { # NAME COMMAND...
	local name=$1
	shift
	if "$@"; then echo "ok   $name" >>"$r"; else echo "FAIL $name" >>"$r"; fi
}
check cwd test "$PWD" = "$2"
# shellcheck disable=SC2016 # the literal $x is the point: the value must survive quoting intact
check env-carried test "${PINRING_VMTEST_VALUE:-}" = 'two words $x ;'
check gtest-env test "${GTEST_COLOR:-}" = no
check env-filtered test -z "${NOT_PINRING_VMTEST_NOT_CARRIED:-}"
check harness-env test "${PINRING_REQUIRE_DEVICE:-}/${PINRING_IN_GUEST:-}/${PINRING_RXE_DEVICE:-}" = 1/1/rxe0
check memlock test "$(ulimit -l)" = unlimited
check rxe0-exists test -e /sys/class/infiniband/rxe0
check overlay-writable touch /etc/pinring-overlay-is-writable
echo to-stdout
echo to-stderr >&2
exit 7
