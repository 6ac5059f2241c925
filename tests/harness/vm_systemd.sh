#!/usr/bin/env bash
# shellcheck disable=SC2016 # the single-quoted commands expand their variables inside the guest
# vm_systemd: a guest with systemd as PID 1 reaches a settled state, and rxe0 is up for the test command.
# Usage: vm_systemd.sh HARNESS
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
harness=$1
vm_preflight "$harness"
# systemd mounts a tmpfs on /tmp in the guest, so the command must not depend on the host's /tmp.
cd /

guest='set -e
echo "pid1=$(cat /proc/1/comm)"
[[ $(cat /proc/1/comm) == systemd ]]
state=$(systemctl is-system-running --wait || true)
echo "system state: $state"
systemctl --failed --no-legend --plain || true
[[ $state == running || $state == degraded ]]
ibv_devinfo -d "$PINRING_RXE_DEVICE" | grep -E "hca_id|state"
ibv_devinfo -d "$PINRING_RXE_DEVICE" | grep -q PORT_ACTIVE
[[ $(ulimit -l) == unlimited ]]
echo systemd-guest-ok'
out=$T_TMP/out
rc=0
# From /: the guest keeps the caller's cwd, and ctest's may be under the host's /tmp.
(cd / && TMPDIR=$T_TMP "$harness" run --systemd --timeout 600 -- bash -c "$guest") 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
[[ $rc == 0 ]] || fail "systemd guest run exited $rc"
grep -qx pid1=systemd "$out" || fail "PID 1 was not systemd"
grep -qx systemd-guest-ok "$out" || fail "guest checks did not complete"
assert_no_leftover_qemu
log "PASS"
