#!/usr/bin/env bash
# deploy.systemd_e2e (vm label): the Debian packages in a soft-RoCE guest running systemd as PID 1.
#
#   systemd_e2e.sh host CMAKE BUILD_DIR SOURCE_DIR PINRING_RXE     (what ctest runs)
#   systemd_e2e.sh guest WORK_DIR                                  (inside the guest, as root)
#
# Host half: takes the packages from $PINRING_DEBS (scripts/test.sh builds them once with
# scripts/build-debs.sh) or builds them itself, then boots
# `pinring-rxe run --systemd --rw WORK -- systemd_e2e.sh guest WORK`.
# Guest half, each step a real assertion (a step that cannot run is a FAILURE naming why):
#   0. apt-get install ./*.deb, with real dependency resolution: pinring, libpinring0,
#      libpinring-dev, pinring-examples. The maintainer scripts (debhelper's) create the pinring
#      user and group and /run/pinring, and neither enable nor start ringd
#   9. examples/consumer builds against the installed libpinring-dev (find_package(pinring)) and
#      runs against /usr's libpinring.so.0 (ldd); it is the client of the steps below
#   1. systemctl start ringd; is-active says active; the unit's hardening is in force
#   2. a user in the pinring group runs the client (runuser): fill + check succeed; so does
#      pinring-examples' pinring-hello
#   3. a user not in the group is refused, and the error names the pinring group
#   4. ringctl status shows the connected client by name
#   5. systemctl restart ringd with the client connected: it gets a clear error and reconnects
#   6. systemctl stop ringd exits cleanly (Result=success, status 0), and `rdma res show mr`
#      lists no MR afterwards (and listed ringd's MRs before, with the verbs backend)
#   7. systemd-analyze verify on the installed unit files
#   8. socket activation: with ringd.service stopped, only ringd.socket started, a client's connect
#      starts ringd.service; ringd says it took systemd's socket (sd_listen_fds), the client's fill
#      succeeds, and stopping both units is clean
set -uo pipefail

host() {
	local BUILD=$2 SRC=$3 RXE=$4  # $1, CMAKE: unused since the packages come from debian/
	# Not under /tmp: systemd mounts a fresh tmpfs on the guest's /tmp, hiding anything there. A
	# build tree under /tmp (a clone there) gets a work directory in /var/tmp instead.
	local WORK=$BUILD/deploy-e2e
	case "$(realpath -m "$WORK")/" in
	/tmp/*)
		WORK=$(mktemp -d /var/tmp/pinring-e2e.XXXXXX) || return 1
		# shellcheck disable=SC2064  # expand WORK now: it is local to this function
		trap "rm -rf '$WORK'" EXIT
		;;
	esac
	rm -rf "$WORK" && mkdir -p "$WORK" && chmod 0755 "$WORK"
	echo "--- the Debian packages"
	mkdir -p "$WORK/debs"
	if [[ -n ${PINRING_DEBS:-} ]] && compgen -G "$PINRING_DEBS/pinring_*.deb" >/dev/null; then
		echo "    from $PINRING_DEBS"
		cp "$PINRING_DEBS"/*.deb "$WORK/debs/"
	else
		"$SRC/scripts/build-debs.sh" "$WORK/build-debs" || { echo "FAIL: building the packages"; return 1; }
		cp "$WORK"/build-debs/*.deb "$WORK/debs/"
	fi
	rm -f "$WORK"/debs/*-dbgsym_*.deb
	local d
	for d in "$WORK"/debs/*.deb; do echo "    $(basename "$d"): $(dpkg-deb -f "$d" Depends)"; done
	# The consumer's source: the guest builds it against the installed libpinring-dev.
	cp -r "$SRC/examples/consumer" "$WORK/consumer-src"
	cp "$SRC/tests/deploy/systemd_e2e.sh" "$WORK/systemd_e2e.sh"
	chmod -R a+rX "$WORK"
	echo "--- booting the guest (systemd as PID 1)"
	# Run from WORK: the guest keeps the caller's cwd, which must not be under /tmp either.
	(cd "$WORK" && "$RXE" run --guest --systemd --timeout 1500 --rw "$WORK" -- \
		bash "$WORK/systemd_e2e.sh" guest "$WORK")
}

# ------------------------------------------------------------------------------------------------
FAILED=()
pass() { echo "PASS step $1: $2"; }
fail() { echo "FAIL step $1: $2"; FAILED+=("$1"); }
unit_journal() { journalctl -u ringd --no-pager -n 40 2>&1 | sed 's/^/    journal: /'; }

# MRs the kernel holds, one line per MR (`rdma res show mr` prints nothing when there are none).
mr_count() { rdma res show mr 2>/dev/null | grep -c 'mrn' || true; }

guest() {
	local WORK=$1
	local CONSUMER=$WORK/consumer/pinring-consumer
	echo "guest: $(uname -r), systemd $(systemctl --version | head -n 1 | cut -d' ' -f2), $(rdma link show 2>&1 | head -n 1)"

	# --- 0. install the packages, as an administrator would
	# The man-db trigger rebuilds the whole man index: minutes under emulation, and not under test.
	rm -f /var/lib/man-db/auto-update
	if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$WORK"/debs/*.deb \
		>"$WORK/apt.log" 2>&1; then
		pass 0 "apt-get install ./*.deb: $(dpkg-query -W -f='${Package} ${Version}, ' pinring libpinring0 libpinring-dev pinring-examples)"
	else
		sed 's/^/    /' "$WORK/apt.log"
		fail 0 "apt-get install of the packages failed"
		return 1
	fi
	getent group pinring >/dev/null && getent passwd pinring >/dev/null ||
		fail 0 "the maintainer scripts did not create the pinring user and group"
	[[ $(stat -c '%U:%G %a' /run/pinring 2>&1) == "pinring:pinring 750" ]] ||
		fail 0 "/run/pinring is '$(stat -c '%U:%G %a' /run/pinring 2>&1)', expected pinring:pinring 750"
	local enabled active
	enabled=$(systemctl is-enabled ringd.service 2>&1)
	active=$(systemctl is-active ringd.service 2>&1)
	[[ $enabled == disabled && $active == inactive ]] ||
		fail 0 "installing enabled or started ringd (is-enabled: $enabled, is-active: $active); an administrator does that"

	# --- 9. the out-of-tree consumer against the installed libpinring-dev
	if cmake -S "$WORK/consumer-src" -B "$WORK/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
		>"$WORK/consumer.log" 2>&1 && cmake --build "$WORK/consumer" >>"$WORK/consumer.log" 2>&1; then
		local lib
		lib=$(ldd "$CONSUMER" | awk '$1 == "libpinring.so.0" {print $3}')
		if [[ $(realpath "$lib" 2>/dev/null) == "$(realpath /usr/lib/x86_64-linux-gnu/libpinring.so.0)" ]] &&
			grep -q "pinring" "$WORK/consumer/CMakeCache.txt" &&
			grep -q "pinring_DIR:PATH=/usr/lib/x86_64-linux-gnu/cmake/pinring" "$WORK/consumer/CMakeCache.txt"; then
			pass 9 "consumer built with find_package(pinring) from /usr; runs against $lib"
		else
			ldd "$CONSUMER" | sed 's/^/    ldd: /'
			grep pinring_DIR "$WORK/consumer/CMakeCache.txt" | sed 's/^/    /'
			fail 9 "the consumer does not use the installed package and libpinring.so.0"
		fi
	else
		sed 's/^/    /' "$WORK/consumer.log"
		fail 9 "building the consumer against libpinring-dev failed"
		return 1
	fi

	# --- 7 first (cheap, and the rest of the test relies on these units)
	if systemd-analyze verify /lib/systemd/system/ringd.service /lib/systemd/system/ringd.socket \
		>"$WORK/verify.log" 2>&1; then
		pass 7 "systemd-analyze verify ringd.service ringd.socket"
	else
		sed 's/^/    /' "$WORK/verify.log"
		fail 7 "systemd-analyze verify"
	fi

	# --- 1. start
	systemctl start ringd
	local state
	state=$(systemctl is-active ringd)
	if [[ $state == active ]]; then
		pass 1 "systemctl start ringd; is-active: $state; $(systemctl show ringd -p StatusText --value)"
	else
		unit_journal
		fail 1 "is-active says '$state'"
		return 1
	fi
	local main_pid
	main_pid=$(systemctl show ringd -p MainPID --value)
	[[ $(ps -o user= -p "$main_pid") == pinring ]] || fail 1 "ringd runs as '$(ps -o user= -p "$main_pid")', not pinring"
	grep -q '^CapEff:[[:space:]]*0000000000000000$' "/proc/$main_pid/status" ||
		fail 1 "ringd has effective capabilities: $(grep CapEff "/proc/$main_pid/status")"
	grep -q '^Max locked memory[[:space:]]*unlimited' "/proc/$main_pid/limits" ||
		fail 1 "LimitMEMLOCK=infinity not in force: $(grep 'locked memory' "/proc/$main_pid/limits")"
	[[ $(stat -c '%U:%G %a' /run/pinring/ringd.sock 2>&1) == "pinring:pinring 660" ]] ||
		fail 1 "socket is '$(stat -c '%U:%G %a' /run/pinring/ringd.sock 2>&1)', expected pinring:pinring 660"
	echo "    ringd: pid $main_pid, backend $(ringctl raw 2>/dev/null | grep -o '"backend":"[a-z]*"' | cut -d'"' -f4)"

	# --- users: alice may connect, bob may not
	useradd -M -s /bin/bash -G pinring alice
	useradd -M -s /bin/bash bob

	# --- 2. a group member runs the client
	if runuser -u alice -- "$CONSUMER" --name=alice-check >"$WORK/alice.log" 2>&1 &&
		grep -q "all match" "$WORK/alice.log"; then
		pass 2 "alice (group pinring): $(tail -n 1 "$WORK/alice.log")"
	else
		sed 's/^/    /' "$WORK/alice.log"
		fail 2 "the client run by a pinring member failed"
	fi

	local hello=/usr/libexec/pinring/examples/pinring-hello
	if runuser -u alice -- "$hello" >"$WORK/hello.log" 2>&1 && grep -q "connected to ringd" "$WORK/hello.log"; then
		pass 2 "alice runs pinring-examples' $hello: $(grep 'connected to ringd' "$WORK/hello.log")"
	else
		sed 's/^/    /' "$WORK/hello.log"
		fail 2 "pinring-hello from pinring-examples failed for a pinring member"
	fi

	# --- 3. a non-member is refused, clearly
	if runuser -u bob -- "$CONSUMER" >"$WORK/bob.log" 2>&1; then
		fail 3 "bob (not in pinring) was able to use ringd"
	elif grep -q "pinring. group" "$WORK/bob.log" && grep -qi "permission denied" "$WORK/bob.log"; then
		pass 3 "bob refused: $(head -n 1 "$WORK/bob.log")"
	else
		sed 's/^/    /' "$WORK/bob.log"
		fail 3 "bob was refused, but the message does not say permission denied / pinring group"
	fi

	# --- 4. ringctl status shows a connected client (alice, holding a region and a queue)
	runuser -u alice -- "$CONSUMER" --name=alice-held --reconnect --hold=300 >"$WORK/held.log" 2>&1 &
	local held=$!
	local i
	for i in $(seq 100); do grep -q "all match" "$WORK/held.log" && break; sleep 0.2; done
	ringctl status >"$WORK/status.log" 2>&1
	if grep -q "alice-held" "$WORK/status.log" && grep -q "regions (1)" "$WORK/status.log"; then
		pass 4 "ringctl status lists alice-held with its region"
		sed 's/^/    /' "$WORK/status.log"
	else
		sed 's/^/    /' "$WORK/status.log" "$WORK/held.log"
		fail 4 "ringctl status does not show the connected client"
	fi
	local mrs_held
	mrs_held=$(mr_count)
	echo "    rdma res show mr with a client connected: $mrs_held MRs"

	# --- 5. restart with the client connected
	local old_pid=$main_pid
	systemctl restart ringd
	local rc=0
	for i in $(seq 300); do kill -0 "$held" 2>/dev/null || break; sleep 0.2; done
	if kill -0 "$held" 2>/dev/null; then
		kill "$held"
		rc=124
	fi
	wait "$held" || rc=$?
	main_pid=$(systemctl show ringd -p MainPID --value)
	if ((rc == 0)) && grep -q "ringd went away: UNAVAILABLE" "$WORK/held.log" && grep -q "^reconnected" "$WORK/held.log" &&
		[[ $main_pid != "$old_pid" && $(systemctl is-active ringd) == active ]]; then
		pass 5 "restart: client saw '$(grep 'went away' "$WORK/held.log" | head -n 1)', reconnected, filled again"
	else
		sed 's/^/    /' "$WORK/held.log"
		unit_journal
		fail 5 "restart with a connected client (client exit $rc, ringd pid $old_pid -> $main_pid)"
	fi

	# --- 6. stop with a client holding MRs: clean exit, every MR released
	runuser -u alice -- "$CONSUMER" --name=alice-stop --hold=300 >"$WORK/stop-client.log" 2>&1 &
	local stopper=$!
	for i in $(seq 100); do grep -q "all match" "$WORK/stop-client.log" && break; sleep 0.2; done
	local backend
	backend=$(ringctl raw 2>/dev/null | grep -o '"backend":"[a-z]*"' | cut -d'"' -f4)
	local mrs_before
	mrs_before=$(mr_count)
	systemctl stop ringd
	local result status
	result=$(systemctl show ringd -p Result --value)
	status=$(systemctl show ringd -p ExecMainStatus --value)
	sleep 0.5
	local mrs_after
	mrs_after=$(mr_count)
	kill "$stopper" 2>/dev/null
	wait "$stopper" 2>/dev/null
	echo "    backend $backend; MRs before stop: $mrs_before, after: $mrs_after"
	if [[ $result == success && $status == 0 && $mrs_after == 0 ]]; then
		if [[ $backend == verbs && $mrs_before == 0 ]]; then
			fail 6 "verbs backend but rdma res show mr listed no MR while a client held a region: the check proves nothing"
		else
			pass 6 "stop: Result=$result, status $status; rdma res show mr: $mrs_before MRs before, none after"
		fi
	else
		rdma res show mr 2>&1 | sed 's/^/    mr: /'
		unit_journal
		fail 6 "stop: Result=$result ExecMainStatus=$status, $mrs_after MRs left"
	fi

	# --- 8. socket activation: ringd.socket alone, the first client starts ringd.service
	systemctl stop ringd.service
	local sock_state svc_state
	svc_state=$(systemctl is-active ringd.service)
	if [[ $svc_state != inactive ]]; then
		fail 8 "ringd.service is '$svc_state' after systemctl stop, expected inactive"
	elif ! systemctl start ringd.socket; then
		systemctl status ringd.socket --no-pager 2>&1 | sed 's/^/    /'
		fail 8 "systemctl start ringd.socket failed"
	else
		sock_state=$(systemctl is-active ringd.socket)
		svc_state=$(systemctl is-active ringd.service)
		local sock_owner
		sock_owner=$(stat -c '%U:%G %a' /run/pinring/ringd.sock 2>&1)
		echo "    ringd.socket: $sock_state, ringd.service: $svc_state, /run/pinring/ringd.sock: $sock_owner"
		# The socket unit alone must not have started the service: the client below has to.
		if [[ $sock_state != active || $svc_state != inactive ]]; then
			fail 8 "before any client: ringd.socket is '$sock_state' (want active), ringd.service '$svc_state' (want inactive)"
		elif [[ $sock_owner != "pinring:pinring 660" ]]; then
			fail 8 "systemd's socket is '$sock_owner', expected pinring:pinring 660"
		else
			local act_since
			act_since=$(date '+%Y-%m-%d %H:%M:%S')
			runuser -u alice -- "$CONSUMER" --name=alice-activated >"$WORK/activated.log" 2>&1
			local act_rc=$?
			svc_state=$(systemctl is-active ringd.service)
			# ringd logs this line only when sd_listen_fds() handed it the socket (listen_socket.cc).
			# journald may lag behind the service by a moment: retry for up to 10 s.
			local jlog=$WORK/activated-journal.log
			for _ in $(seq 50); do
				journalctl -u ringd.service --since "$act_since" --no-pager >"$jlog" 2>&1
				grep -q "using the socket passed by systemd" "$jlog" && break
				sleep 0.2
			done
			if ((act_rc == 0)) && grep -q "all match" "$WORK/activated.log" && [[ $svc_state == active ]] &&
				grep -q "using the socket passed by systemd" "$jlog"; then
				pass 8 "socket activation: the client's connect started ringd.service (active, pid $(systemctl show ringd -p MainPID --value)), ringd took the socket from systemd, $(tail -n 1 "$WORK/activated.log")"
			else
				sed 's/^/    client: /' "$WORK/activated.log"
				sed 's/^/    journal: /' "$jlog"
				fail 8 "socket activation: client exit $act_rc, ringd.service '$svc_state', journal lines naming systemd's socket: $(grep -c 'using the socket passed by systemd' "$jlog")"
			fi
		fi
		systemctl stop ringd.socket ringd.service
		local result
		result=$(systemctl show ringd.service -p Result --value)
		[[ $result == success ]] || fail 8 "stopping the socket-activated ringd: Result=$result"
	fi

	echo
	if ((${#FAILED[@]})); then
		echo "systemd_e2e: FAILED steps: ${FAILED[*]}"
		return 1
	fi
	echo "systemd_e2e: all steps passed"
}

mode=$1
shift
case $mode in
host) host "$@" ;;
guest) guest "$@" ;;
*) echo "usage: $0 host CMAKE BUILD SRC RXE | guest WORK" >&2; exit 2 ;;
esac
