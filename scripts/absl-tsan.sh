#!/usr/bin/env bash
# Builds Abseil with ThreadSanitizer, for the TSan stage of scripts/test.sh, and prints its
# install prefix. Why: Debian's libabsl is built without TSan, so TSan cannot see absl::Mutex
# (its lock and unlock live in the uninstrumented library) and reports every access guarded by
# one as a race. The fix is the same Abseil, instrumented.
#
# The source is Debian's own package (apt-get source abseil, the version libabsl-dev has), fetched
# with a private sources list and state directory built from this machine's apt configuration;
# the system's apt configuration is not changed. The result is cached under
# ${XDG_CACHE_HOME:-~/.cache}/pinring/absl-tsan-<version>/ and reused while it exists.
#
#   scripts/absl-tsan.sh            build if needed, print the prefix
set -euo pipefail
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pinring
version=$(dpkg-query -W -f='${source:Version}' libabsl-dev 2>/dev/null || true)
[[ -n $version ]] || { echo "absl-tsan.sh: libabsl-dev is not installed (scripts/install-deps.sh)" >&2; exit 1; }
prefix=$cache/absl-tsan-$version
if [[ -f $prefix/.done ]]; then
  echo "$prefix"
  exit 0
fi
command -v clang++ >/dev/null || { echo "absl-tsan.sh: clang++ missing (scripts/install-deps.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache" "$work/src"
# A deb-src entry for every archive this machine's apt already uses (URIs and suites as given).
found=0
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f $f ]] || continue
  awk '
    /^Types:/ { types = $0 }
    /^URIs:/ { uris = $2 }
    /^Suites:/ { $1 = ""; suites = $0 }
    /^Components:/ { $1 = ""; comps = $0 }
    /^Signed-By:/ { key = $2 }
    /^$/ { if (uris != "") print uris "|" suites "|" comps "|" key; uris = "" }
    END { if (uris != "") print uris "|" suites "|" comps "|" key }' "$f" |
  while IFS='|' read -r uri suites comps key; do
    printf 'Types: deb-src\nURIs: %s\nSuites:%s\nComponents:%s\nSigned-By: %s\n\n' \
      "$uri" "$suites" "$comps" "$key"
  done >>"$work/apt/src.sources"
  found=1
done
((found)) || { echo "absl-tsan.sh: no /etc/apt/sources.list.d/*.sources to take the archive from" >&2; exit 1; }
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt"
          -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache")
echo "absl-tsan.sh: fetching the abseil source package ($version)" >&2
apt-get "${apt_opts[@]}" -qq update >&2 ||
  { echo "absl-tsan.sh: apt-get update of the deb-src lists failed (no network?)" >&2; exit 1; }
(cd "$work/src" && apt-get "${apt_opts[@]}" -qq source --download-only "abseil=$version" >&2) ||
  { echo "absl-tsan.sh: apt-get source abseil=$version failed (package abseil, suite of libabsl-dev)" >&2; exit 1; }
tar -xzf "$work"/src/abseil_*.orig.tar.gz -C "$work/src"
srcdir=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'abseil*' | head -n 1)
[[ -n $srcdir && -f $srcdir/CMakeLists.txt ]] || { echo "absl-tsan.sh: the abseil source package has no CMakeLists.txt" >&2; exit 1; }
echo "absl-tsan.sh: building Abseil with -fsanitize=thread into $prefix (a few minutes, once)" >&2
CC=clang CXX=clang++ cmake -S "$srcdir" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_STANDARD=20 -DABSL_PROPAGATE_CXX_STD=ON -DABSL_BUILD_TESTING=OFF \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_CXX_FLAGS="-fsanitize=thread" \
  -DCMAKE_INSTALL_PREFIX="$prefix" >&2
cmake --build "$work/build" -j "$(nproc)" >&2
cmake --install "$work/build" >&2
touch "$prefix/.done"
echo "$prefix"
