#!/usr/bin/env bash
# deploy.install_consumer: the installed tree is usable the way a user uses it.
#   install_consumer_test.sh CMAKE BUILD_DIR SOURCE_DIR HAS_RINGD(ON|OFF)
set -euo pipefail
CMAKE=$1 BUILD=$2 SRC=$3 HAS_RINGD=$4
# $5: compiler/linker flags the installed library needs from its consumers; non-empty when this
# build is sanitized (an ASan-instrumented libpinring.a links only into ASan-built programs).
SAN_FLAGS=${5:-}

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { printf '\n--- %s\n' "$*"; }

TMP=$(mktemp -d /tmp/pinring-install-test.XXXXXX)
RINGD_PID=''
cleanup() {
	if [[ -n $RINGD_PID ]]; then kill -TERM "$RINGD_PID" 2>/dev/null || true; wait "$RINGD_PID" 2>/dev/null || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT
PREFIX=$TMP/prefix

step "cmake --install $BUILD --prefix $PREFIX"
"$CMAKE" --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" || { cat "$TMP/install.log"; fail "install failed"; }
for f in include/pinring/client.h include/pinring/wire_types.h include/pinring/grant_token.h lib/libpinring.a \
	lib/libpinring.so lib/libpinring.so.0 \
	lib/cmake/pinring/pinringConfig.cmake lib/cmake/pinring/pinringConfigVersion.cmake \
	lib/cmake/pinring/pinringTargets.cmake lib/pkgconfig/pinring.pc \
	lib/systemd/system/ringd.service lib/systemd/system/ringd.socket \
	lib/sysusers.d/pinring.conf lib/tmpfiles.d/pinring.conf etc/pinring/ringd.flags \
	share/man/man8/ringd.8 share/man/man1/ringctl.1 share/man/man1/pinring-forkcheck.1 \
	bin/ringctl bin/pinring-forkcheck; do
	[[ -e $PREFIX/$f ]] || fail "$f is not installed"
done
if [[ $HAS_RINGD == ON ]]; then
	[[ -x $PREFIX/sbin/ringd ]] || fail "sbin/ringd is not installed"
fi
# The library boundary: only client headers are installed. The wire protocols (ringlib/wire) and
# the verbs resources (ringlib/verbs) are internal, and no client header drags in
# <infiniband/verbs.h> or an internal header; each installed header compiles on its own.
for f in wire_protocol.h rdma_wire.h verbs_device.h private_region.h rdma_channel.h; do
	[[ ! -e $PREFIX/include/pinring/$f ]] || fail "internal header pinring/$f is installed"
done
if grep -lE '#include *[<"](infiniband/|rdma/|verbs/|wire/)' "$PREFIX"/include/pinring/*.h; then
	fail "an installed header includes a verbs or internal header (listed above)"
fi
for h in "$PREFIX"/include/pinring/*.h; do
	c++ -std=c++20 -fsyntax-only -x c++ -I"$PREFIX/include" "$h" 2>"$TMP/header.log" ||
		{ cat "$TMP/header.log"; fail "$(basename "$h") does not compile on its own"; }
done
echo "$(ls "$PREFIX"/include/pinring | wc -l) client headers, each self-contained"
# The unit points at the ringd and the flagfile of this prefix, not at the configure-time prefix.
grep -qx "ExecStart=$PREFIX/sbin/ringd --flagfile=$PREFIX/etc/pinring/ringd.flags" \
	"$PREFIX/lib/systemd/system/ringd.service" || fail "ExecStart does not name this prefix: $(grep ExecStart "$PREFIX/lib/systemd/system/ringd.service")"
echo "installed $(wc -l <"$BUILD/install_manifest.txt") files"

step "find_package(pinring): configure and build examples/consumer against $PREFIX"
"$CMAKE" -S "$SRC/examples/consumer" -B "$TMP/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" \
	-DCMAKE_CXX_FLAGS="$SAN_FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$SAN_FLAGS" \
	-DCMAKE_BUILD_TYPE=Release >"$TMP/consumer-configure.log" 2>&1 ||
	{ cat "$TMP/consumer-configure.log"; fail "consumer configure failed"; }
"$CMAKE" --build "$TMP/consumer" >"$TMP/consumer-build.log" 2>&1 ||
	{ cat "$TMP/consumer-build.log"; fail "consumer build failed"; }
# It must have used the installed headers, not the source tree's.
grep -q -- "-isystem $PREFIX/include\|-I$PREFIX/include" "$TMP/consumer/build.ninja" ||
	fail "the consumer was not compiled against $PREFIX/include"
! grep -q "$SRC/ringlib" "$TMP/consumer/build.ninja" || fail "the consumer saw the source tree"
"$TMP/consumer/pinring-consumer" --help | grep -q "usage: pinring-consumer" || fail "consumer --help"
# pinring::ringlib is the shared library: the consumer runs against this prefix's libpinring.so.0.
ldd "$TMP/consumer/pinring-consumer" | grep -q "libpinring.so.0 => $PREFIX/lib/libpinring.so.0" ||
	fail "the consumer does not run against $PREFIX/lib/libpinring.so.0: $(ldd "$TMP/consumer/pinring-consumer" | grep pinring)"
# Internal symbols stay inside the library: the client API only.
nm -D --defined-only "$PREFIX/lib/libpinring.so.0" | grep -q VerbsDevice &&
	fail "libpinring.so.0 exports internal symbols (VerbsDevice)"
echo "ok: pinring-consumer built with find_package(pinring), linked to libpinring.so.0"

step "pkg-config --cflags --libs pinring"
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
pcflags=$(pkg-config --cflags --libs pinring) || fail "pkg-config cannot resolve pinring"
echo "$pcflags"
[[ $pcflags == *"-I$PREFIX/include"* && $pcflags == *"-L$PREFIX/lib"* && $pcflags == *-lpinring* ]] ||
	fail "pkg-config flags lack the prefix or -lpinring"
# The shared library carries its own dependencies; a static link needs rdma-core's too.
[[ $pcflags != *-libverbs* ]] || fail "pkg-config --libs names -libverbs: a shared libpinring does not need it"
[[ $(pkg-config --static --libs pinring) == *-libverbs* ]] || fail "pkg-config --static --libs lacks -libverbs"
[[ $(pkg-config --modversion pinring) == "$(sed -n 's/^Version: //p' "$PREFIX/lib/pkgconfig/pinring.pc")" ]] || fail "modversion"
# shellcheck disable=SC2086 # word splitting of the flags is the point
# shellcheck disable=SC2086  # word splitting of the flag lists is intended
g++ -std=c++20 $SAN_FLAGS -o "$TMP/consumer-pc" "$SRC/examples/consumer/main.cc" $pcflags ||
	fail "building the consumer with only pkg-config's flags failed"
# Linked with -L$PREFIX/lib -lpinring and no rpath: it finds libpinring.so.0 through LD_LIBRARY_PATH.
LD_LIBRARY_PATH=$PREFIX/lib "$TMP/consumer-pc" --help >/dev/null || fail "pkg-config-built consumer --help"
echo "ok: pinring-consumer built with pkg-config"

step "systemd-analyze verify on the installed units"
MANPATH=$PREFIX/share/man systemd-analyze verify "$PREFIX/lib/systemd/system/ringd.service" \
	"$PREFIX/lib/systemd/system/ringd.socket" || fail "systemd-analyze verify"
echo "ok: systemd-analyze verify"

if [[ $HAS_RINGD != ON ]]; then
	echo "NOTE: the build has no pinring_ringd target: installed ringd + consumer run not checked"
	exit 0
fi
step "installed ringd with the installed flagfile; both consumers connect and get their fill"
# The flagfile as installed; later flags override it: a private socket, and the socket group of
# the user running the test (the `pinring` group exists only where the package is installed).
SOCK=$TMP/ringd.sock
"$PREFIX/sbin/ringd" --flagfile="$PREFIX/etc/pinring/ringd.flags" --socket="$SOCK" \
	--socket_group="$(id -gn)" --backend=cpu >"$TMP/ringd.log" 2>&1 &
RINGD_PID=$!
for _ in $(seq 100); do [[ -S $SOCK ]] && break; kill -0 "$RINGD_PID" 2>/dev/null || break; sleep 0.1; done
[[ -S $SOCK ]] || { cat "$TMP/ringd.log"; fail "ringd did not create $SOCK"; }
[[ $(stat -c %a "$SOCK") == 660 ]] || fail "socket mode is $(stat -c %a "$SOCK"), the flagfile says 0660"
"$TMP/consumer/pinring-consumer" --socket="$SOCK" || { cat "$TMP/ringd.log"; fail "consumer against ringd"; }
LD_LIBRARY_PATH=$PREFIX/lib "$TMP/consumer-pc" --socket="$SOCK" || fail "pkg-config consumer against ringd"
"$PREFIX/bin/ringctl" --socket="$SOCK" status || fail "installed ringctl status"
kill -TERM "$RINGD_PID"
wait "$RINGD_PID" || fail "ringd exited with status $? on SIGTERM"
RINGD_PID=''
echo "ok: consumers ran against the installed ringd"
