#!/bin/bash
# deploy.client_only_build: configure and build with -DPINRING_CLIENT_ONLY=ON in a temp dir. The
# build must need nothing but Abseil and rdma-core: the configure never looks for liburing,
# libsystemd or nlohmann-json, the build makes the client libraries and examples and no ringd, and
# the install holds the client's files and none of ringd's.
#   client_only_build_test.sh CMAKE SRC
set -euo pipefail
CMAKE=$1
SRC=$2
TMP=$(mktemp -d /tmp/pinring-client-only.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "--- configure -DPINRING_CLIENT_ONLY=ON"
"$CMAKE" -S "$SRC" -B "$TMP/b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPINRING_CLIENT_ONLY=ON \
	>"$TMP/configure.log" 2>&1 || { cat "$TMP/configure.log"; fail "configure failed"; }
for dep in URING_FOUND SYSTEMD_FOUND nlohmann_json_DIR GTest_DIR benchmark_DIR; do
	if grep -q "^$dep" "$TMP/b/CMakeCache.txt"; then
		fail "a client-only configure looked for $dep"
	fi
done
echo "--- build"
"$CMAKE" --build "$TMP/b" -j 2 >"$TMP/build.log" 2>&1 || { tail -50 "$TMP/build.log"; fail "build failed"; }
for f in ringlib/libpinring.so.0 ringlib/libpinring.a examples/pinring-hello examples/pinring-rdma-client; do
	[[ -e $TMP/b/$f ]] || fail "$f was not built"
done
[[ ! -e $TMP/b/service/ringd ]] || fail "ringd was built"
# Nothing the client library links comes from liburing, libsystemd or nlohmann-json.
if ldd "$TMP/b/ringlib/libpinring.so.0" | grep -E 'liburing|libsystemd'; then
	fail "libpinring.so.0 links a server-only library"
fi
echo "--- install"
"$CMAKE" --install "$TMP/b" --prefix "$TMP/p" >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; fail "install failed"; }
for f in include/pinring/client.h lib/libpinring.so.0 lib/pkgconfig/pinring.pc lib/cmake/pinring/pinringConfig.cmake; do
	[[ -e $TMP/p/$f ]] || fail "$f is not installed"
done
for f in sbin/ringd bin/ringctl lib/systemd/system/ringd.service etc/pinring/ringd.flags; do
	[[ ! -e $TMP/p/$f ]] || fail "a client-only install has $f"
done
if grep -E 'liburing|libsystemd|nlohmann' "$TMP/p/lib/pkgconfig/pinring.pc"; then
	fail "pinring.pc names a server-only dependency"
fi
echo "PASS: client-only build ($(ls "$TMP/p/include/pinring" | wc -l) headers, $(wc -l <"$TMP/b/install_manifest.txt") files installed)"
