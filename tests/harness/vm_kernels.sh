#!/usr/bin/env bash
# vm_kernels: guests on Debian kernels other than the installed one (pinring-rxe --kernel). For each of
# 6.12 (bookworm-backports) and 7 (the newest 7.x in trixie-backports): the harness fetches the kernel
# once into its cache, boots it, and rxe comes up on it (the harness fails the run otherwise); the guest's
# `uname -r` must be that series and its modules the kernel's own; the 7.x kernel also boots systemd as
# PID 1 (--systemd). Then the error paths: a series with no
# Debian suite, and a series the suite does not have, each fail before booting with a message that names
# what was asked for and where it was looked for.
# Usage: vm_kernels.sh HARNESS
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
harness=$1
vm_preflight "$harness"

for series in 6.12 7; do
	out=$T_TMP/out err=$T_TMP/err
	rc=0
	log "booting --kernel=$series"
	# shellcheck disable=SC2016 # expanded in the guest
	TMPDIR=$T_TMP "$harness" run --kernel="$series" --timeout 600 -- \
		bash -c 'uname -r; ls -d "/lib/modules/$(uname -r)/kernel/drivers/infiniband/sw/rxe"; rdma link show' \
		>"$out" 2>"$err" || rc=$?
	sed 's/^/    /' "$err"
	sed 's/^/    | /' "$out"
	[[ $rc == 0 ]] || fail "--kernel=$series: exit status $rc"
	release=$(head -n 1 "$out")
	[[ $release == "$series".* ]] || fail "--kernel=$series booted '$release'"
	grep -q "rxe0.*ACTIVE" "$out" || fail "--kernel=$series: no ACTIVE rxe0 in the guest"
	log "--kernel=$series: guest runs $release with rxe0 ACTIVE"
	assert_no_leftover_qemu
done

# systemd as PID 1 on the 7.x kernel: its modules are in place before systemd starts.
rc=0
log "booting --systemd --kernel=7"
# (From /: in --systemd mode the guest's /tmp is its own, so a cwd under /tmp does not exist there.)
(cd / && TMPDIR=$T_TMP "$harness" run --systemd --kernel=7 --timeout 600 -- \
	bash -c 'uname -r; systemctl is-system-running --wait || true; rdma link show') >"$T_TMP/out" 2>"$T_TMP/err" || rc=$?
sed 's/^/    | /' "$T_TMP/out"
[[ $rc == 0 ]] || { sed 's/^/    /' "$T_TMP/err"; fail "--systemd --kernel=7: exit status $rc"; }
[[ $(head -n 1 "$T_TMP/out") == 7.* ]] || fail "--systemd --kernel=7 booted '$(head -n 1 "$T_TMP/out")'"
grep -q "rxe0.*ACTIVE" "$T_TMP/out" || fail "--systemd --kernel=7: no ACTIVE rxe0"
assert_no_leftover_qemu

rc=0
"$harness" run --kernel=5.10 -- true >/dev/null 2>"$T_TMP/err" || rc=$?
[[ $rc == 125 ]] || fail "--kernel=5.10: expected the harness failure status 125, got $rc"
grep -q "no Debian suite known for it" "$T_TMP/err" || fail "--kernel=5.10: $(cat "$T_TMP/err")"
rc=0
"$harness" run --kernel=7.99 -- true >/dev/null 2>"$T_TMP/err" || rc=$?
[[ $rc == 125 ]] || fail "--kernel=7.99: expected 125, got $rc"
grep -q "no package matching .*7\\\\.99.* in trixie-backports" "$T_TMP/err" || fail "--kernel=7.99: $(cat "$T_TMP/err")"
log "PASS"
